package snapshot

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"

	"golang.org/x/sync/errgroup"

	"github.com/cofferhq/coffer/repo"
	"github.com/cofferhq/coffer/storage"
)

// CheckOptions select how deep a check goes.
type CheckOptions struct {
	// ReadData downloads and verifies packs; ReadFraction (0 < f <= 1)
	// picks a random share of them, 1 meaning all.
	ReadData     bool
	ReadFraction float64
	Progress     CheckProgress // nil: none
}

// CheckProgress hears how far a check's reading of packs (ReadData) has
// come. Processed is called from several goroutines at once.
type CheckProgress interface {
	// Total is called once, before any pack is read, with the number of
	// packs to read and their stored size.
	Total(packs, bytes int64)
	// Processed is called as packs are read, with how many and their size.
	Processed(packs, bytes int64)
}

// CheckResult counts what a check saw.
type CheckResult struct {
	Snapshots      int   `json:"snapshots"`
	Trees          int   `json:"trees"`
	DataBlobs      int   `json:"data_blobs"`
	Packs          int   `json:"packs"`
	UnindexedPacks int   `json:"unindexed_packs"`
	PacksRead      int   `json:"packs_read"`
	BytesRead      int64 `json:"bytes_read"`
	Problems       int   `json:"problems"`
	// Affected lists the files whose content is in a pack found damaged
	// or missing, so the user knows what a damaged pack costs (and what
	// `repair snapshots` would leave out).
	Affected []AffectedFile `json:"affected"`
}

// AffectedFile is a file of a snapshot whose content a damaged or
// missing pack holds.
type AffectedFile struct {
	Snapshot repo.ID `json:"snapshot"`
	Path     string  `json:"path"`
	Pack     repo.ID `json:"pack"`
}

// Check verifies the repository's structure: every pack the index lists
// exists with the right size, every snapshot loads, every tree decodes and
// every blob a tree references is in the index with the right type. With
// ReadData it also downloads packs and authenticates every blob in them.
// Each problem is passed to problem; the error return is for failures that
// stop the check itself.
func Check(ctx context.Context, r *repo.Repository, opt CheckOptions, problem func(error)) (CheckResult, error) {
	var res CheckResult
	var mu sync.Mutex // pack reads run in parallel
	damagedPacks := map[repo.ID]bool{}
	damagedBlobs := map[repo.ID]repo.ID{} // blob -> pack
	report := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		res.Problems++
		var ie *repo.IntegrityError
		if errors.As(err, &ie) {
			switch id, perr := repo.ParseID(ie.Name); {
			case perr != nil:
			case ie.Kind == storage.KindPack:
				damagedPacks[id] = true
			case ie.Kind == "blob":
				pack, _ := repo.ParseID(ie.Pack)
				damagedBlobs[id] = pack
			}
		}
		problem(err)
	}
	listing, err := r.CheckPacks(ctx, report)
	if err != nil {
		return res, err
	}
	res.Packs, res.UnindexedPacks = len(listing.Stored), len(listing.Unindexed)

	// Walking the trees (one goroutine decoding JSON) and reading packs
	// (one worker per CPU) are independent, so they run at once.
	g, gctx := errgroup.WithContext(ctx)
	if opt.ReadData {
		g.Go(func() error { return readPacks(gctx, r, listing, opt, report, &mu, &res) })
	}
	g.Go(func() error {
		snapshots, trees, blobs, err := checkSnapshots(gctx, r, report)
		mu.Lock()
		res.Snapshots, res.Trees, res.DataBlobs = snapshots, trees, blobs
		mu.Unlock()
		return err
	})
	if err := g.Wait(); err != nil {
		return res, err
	}
	if len(damagedPacks)+len(damagedBlobs) > 0 {
		r.Index().Each(func(id repo.ID, loc repo.Location) {
			if damagedPacks[loc.Pack] {
				damagedBlobs[id] = loc.Pack
			}
		})
		affected, err := affectedFiles(ctx, r, damagedBlobs)
		res.Affected = affected
		return res, err
	}
	return res, nil
}

// affectedFiles walks every snapshot for the files that use the blobs.
func affectedFiles(ctx context.Context, r *repo.Repository, blobs map[repo.ID]repo.ID) ([]AffectedFile, error) {
	ids, err := r.ListObjects(ctx, storage.KindSnapshot)
	if err != nil {
		return nil, err
	}
	var out []AffectedFile
	for _, id := range ids {
		sn, err := Load(ctx, r, id)
		if err != nil {
			continue // reported by the check already
		}
		err = Walk(ctx, r, "/", sn.Tree, func(p string, n *Node) error {
			for _, e := range n.Content {
				if pack, ok := blobs[e.ID]; ok && !e.Hole {
					out = append(out, AffectedFile{Snapshot: sn.ID, Path: p, Pack: pack})
					break
				}
			}
			return nil
		})
		if err != nil && ctx.Err() != nil {
			return out, err
		}
	}
	return out, nil
}

