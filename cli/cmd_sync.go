package cli

import (
	"context"
	"slices"
	"strings"

	"github.com/cofferhq/coffer/internal/bytesize"
	"github.com/cofferhq/coffer/repo"
	"github.com/cofferhq/coffer/snapshot"
)

var syncCommand = &command{
	name:    "sync",
	usage:   "[flags] [snapshot...] to|from <store>",
	summary: "copy snapshots, and the data they use, to or from another repository (skips those it has)",
	// The command locks whichever repository it writes to itself, before
	// it loads that one's index, since the direction is an argument.
	needRepo: true,
	selects:  true,
	ownIndex: true,
	check: func(_ *app, _ any, args []string) error {
		if len(args) < 2 || args[len(args)-2] != "to" && args[len(args)-2] != "from" {
			return usageError("sync needs `to <store>` or `from <store>` last, as in `coffer at /backups sync to oci://registry/backups`")
		}
		return nil
	},
	run: runSync,
}

func runSync(ctx context.Context, a *app, _ any, args []string) (err error) {
	direction, location, names := args[len(args)-2], args[len(args)-1], args[:len(args)-2]
	other, err := a.openOther(ctx, location)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := other.close(); cerr != nil && err == nil {
			err = cerr
		}
	}()
	src, dst := a.repo, other.Repository
	if direction == "from" {
		src, dst = other.Repository, a.repo
	}
	if src.Config().ID == dst.Config().ID {
		return usageError("sync %s %s: that is this repository", direction, location)
	}
	// The destination's lock comes before its index is read, as a
	// backup's does (docs/design.md, "Writers and deleters").
	lock, err := dst.Lock(ctx, repo.LockShared, "sync")
	if err != nil {
		return err
	}
	if direction == "from" {
		a.lock = lock
	} else {
		other.lock = lock
	}
	if err := src.LoadIndex(ctx); err != nil {
		return err
	}
	if err := dst.LoadIndex(ctx); err != nil {
		return err
	}

	sns, err := a.chooseSnapshots(ctx, src, names)
	if err != nil {
		return err
	}
	p := a.newProgress("sync", "blobs")
	stats, err := snapshot.Sync(ctx, src, dst, sns, p)
	p.done()
	for _, sn := range stats.Copied {
		a.out.textf("copied %s as %s: %s %s %s\n", sn.Origin().Short(), sn.ID.Short(), sn.Time.Local().Format("2006-01-02 15:04:05"), sn.Host, strings.Join(sn.Paths, " "))
		a.out.result(syncedEvent{"synced", sn.Origin().String(), sn.ID.String(), sn.Time, sn.Host, nonNil(sn.Paths)})
	}
	if err != nil {
		return err
	}
	how := "re-encrypted for the destination's keys"
	if stats.SameKeys {
		how = "copied as they are (shared keys)"
	}
	a.out.textf("%s copied, %d already there; %s copied whole (%d mounted), %s %s, %s already there; %s uploaded, %s read\n",
		counted(len(stats.Copied), "snapshot"), len(stats.Skipped), counted(stats.PacksCopied, "pack"), stats.PacksMounted,
		counted(stats.BlobsCopied, "blob"), how, counted(stats.BlobsPresent, "blob"),
		bytesize.Format(stats.BytesUploaded), bytesize.Format(stats.BytesRead))
	a.out.result(syncEvent{summaryHead: head("sync"), Copied: len(stats.Copied), Skipped: len(stats.Skipped),
		SameKeys: stats.SameKeys, PacksCopied: stats.PacksCopied, PacksMounted: stats.PacksMounted,
		BlobsCopied: stats.BlobsCopied, BlobsPresent: stats.BlobsPresent, BytesUploaded: stats.BytesUploaded,
		BytesRead: stats.BytesRead, PacksWritten: stats.Saved.Packs, IndexObjects: stats.Saved.IndexObjects})
	return nil
}

// chooseSnapshots returns the snapshots of r that names (id prefixes or
// "latest") and the -host, -tag and -path flags select: all that the
// flags select when names is empty.
func (a *app) chooseSnapshots(ctx context.Context, r *repo.Repository, names []string) ([]*snapshot.Snapshot, error) {
	if len(names) == 0 {
		all, err := snapshot.List(ctx, r)
		if err != nil {
			return nil, err
		}
		return slices.DeleteFunc(all, func(sn *snapshot.Snapshot) bool { return !a.filter.matches(sn) }), nil
	}
	var sns []*snapshot.Snapshot
	for _, name := range names {
		sn, err := a.findSnapshotIn(ctx, r, name)
		if err != nil {
			return nil, err
		}
		sns = append(sns, sn)
	}
	return sns, nil
}
