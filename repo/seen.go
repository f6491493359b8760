package repo

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cofferhq/coffer/internal/cachefile"
	"github.com/cofferhq/coffer/storage"
)

// A store can hide snapshots without forging anything: a registry that
// serves an older manifest under a refs tag, or loses a tag, shows fewer
// snapshots, and every object it still shows authenticates. So each
// client remembers, in its cache, the snapshots it has seen, and a
// legitimate removal leaves an authenticated record (a sealed object of
// kind forgotten) in the store before the snapshots go. A remembered
// snapshot that the store no longer lists and no record names was taken
// away by someone without the keys: the store was rolled back, or a tag
// was deleted (docs/format.md §14.5).

// ErrRolledBack means snapshots this client has seen are missing from the
// store and no forget removed them. It is always wrapped in a
// *VanishedError naming them.
var ErrRolledBack = errors.New("the store was rolled back, or a snapshot or a refs tag was deleted from it")

const (
	forgottenVersion = 1
	seenVersion      = 1
	// seenKind is the associated-data kind of the cache file: it is
	// sealed like an object, so the cache holds no plaintext, but it is
	// never stored.
	seenKind storage.Kind = "seen"
)

// seenGuard serialises a process's reads and writes of the cache file
// (processes sharing a cache may still interleave: a lost update costs
// detection, never a false report) and remembers the warnings printed.
type seenGuard struct {
	mu     sync.Mutex
	warned map[string]bool
}

// Sighting is what a client remembers of a snapshot it has seen: enough
// to name it and its writer once it is gone.
type Sighting struct {
	ID   ID        `json:"id"`
	Host string    `json:"host"`
	User string    `json:"user"`
	Time time.Time `json:"time"`
}

// Writer names the snapshot's writer as user@host.
func (s Sighting) Writer() string { return s.User + "@" + s.Host }

// VanishedError reports the snapshots of one writer that this client has
// seen and the store no longer lists, with no removal record naming
// them. It wraps ErrRolledBack.
type VanishedError struct {
	Host, User string
	Snapshots  []Sighting // oldest first
}

func (e *VanishedError) Error() string {
	newest := e.Snapshots[len(e.Snapshots)-1]
	when := newest.Time.UTC().Format(time.RFC3339)
	writer := e.Snapshots[0].Writer()
	if len(e.Snapshots) == 1 {
		return fmt.Sprintf("snapshot %s of writer %s (%s), seen by this client, is missing from the store and no forget removed it: %v",
			newest.ID.Short(), writer, when, ErrRolledBack)
	}
	shorts := make([]string, len(e.Snapshots))
	for i, s := range e.Snapshots {
		shorts[i] = s.ID.Short()
	}
	return fmt.Sprintf("%d snapshots of writer %s (%s; newest %s), seen by this client, are missing from the store and no forget removed them: %v",
		len(e.Snapshots), writer, strings.Join(shorts, ", "), when, ErrRolledBack)
}

// Unwrap lets errors.Is match ErrRolledBack.
func (e *VanishedError) Unwrap() error { return ErrRolledBack }

// removalRecord is the plaintext of an object of kind forgotten.
type removalRecord struct {
	Version   int       `json:"version"`
	Created   time.Time `json:"created"`
	Host      string    `json:"host"`
	Snapshots []ID      `json:"snapshots"`
}

// seenState is the cache file: per store location, what this client has
// seen.
type seenState struct {
	Version int `json:"version"`
	// Snapshots are the snapshots seen listed or written, by id.
	Snapshots map[string]Sighting `json:"snapshots"`
	// Forgotten are snapshot ids named by removal records that the store
	// still listed when last looked at (a forget on a local directory
	// removes them one by one, and a reader may look in between).
	Forgotten map[string]bool `json:"forgotten"`
	// Records are the removal records already read.
	Records map[string]bool `json:"records"`
}

// seenPath returns the cache file for this repository at this location:
// a copy of a repository elsewhere (same id, its own history) is another
// store with its own history, and must not be compared with this one.
func (r *Repository) seenPath() string {
	loc := sha256.Sum256([]byte(r.store.Location()))
	return filepath.Join(r.cacheDir, "seen", hex.EncodeToString(loc[:16]))
}

