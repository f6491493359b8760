package repo

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/cofferhq/coffer/storage"
)

// TestInterruptedBackup fails a WithBlobSaver run after several packs were
// stored and checks the next run adopts them instead of storing their
// blobs again.
func TestInterruptedBackup(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name   string
		cancel bool // interrupt by cancelling the context rather than failing fn
	}{
		{"fn fails", false},
		{"context cancelled", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, st := newTestRepo(t)
			// Data from an earlier, complete backup: adoption must not
			// disturb it.
			earlier := mixedBlobs(10, 10, 32<<10)
			earlierIDs, _ := saveBlobs(t, r, earlier)
			indexesBefore := objectNames(t, st, storage.KindIndex)
			packsBefore := objectNames(t, st, storage.KindPack)

			// About 6.5 MiB of random data, the rest compressible: six full
			// packs and a partial one. Two uploaders hold at most two packs
			// when the run is cancelled, so at least four are stored.
			blobs := mixedBlobs(11, 200, 128<<10)
			ids := make([]ID, len(blobs))
			interrupted := errors.New("interrupted")
			runCtx, cancel := context.WithCancel(ctx)
			defer cancel()
			_, err := openTestRepo(t, st, testPassphrase, OpenOptions{}).WithBlobSaver(runCtx, func(ctx context.Context, s *BlobSaver) error {
				for i, b := range blobs {
					id, _, err := s.Save(ctx, b.typ, b.data)
					if err != nil {
						return err
					}
					ids[i] = id
				}
				if tt.cancel {
					cancel()
					return ctx.Err()
				}
				return interrupted
			})
			if tt.cancel && !errors.Is(err, context.Canceled) || !tt.cancel && !errors.Is(err, interrupted) {
				t.Fatalf("WithBlobSaver: %v", err)
			}
			if got := objectNames(t, st, storage.KindIndex); !slices.Equal(got, indexesBefore) {
				t.Fatalf("an interrupted run changed the index objects from %v to %v", indexesBefore, got)
			}
			var orphans []string
			for _, p := range objectNames(t, st, storage.KindPack) {
				if !slices.Contains(packsBefore, p) {
					orphans = append(orphans, p)
				}
			}
			if len(orphans) < 3 {
				t.Fatalf("the interrupted run stored %d packs, want at least 3", len(orphans))
			}

			// The blobs of the stored packs, read from their trailers.
			adopted := map[ID]bool{}
			r2 := reopen(t, st, OpenOptions{})
			for _, p := range orphans {
				id, _ := ParseID(p)
				if r2.Index().HasPack(id) {
					t.Fatalf("pack %s of the interrupted run is indexed", p)
				}
				entries, err := r2.ReadPackTrailer(ctx, id, int64(len(getObject(t, st, storage.KindPack, p))))
				if err != nil {
					t.Fatal(err)
				}
				for _, e := range entries {
					adopted[e.ID] = true
				}
			}
			var again []testBlob
			for i, b := range blobs {
				if adopted[ids[i]] {
					again = append(again, b)
				}
			}
			if len(again) == 0 || len(again) == len(blobs) {
				t.Fatalf("%d of %d blobs are in stored packs; want some but not all", len(again), len(blobs))
			}

			// Saving those blobs again stores nothing but an index.
			_, stats := saveBlobs(t, r2, again)
			if stats.ReusedPacks != len(orphans) || stats.NewBlobs != 0 || stats.Packs != 0 || stats.IndexObjects != 1 {
				t.Errorf("second run: %+v; want %d reused packs, no new blobs or packs, one index object", stats, len(orphans))
			}
			indexes := objectNames(t, st, storage.KindIndex)
			if len(indexes) != len(indexesBefore)+1 {
				t.Fatalf("index objects %v after the second run, want one more than %v", indexes, indexesBefore)
			}
			for _, name := range indexes {
				if slices.Contains(indexesBefore, name) {
					continue
				}
				id, _ := ParseID(name)
				plain, err := r2.LoadObject(ctx, storage.KindIndex, id)
				if err != nil {
					t.Fatal(err)
				}
				packs, err := decodeIndex(plain)
				if err != nil {
					t.Fatal(err)
				}
				var listed []string
				for _, p := range packs {
					listed = append(listed, p.ID.String())
				}
				slices.Sort(listed)
				if !slices.Equal(listed, orphans) {
					t.Errorf("the new index object lists packs %v, want the adopted %v", listed, orphans)
				}
			}

			// A new session finds every blob, old and adopted; the rest
			// of the interrupted run's blobs are saved once more.
			r3 := reopen(t, st, OpenOptions{})
			for i, b := range earlier {
				if got, err := r3.LoadBlob(ctx, b.typ, earlierIDs[i]); err != nil || string(got) != string(b.data) {
					t.Fatalf("earlier blob %d: %v", i, err)
				}
			}
			for i, b := range blobs {
				_, err := r3.LoadBlob(ctx, b.typ, ids[i])
				if adopted[ids[i]] != (err == nil) {
					t.Errorf("blob %d (adopted %v): LoadBlob: %v", i, adopted[ids[i]], err)
				}
			}
			_, stats = saveBlobs(t, r3, blobs)
			if stats.ReusedPacks != 0 || stats.NewBlobs != int64(len(blobs)-len(again)) {
				t.Errorf("third run: %+v; want no reused packs and %d new blobs", stats, len(blobs)-len(again))
			}
			r4 := reopen(t, st, OpenOptions{})
			for i, b := range blobs {
				if got, err := r4.LoadBlob(ctx, b.typ, ids[i]); err != nil || string(got) != string(b.data) {
					t.Errorf("blob %d after the third run: %v", i, err)
				}
			}
			problem, problems := collect()
			listing, err := r4.CheckPacks(ctx, problem)
			if err != nil || len(*problems) != 0 || len(listing.Unindexed) != 0 {
				t.Errorf("CheckPacks: %v, problems %v, unindexed %v", err, *problems, listing.Unindexed)
			}
		})
	}
}

