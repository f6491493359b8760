package cli

import (
	"bytes"
	"context"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/cofferhq/coffer/internal/bytesize"
	"github.com/cofferhq/coffer/snapshot"
)

var statsCommand = &command{
	name:     "stats",
	usage:    "[snapshot...]",
	summary:  "per snapshot: files, restore size, data used, stored, and what it alone keeps stored; then the repository's totals",
	needRepo: true,
	selects:  true,
	run:      runStats,
}

func runStats(ctx context.Context, a *app, _ any, args []string) error {
	all, err := snapshot.List(ctx, a.repo)
	if err != nil {
		return err
	}
	sns, err := a.chooseSnapshots(ctx, a.repo, args)
	if err != nil {
		return err
	}
	stats, err := snapshot.SnapshotsStats(ctx, a.repo, sns, all)
	if err != nil {
		return err
	}
	var table bytes.Buffer
	tw := tabwriter.NewWriter(&table, 2, 8, 2, ' ', tabwriter.AlignRight)
	if len(stats) > 0 {
		fmt.Fprintln(tw, "snapshot\ttime\tfiles\tdirs\trestore size\tdata\tstored\tonly its own, stored\t")
	}
	for _, s := range stats {
		sn := s.Snapshot
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\t%s\t%s\t%s\t\n", sn.ID.Short(), sn.Time.UTC().Format(time.RFC3339), s.Files, s.Dirs,
			bytesize.Format(s.RestoreSize), bytesize.Format(s.RawBytes), bytesize.Format(s.StoredBytes), bytesize.Format(s.UniqueStored))
		a.out.result(snapshotStatsEvent{Type: "snapshot_stats", ID: sn.ID.String(), Time: sn.Time, Host: sn.Host,
			Files: s.Files, Dirs: s.Dirs, Others: s.Others, RestoreSize: s.RestoreSize,
			Blobs: s.Blobs, RawBytes: s.RawBytes, StoredBytes: s.StoredBytes,
			UniqueBlobs: s.UniqueBlobs, UniqueRawBytes: s.UniqueRaw, UniqueStoredBytes: s.UniqueStored})
	}
	tw.Flush()
	a.out.textf("%s", table.String())
	if len(args) > 0 || a.filter.set() {
		return nil
	}
	rs := snapshot.RepositoryStats(a.repo, all)
	a.out.textf("repository: %s, %s logical, %s unique data, %s stored", counted(rs.Snapshots, "snapshot"),
		bytesize.Format(rs.LogicalBytes), bytesize.Format(rs.UniqueBytes), bytesize.Format(rs.StoredBytes))
	if rs.UniqueBytes > 0 {
		a.out.textf(", dedup %.2fx, compression %.2fx", rs.DedupRatio(), rs.CompressionRatio())
	}
	a.out.textf("\n")
	a.out.result(repositoryStatsEvent{Type: "repository_stats", Snapshots: rs.Snapshots, LogicalBytes: rs.LogicalBytes,
		UniqueBytes: rs.UniqueBytes, StoredBytes: rs.StoredBytes, Packs: rs.Packs,
		DataBlobs: rs.DataBlobs, TreeBlobs: rs.TreeBlobs, DedupRatio: rs.DedupRatio(), CompressionRatio: rs.CompressionRatio()})
	return nil
}