// loadSeen reads the cache file. A missing, damaged or foreign file is
// an empty state: it costs what the lost file would have detected, never
// a false report.
func (r *Repository) loadSeen() *seenState {
	st := &seenState{Version: seenVersion, Snapshots: map[string]Sighting{}, Forgotten: map[string]bool{}, Records: map[string]bool{}}
	sealed, err := os.ReadFile(r.seenPath())
	if err != nil {
		return st
	}
	plain, err := r.openObject(seenKind, "cache", sealed)
	if err != nil {
		return st
	}
	var got seenState
	if json.Unmarshal(plain, &got) != nil || got.Version != seenVersion {
		return st
	}
	for k, v := range got.Snapshots {
		st.Snapshots[k] = v
	}
	for k := range got.Forgotten {
		st.Forgotten[k] = true
	}
	for k := range got.Records {
		st.Records[k] = true
	}
	return st
}

func (r *Repository) saveSeen(st *seenState) {
	sealed, err := r.sealObject(seenKind, mustJSON(st))
	if err != nil {
		return
	}
	cachefile.Write(r.seenPath(), sealed)
}

// CompareSnapshots compares a complete listing of the store's snapshots
// with what this client has seen, and then remembers the listing: seen
// gives the writer and time of the listed snapshots that could be loaded.
// It returns one error per writer whose remembered snapshots are missing
// and named by no removal record; they stay remembered, so every later
// listing reports them too. Without a cache directory it remembers
// nothing and finds nothing.
func (r *Repository) CompareSnapshots(ctx context.Context, listed []ID, seen []Sighting) ([]*VanishedError, error) {
	if r.cacheDir == "" {
		return nil, nil
	}
	r.seen.mu.Lock()
	defer r.seen.mu.Unlock()
	st := r.loadSeen()
	isListed := make(map[string]bool, len(listed))
	for _, id := range listed {
		isListed[id.String()] = true
	}
	missing := func() []string {
		var m []string
		for id := range st.Snapshots {
			if !isListed[id] && !st.Forgotten[id] {
				m = append(m, id)
			}
		}
		return m
	}
	var err error
	if len(missing()) > 0 {
		// Only now read the removal records not read before: a listing
		// that shows everything remembered costs nothing more. The
		// records are listed after the snapshots, and a forget stores
		// its record before it removes anything, so a record behind a
		// removal this listing shows is found.
		err = r.readRemovalRecords(ctx, st)
	}
	for id := range st.Forgotten {
		delete(st.Snapshots, id)
		if !isListed[id] {
			delete(st.Forgotten, id)
		}
	}
	byWriter := map[string]*VanishedError{}
	var out []*VanishedError
	for _, id := range missing() {
		s := st.Snapshots[id]
		e := byWriter[s.Writer()]
		if e == nil {
			e = &VanishedError{Host: s.Host, User: s.User}
			byWriter[s.Writer()] = e
			out = append(out, e)
		}
		e.Snapshots = append(e.Snapshots, s)
	}
	for _, e := range out {
		slices.SortFunc(e.Snapshots, func(a, b Sighting) int {
			if c := a.Time.Compare(b.Time); c != 0 {
				return c
			}
			return strings.Compare(a.ID.String(), b.ID.String())
		})
	}
	slices.SortFunc(out, func(a, b *VanishedError) int {
		return strings.Compare(a.Snapshots[0].Writer(), b.Snapshots[0].Writer())
	})
	for _, s := range seen {
		if isListed[s.ID.String()] && !st.Forgotten[s.ID.String()] {
			st.Snapshots[s.ID.String()] = s
		}
	}
	r.saveSeen(st)
	return out, err
}

