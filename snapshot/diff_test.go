//go:build linux

package snapshot

import (
	"cmp"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cofferhq/coffer/storage/mem"
)

// collectDiff returns every change Diff reports, in order.
func collectDiff(t *testing.T, r BlobLoader, a, b *Snapshot) []Change {
	t.Helper()
	var changes []Change
	err := Diff(t.Context(), r, a, b, func(c Change) error {
		changes = append(changes, c)
		return nil
	})
	if err != nil {
		t.Fatalf("diff %s %s: %v", a.ID.Short(), b.ID.Short(), err)
	}
	return changes
}

// splitDiff separates the changes at or below dir from those above it,
// which must be metadata changes of directories containing dir (the
// directories above a test's temporary directory, such as /tmp, change
// while other tests run).
func splitDiff(t *testing.T, changes []Change, dir string) []Change {
	t.Helper()
	var below []Change
	for _, c := range changes {
		switch {
		case c.Path == dir || strings.HasPrefix(c.Path, dir+"/"):
			below = append(below, c)
		case c.Kind != Metadata || c.Type != TypeDir || !strings.HasPrefix(dir, strings.TrimSuffix(c.Path, "/")+"/"):
			t.Errorf("unexpected change outside %s: %+v", dir, c)
		}
	}
	return below
}

