package cli

import (
	"bytes"
	"context"
	"fmt"
	"sort"
	"text/tabwriter"
	"time"

	"github.com/cofferhq/coffer/internal/bytesize"
	"github.com/cofferhq/coffer/snapshot"
	"github.com/cofferhq/coffer/storage"
)

var infoCommand = &command{
	name:     "info",
	summary:  "show the repository's id, format, store, counts, sizes and dedup ratio",
	needRepo: true,
	check:    noArgs("info"),
	run: func(ctx context.Context, a *app, _ any, args []string) error {
		sns, err := snapshot.List(ctx, a.repo)
		if err != nil {
			return err
		}
		stats := snapshot.RepositoryStats(a.repo, sns)
		keys, err := a.repo.ListKeys(ctx)
		if err != nil {
			return err
		}
		cfg := a.repo.Config()
		st := a.repo.Store()
		storeInfo := map[string]string{"location": st.Location()}
		if d, ok := st.(storage.Describer); ok {
			for k, v := range d.Describe(ctx) {
				storeInfo[k] = v
			}
		}
		info := infoEvent{
			Type: "info", ID: cfg.ID, FormatVersion: cfg.Version, Created: cfg.Created,
			Store: storeInfo, Snapshots: stats.Snapshots, Keys: len(keys), Packs: stats.Packs,
			DataBlobs: stats.DataBlobs, TreeBlobs: stats.TreeBlobs, LogicalBytes: stats.LogicalBytes,
			UniqueBytes: stats.UniqueBytes, StoredBytes: stats.StoredBytes, DedupRatio: stats.DedupRatio(),
			CompressionRatio: stats.CompressionRatio(), PackSize: cfg.PackSize, Chunker: cfg.Chunker,
		}
		a.out.result(info)
		var text bytes.Buffer
		tw := tabwriter.NewWriter(&text, 0, 0, 2, ' ', 0)
		line := func(name, format string, args ...any) {
			fmt.Fprintf(tw, "%s\t"+format+"\n", append([]any{name}, args...)...)
		}
		line("repository", "%s", cfg.ID)
		line("format version", "%d", cfg.Version)
		line("created", "%s", cfg.Created.UTC().Format(time.RFC3339))
		keysSorted := make([]string, 0, len(storeInfo))
		for k := range storeInfo {
			keysSorted = append(keysSorted, k)
		}
		sort.Strings(keysSorted)
		for _, k := range keysSorted {
			line("store "+k, "%s", storeInfo[k])
		}
		line("snapshots", "%d", stats.Snapshots)
		line("keys", "%d", len(keys))
		line("packs", "%d", stats.Packs)
		line("blobs", "%d data, %d tree", stats.DataBlobs, stats.TreeBlobs)
		line("logical size", "%s (all snapshots)", bytesize.Format(stats.LogicalBytes))
		line("unique data", "%s", bytesize.Format(stats.UniqueBytes))
		line("stored size", "%s", bytesize.Format(stats.StoredBytes))
		// Ratios of nothing would read as 0.00x, as if data had grown.
		if stats.UniqueBytes > 0 {
			line("dedup ratio", "%.2fx (logical / unique)", stats.DedupRatio())
			line("compression", "%.2fx (unique / stored)", stats.CompressionRatio())
		} else {
			line("dedup ratio", "none yet (no data)")
			line("compression", "none yet (no data)")
		}
		tw.Flush()
		a.out.textf("%s", text.String())
		return nil
	},
}
