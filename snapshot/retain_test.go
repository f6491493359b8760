//go:build linux

package snapshot

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/cofferhq/coffer/internal/testutil"
	"github.com/cofferhq/coffer/repo"
	"github.com/cofferhq/coffer/storage"
	"github.com/cofferhq/coffer/storage/mem"
)

// retainSnapshots refuses, as S3 Object Lock does, to delete the
// snapshot objects it names.
type retainSnapshots struct {
	storage.Store
	mu       sync.Mutex
	retained map[string]bool
	until    time.Time
}

func (s *retainSnapshots) Delete(ctx context.Context, kind storage.Kind, name string) error {
	s.mu.Lock()
	r := kind == storage.KindSnapshot && s.retained[name]
	s.mu.Unlock()
	if r {
		return &storage.RetainedError{Op: "deleting snapshot " + name, By: "Object Lock", Until: s.until}
	}
	return s.Store.Delete(ctx, kind, name)
}

// forget of a retained snapshot records its removal, removes the others
// and names it with its date; it stays listed. prune leaves it (and its
// data) and counts it until the retention ends; then it removes the
// snapshot and deletes the data only it used.
func TestRemoveRetained(t *testing.T) {
	until := time.Date(2031, 1, 2, 3, 4, 5, 0, time.UTC)
	st := &retainSnapshots{Store: mem.New(), retained: map[string]bool{}, until: until}
	r := newRepo(t, st)
	var sns []*Snapshot
	for i := range 3 {
		src := filepath.Join(t.TempDir(), "src")
		testutil.GenerateTree(t, src, testutil.TreeOptions{Seed: int64(i + 1), Files: 5})
		sns = append(sns, backup(t, r, src, BackupOptions{}))
	}
	a, b := sns[0], sns[1]
	st.retained[a.ID.String()] = true

	ctx := t.Context()
	l, err := r.Lock(ctx, repo.LockExclusive, "forget")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Unlock()
	removed, err := Remove(ctx, r, []*Snapshot{a, b})
	var re *RetainedError
	if !errors.As(err, &re) || !errors.Is(err, storage.ErrRetained) || len(re.Snapshots) != 1 || re.Snapshots[0].ID != a.ID || !re.Until.Equal(until) {
		t.Fatalf("Remove of a retained snapshot and another = %v", err)
	}
	if len(removed) != 1 || removed[0].ID != b.ID {
		t.Fatalf("Remove removed %v; want only the unretained one", removed)
	}
	listed := func() int {
		t.Helper()
		l, err := List(ctx, r)
		if err != nil {
			t.Fatal(err)
		}
		return len(l)
	}
	if n := listed(); n != 2 {
		t.Fatalf("%d snapshots listed; want the retained one and the third", n)
	}

	ps, err := Prune(ctx, r, repo.PruneOptions{MaxUnused: repo.DefaultMaxUnused})
	if err != nil {
		t.Fatalf("prune: %v", err)
	}
	if ps.RetainedSnapshots != 1 || ps.RetainedUntil == nil || !ps.RetainedUntil.Equal(until) {
		t.Errorf("prune with a retained forgotten snapshot: %+v", ps)
	}
	if n := listed(); n != 2 {
		t.Fatalf("after prune, %d snapshots listed", n)
	}

	st.mu.Lock()
	st.retained = map[string]bool{}
	st.mu.Unlock()
	ps, err = Prune(ctx, r, repo.PruneOptions{MaxUnused: repo.DefaultMaxUnused})
	if err != nil {
		t.Fatalf("prune after the retention: %v", err)
	}
	if ps.RetainedSnapshots != 0 || ps.Deleted == 0 {
		t.Errorf("prune after the retention: %+v; want the snapshot removed and its data deleted", ps)
	}
	if n := listed(); n != 1 {
		t.Fatalf("after the retention and a prune, %d snapshots listed; want 1", n)
	}
}
