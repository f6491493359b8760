//go:build linux

package cli

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cofferhq/coffer/internal/testutil"
)

// concurrentSource generates writer w's source tree for round r into dir:
// a tree of its own, and a file every writer has in that round, so that
// concurrent backups race to store the same blobs. Equal arguments give
// equal trees, so a restore is compared with a tree generated again.
func concurrentSource(t *testing.T, dir string, w, r int) {
	t.Helper()
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	testutil.GenerateTree(t, dir, testutil.TreeOptions{Seed: int64(1000*w + r), Files: 12, LargeFileSize: 1 << 20})
	shared := filepath.Join(dir, "shared.bin")
	if err := os.WriteFile(shared, testutil.RandomBytes(int64(r), 3<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	stamp := time.Date(2026, 1, 1, 0, 0, r, 0, time.UTC)
	if err := os.Chtimes(shared, stamp, stamp); err != nil {
		t.Fatal(err)
	}
}

// TestConcurrentWriters runs 8 writers at once into one repository, 4
// with the same writer identity (an overlapping cron run, a cloned VM)
// and 4 with identities of their own, each backing up 5 times in a row
// with no coordination, so every round overlaps others. Every backup
// that exits 0 must be listed afterwards, check -read-data must pass,
// and each snapshot must restore identical to its source.
func TestConcurrentWriters(t *testing.T) {
	// Its processes start in goroutines, where a skip would not stop the test.
	testutil.SkipInShort(t, "runs the coffer binary")
	for name, newH := range bothStores("concurrent") {
		t.Run(name, func(t *testing.T) {
			h := newH(t)
			h.create()
			const writers, rounds = 8, 5
			saved := make([][]string, writers) // snapshot id per writer and round
			var wg sync.WaitGroup
			var mu sync.Mutex
			var failures []string
			for w := range writers {
				identity := "same"
				if w >= 4 {
					identity = fmt.Sprintf("own-%d", w)
				}
				src := filepath.Join(t.TempDir(), "src")
				wg.Go(func() {
					rng := rand.New(rand.NewPCG(uint64(w), 7))
					for r := range rounds {
						concurrentSource(t, src, w, r)
						time.Sleep(time.Duration(rng.IntN(300)) * time.Millisecond)
						cmd := binaryCmd(t, h, "at", h.repo, "backup", src)
						cmd.Env = append(cmd.Env, "COFFER_WRITER="+identity)
						out, err := cmd.CombinedOutput()
						m := regexp.MustCompile(`snapshot ([0-9a-f]{8}) saved`).FindSubmatch(out)
						mu.Lock()
						switch {
						case err != nil:
							failures = append(failures, fmt.Sprintf("writer %d round %d: %v: %s", w, r, err, out))
							saved[w] = append(saved[w], "")
						case m == nil:
							failures = append(failures, fmt.Sprintf("writer %d round %d printed no snapshot id: %s", w, r, out))
							saved[w] = append(saved[w], "")
						default:
							saved[w] = append(saved[w], string(m[1]))
						}
						mu.Unlock()
					}
				})
			}
			wg.Wait()
			// A backup may fail (the property is about those that exit
			// 0), but with nothing else wrong none should.
			for _, f := range failures {
				t.Errorf("a concurrent backup failed: %s", f)
			}
			h.env["COFFER_CACHE_DIR"] = t.TempDir() // read everything from the store
			ls := h.mustAt("ls")
			listed := 0
			for w := range writers {
				for _, id := range saved[w] {
					if id == "" {
						continue
					}
					listed++
					if !strings.Contains(ls, id) {
						t.Errorf("snapshot %s, saved by writer %d (exit 0), is not listed", id, w)
					}
				}
			}
			if n := strings.Count(ls, "\n"); n != listed {
				t.Errorf("ls lists %d snapshots, want the %d saved:\n%s", n, listed, ls)
			}
			h.checkReadData("after concurrent backups")
			want := t.TempDir()
			for w := range writers {
				for r, id := range saved[w] {
					if id == "" {
						continue
					}
					src := filepath.Join(want, fmt.Sprintf("w%d-r%d", w, r))
					concurrentSource(t, src, w, r)
					restored := filepath.Join(t.TempDir(), "restored")
					h.mustAt("restore", id, "-to", restored)
					testutil.CompareTrees(t, src, restored)
				}
			}
		})
	}
}
