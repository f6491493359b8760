package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"

	"github.com/cofferhq/coffer/repo"
	"github.com/cofferhq/coffer/snapshot"
	"github.com/cofferhq/coffer/storage"
)

type repairOptions struct{ dryRun, force bool }

var repairCommand = &command{
	name:     "repair",
	usage:    "index | snapshots [-dry-run] | refs [-force]",
	summary:  "rebuild the index from the packs, rewrite snapshots without what is missing, or retire registry refs tags whose manifests are gone",
	needRepo: true,
	ownIndex: true,
	lock:     func(any) repo.LockKind { return repo.LockExclusive },
	flags: func(fs *flag.FlagSet) any {
		o := &repairOptions{}
		fs.BoolVar(&o.dryRun, "dry-run", false, "repair snapshots: list what would be lost, change nothing")
		fs.BoolVar(&o.force, "force", false, "repair refs: also retire the lost refs tags this client never read, losing what they listed")
		return o
	},
	check: func(_ *app, opts any, args []string) error {
		o := opts.(*repairOptions)
		switch {
		case len(args) != 1:
		case args[0] == "index" && !o.dryRun && !o.force, args[0] == "snapshots" && !o.force, args[0] == "refs" && !o.dryRun:
			return nil
		}
		return usageError("repair needs what to repair: index, snapshots [-dry-run], or refs [-force]")
	},
	run: func(ctx context.Context, a *app, opts any, args []string) error {
		switch args[0] {
		case "index":
			return a.repairIndex(ctx)
		case "refs":
			return a.repairRefs(ctx, opts.(*repairOptions).force)
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

func (a *app) repairRefs(ctx context.Context, force bool) error {
	left := 0
	n, err := a.repo.RepairRefs(ctx, force, func(tag string, kept, lost int, retired bool) {
		a.out.result(refsTagEvent{"refs_tag", tag, kept, lost, retired})
		switch {
		case !retired:
			left++
			a.out.warn(tag, errors.New("its manifest is lost and this client never read it: run repair refs where a client did (its cache knows what the tag listed), or add -force to retire it, losing what it listed"))
		case kept < 0:
			a.out.textf("refs tag %s retired (-force): this client never read it, so the objects it listed are not referenced any more\n", tag)
		default:
			a.out.textf("refs tag %s retired: %s it listed referenced again, %d gone from the registry\n", tag, counted(int64(kept), "object"), lost)
		}
	})
	if err != nil {
		return err
	}
	sum := repairRefsEvent{summaryHead: head("repair refs")}
	sum.RepairRefs.Retired, sum.RepairRefs.Left = n, left
	a.out.result(sum)
	if n > 0 {
		a.out.textf("retired %s; run coffer check to see what the repository lost\n", counted(int64(n), "refs tag"))
	}
	if left > 0 {
		return fmt.Errorf("%d lost refs tags are left as they are (see the warnings above): %w", left, storage.ErrLostReferences)
	}
	if n == 0 {
		a.out.textf("every refs tag has its manifest: nothing to repair\n")
	}
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
