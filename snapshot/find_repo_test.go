//go:build linux

package snapshot

import (
	"context"
	"path/filepath"
	"slices"
	"testing"

	"github.com/cofferhq/coffer/repo"
	"github.com/cofferhq/coffer/storage/mem"
)

// treeOnlyLoader counts the blobs it loads and fails the test on a data
// blob: find reads trees only.
type treeOnlyLoader struct {
	t     *testing.T
	r     BlobLoader
	trees int
}

func (l *treeOnlyLoader) LoadBlob(ctx context.Context, bt repo.BlobType, id repo.ID) ([]byte, error) {
	if bt != repo.BlobTree {
		l.t.Errorf("find loaded a %v blob", bt)
	}
	l.trees++
	return l.r.LoadBlob(ctx, bt, id)
}

func TestFindAcrossSnapshots(t *testing.T) {
	src := filepath.Join(t.TempDir(), "src")
	writeFile(t, filepath.Join(src, "keep/deep/a.go"), []byte("package a"), 0o644)
	writeFile(t, filepath.Join(src, "other/x/y/z/readme.txt"), []byte("text"), 0o644)
	r := newRepo(t, mem.New())
	sn1 := backup(t, r, src, BackupOptions{})
	writeFile(t, filepath.Join(src, "new/b.go"), []byte("package b"), 0o644)
	sn2 := backup(t, r, src, BackupOptions{})

	m, err := NewMatcher(FindQuery{Patterns: []string{"*.go"}})
	if err != nil {
		t.Fatal(err)
	}
	l := &treeOnlyLoader{t: t, r: r}
	f := NewFinder(l, m)
	var got [][]string
	for _, sn := range []*Snapshot{sn1, sn2} {
		var paths []string
		if err := f.Find(t.Context(), sn, func(p string, n *Node) error {
			paths = append(paths, p)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		got = append(got, paths)
	}
	want := [][]string{
		{filepath.Join(src, "keep/deep/a.go")},
		{filepath.Join(src, "keep/deep/a.go"), filepath.Join(src, "new/b.go")},
	}
	if !slices.EqualFunc(got, want, slices.Equal) {
		t.Errorf("found %q, want %q", got, want)
	}
	// The second snapshot's "other" subtree (4 trees, no match) is the
	// first one's and is not loaded again.
	first := 0
	l2 := &treeOnlyLoader{t: t, r: r}
	if err := NewFinder(l2, m).Find(t.Context(), sn1, func(string, *Node) error { return nil }); err != nil {
		t.Fatal(err)
	}
	first = l2.trees
	if second := l.trees - first; second > first-4+1 {
		t.Errorf("the second snapshot loaded %d trees, the first %d: the unchanged subtree without a match was searched again", second, first)
	}
}