// TestDamagedOrphanNotAdopted leaves a damaged unindexed pack in the store:
// the next run must skip it and store its blob anew.
func TestDamagedOrphanNotAdopted(t *testing.T) {
	ctx := context.Background()
	r, st := newTestRepo(t)
	data := []byte("orphaned blob")
	name, b := orphanPack(t, r, data)
	bad := b[:len(b)-1]
	putObject(t, st, storage.KindPack, name.String(), bad)

	r2 := reopen(t, st, OpenOptions{})
	_, stats := saveBlobs(t, r2, []testBlob{{BlobData, data}})
	if stats.ReusedPacks != 0 || stats.NewBlobs != 1 || stats.Packs != 1 {
		t.Errorf("stats %+v: want the damaged orphan skipped and the blob stored anew", stats)
	}
	r3 := reopen(t, st, OpenOptions{})
	if got, err := r3.LoadBlob(ctx, BlobData, r3.BlobID(BlobData, data)); err != nil || string(got) != string(data) {
		t.Errorf("LoadBlob: %q, %v", got, err)
	}
	if loc, _ := r3.Index().Lookup(r3.BlobID(BlobData, data)); loc.Pack == name {
		t.Error("the blob is indexed in the damaged orphan")
	}
}

// TestRetryInSameSession fails a run and retries with the same
// *Repository: the packs of the failed run must be adopted and indexed,
// not assumed indexed because the failed run saw them.
func TestRetryInSameSession(t *testing.T) {
	ctx := context.Background()
	r, st := newTestRepo(t)
	blobs := mixedBlobs(11, 200, 128<<10)
	failed := errors.New("failed")
	_, err := r.WithBlobSaver(ctx, func(ctx context.Context, s *BlobSaver) error {
		for _, b := range blobs {
			if _, _, err := s.Save(ctx, b.typ, b.data); err != nil {
				return err
			}
		}
		return failed
	})
	if !errors.Is(err, failed) {
		t.Fatal(err)
	}
	ids, stats := saveBlobs(t, r, blobs)
	if stats.ReusedPacks == 0 {
		t.Errorf("retry in the same session adopted no packs: %+v", stats)
	}
	r2 := reopen(t, st, OpenOptions{})
	for i, b := range blobs {
		if got, err := r2.LoadBlob(ctx, b.typ, ids[i]); err != nil || string(got) != string(b.data) {
			t.Fatalf("blob %d after a retry in the same session: %v", i, err)
		}
	}
}
