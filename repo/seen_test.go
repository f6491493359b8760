package repo

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cofferhq/coffer/storage"
)

// TestCompareSnapshots: a remembered id missing from a listing is
// reported, per writer, until it is listed again; one a removal record
// names is not; a damaged or missing cache file, and no cache, report
// nothing (they only forget); each store location has its own memory.
func TestCompareSnapshots(t *testing.T) {
	ctx := t.Context()
	_, st := newTestRepo(t)
	cache := t.TempDir()
	r := openTestRepo(t, st, testPassphrase, OpenOptions{CacheDir: cache})
	at := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	a1 := Sighting{ID: ID{1}, Host: "laptop", User: "alice", Time: at}
	a2 := Sighting{ID: ID{2}, Host: "laptop", User: "alice", Time: at.Add(time.Hour)}
	b1 := Sighting{ID: ID{3}, Host: "server", User: "bob", Time: at}
	all := []Sighting{a1, a2, b1}
	ids := func(ss ...Sighting) []ID {
		out := make([]ID, len(ss))
		for i, s := range ss {
			out[i] = s.ID
		}
		return out
	}
	compare := func(r *Repository, listed ...Sighting) []*VanishedError {
		t.Helper()
		v, err := r.CompareSnapshots(ctx, ids(listed...), listed)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}

	if v := compare(r, all...); len(v) != 0 {
		t.Fatalf("first listing: %v", v)
	}
	v := compare(r, a1)
	if len(v) != 2 || v[0].User != "alice" || len(v[0].Snapshots) != 1 || v[0].Snapshots[0].ID != a2.ID ||
		v[1].User != "bob" || len(v[1].Snapshots) != 1 || !errors.Is(v[0], ErrRolledBack) {
		t.Fatalf("a2 and b1 missing: %v", v)
	}
	if v := compare(r, a1); len(v) != 2 {
		t.Fatalf("a2 and b1 still missing: reported %v", v)
	}
	if v := compare(openTestRepo(t, st, testPassphrase, OpenOptions{}), a1); len(v) != 0 {
		t.Errorf("without a cache: %v", v)
	}
	// Another location string for the same repository starts afresh.
	other := openTestRepo(t, &renamed{st, "elsewhere"}, testPassphrase, OpenOptions{CacheDir: cache})
	if v := compare(other, a1); len(v) != 0 {
		t.Errorf("another location: %v", v)
	}
	if v := compare(r, all...); len(v) != 0 {
		t.Fatalf("all back: %v", v)
	}

	// A removal record explains what it names, and only that.
	if err := r.RecordRemoval(ctx, []ID{b1.ID}); err != nil {
		t.Fatal(err)
	}
	fresh := openTestRepo(t, st, testPassphrase, OpenOptions{CacheDir: cache})
	if v := compare(fresh, a1); len(v) != 1 || v[0].User != "alice" {
		t.Errorf("a2 missing, b1 forgotten: %v", v)
	}
	if names := objectNames(t, st, storage.KindForgotten); len(names) != 1 {
		t.Errorf("%d removal records, want 1", len(names))
	}

	// A damaged cache file forgets everything, and reports nothing.
	files, _ := filepath.Glob(filepath.Join(cache, "*", "seen", "*"))
	if len(files) != 2 {
		t.Fatalf("cache files %v, want one per location", files)
	}
	for _, f := range files {
		if err := os.WriteFile(f, []byte("garbage"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if v := compare(fresh); len(v) != 0 {
		t.Errorf("damaged cache: %v", v)
	}
}

// renamed is a store under another location string.
type renamed struct {
	storage.Store
	loc string
}

func (r *renamed) Location() string { return r.loc }
