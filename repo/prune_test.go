package repo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cofferhq/coffer/internal/testutil"
	"github.com/cofferhq/coffer/storage"
)

// pruneFixture is a repository with three generations of blobs, each in
// packs of its own, and a set of blobs "the snapshots" use, which tests
// change as snapshots come and go.
type pruneFixture struct {
	t     *testing.T
	st    storage.Store
	blobs []testBlob
	ids   []ID
	mu    sync.Mutex
	used  map[ID]bool
}

func newPruneFixture(t *testing.T) *pruneFixture {
	t.Helper()
	r, st := newTestRepo(t)
	f := &pruneFixture{t: t, st: st, used: map[ID]bool{}}
	for gen := range 3 {
		// Large random blobs, so that each generation fills packs of its
		// own (the test packs are 1 MiB).
		blobs := mixedBlobs(uint64(gen+1), 12, 400<<10)
		ids, _ := saveBlobs(t, r, blobs)
		f.blobs = append(f.blobs, blobs...)
		f.ids = append(f.ids, ids...)
	}
	return f
}

// use sets which blobs the snapshots use, by index into f.ids.
func (f *pruneFixture) use(idx ...int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.used = map[ID]bool{}
	for _, i := range idx {
		f.used[f.ids[i]] = true
	}
}

func (f *pruneFixture) markUsed(_ context.Context, mark func(ID)) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for id := range f.used {
		mark(id)
	}
	return nil
}

// open opens the repository as a new process would, on st.
func (f *pruneFixture) open(st storage.Store) *Repository {
	f.t.Helper()
	r := openTestRepo(f.t, st, testPassphrase, OpenOptions{})
	r.lockPoll = 0
	return r
}

func (f *pruneFixture) prune(r *Repository, opt PruneOptions) PruneStats {
	f.t.Helper()
	l, err := r.Lock(f.t.Context(), LockExclusive, "prune")
	if err != nil {
		f.t.Fatal(err)
	}
	defer l.Unlock()
	if err := r.LoadIndex(f.t.Context()); err != nil {
		f.t.Fatal(err)
	}
	opt.MarkUsed = f.markUsed
	st, err := r.Prune(f.t.Context(), opt)
	if err != nil {
		f.t.Fatalf("Prune: %v", err)
	}
	return st
}