// readRemovalRecords adds the snapshots named by removal records not read
// before to st.Forgotten.
func (r *Repository) readRemovalRecords(ctx context.Context, st *seenState) error {
	ids, err := r.ListObjects(ctx, storage.KindForgotten)
	if err != nil {
		return err
	}
	var errs []error
	for _, id := range ids {
		if st.Records[id.String()] {
			continue
		}
		b, err := r.LoadObject(ctx, storage.KindForgotten, id)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		var rec removalRecord
		if err := json.Unmarshal(b, &rec); err != nil {
			errs = append(errs, corrupt(storage.KindForgotten, id.String(), "decoding: %v", err))
			continue
		}
		if rec.Version > forgottenVersion {
			errs = append(errs, fmt.Errorf("removal record %s has version %d: %w", id.Short(), rec.Version, ErrNewerFormat))
			continue
		}
		for _, sn := range rec.Snapshots {
			st.Forgotten[sn.String()] = true
		}
		st.Records[id.String()] = true
	}
	return errors.Join(errs...)
}

// RecordRemoval stores a removal record naming snapshots about to be
// removed, and makes it visible to every client before returning, so
// that no client sees them gone without the record. Call it before
// removing the snapshots, under the exclusive lock.
func (r *Repository) RecordRemoval(ctx context.Context, snapshots []ID) error {
	if len(snapshots) == 0 {
		return nil
	}
	host, _ := os.Hostname()
	if r.lock != nil {
		host = r.lock.info.Host
	}
	rec := removalRecord{Version: forgottenVersion, Created: r.now().UTC().Truncate(time.Second), Host: host, Snapshots: snapshots}
	id, err := r.SaveObject(ctx, storage.KindForgotten, mustJSON(rec))
	if err != nil {
		return err
	}
	if err := storage.Flush(ctx, r.store); err != nil {
		return fmt.Errorf("storing the record of the snapshots to remove: %w", err)
	}
	if r.cacheDir == "" {
		return nil
	}
	r.seen.mu.Lock()
	defer r.seen.mu.Unlock()
	st := r.loadSeen()
	for _, sn := range snapshots {
		delete(st.Snapshots, sn.String())
		st.Forgotten[sn.String()] = true
	}
	st.Records[id.String()] = true
	r.saveSeen(st)
	return nil
}

// RememberSnapshot remembers a snapshot this client wrote. Call it only
// once the snapshot is visible to other clients (after a flush), or a
// write that never reached them would be reported as taken away.
func (r *Repository) RememberSnapshot(s Sighting) {
	if r.cacheDir == "" {
		return
	}
	r.seen.mu.Lock()
	defer r.seen.mu.Unlock()
	st := r.loadSeen()
	st.Snapshots[s.ID.String()] = s
	r.saveSeen(st)
}

// Warn reports something the user should know on stderr, through
// OpenOptions.Warnf, once per process for each distinct message (a
// long-running process lists snapshots again and again).
func (r *Repository) Warn(err error) {
	if r.warnf == nil {
		return
	}
	msg := err.Error()
	r.seen.mu.Lock()
	if r.seen.warned[msg] {
		r.seen.mu.Unlock()
		return
	}
	r.seen.warned[msg] = true
	r.seen.mu.Unlock()
	r.warnf("%s", msg)
}

// RecordedRemovals returns the snapshots that the store's removal
// records name: those a forget removed, or means to remove (a
// retention, S3 Object Lock, can keep a snapshot's object past its
// forget; prune removes it once it can). Records that cannot be read
// are left out, and their errors joined into the error returned with
// the others.
func (r *Repository) RecordedRemovals(ctx context.Context) (map[ID]bool, error) {
	st := &seenState{Forgotten: map[string]bool{}, Records: map[string]bool{}}
	err := r.readRemovalRecords(ctx, st)
	out := map[ID]bool{}
	for s := range st.Forgotten {
		if id, perr := ParseID(s); perr == nil {
			out[id] = true
		}
	}
	return out, err
}

// HoldsExclusiveLock reports whether r holds the repository's exclusive
// lock, which deleting packs, index objects and snapshots needs.
func (r *Repository) HoldsExclusiveLock() bool {
	return r.lock != nil && r.lock.info.Kind == LockExclusive
}
