package cli

import (
	"context"

	"github.com/cofferhq/coffer/internal/bytesize"
	"github.com/cofferhq/coffer/snapshot"
)

var diffCommand = &command{
	name:     "diff",
	usage:    "<snapshotA> <snapshotB>",
	summary:  "show paths added, removed and modified between two snapshots",
	needRepo: true,
	run: func(ctx context.Context, a *app, _ any, args []string) error {
		if len(args) != 2 {
			return usageError("diff takes two snapshot ids")
		}
		sa, err := a.findSnapshot(ctx, args[0])
		if err != nil {
			return err
		}
		sb, err := a.findSnapshot(ctx, args[1])
		if err != nil {
			return err
		}
		counts := map[snapshot.ChangeKind]int{}
		var added, removed int64
		err = snapshot.Diff(ctx, a.repo, sa, sb, func(c snapshot.Change) error {
			counts[c.Kind]++
			added += c.NewSize
			removed += c.OldSize
			a.out.result(map[string]any{"type": "change", "change": c})
			switch c.Kind {
			case snapshot.Added:
				a.out.textf("+ %s (%s)\n", c.Path, bytesize.Format(c.NewSize))
			case snapshot.Removed:
				a.out.textf("- %s (%s)\n", c.Path, bytesize.Format(c.OldSize))
			case snapshot.Modified:
				a.out.textf("M %s (%s -> %s)\n", c.Path, bytesize.Format(c.OldSize), bytesize.Format(c.NewSize))
			default:
				a.out.textf("U %s\n", c.Path)
			}
			return nil
		})
		if err != nil {
			return err
		}
		a.out.textf("%d added, %d removed, %d modified, %d metadata only\n",
			counts[snapshot.Added], counts[snapshot.Removed], counts[snapshot.Modified], counts[snapshot.Metadata])
		a.out.result(map[string]any{"type": "summary", "added": counts[snapshot.Added], "removed": counts[snapshot.Removed],
			"modified": counts[snapshot.Modified], "metadata": counts[snapshot.Metadata]})
		return nil
	},
}
