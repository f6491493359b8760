package cli

import (
	"context"
	"fmt"
	"sort"

	"github.com/cofferhq/coffer/repo"
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
		var logical int64
		for _, sn := range sns {
			logical += sn.Summary.Size
		}
		var packs int
		var stored int64
		a.repo.Index().Packs(func(_ repo.ID, size int64) { packs++; stored += size })
		var dataBlobs, treeBlobs int
		var unique int64
		a.repo.Index().Each(func(_ repo.ID, loc repo.Location) {
			if loc.Type == repo.BlobData {
				dataBlobs++
				unique += int64(loc.RawLength)
			} else {
				treeBlobs++
			}
		})
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
		dedup := ratio(logical, unique)
		info := map[string]any{
			"type": "info", "id": cfg.ID, "format_version": cfg.Version, "created": cfg.Created,
			"store": storeInfo, "snapshots": len(sns), "keys": len(keys), "packs": packs,
			"data_blobs": dataBlobs, "tree_blobs": treeBlobs, "logical_bytes": logical,
			"unique_bytes": unique, "stored_bytes": stored, "dedup_ratio": dedup,
			"compression_ratio": ratio(unique, stored), "pack_size": cfg.PackSize, "chunker": cfg.Chunker,
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
		a.out.textf("snapshots       %d\n", len(sns))
		a.out.textf("keys            %d\n", len(keys))
		a.out.textf("packs           %d\n", packs)
		a.out.textf("blobs           %d data, %d tree\n", dataBlobs, treeBlobs)
		a.out.textf("logical size    %s (all snapshots)\n", size(logical))
		a.out.textf("unique data     %s\n", size(unique))
		a.out.textf("stored size     %s\n", size(stored))
		a.out.textf("dedup ratio     %sx (logical / unique)\n", fmt.Sprintf("%.2f", dedup))
		a.out.textf("compression     %sx (unique / stored)\n", fmt.Sprintf("%.2f", ratio(unique, stored)))
		return nil
	},
}

func ratio(a, b int64) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}
