//go:build linux

package snapshot

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/cofferhq/coffer/repo"
	"github.com/cofferhq/coffer/storage/mem"
)

// TreePrefetcher hands out the trees LoadTree reads, whether loaded
// ahead (queued) or on the spot (not queued).
func TestTreePrefetcher(t *testing.T) {
	ctx := context.Background()
	src := t.TempDir()
	for _, d := range []string{"a/x", "a/y", "b"} {
		if err := os.MkdirAll(filepath.Join(src, d), 0o755); err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(src, d, "f"), []byte(d), 0o644)
	}
	r := newRepo(t, mem.New())
	sn := backup(t, r, src, BackupOptions{})
	base, _, err := Resolve(ctx, r, sn, "")
	if err != nil {
		t.Fatal(err)
	}
	p := NewTreePrefetcher(ctx, r)
	defer p.Close()
	top, err := p.Take(ctx, base.Subtree)
	if err != nil {
		t.Fatal(err)
	}
	var subs []*Node
	for _, n := range top {
		if n.Type == TypeDir {
			subs = append(subs, n)
		}
	}
	if len(subs) != 2 {
		t.Fatalf("top holds %d directories, want 2", len(subs))
	}
	p.Queue([]repo.ID{subs[0].Subtree})
	for _, n := range subs {
		got, err := p.Take(ctx, n.Subtree)
		if err != nil {
			t.Fatal(err)
		}
		want, err := LoadTree(ctx, r, n.Subtree)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.EqualFunc(got, want, func(a, b *Node) bool { return a.Name == b.Name && a.Type == b.Type }) {
			t.Errorf("%s: prefetched %v, loaded %v", n.Name, got, want)
		}
	}
	p.Forget([]repo.ID{subs[1].Subtree})
}
