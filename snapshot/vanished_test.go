//go:build linux

package snapshot

import (
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/cofferhq/coffer/internal/testutil"
	"github.com/cofferhq/coffer/repo"
	"github.com/cofferhq/coffer/storage"
)

// client is one coffer client of a store: its own cache directory, and
// the warnings its listings printed.
type client struct {
	t     *testing.T
	st    storage.Store
	cache string // "" for none

	mu       sync.Mutex
	warnings []string
}

func newClient(t *testing.T, st storage.Store, withCache bool) *client {
	c := &client{t: t, st: st}
	if withCache {
		c.cache = t.TempDir()
	}
	return c
}

// open opens the repository afresh, as the next command of this client
// would (warnings are printed once per process, so each open may print
// them again).
func (c *client) open() *repo.Repository {
	c.t.Helper()
	r, err := repo.Open(c.t.Context(), c.st, func() ([]byte, error) { return []byte(testPassphrase), nil }, repo.OpenOptions{
		CacheDir: c.cache,
		Warnf: func(format string, args ...any) {
			c.mu.Lock()
			defer c.mu.Unlock()
			c.warnings = append(c.warnings, fmt.Sprintf(format, args...))
		},
	})
	if err != nil {
		c.t.Fatalf("opening repository: %v", err)
	}
	if err := r.LoadIndex(c.t.Context()); err != nil {
		c.t.Fatalf("loading index: %v", err)
	}
	return r
}

