package cli

import (
	"bufio"
	"context"
	"flag"
	"fmt"

	"github.com/cofferhq/coffer/snapshot"
)

type catOptions struct {
	link bool
}

var catCommand = &command{
	name:     "cat",
	usage:    "[-l] <snapshot>:<path>",
	summary:  "write a file from a snapshot to standard output",
	needRepo: true,
	selects:  true,
	flags: func(fs *flag.FlagSet) any {
		o := &catOptions{}
		fs.BoolVar(&o.link, "l", false, "print a symlink's target instead of a file's content")
		return o
	},
	check: func(_ *app, _ any, args []string) error {
		if len(args) != 1 {
			return usageError("cat takes one <snapshot>:<path>, e.g. cat d61:LICENSE")
		}
		if id, p := splitRef(args[0]); p == "" {
			return usageError("cat needs a path after the snapshot id, e.g. cat %s:LICENSE", id)
		}
		return nil
	},
	run: func(ctx context.Context, a *app, opts any, args []string) error {
		o := opts.(*catOptions)
		id, p := splitRef(args[0])
		sn, err := a.findSnapshot(ctx, id)
		if err != nil {
			return err
		}
		node, abs, err := snapshot.Resolve(ctx, a.repo, sn, p)
		if err != nil {
			return err
		}
		if o.link {
			if node.Type != snapshot.TypeSymlink {
				return usageError("%s in snapshot %s is a %s, not a symlink: cat -l prints a symlink's target; drop -l for a file's content", abs, sn.ID.Short(), node.Type)
			}
			// A newline after the target, as readlink prints it.
			_, err := a.env.Stdout.Write([]byte(node.LinkTarget + "\n"))
			return err
		}
		if node.Type == snapshot.TypeSymlink {
			// Following the link would mean resolving it inside the
			// snapshot (or out of it), which cat does not guess at.
			return usageError("%s in snapshot %s is a symlink, not a file: use cat -l to print its target", abs, sn.ID.Short())
		}
		if node.Type != snapshot.TypeFile {
			return usageError("%s in snapshot %s is a %s, not a file", abs, sn.ID.Short(), node.Type)
		}
		w := bufio.NewWriterSize(a.env.Stdout, 1<<20)
		if err := snapshot.Cat(ctx, a.repo, node, w); err != nil {
			return err
		}
		if err := w.Flush(); err != nil {
			return err
		}
		if node.Error != "" {
			return fmt.Errorf("%s was %w (%s): wrote the %d of its %d bytes that were read", abs, errIncomplete, node.Error, node.StoredSize(), node.Size)
		}
		return nil
	},
}