// verify checks what check -read-data checks, and that every used blob
// reads back.
func (f *pruneFixture) verify(st storage.Store) {
	f.t.Helper()
	r := f.open(st)
	if err := r.LoadIndex(f.t.Context()); err != nil {
		f.t.Fatalf("LoadIndex: %v", err)
	}
	var problems []error
	listing, err := r.CheckPacks(f.t.Context(), func(err error) { problems = append(problems, err) })
	if err != nil {
		f.t.Fatal(err)
	}
	for id, size := range listing.Stored {
		if err := r.VerifyPack(f.t.Context(), id, size, func(err error) { problems = append(problems, err) }); err != nil {
			problems = append(problems, err)
		}
	}
	for _, p := range problems {
		f.t.Errorf("check: %v", p)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, id := range f.ids {
		if !f.used[id] {
			continue
		}
		got, err := r.LoadBlob(f.t.Context(), f.blobs[i].typ, id)
		if err != nil || !bytes.Equal(got, f.blobs[i].data) {
			f.t.Errorf("used blob %d (%s): %v", i, id.Short(), err)
		}
	}
}

// unusedPacks counts stored packs that hold no used blob.
func (f *pruneFixture) unusedPacks(st storage.Store) int {
	f.t.Helper()
	r := f.open(st)
	n := 0
	for _, name := range objectNames(f.t, st, storage.KindPack) {
		id, _ := ParseID(name)
		size, err := st.Stat(f.t.Context(), storage.KindPack, name)
		if err != nil {
			f.t.Fatal(err)
		}
		entries, err := r.ReadPackTrailer(f.t.Context(), id, size)
		if err != nil {
			f.t.Fatal(err)
		}
		f.mu.Lock()
		if !slices.ContainsFunc(entries, func(e PackEntry) bool { return f.used[e.ID] }) {
			n++
		}
		f.mu.Unlock()
	}
	return n
}

// finished checks that a repository verifies and that prune left nothing
// behind: no pack without a used blob, no plan.
func (f *pruneFixture) finished(st storage.Store) {
	f.t.Helper()
	f.verify(st)
	if n := f.unusedPacks(st); n != 0 {
		f.t.Errorf("%d packs with no used blob are left", n)
	}
	if plans := objectNames(f.t, st, storage.KindPlan); len(plans) != 0 {
		f.t.Errorf("plans left: %v", plans)
	}
}

// lapse makes l look as a lock of a machine that slept past LockStale:
// its holder's clock moves on, and the lock in the store is old and from
// elsewhere, so a prune takes it for stale.
func (f *pruneFixture) lapse(r *Repository, l *Lock, clock *atomic.Int64) {
	f.t.Helper()
	clock.Add(int64(LockStale))
	info := l.info
	info.Refreshed = time.Now().Add(-2 * LockStale)
	info.BootID = "elsewhere"
	sealed, err := r.sealObject(storage.KindLock, mustJSON(info))
	if err != nil {
		f.t.Fatal(err)
	}
	putObject(f.t, f.st, storage.KindLock, l.name, sealed)
}

func TestPruneDeletesAndRepacks(t *testing.T) {
	f := newPruneFixture(t)
	before := len(objectNames(t, f.st, storage.KindPack))
	// The first generation is forgotten; of the second, a quarter stays;
	// the third stays whole.
	f.use(12, 15, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35)
	dry := f.prune(f.open(f.st), PruneOptions{DryRun: true, MaxUnused: DefaultMaxUnused})
	if dry.DeletePacks == 0 || dry.RepackPacks == 0 {
		t.Fatalf("dry run: %+v, want packs to delete and to repack", dry)
	}
	if n := len(objectNames(t, f.st, storage.KindPack)); n != before {
		t.Fatalf("a dry run changed the packs: %d -> %d", before, n)
	}
	got := f.prune(f.open(f.st), PruneOptions{MaxUnused: DefaultMaxUnused})
	if got.Deleted != got.DeletePacks+got.RepackPacks || got.DeferredPacks != 0 {
		t.Errorf("prune with no backup running: %+v, want everything planned deleted", got)
	}
	if got.DeletePacks != dry.DeletePacks || got.RepackPacks != dry.RepackPacks {
		t.Errorf("prune did %+v, its dry run said %+v", got, dry)
	}
	f.finished(f.st)
	// Nothing left to do.
	if again := f.prune(f.open(f.st), PruneOptions{MaxUnused: DefaultMaxUnused}); again.Deleted != 0 || again.DeletePacks != 0 || again.RepackPacks != 0 {
		t.Errorf("a second prune did %+v", again)
	}
}

// A pack that no index object lists but that holds blobs snapshots need
// (an index object was lost) is kept, its blobs unknown to the index and
// so kept apart from those prune numbers; the unused packs around it go.
func TestPruneKeepsUnindexedPacksInUse(t *testing.T) {
	f := newPruneFixture(t)
	r := f.open(f.st)
	// The second generation's index object goes.
	var lost []ID
	for _, name := range objectNames(t, f.st, storage.KindIndex) {
		id, _ := ParseID(name)
		packs, err := r.loadIndexObject(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.ContainsFunc(packs, func(p PackInfo) bool {
			return slices.ContainsFunc(p.Entries, func(e PackEntry) bool { return e.ID == f.ids[12] })
		}) {
			continue
		}
		for _, p := range packs {
			lost = append(lost, p.ID)
		}
		if err := f.st.Delete(t.Context(), storage.KindIndex, name); err != nil {
			t.Fatal(err)
		}
	}
	if len(lost) == 0 {
		t.Fatal("no index object lists the second generation")
	}
	f.use(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23)
	st := f.prune(f.open(f.st), PruneOptions{MaxUnused: -1})
	if st.Unindexed != len(lost) || st.Deleted == 0 {
		t.Errorf("prune: %+v; want %d unindexed packs and the third generation's deleted", st, len(lost))
	}
	stored := objectNames(t, f.st, storage.KindPack)
	for _, id := range lost {
		if !slices.Contains(stored, id.String()) {
			t.Errorf("unindexed pack %s, which holds blobs in use, was deleted", id.Short())
		}
	}
	if n := f.unusedPacks(f.st); n != 0 {
		t.Errorf("%d packs with no used blob are left", n)
	}
}

// A backup that ends while prune reads the snapshots, before prune reads
// the index objects, adds packs whose blobs the index prune numbered does
// not hold: its snapshot's blobs are claimed by those packs all the same,
// and they stay.
func TestPruneKeepsPacksIndexedWhileItMarks(t *testing.T) {
	f := newPruneFixture(t)
	f.use(24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35)
	r := f.open(f.st)
	l, err := r.Lock(t.Context(), LockExclusive, "prune")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Unlock()
	if err := r.LoadIndex(t.Context()); err != nil {
		t.Fatal(err)
	}
	packsBefore := objectNames(t, f.st, storage.KindPack)
	calls := 0
	st, err := r.Prune(t.Context(), PruneOptions{MaxUnused: -1, MarkUsed: func(ctx context.Context, mark func(ID)) error {
		calls++
		if calls == 1 {
			blobs := mixedBlobs(9, 8, 300<<10)
			ids, _ := saveBlobs(t, f.open(f.st), blobs)
			f.mu.Lock()
			f.blobs = append(f.blobs, blobs...)
			f.ids = append(f.ids, ids...)
			for _, id := range ids {
				f.used[id] = true
			}
			f.mu.Unlock()
		}
		return f.markUsed(ctx, mark)
	}})
	if err != nil {
		t.Fatalf("Prune: %v", err)
	}
	added := len(objectNames(t, f.st, storage.KindPack)) + st.Deleted - len(packsBefore)
	if st.Deleted == 0 || added == 0 || st.Unindexed != 0 {
		t.Errorf("prune: %+v; want the first two generations deleted, and the backup's %d packs indexed and kept", st, added)
	}
	f.finished(f.st)
}

// A backup that loaded the index before a prune's plan may reuse blobs
// the plan names: the prune leaves those packs while the backup runs, and
// the next prune spares what its snapshot uses.
func TestPruneWaitsForEarlierBackups(t *testing.T) {
	for _, uses := range []bool{true, false} {
		t.Run(fmt.Sprintf("backup uses a planned blob %v", uses), func(t *testing.T) {
			f := newPruneFixture(t)
			f.use(12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35)
			backup := f.open(f.st)
			bl, err := backup.Lock(t.Context(), LockShared, "backup")
			if err != nil {
				t.Fatal(err)
			}
			if err := backup.LoadIndex(t.Context()); err != nil {
				t.Fatal(err)
			}
			if !backup.Index().Has(f.ids[3]) {
				t.Fatal("the backup's index lacks a blob it should be able to reuse")
			}
			first := f.prune(f.open(f.st), PruneOptions{MaxUnused: -1})
			if first.Deleted != 0 || first.DeferredPacks == 0 || len(first.Blockers) != 1 {
				t.Fatalf("prune while an earlier backup runs: %+v, want all deferred, blocked by it", first)
			}
			if len(objectNames(t, f.st, storage.KindPlan)) != 1 {
				t.Fatal("the deferred prune left no plan")
			}
			// A backup that starts now sees the plan: it does not reuse
			// what the plan will delete.
			later := f.open(f.st)
			if err := later.LoadIndex(t.Context()); err != nil {
				t.Fatal(err)
			}
			if later.Index().Has(f.ids[3]) {
				t.Error("a backup that started after the plan would reuse a planned blob")
			}
			// The earlier backup commits a snapshot that reuses blob 3.
			if uses {
				f.use(3, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35)
			}
			// While it still runs, another prune defers too.
			if mid := f.prune(f.open(f.st), PruneOptions{MaxUnused: -1}); mid.Deleted != 0 {
				t.Fatalf("a prune deleted %d packs while a blocker ran", mid.Deleted)
			}
			bl.Unlock()
			second := f.prune(f.open(f.st), PruneOptions{MaxUnused: -1})
			if second.DeferredPacks != 0 || second.Deleted == 0 {
				t.Errorf("prune after the backup ended: %+v, want the plan carried out", second)
			}
			f.finished(f.st)
		})
	}
}

// A backup that finishes between a prune's first look at the snapshots
// and its deletes may use a blob the plan names (it started before the
// plan); the prune looks again and spares that pack.
func TestPruneSparesWhatAFinishedBackupUses(t *testing.T) {
	f := newPruneFixture(t)
	f.use(12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35)
	r := f.open(f.st)
	calls := 0
	l, err := r.Lock(t.Context(), LockExclusive, "prune")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Unlock()
	if err := r.LoadIndex(t.Context()); err != nil {
		t.Fatal(err)
	}
	st, err := r.Prune(t.Context(), PruneOptions{MaxUnused: -1, MarkUsed: func(ctx context.Context, mark func(ID)) error {
		calls++
		if calls == 2 {
			f.use(5, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35)
		}
		return f.markUsed(ctx, mark)
	}})
	if err != nil {
		t.Fatal(err)
	}
	if calls != 2 || st.Spared != 1 {
		t.Errorf("MarkUsed called %d times, %d packs spared; want 2 and 1", calls, st.Spared)
	}
	f.verify(f.st)
}

// killStore stops working after a number of changes, as a process killed
// at that point would: the changes before it are in the store, none after.
type killStore struct {
	storage.Store
	left atomic.Int64
}

var errKilled = errors.New("killed")

func (s *killStore) step() error {
	if s.left.Add(-1) < 0 {
		return errKilled
	}
	return nil
}

func (s *killStore) Put(ctx context.Context, kind storage.Kind, name string, body storage.Body) error {
	if err := s.step(); err != nil {
		return err
	}
	return s.Store.Put(ctx, kind, name, body)
}

func (s *killStore) Delete(ctx context.Context, kind storage.Kind, name string) error {
	if err := s.step(); err != nil {
		return err
	}
	return s.Store.Delete(ctx, kind, name)
}

// A prune stopped after any number of changes to the store leaves a
// repository that verifies, and the next prune finishes the work.
func TestPruneInterruptedAnywhere(t *testing.T) {
	used := []int{12, 15, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35}
	// Count the changes a whole prune makes.
	f := newPruneFixture(t)
	f.use(used...)
	counter := &killStore{Store: f.st}
	counter.left.Store(1 << 30)
	f.prune(f.open(counter), PruneOptions{MaxUnused: DefaultMaxUnused})
	// The last change is the lock's removal, after the prune.
	total := int(1<<30-counter.left.Load()) - 1
	if total < 10 {
		t.Fatalf("a prune made only %d changes", total)
	}
	for k := range total {
		t.Run(fmt.Sprintf("killed after %d of %d changes", k, total), func(t *testing.T) {
			f := newPruneFixture(t)
			f.use(used...)
			ks := &killStore{Store: f.st}
			ks.left.Store(int64(k))
			r := f.open(ks)
			if l, err := r.Lock(t.Context(), LockExclusive, "prune"); err == nil {
				if err := r.LoadIndex(t.Context()); err != nil {
					t.Fatal(err)
				}
				if _, err := r.Prune(t.Context(), PruneOptions{MaxUnused: DefaultMaxUnused, MarkUsed: f.markUsed}); !errors.Is(err, errKilled) {
					t.Fatalf("prune killed after %d changes returned %v", k, err)
				}
				l.stop <- struct{}{} // the process is gone: its lock stays
				<-l.done
			}
			f.verify(f.st)
			// The dead prune's lock names this (live) test process; a
			// user would run `coffer unlock` after a crash elsewhere.
			if _, err := f.open(f.st).RemoveLocks(t.Context(), true); err != nil {
				t.Fatal(err)
			}
			f.prune(f.open(f.st), PruneOptions{MaxUnused: DefaultMaxUnused})
			f.finished(f.st)
		})
	}
}

// A backup whose lock lapsed (not refreshed for LockStale/2) may have been
// left out of a prune's blockers: before it commits, it checks that no
// prune planned or deleted anything since it started.
func TestReadyToCommitAfterLapse(t *testing.T) {
	tests := []struct {
		name   string
		lapsed bool
		prune  func(f *pruneFixture)
		ok     bool
	}{
		{"lock kept fresh, prune ran", false, func(f *pruneFixture) {
			f.prune(f.open(f.st), PruneOptions{MaxUnused: -1})
		}, true},
		{"lapsed, no prune", true, func(*pruneFixture) {}, true},
		{"lapsed, a prune planned", true, func(f *pruneFixture) {
			// A live shared lock makes the prune leave its plan.
			other := f.open(f.st)
			l, err := other.Lock(f.t.Context(), LockShared, "backup")
			if err != nil {
				f.t.Fatal(err)
			}
			f.prune(f.open(f.st), PruneOptions{MaxUnused: -1})
			l.Unlock()
		}, false},
		{"lapsed, a prune deleted", true, func(f *pruneFixture) {
			f.prune(f.open(f.st), PruneOptions{MaxUnused: -1})
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newPruneFixture(t)
			f.use(12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35)
			r := f.open(f.st)
			var clock atomic.Int64
			clock.Store(time.Now().UnixNano())
			r.now = func() time.Time { return time.Unix(0, clock.Load()) }
			l, err := r.Lock(t.Context(), LockShared, "backup")
			if err != nil {
				t.Fatal(err)
			}
			defer l.Unlock()
			if err := r.LoadIndex(t.Context()); err != nil {
				t.Fatal(err)
			}
			if tt.lapsed {
				// The machine slept: its lock went unrefreshed, so this
				// test's prune (its own clock) takes it for stale.
				f.lapse(r, l, &clock)
			}
			tt.prune(f)
			err = r.ReadyToCommit(t.Context(), nil)
			if tt.ok && err != nil {
				t.Errorf("ReadyToCommit = %v, want nil", err)
			}
			if !tt.ok && !errors.Is(err, ErrLockLapsed) {
				t.Errorf("ReadyToCommit = %v, want ErrLockLapsed", err)
			}
		})
	}
}

// A backup taken for dead (its lock lapsed while the machine slept) may
// find that a prune deleted the packs it uploaded but had not indexed yet:
// it must write no index object listing them.
func TestLapsedBackupLosesItsPacks(t *testing.T) {
	f := newPruneFixture(t)
	f.use(12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35)
	r := f.open(f.st)
	var clock atomic.Int64
	clock.Store(time.Now().UnixNano())
	r.now = func() time.Time { return time.Unix(0, clock.Load()) }
	l, err := r.Lock(t.Context(), LockShared, "backup")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Unlock()
	if err := r.LoadIndex(t.Context()); err != nil {
		t.Fatal(err)
	}
	indexBefore := len(objectNames(t, f.st, storage.KindIndex))
	_, err = r.WithBlobSaver(t.Context(), func(ctx context.Context, s *BlobSaver) error {
		for i := range 6 {
			if _, _, err := s.Save(ctx, BlobData, testutil.RandomBytes(int64(900+i), 400<<10)); err != nil {
				return err
			}
		}
		// The uploads are stored; then the machine sleeps past LockStale,
		// and a prune elsewhere takes the lock for stale.
		for len(objectNames(t, f.st, storage.KindPack)) < 8 {
			time.Sleep(time.Millisecond)
		}
		f.lapse(r, l, &clock)
		st := f.prune(f.open(f.st), PruneOptions{MaxUnused: -1})
		if st.Unindexed == 0 || st.Deleted == 0 {
			t.Errorf("the prune did not delete the backup's unindexed packs: %+v", st)
		}
		return nil
	})
	if !errors.Is(err, ErrLockLapsed) {
		t.Fatalf("WithBlobSaver after its packs were deleted = %v, want ErrLockLapsed", err)
	}
	if n := len(objectNames(t, f.st, storage.KindIndex)); n > indexBefore {
		t.Errorf("the backup wrote %d index objects listing deleted packs", n-indexBefore)
	}
	f.verify(f.st)
}