// TestDiff changes a tree in every way Diff tells apart and compares the
// report of the two snapshots, both ways round.
func TestDiff(t *testing.T) {
	t.Parallel()
	src := t.TempDir()
	p := func(rel string) string { return filepath.Join(src, rel) }
	writeFile(t, p("keep.txt"), []byte("unchanged"), 0o644)
	writeFile(t, p("old.txt"), []byte("this file will be removed...."), 0o644) // 29 bytes
	writeFile(t, p("mod.txt"), make([]byte, 100), 0o644)
	writeFile(t, p("same-size.txt"), []byte("0123456789"), 0o644)
	writeFile(t, p("perm.txt"), []byte("chmod me"), 0o644)
	writeFile(t, p("touched.txt"), []byte("touch me"), 0o644)
	writeFile(t, p("olddir/x.txt"), []byte("x inside"), 0o644)
	writeFile(t, p("sub/deep.txt"), []byte("deep"), 0o644)
	writeFile(t, p("typechg"), []byte("a file, then a symlink"), 0o644)
	// Fixed times, so that the changes below are the only ones.
	past := time.Date(2020, 1, 1, 0, 0, 0, 123, time.UTC)
	for _, rel := range []string{"keep.txt", "old.txt", "mod.txt", "same-size.txt", "perm.txt", "touched.txt", "olddir/x.txt", "sub/deep.txt", "typechg", "olddir", "sub", "."} {
		if err := os.Chtimes(p(rel), past, past); err != nil {
			t.Fatal(err)
		}
	}
	st := mem.New()
	r := newRepo(t, st)
	before := backup(t, r, src, BackupOptions{})
	unchanged := backup(t, r, src, BackupOptions{})

	writeFile(t, p("new.txt"), []byte(strings.Repeat("n", 42)), 0o644)
	writeFile(t, p("newdir/f.txt"), []byte("fresh"), 0o600)
	if err := os.Remove(p("old.txt")); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(p("olddir")); err != nil {
		t.Fatal(err)
	}
	writeFile(t, p("mod.txt"), make([]byte, 250), 0o644)
	writeFile(t, p("same-size.txt"), []byte("9876543210"), 0o644)
	if err := os.Chtimes(p("same-size.txt"), past, past); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p("perm.txt"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(p("touched.txt"), past, past.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	writeFile(t, p("sub/deep.txt"), []byte("deeper"), 0o644)
	if err := os.Chmod(p("sub"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(p("typechg")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("keep.txt", p("typechg")); err != nil {
		t.Fatal(err)
	}
	after := backup(t, r, src, BackupOptions{})

	want := []Change{
		{Kind: Metadata, Path: src, Type: TypeDir}, // entries added and removed
		{Kind: Modified, Path: p("mod.txt"), Type: TypeFile, OldSize: 100, NewSize: 250},
		{Kind: Added, Path: p("new.txt"), Type: TypeFile, NewSize: 42},
		{Kind: Added, Path: p("newdir"), Type: TypeDir},
		{Kind: Added, Path: p("newdir/f.txt"), Type: TypeFile, NewSize: 5},
		{Kind: Removed, Path: p("old.txt"), Type: TypeFile, OldSize: 29},
		{Kind: Removed, Path: p("olddir"), Type: TypeDir},
		{Kind: Removed, Path: p("olddir/x.txt"), Type: TypeFile, OldSize: 8},
		{Kind: Metadata, Path: p("perm.txt"), Type: TypeFile, OldSize: 8, NewSize: 8},
		{Kind: Modified, Path: p("same-size.txt"), Type: TypeFile, OldSize: 10, NewSize: 10},
		{Kind: Metadata, Path: p("sub"), Type: TypeDir},
		{Kind: Modified, Path: p("sub/deep.txt"), Type: TypeFile, OldSize: 4, NewSize: 6},
		{Kind: Metadata, Path: p("touched.txt"), Type: TypeFile, OldSize: 8, NewSize: 8},
		{Kind: Removed, Path: p("typechg"), Type: TypeFile, OldSize: 22},
		{Kind: Added, Path: p("typechg"), Type: TypeSymlink, NewSize: int64(len("keep.txt"))},
	}

	r = reopen(t, st)
	t.Run("forward", func(t *testing.T) {
		got := splitDiff(t, collectDiff(t, r, before, after), src)
		if !slices.Equal(got, want) {
			t.Errorf("diff:\n%s\nwant:\n%s", fmtChanges(got), fmtChanges(want))
		}
	})
	t.Run("backward", func(t *testing.T) {
		mirror := map[ChangeKind]ChangeKind{Added: Removed, Removed: Added, Modified: Modified, Metadata: Metadata}
		var rev []Change
		for _, c := range want {
			rev = append(rev, Change{Kind: mirror[c.Kind], Path: c.Path, Type: c.Type, OldSize: c.NewSize, NewSize: c.OldSize})
		}
		got := splitDiff(t, collectDiff(t, r, after, before), src)
		byPathKind := func(a, b Change) int {
			return cmp.Or(strings.Compare(a.Path, b.Path), strings.Compare(string(a.Kind), string(b.Kind)))
		}
		slices.SortStableFunc(rev, byPathKind)
		slices.SortStableFunc(got, byPathKind)
		if !slices.Equal(got, rev) {
			t.Errorf("reverse diff:\n%s\nwant:\n%s", fmtChanges(got), fmtChanges(rev))
		}
	})
	t.Run("identical", func(t *testing.T) {
		if got := collectDiff(t, r, before, before); len(got) != 0 {
			t.Errorf("a snapshot differs from itself:\n%s", fmtChanges(got))
		}
		if got := splitDiff(t, collectDiff(t, r, before, unchanged), src); len(got) != 0 {
			t.Errorf("two backups of an unchanged tree differ:\n%s", fmtChanges(got))
		}
	})
	t.Run("callback error", func(t *testing.T) {
		stop := errors.New("stop")
		calls := 0
		err := Diff(t.Context(), r, before, after, func(Change) error { calls++; return stop })
		if !errors.Is(err, stop) || calls != 1 {
			t.Errorf("Diff returned %v after %d calls, want the callback's error after 1", err, calls)
		}
	})
}

func fmtChanges(cs []Change) string {
	var b strings.Builder
	for _, c := range cs {
		fmt.Fprintf(&b, "  %s %s (%s %d -> %d)\n", c.Kind, c.Path, c.Type, c.OldSize, c.NewSize)
	}
	return b.String()
}
