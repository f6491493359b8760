package repo

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/cofferhq/coffer/storage"
)

// retainStore refuses, as S3 Object Lock does, to delete the objects of
// the given kinds that were stored when it was made, until expire is
// called.
type retainStore struct {
	storage.Store
	until    time.Time
	mu       sync.Mutex
	retained map[string]bool // kind/name
	refused  int
}

func newRetainStore(t *testing.T, st storage.Store, until time.Time, kinds ...storage.Kind) *retainStore {
	t.Helper()
	s := &retainStore{Store: st, until: until, retained: map[string]bool{}}
	for _, k := range kinds {
		for _, name := range objectNames(t, st, k) {
			s.retained[string(k)+"/"+name] = true
		}
	}
	return s
}

func (s *retainStore) Delete(ctx context.Context, kind storage.Kind, name string) error {
	s.mu.Lock()
	retained := s.retained[string(kind)+"/"+name]
	if retained {
		s.refused++
	}
	s.mu.Unlock()
	if retained {
		return &storage.RetainedError{Op: "deleting " + string(kind) + " " + name, By: "Object Lock", Until: s.until}
	}
	return s.Store.Delete(ctx, kind, name)
}

// expire ends the retention.
func (s *retainStore) expire() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.retained = map[string]bool{}
}

// A prune whose deletes a retention refuses (packs, the index objects
// that list them, or both) is no failure: it counts what stays and
// until when, leaves a repository that verifies (a retained index
// object keeps the packs it lists; a retained pack no index lists any
// more is only unindexed), and once the retention ends the next prune
// deletes what is left.
func TestPruneRetained(t *testing.T) {
	until := time.Date(2031, 5, 6, 7, 8, 9, 0, time.UTC)
	for _, c := range []struct {
		name  string
		kinds []storage.Kind
	}{
		{"packs", []storage.Kind{storage.KindPack}},
		{"index", []storage.Kind{storage.KindIndex}},
		{"packs and index", []storage.Kind{storage.KindPack, storage.KindIndex}},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newPruneFixture(t)
			f.use(12, 15, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35)
			before := len(objectNames(t, f.st, storage.KindPack))
			rs := newRetainStore(t, f.st, until, c.kinds...)
			// Prunes of one client, which remembers the packs it found
			// retained.
			cache := t.TempDir()
			open := func() *Repository {
				r := openTestRepo(t, rs, testPassphrase, OpenOptions{CacheDir: cache})
				r.lockPoll = 0
				return r
			}
			got := f.prune(open(), PruneOptions{MaxUnused: DefaultMaxUnused})
			t.Logf("prune on retained objects: %+v", got)
			planned := got.DeletePacks + got.RepackPacks
			if planned == 0 || got.Deleted != 0 || got.RetainedPacks != planned || got.RetainedBytes == 0 || got.FreedBytes > 0 {
				t.Errorf("prune: %+v; want all %d planned packs retained, none deleted", got, planned)
			}
			wantIndex := c.kinds[len(c.kinds)-1] == storage.KindIndex
			if (got.RetainedIndex > 0) != wantIndex {
				t.Errorf("retained index objects: %d; want some: %v", got.RetainedIndex, wantIndex)
			}
			if got.RetainedFrom == nil || !got.RetainedFrom.Equal(until) || got.RetainedUntil == nil || !got.RetainedUntil.Equal(until) {
				t.Errorf("retained from %v until %v; want %v", got.RetainedFrom, got.RetainedUntil, until)
			}
			if n := len(objectNames(t, f.st, storage.KindPack)); n < before {
				t.Errorf("packs: %d -> %d; a retained one was deleted", before, n)
			}
			f.verify(f.st)
			if plans := objectNames(t, f.st, storage.KindPlan); len(plans) != 0 {
				t.Errorf("plans left: %v", plans)
			}

			// A prune before the date finds the same, fails no more, and
			// does not repack a retained pack again.
			again := f.prune(open(), PruneOptions{MaxUnused: DefaultMaxUnused})
			if again.RetainedPacks == 0 || again.RepackPacks != 0 || again.CopiedBytes != 0 {
				t.Errorf("a second prune before the date: %+v", again)
			}
			f.verify(f.st)

			rs.expire()
			after := f.prune(open(), PruneOptions{MaxUnused: DefaultMaxUnused})
			t.Logf("prune after the retention: %+v", after)
			if after.Deleted == 0 || after.RetainedPacks+after.RetainedIndex != 0 || after.RetainedUntil != nil || after.FreedBytes <= 0 {
				t.Errorf("prune after the retention ended: %+v; want the leftovers deleted", after)
			}
			f.finished(f.st)
			if n := len(objectNames(t, f.st, storage.KindPack)); n >= before {
				t.Errorf("packs: %d -> %d; the store did not shrink", before, n)
			}
		})
	}
}
