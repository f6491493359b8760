package cli

import (
	"context"
	"sort"

	"github.com/cofferhq/coffer/internal/bytesize"
	"github.com/cofferhq/coffer/snapshot"
	"github.com/cofferhq/coffer/storage"
)

var infoCommand = &command{
	name:     "info",
	summary:  "show the repository's id, format, store, counts, sizes and dedup ratio",
	needRepo: true,
	run: func(ctx context.Context, a *app, _ any, args []string) error {
		if len(args) > 0 {
			return usageError("info takes no arguments")
		}
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
		info := map[string]any{
			"type": "info", "id": cfg.ID, "format_version": cfg.Version, "created": cfg.Created,
			"store": storeInfo, "snapshots": stats.Snapshots, "keys": len(keys), "packs": stats.Packs,
			"data_blobs": stats.DataBlobs, "tree_blobs": stats.TreeBlobs, "logical_bytes": stats.LogicalBytes,
			"unique_bytes": stats.UniqueBytes, "stored_bytes": stats.StoredBytes, "dedup_ratio": stats.DedupRatio(),
			"compression_ratio": stats.CompressionRatio(), "pack_size": cfg.PackSize, "chunker": cfg.Chunker,
		}
		a.out.result(info)
		a.out.textf("repository      %s\n", cfg.ID)
		a.out.textf("format version  %d\n", cfg.Version)
		a.out.textf("created         %s\n", cfg.Created.Format("2006-01-02 15:04:05Z07:00"))
		keysSorted := make([]string, 0, len(storeInfo))
		for k := range storeInfo {
			keysSorted = append(keysSorted, k)
		}
		sort.Strings(keysSorted)
		for _, k := range keysSorted {
			a.out.textf("%-15s %s\n", "store "+k, storeInfo[k])
		}
		a.out.textf("snapshots       %d\n", stats.Snapshots)
		a.out.textf("keys            %d\n", len(keys))
		a.out.textf("packs           %d\n", stats.Packs)
		a.out.textf("blobs           %d data, %d tree\n", stats.DataBlobs, stats.TreeBlobs)
		a.out.textf("logical size    %s (all snapshots)\n", bytesize.Format(stats.LogicalBytes))
		a.out.textf("unique data     %s\n", bytesize.Format(stats.UniqueBytes))
		a.out.textf("stored size     %s\n", bytesize.Format(stats.StoredBytes))
		a.out.textf("dedup ratio     %.2fx (logical / unique)\n", stats.DedupRatio())
		a.out.textf("compression     %.2fx (unique / stored)\n", stats.CompressionRatio())
		return nil
	},
}
