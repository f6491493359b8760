package cli

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"syscall"

	"github.com/cofferhq/coffer/internal/bytesize"
	"github.com/cofferhq/coffer/snapshot"
)

type archiveOptions struct {
	format string
	out    string
}

var archiveCommand = &command{
	name:     "archive",
	usage:    "<snapshot>[:path] [-format tar|tar.gz|zip] [-o FILE]",
	summary:  "write a snapshot, or a path in it, as a tar, tar.gz or zip archive",
	needRepo: true,
	selects:  true,
	flags: func(fs *flag.FlagSet) any {
		o := &archiveOptions{}
		fs.StringVar(&o.format, "format", "tar", "archive format: tar, tar.gz or zip")
		fs.StringVar(&o.out, "o", "", "write the archive to this new `file` instead of standard output")
		return o
	},
	check: func(a *app, opts any, args []string) error {
		o := opts.(*archiveOptions)
		if len(args) != 1 {
			return usageError("archive takes one <snapshot>[:path], e.g. archive d61:src -format tar.gz -o src.tar.gz")
		}
		if _, err := snapshot.ParseArchiveFormat(o.format); err != nil {
			return fmt.Errorf("%w: %w", errUsage, err)
		}
		if o.out == "" && a.env.IsTerminal(a.env.Stdout) {
			return usageError("archive will not write a binary archive to a terminal: use -o FILE or redirect standard output")
		}
		if o.out != "" {
			if _, err := os.Lstat(o.out); err == nil {
				return usageError("%s already exists: archive does not overwrite files; remove it or choose another -o", o.out)
			}
		}
		return nil
	},
	run: func(ctx context.Context, a *app, opts any, args []string) error {
		o := opts.(*archiveOptions)
		format, err := snapshot.ParseArchiveFormat(o.format)
		if err != nil {
			return fmt.Errorf("%w: %w", errUsage, err)
		}
		id, p := splitRef(args[0])
		sn, err := a.findSnapshot(ctx, id)
		if err != nil {
			return err
		}
		node, abs, err := snapshot.Resolve(ctx, a.repo, sn, p)
		if err != nil {
			return err
		}
		name := node.Name
		if abs == "/" {
			// The synthetic root has no name or times of its own.
			name = "snapshot-" + sn.ID.Short()
			root := *node
			root.ModTime = sn.Time
			node = &root
		}
		var incomplete int64
		opt := snapshot.ArchiveOptions{Format: format, Name: name, Incomplete: func(p string, n *snapshot.Node) {
			incomplete++
			a.out.warn(p, n.IncompleteWarning("archived"))
		}}
		partial := func() error {
			if incomplete > 0 {
				return partialIncomplete("archive", incomplete)
			}
			return nil
		}
		if o.out == "" {
			w := bufio.NewWriterSize(a.env.Stdout, 1<<20)
			if err := snapshot.WriteArchive(ctx, a.repo, node, w, opt); err != nil {
				return err
			}
			if err := w.Flush(); err != nil {
				return err
			}
			return partial()
		}
		size, err := writeFileAtomically(o.out, func(w io.Writer) error {
			return snapshot.WriteArchive(ctx, a.repo, node, w, opt)
		})
		if err != nil {
			return err
		}
		a.out.textf("archive of snapshot %s:%s written to %s (%s)\n", sn.ID.Short(), abs, o.out, bytesize.Format(size))
		a.out.result(archiveEvent{head("archive"), sn.ID.String(), abs, o.out, string(format), size})
		return partial()
	},
}

// writeFileAtomically writes name through write into a temporary file
// beside it, then links it into place: a failed or interrupted archive
// leaves no partial file that looks complete, and a file created
// meanwhile is not overwritten. It returns the number of bytes written.
func writeFileAtomically(name string, write func(io.Writer) error) (size int64, err error) {
	var f *os.File
	for range 100 {
		// Made by hand rather than by os.CreateTemp, whose files are 0600:
		// an archive gets the mode of any file the user creates.
		tmp := filepath.Join(filepath.Dir(name), fmt.Sprintf(".%s.%08x.tmp", filepath.Base(name), rand.Uint32()))
		f, err = os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o666)
		if !errors.Is(err, os.ErrExist) {
			break
		}
	}
	if err != nil {
		return 0, fmt.Errorf("creating %s: %w", name, err)
	}
	defer func() {
		f.Close()
		os.Remove(f.Name())
	}()
	cw := &countingWriter{w: f}
	bw := bufio.NewWriterSize(cw, 1<<20)
	if err := write(bw); err != nil {
		if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
			return 0, fmt.Errorf("writing %s: %w (nothing was left there): free space on its file system, or write the archive elsewhere", name, errNoSpace)
		}
		return 0, err
	}
	for _, finish := range []func() error{bw.Flush, f.Sync} {
		if err := finish(); errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
			return 0, fmt.Errorf("writing %s: %w (nothing was left there): free space on its file system, or write the archive elsewhere", name, errNoSpace)
		} else if err != nil {
			return 0, fmt.Errorf("writing %s: %w", name, err)
		}
	}
	if err := f.Close(); err != nil {
		return 0, fmt.Errorf("writing %s: %w", name, err)
	}
	// A link, unlike a rename, fails if name exists.
	if err := os.Link(f.Name(), name); err != nil {
		if errors.Is(err, os.ErrExist) {
			return 0, usageError("%s was created while the archive was written: archive does not overwrite files; remove it or choose another -o", name)
		}
		return 0, fmt.Errorf("writing %s: %w", name, err)
	}
	return cw.n, nil
}

// countingWriter counts the bytes written through it.
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