// checkSnapshots loads every snapshot and checks its trees, each tree
// once, and returns how many snapshots, trees and data blobs it saw.
func checkSnapshots(ctx context.Context, r *repo.Repository, report func(error)) (snapshots, trees, blobs int, err error) {
	ids, err := r.ListObjects(ctx, storage.KindSnapshot)
	if err != nil {
		return 0, 0, 0, err
	}
	// A bit for each blob of the index instead of a map entry of 50 to
	// 100 bytes: with a million blobs, the maps were most of a check's
	// memory.
	nums := r.Index().Numbers()
	seenTrees, seenBlobs := repo.NewBlobSet(nums), repo.NewBlobSet(nums)
	var loaded []*Snapshot
	for _, id := range ids {
		sn, err := Load(ctx, r, id)
		if err != nil {
			report(err)
			continue
		}
		snapshots++
		loaded = append(loaded, sn)
		if err := checkTree(ctx, r, sn.Tree, "snapshot "+sn.ID.Short()+" /", seenTrees, seenBlobs, report); err != nil {
			return snapshots, seenTrees.Len(), seenBlobs.Len(), err
		}
	}
	// Snapshots this client saw that are gone with no forget behind
	// their removal are an integrity problem like a damaged object.
	vanished, err := Vanished(ctx, r, ids, loaded)
	for _, v := range vanished {
		report(v)
	}
	if err != nil {
		if ctx.Err() != nil {
			return snapshots, seenTrees.Len(), seenBlobs.Len(), ctx.Err()
		}
		report(err)
	}
	return snapshots, seenTrees.Len(), seenBlobs.Len(), nil
}

// readPacks downloads and verifies the packs opt selects.
func readPacks(ctx context.Context, r *repo.Repository, listing repo.PackListing, opt CheckOptions, report func(error), mu *sync.Mutex, res *CheckResult) error {
	packs := make([]repo.ID, 0, len(listing.Stored))
	for id := range listing.Stored {
		packs = append(packs, id)
	}
	slices.SortFunc(packs, func(a, b repo.ID) int { return slices.Compare(a[:], b[:]) })
	if f := opt.ReadFraction; f > 0 && f < 1 {
		rand.Shuffle(len(packs), func(i, j int) { packs[i], packs[j] = packs[j], packs[i] })
		packs = packs[:max(1, int(float64(len(packs))*f+0.5))]
	}
	var total int64
	for _, id := range packs {
		total += listing.Stored[id]
	}
	if opt.Progress != nil {
		opt.Progress.Total(int64(len(packs)), total)
	}
	// Verifying a pack (SHA-256, then every blob's AES-GCM and BLAKE3) is
	// CPU work and reading it is I/O: one worker per CPU keeps both busy,
	// each holding one blob at a time.
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(runtime.GOMAXPROCS(0))
	for _, id := range packs {
		g.Go(func() error {
			size := listing.Stored[id]
			if err := r.VerifyPack(gctx, id, size, report); err != nil {
				if gctx.Err() != nil {
					return gctx.Err()
				}
				report(err)
			}
			mu.Lock()
			res.PacksRead++
			res.BytesRead += size
			mu.Unlock()
			if opt.Progress != nil {
				opt.Progress.Processed(1, size)
			}
			return nil
		})
	}
	return g.Wait()
}

// checkTree verifies a tree and everything below it once.
func checkTree(ctx context.Context, r *repo.Repository, id repo.ID, where string, seenTrees, seenBlobs *repo.BlobSet, report func(error)) error {
	if !seenTrees.Add(id) {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	nodes, err := LoadTree(ctx, r, id)
	if err != nil {
		report(fmt.Errorf("%s: %w", where, err))
		return nil
	}
	for _, n := range nodes {
		p := where + n.Name
		switch n.Type {
		case TypeDir:
			if err := checkTree(ctx, r, n.Subtree, p+"/", seenTrees, seenBlobs, report); err != nil {
				return err
			}
		case TypeFile:
			for _, e := range n.Content {
				if e.Hole || !seenBlobs.Add(e.ID) {
					continue
				}
				loc, ok := r.Index().Lookup(e.ID)
				switch {
				case !ok:
					report(fmt.Errorf("%s: data blob %s: %w", p, e.ID.Short(), repo.ErrBlobNotFound))
				case loc.Type != repo.BlobData:
					report(fmt.Errorf("%s: blob %s is indexed as %s, not data: %w", p, e.ID.Short(), loc.Type, repo.ErrCorrupt))
				case int64(loc.RawLength) != e.Size:
					report(fmt.Errorf("%s: blob %s holds %d bytes, the tree says %d: %w", p, e.ID.Short(), loc.RawLength, e.Size, repo.ErrCorrupt))
				}
			}
		}
	}
	return nil
}
