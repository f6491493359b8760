//go:build linux

package snapshot

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/cofferhq/coffer/internal/testutil"
	"github.com/cofferhq/coffer/repo"
	"github.com/cofferhq/coffer/storage/mem"
)

// Sync between repositories with other keys (blobs sealed again, trees
// rewritten) and with shared keys (packs and snapshots copied as they
// are), on both kinds of store: every copied snapshot restores exactly as
// its original does, check -read-data finds nothing, and a second sync
// copies nothing.
func TestSync(t *testing.T) {
	for _, kind := range storeKinds {
		for _, shared := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/shared=%v", kind.name, shared), func(t *testing.T) {
				src := filepath.Join(t.TempDir(), "src")
				testutil.GenerateTree(t, src, testutil.TreeOptions{Seed: 3, Files: 40})
				// A directory larger than one tree blob holds (parts).
				big := filepath.Join(src, "many")
				if err := os.Mkdir(big, 0o755); err != nil {
					t.Fatal(err)
				}
				for i := range maxTreeNodes + 100 {
					writeFile(t, filepath.Join(big, fmt.Sprintf("f%05d", i)), fmt.Appendf(nil, "file %d\n", i), 0o644)
				}
				a := newRepo(t, mem.New())
				first := backup(t, a, src, BackupOptions{Tags: []string{"one"}})
				writeFile(t, filepath.Join(src, "added"), testutil.RandomBytes(5, 3<<20), 0o600)
				second := backup(t, a, src, BackupOptions{})

				dstStore := kind.open(t)
				opt := repo.CreateOptions{KDF: repo.TestKDF, PackSize: testPackSize}
				if shared {
					opt.ShareKeysWith = a
				}
				if _, err := repo.Create(t.Context(), dstStore, []byte(testPassphrase), opt); err != nil {
					t.Fatal(err)
				}
				b := reopen(t, dstStore)
				if err := b.LoadIndex(t.Context()); err != nil {
					t.Fatal(err)
				}
				stats, err := Sync(t.Context(), a, b, []*Snapshot{first, second}, nil)
				if err != nil {
					t.Fatalf("sync: %v", err)
				}
				if len(stats.Copied) != 2 || len(stats.Skipped) != 0 || stats.SameKeys != shared {
					t.Fatalf("copied %d, skipped %d, same keys %v", len(stats.Copied), len(stats.Skipped), stats.SameKeys)
				}
				if shared && (stats.PacksCopied == 0 || stats.Copied[0].ID != first.ID) {
					t.Errorf("shared keys: %d packs copied whole, copy of %s is %s", stats.PacksCopied, first.ID.Short(), stats.Copied[0].ID.Short())
				}
				if !shared && (stats.Copied[0].Original != first.ID || stats.Copied[1].Parent != stats.Copied[0].ID) {
					t.Errorf("other keys: copy records original %s (want %s), parent %s (want %s)",
						stats.Copied[0].Original.Short(), first.ID.Short(), stats.Copied[1].Parent.Short(), stats.Copied[0].ID.Short())
				}

				b = reopen(t, dstStore)
				res, err := Check(t.Context(), b, CheckOptions{ReadData: true, ReadFraction: 1}, func(err error) { t.Errorf("check: %v", err) })
				if err != nil || res.Problems != 0 {
					t.Fatalf("check -read-data of the copy: %v, %d problems", err, res.Problems)
				}
				copies, err := List(t.Context(), b)
				if err != nil || len(copies) != 2 {
					t.Fatalf("copies: %v, %d", err, len(copies))
				}
				for i, orig := range []*Snapshot{first, second} {
					want, got := filepath.Join(t.TempDir(), "want"), filepath.Join(t.TempDir(), "got")
					restore(t, a, orig, "", want)
					restore(t, b, copies[i], "", got)
					testutil.CompareTrees(t, want, got)
					if copies[i].Origin() != orig.ID || copies[i].Host != orig.Host || !copies[i].Time.Equal(orig.Time) {
						t.Errorf("copy %d: origin %s, host %q, time %v", i, copies[i].Origin().Short(), copies[i].Host, copies[i].Time)
					}
				}

				again, err := Sync(t.Context(), a, b, []*Snapshot{first, second}, nil)
				if err != nil {
					t.Fatal(err)
				}
				if len(again.Copied) != 0 || len(again.Skipped) != 2 || again.Saved.Packs != 0 || again.BytesRead != 0 {
					t.Errorf("second sync: copied %d, skipped %d, %d packs written, %d bytes read",
						len(again.Copied), len(again.Skipped), again.Saved.Packs, again.BytesRead)
				}
			})
		}
	}
}

// A sync of one snapshot then of the next, with shared keys, copies only
// what the second adds: packs the first brought are not sent again, and
// blobs of a pack the destination holds in part are copied one by one.
func TestSyncIncremental(t *testing.T) {
	src := filepath.Join(t.TempDir(), "src")
	testutil.GenerateTree(t, src, testutil.TreeOptions{Seed: 4, Files: 30})
	a := newRepo(t, mem.New())
	first := backup(t, a, src, BackupOptions{})
	writeFile(t, filepath.Join(src, "added"), testutil.RandomBytes(6, 2<<20), 0o600)
	second := backup(t, a, src, BackupOptions{})

	dstStore := mem.New()
	if _, err := repo.Create(t.Context(), dstStore, []byte(testPassphrase), repo.CreateOptions{KDF: repo.TestKDF, ShareKeysWith: a}); err != nil {
		t.Fatal(err)
	}
	b := reopen(t, dstStore)
	one, err := Sync(t.Context(), a, b, []*Snapshot{first}, nil)
	if err != nil || len(one.Copied) != 1 {
		t.Fatalf("first sync: %v", err)
	}
	two, err := Sync(t.Context(), a, b, []*Snapshot{first, second}, nil)
	if err != nil || len(two.Copied) != 1 || len(two.Skipped) != 1 {
		t.Fatalf("second sync: %v, %+v", err, two)
	}
	if two.BlobsPresent == 0 || two.BytesRead >= one.BytesRead+3<<20 {
		t.Errorf("second sync read %d bytes with %d blobs already there; the first read %d", two.BytesRead, two.BlobsPresent, one.BytesRead)
	}
	want, got := filepath.Join(t.TempDir(), "want"), filepath.Join(t.TempDir(), "got")
	restore(t, a, second, "", want)
	restore(t, reopen(t, dstStore), second, "", got) // the same id: shared keys
	testutil.CompareTrees(t, want, got)
}
