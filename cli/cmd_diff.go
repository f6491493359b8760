package cli

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/cofferhq/coffer/internal/bytesize"
	"github.com/cofferhq/coffer/snapshot"
)

type diffOptions struct {
	content                bool
	excludes, excludeFiles stringList
}

var diffCommand = &command{
	name: "diff",
	usage: "<snapshotA>[:path] <snapshotB>[:path] | <snapshot>[:path] <live path> [-content] [-exclude PATTERN]\n\n" +
		"The second argument is a path on disk when it is absolute, is . or .., or starts with ./ or ../;\n" +
		"otherwise it is a snapshot. A snapshot without :path is compared whole with another snapshot,\n" +
		"and from its base directory (as restore and ls take it) with a subpath or a live path.\n" +
		"Against a live path, a file of the snapshot's size is read only when its mtime differs, or always\n" +
		"with -content (its pieces' blob ids are compared; no data is downloaded).",
	summary:  "show paths added, removed and modified between two snapshots, subtrees, or a snapshot and the disk",
	needRepo: true,
	selects:  true,
	flags: func(fs *flag.FlagSet) any {
		o := &diffOptions{}
		fs.BoolVar(&o.content, "content", false, "against a live path: read every file of the snapshot's size, not only those whose mtime differs")
		fs.Var(&o.excludes, "exclude", "against a live path: leave out entries on disk matching a gitignore-style pattern, as backup -exclude (repeatable)")
		fs.Var(&o.excludeFiles, "exclude-file", "against a live path: read exclude patterns from a file, one per line (repeatable)")
		return o
	},
	check: func(_ *app, opts any, args []string) error {
		o := opts.(*diffOptions)
		if len(args) != 2 {
			return usageError("diff takes two arguments: <snapshotA>[:path] <snapshotB>[:path], or <snapshot>[:path] <live path>")
		}
		if !isLivePath(args[1]) && (o.content || len(o.excludes) > 0 || len(o.excludeFiles) > 0) {
			return usageError("diff -content, -exclude and -exclude-file apply to a live path only (absolute, ., .., or starting with ./ or ../); %q is taken as a snapshot", args[1])
		}
		if isLivePath(args[1]) {
			if _, err := os.Stat(args[1]); err != nil {
				return usageError("diff: %v", err)
			}
		}
		return nil
	},
	run: func(ctx context.Context, a *app, opts any, args []string) error {
		o := opts.(*diffOptions)
		if isLivePath(args[1]) {
			return diffLive(ctx, a, o, args[0], args[1])
		}
		idA, pA := splitRef(args[0])
		idB, pB := splitRef(args[1])
		sa, err := a.findSnapshot(ctx, idA)
		if err != nil {
			return err
		}
		sb, err := a.findSnapshot(ctx, idB)
		if err != nil {
			return err
		}
		p := newDiffPrinter(a)
		if !strings.Contains(args[0], ":") && !strings.Contains(args[1], ":") {
			err = snapshot.Diff(ctx, a.repo, sa, sb, p.change)
		} else {
			err = diffSubtrees(ctx, a, sa, pA, sb, pB, p)
		}
		if err != nil {
			return err
		}
		p.summary()
		return nil
	},
}

// isLivePath reports whether a diff argument names a path on disk rather
// than a snapshot: snapshot references never start with "/" or ".".
func isLivePath(arg string) bool {
	if filepath.IsAbs(arg) || arg == "." || arg == ".." {
		return true
	}
	for _, sep := range []string{"/", string(filepath.Separator)} {
		if strings.HasPrefix(arg, "."+sep) || strings.HasPrefix(arg, ".."+sep) {
			return true
		}
	}
	return false
}

// diffSubtrees compares path pA of sa with path pB of sb; changes are
// shown under pA's snapshot path.
func diffSubtrees(ctx context.Context, a *app, sa *snapshot.Snapshot, pA string, sb *snapshot.Snapshot, pB string, p *diffPrinter) error {
	na, absA, err := snapshot.Resolve(ctx, a.repo, sa, pA)
	if err != nil {
		return err
	}
	nb, _, err := snapshot.Resolve(ctx, a.repo, sb, pB)
	if err != nil {
		return err
	}
	return snapshot.DiffNodes(ctx, a.repo, absA, na, nb, p.change)
}

// diffLive compares ref, a snapshot[:path], with live, a path on disk.
// check has made sure that live exists.
func diffLive(ctx context.Context, a *app, o *diffOptions, ref, live string) error {
	excludes := append([]string(nil), o.excludes...)
	for _, f := range o.excludeFiles {
		lines, err := readPatternFile(f)
		if err != nil {
			return err
		}
		excludes = append(excludes, lines...)
	}
	id, sp := splitRef(ref)
	sn, err := a.findSnapshot(ctx, id)
	if err != nil {
		return err
	}
	node, abs, err := snapshot.Resolve(ctx, a.repo, sn, sp)
	if err != nil {
		return err
	}
	p := newDiffPrinter(a)
	unreadable := 0
	opt := snapshot.LiveDiffOptions{Content: o.content, Excludes: excludes, SkipPaths: a.ownLocalPaths(),
		Warn: func(path string, err error) {
			unreadable++
			a.out.warn(path, err)
		}}
	if err := snapshot.DiffLive(ctx, a.repo, abs, node, live, opt, p.change); err != nil {
		return err
	}
	p.summary()
	if unreadable > 0 {
		return fmt.Errorf("%w (%d)", errDiffPartial, unreadable)
	}
	return nil
}

// diffPrinter prints changes as they come and counts them for the summary.
type diffPrinter struct {
	a      *app
	counts map[snapshot.ChangeKind]int
}

func newDiffPrinter(a *app) *diffPrinter {
	return &diffPrinter{a: a, counts: map[snapshot.ChangeKind]int{}}
}

func (p *diffPrinter) change(c snapshot.Change) error {
	p.counts[c.Kind]++
	p.a.out.result(changeEvent{"change", c})
	switch c.Kind {
	case snapshot.Added:
		p.a.out.textf("+ %s (%s)\n", c.Path, bytesize.Format(c.NewSize))
	case snapshot.Removed:
		p.a.out.textf("- %s (%s)\n", c.Path, bytesize.Format(c.OldSize))
	case snapshot.Modified:
		p.a.out.textf("M %s (%s -> %s)\n", c.Path, bytesize.Format(c.OldSize), bytesize.Format(c.NewSize))
	default:
		p.a.out.textf("U %s\n", c.Path)
	}
	return nil
}

func (p *diffPrinter) summary() {
	c := p.counts
	// No changes, no output, as diff(1): a script tests the output, or
	// the -json summary.
	if c[snapshot.Added]+c[snapshot.Removed]+c[snapshot.Modified]+c[snapshot.Metadata] > 0 {
		p.a.out.textf("%d added, %d removed, %d modified, %d metadata only\n",
			c[snapshot.Added], c[snapshot.Removed], c[snapshot.Modified], c[snapshot.Metadata])
	}
	p.a.out.result(diffEvent{head("diff"), c[snapshot.Added], c[snapshot.Removed], c[snapshot.Modified], c[snapshot.Metadata]})
}
