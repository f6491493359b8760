package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"

	"github.com/cofferhq/coffer/internal/bytesize"
	"github.com/cofferhq/coffer/repo"
	"github.com/cofferhq/coffer/snapshot"
)

type restoreOptions struct {
	to                 string
	overwrite          bool
	excludes, includes stringList
	ignoreErrors       bool
}

var restoreCommand = &command{
	name:     "restore",
	usage:    "<snapshot>[:path] -to DIR",
	summary:  "restore a snapshot, or a path in it, into a directory",
	needRepo: true,
	selects:  true,
	flags: func(fs *flag.FlagSet) any {
		o := &restoreOptions{}
		fs.StringVar(&o.to, "to", "", "directory to restore into (created if missing)")
		fs.BoolVar(&o.overwrite, "overwrite", false, "replace existing files")
		fs.Var(&o.excludes, "exclude", "leave out paths matching a gitignore-style pattern, relative to the restored root (repeatable)")
		fs.Var(&o.includes, "include", "restore only paths matching a gitignore-style pattern, relative to the restored root, and the directories leading to them (repeatable)")
		fs.BoolVar(&o.ignoreErrors, "ignore-errors", false, "go on past damaged data, restoring what is readable and listing what is not (exit 3)")
		return o
	},
	check: func(_ *app, opts any, args []string) error {
		o := opts.(*restoreOptions)
		if len(args) != 1 {
			return usageError("restore takes one <snapshot>[:path], e.g. restore d61 -to ./restored")
		}
		if o.to == "" {
			return usageError("restore needs -to DIR, the directory to restore into")
		}
		if o.to == "-" {
			// A tree has no single stream to go to stdout as; archive has
			// the formats that carry one, and cat writes one file as is.
			return usageError("restore writes into a directory, not stdout: use coffer archive snap[:path] to write a tar or zip to stdout, or coffer cat snap:path for one file")
		}
		return nil
	},
	run: func(ctx context.Context, a *app, opts any, args []string) error {
		o := opts.(*restoreOptions)
		id, p := splitRef(args[0])
		sn, err := a.findSnapshot(ctx, id)
		if err != nil {
			return err
		}
		prog := a.newProgress("restore", "files")
		sum, err := snapshot.Restore(ctx, a.repo, sn, p, snapshot.RestoreOptions{
			Target: o.to, Overwrite: o.overwrite, Progress: prog, Excludes: o.excludes, Includes: o.includes,
			IgnoreErrors: o.ignoreErrors})
		prog.done()
		if err != nil && errors.Is(err, repo.ErrCorrupt) && !o.ignoreErrors {
			return fmt.Errorf("%w; coffer check -read-data names what is damaged, and restore -ignore-errors restores the rest", err)
		}
		if err != nil {
			return err
		}
		a.out.textf("restored snapshot %s to %s: %s, %s%s, %s\n", sn.ID.Short(), o.to, counted(sum.Files, "file"), counted(sum.Dirs, "dir"),
			othersText(sum.Others), bytesize.Format(sum.Bytes))
		a.out.result(restoreEvent{head("restore"), sn.ID.String(), o.to, sum})
		if sum.Failed > 0 {
			return fmt.Errorf("%w: %d not restored (listed above); coffer check -read-data tells what is damaged", errRestorePartial, sum.Failed)
		}
		if sum.Incomplete > 0 {
			return partialIncomplete("restore", sum.Incomplete)
		}
		return nil
	},
}
