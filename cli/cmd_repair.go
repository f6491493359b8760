package cli

import (
	"context"
	"flag"

	"github.com/cofferhq/coffer/repo"
	"github.com/cofferhq/coffer/snapshot"
)

type repairOptions struct{ dryRun bool }

var repairCommand = &command{
	name:     "repair",
	usage:    "index | snapshots [-dry-run]",
	summary:  "rebuild the index from the packs, or rewrite snapshots without what is missing",
	needRepo: true,
	ownIndex: true,
	lock:     func(any) repo.LockKind { return repo.LockExclusive },
	flags: func(fs *flag.FlagSet) any {
		o := &repairOptions{}
		fs.BoolVar(&o.dryRun, "dry-run", false, "repair snapshots: list what would be lost, change nothing")
		return o
	},
	check: func(_ *app, opts any, args []string) error {
		if len(args) == 1 && (args[0] == "index" && !opts.(*repairOptions).dryRun || args[0] == "snapshots") {
			return nil
		}
		return usageError("repair needs what to repair: index, or snapshots [-dry-run]")
	},
	run: func(ctx context.Context, a *app, opts any, args []string) error {
		if args[0] == "index" {
			return a.repairIndex(ctx)
		}
		return a.repairSnapshots(ctx, opts.(*repairOptions).dryRun)
	},
}

func (a *app) repairIndex(ctx context.Context) error {
	st, err := a.repo.RepairIndex(ctx, func(err error) { a.out.warn("index", err) })
	a.out.result(repairIndexEvent{head("repair index"), st})
	if err != nil {
		return err
	}
	a.out.textf("indexed %s (%s) in %s, replacing %d; %s left out\n",
		counted(st.Packs, "pack"), counted(st.Blobs, "blob"), counted(st.IndexObjects, "index object"), st.OldObjects, counted(st.Damaged, "damaged pack"))
	return nil
}

func (a *app) repairSnapshots(ctx context.Context, dryRun bool) error {
	if err := a.repo.LoadIndex(ctx); err != nil {
		return err
	}
	verb := "lost"
	if dryRun {
		verb = "would lose"
	}
	st, err := snapshot.RepairSnapshots(ctx, a.repo, snapshot.RepairOptions{DryRun: dryRun,
		Lost: func(sn *snapshot.Snapshot, path, reason string) {
			a.out.textf("snapshot %s: %s %s: %s\n", sn.ID.Short(), verb, path, reason)
			a.out.result(lostEvent{"lost", sn.ID.String(), path, reason})
		}})
	a.out.result(repairSnapshotsEvent{head("repair snapshots"), dryRun, st})
	if err != nil {
		return err
	}
	if dryRun {
		a.out.textf("%d of %s would be rewritten, %s left out (dry run)\n", st.Damaged, counted(st.Snapshots, "snapshot"), counted(st.Lost, "entry", "entries"))
		return nil
	}
	a.out.textf("%d of %s rewritten (tagged %q), %s left out\n", st.Damaged, counted(st.Snapshots, "snapshot"), snapshot.RepairedTag, counted(st.Lost, "entry", "entries"))
	return nil
}