// list lists the snapshots as ls does and returns them and the warnings
// the listing printed.
func (c *client) list() ([]*Snapshot, []string) {
	c.t.Helper()
	c.mu.Lock()
	c.warnings = nil
	c.mu.Unlock()
	sns, err := List(c.t.Context(), c.open())
	if err != nil {
		c.t.Fatalf("listing snapshots: %v", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return sns, c.warnings
}

// check runs check and returns its problems.
func (c *client) check() problemRecorder {
	c.t.Helper()
	var problems problemRecorder
	if _, err := Check(c.t.Context(), c.open(), CheckOptions{}, problems.add); err != nil {
		c.t.Fatal(err)
	}
	return problems
}

// wantClean fails the test if a listing or check by c reports anything.
func (c *client) wantClean(what string) {
	c.t.Helper()
	if _, w := c.list(); len(w) != 0 {
		c.t.Errorf("%s: listing warned: %q", what, w)
	}
	if p := c.check(); len(p) != 0 {
		c.t.Errorf("%s: check found problems:%s", what, p)
	}
}

// wantVanished fails the test unless a listing by c warns, and check
// reports, that exactly the snapshots gone are missing.
func (c *client) wantVanished(what string, gone ...*Snapshot) {
	c.t.Helper()
	sns, w := c.list()
	for _, g := range gone {
		for _, sn := range sns {
			if sn.ID == g.ID {
				c.t.Fatalf("%s: snapshot %s is still listed", what, g.ID.Short())
			}
		}
	}
	if len(w) != 1 || !strings.Contains(w[0], "writer "+gone[0].User+"@"+gone[0].Host) || !strings.Contains(w[0], "rolled back") {
		c.t.Errorf("%s: listing warned %q; want one warning naming writer %s@%s", what, w, gone[0].User, gone[0].Host)
	}
	for _, g := range gone {
		if len(w) > 0 && !strings.Contains(w[0], g.ID.Short()) {
			c.t.Errorf("%s: warning %q does not name snapshot %s", what, w[0], g.ID.Short())
		}
	}
	p := c.check()
	if len(p) != 1 || !errors.Is(p[0], repo.ErrRolledBack) {
		c.t.Errorf("%s: check found%s; want the missing snapshots (repo.ErrRolledBack)", what, p)
		return
	}
	var v *repo.VanishedError
	if !errors.As(p[0], &v) || len(v.Snapshots) != len(gone) {
		c.t.Errorf("%s: check reported %v; want %d snapshots", what, p[0], len(gone))
	}
}

// threeSnapshots creates a repository in st and backs up three times
// through c.
func threeSnapshots(t *testing.T, st storage.Store, c *client) []*Snapshot {
	newRepo(t, st)
	src := t.TempDir()
	testutil.GenerateTree(t, src, testutil.TreeOptions{Seed: 3, Files: 5})
	var sns []*Snapshot
	for i := range 3 {
		writeFile(t, filepath.Join(src, "n.txt"), fmt.Appendf(nil, "%d", i), 0o644)
		sns = append(sns, backup(t, c.open(), src, BackupOptions{}))
	}
	return sns
}

// TestVanishedSnapshots: a snapshot removed from the store behind
// coffer's back is reported by every client that saw it (the one that
// wrote it, one that listed it), by listings as a warning and by check as
// an integrity problem, until it is back; one removed by forget, by this
// client or another, is not, even when a forget on a local directory is
// seen halfway; a client without a cache, or with a new one, detects
// nothing.
func TestVanishedSnapshots(t *testing.T) {
	t.Parallel()
	for _, sk := range storeKinds {
		t.Run(sk.name, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			st := sk.open(t)
			writer, reader, noCache := newClient(t, st, true), newClient(t, st, true), newClient(t, st, false)
			sns := threeSnapshots(t, st, writer)
			reader.wantClean("after the backups")
			noCache.wantClean("after the backups")

			// Behind coffer's back: the newest snapshot goes.
			hidden := getObject(t, st, storage.KindSnapshot, sns[2].ID.String())
			removeObject(t, st, storage.KindSnapshot, sns[2].ID)
			writer.wantVanished("writer, newest deleted", sns[2])
			reader.wantVanished("reader, newest deleted", sns[2])
			reader.wantVanished("reader, newest deleted, again", sns[2]) // remembered until it is back
			noCache.wantClean("no cache, newest deleted")
			late := newClient(t, st, true)
			late.wantClean("new cache, newest deleted")

			// Back again: nothing to report.
			putObject(t, st, storage.KindSnapshot, sns[2].ID.String(), hidden)
			writer.wantClean("writer, newest back")
			reader.wantClean("reader, newest back")
			late.wantClean("new cache, newest back")

			// forget by the writer, then by the reader: neither reports.
			if _, err := Remove(ctx, writer.open(), sns[:1]); err != nil {
				t.Fatal(err)
			}
			writer.wantClean("writer after its forget")
			reader.wantClean("reader after the writer's forget")
			if _, err := Remove(ctx, reader.open(), sns[1:2]); err != nil {
				t.Fatal(err)
			}
			writer.wantClean("writer after the reader's forget")
			reader.wantClean("reader after its forget")
			late.wantClean("new cache after both forgets")

			// A forget seen halfway (a local directory unlinks one
			// snapshot after another): the record names both.
			more := []*Snapshot{backup(t, writer.open(), sns[2].Paths[0], BackupOptions{}), backup(t, writer.open(), sns[2].Paths[0], BackupOptions{})}
			reader.wantClean("reader after two more backups")
			if err := writer.open().RecordRemoval(ctx, []repo.ID{more[0].ID, more[1].ID}); err != nil {
				t.Fatal(err)
			}
			removeObject(t, st, storage.KindSnapshot, more[0].ID)
			reader.wantClean("reader, forget halfway")
			removeObject(t, st, storage.KindSnapshot, more[1].ID)
			reader.wantClean("reader, forget done")

			// A forget whose record is gone too is a removal like any.
			victim := backup(t, writer.open(), sns[2].Paths[0], BackupOptions{})
			reader.wantClean("reader after one more backup")
			before := objectSet(t, st, storage.KindForgotten)
			if _, err := Remove(ctx, writer.open(), []*Snapshot{victim}); err != nil {
				t.Fatal(err)
			}
			for name := range objectSet(t, st, storage.KindForgotten) {
				if !before[name] {
					if err := st.Delete(ctx, storage.KindForgotten, name); err != nil {
						t.Fatal(err)
					}
				}
			}
			if err := storage.Flush(ctx, st); err != nil {
				t.Fatal(err)
			}
			reader.wantVanished("reader, forget without its record", victim)
			writer.wantClean("writer, which made that forget")
		})
	}
}

func getObject(t *testing.T, st storage.Store, kind storage.Kind, name string) []byte {
	t.Helper()
	rc, err := st.Get(t.Context(), kind, name, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func putObject(t *testing.T, st storage.Store, kind storage.Kind, name string, b []byte) {
	t.Helper()
	if err := st.Put(t.Context(), kind, name, storage.BytesBody(b)); err != nil {
		t.Fatal(err)
	}
	if err := storage.Flush(t.Context(), st); err != nil {
		t.Fatal(err)
	}
}

// removeObject deletes an object behind coffer's back.
func removeObject(t *testing.T, st storage.Store, kind storage.Kind, id repo.ID) {
	t.Helper()
	if err := st.Delete(t.Context(), kind, id.String()); err != nil {
		t.Fatal(err)
	}
	if err := storage.Flush(t.Context(), st); err != nil {
		t.Fatal(err)
	}
}

func objectSet(t *testing.T, st storage.Store, kind storage.Kind) map[string]bool {
	t.Helper()
	names := map[string]bool{}
	err := st.List(t.Context(), kind, func(name string, _ int64) error {
		names[name] = true
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return names
}
