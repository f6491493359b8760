package cli

import (
	"bufio"
	"context"

	"github.com/cofferhq/coffer/snapshot"
)

var catCommand = &command{
	name:     "cat",
	usage:    "<snapshot>:<path>",
	summary:  "write a file from a snapshot to standard output",
	needRepo: true,
	run: func(ctx context.Context, a *app, _ any, args []string) error {
		if len(args) != 1 {
			return usageError("cat takes one <snapshot>:<path>, e.g. cat d61:LICENSE")
		}
		id, p := splitRef(args[0])
		if p == "" {
			return usageError("cat needs a path after the snapshot id, e.g. cat %s:LICENSE", id)
		}
		sn, err := a.findSnapshot(ctx, id)
		if err != nil {
			return err
		}
		node, abs, err := snapshot.Resolve(ctx, a.repo, sn, p)
		if err != nil {
			return err
		}
		if node.Type != snapshot.TypeFile {
			return usageError("%s in snapshot %s is a %s, not a file", abs, sn.ID.Short(), node.Type)
		}
		w := bufio.NewWriterSize(a.env.Stdout, 1<<20)
		if err := snapshot.Cat(ctx, a.repo, node, w); err != nil {
			return err
		}
		return w.Flush()
	},
}
