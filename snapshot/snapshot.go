package snapshot

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/sync/errgroup"

	"github.com/cofferhq/coffer/repo"
	"github.com/cofferhq/coffer/storage"
)

const snapshotVersion = 1

// Errors about naming snapshots and paths, matched with errors.Is.
var (
	// ErrSnapshotNotFound means no snapshot id starts with the prefix given.
	ErrSnapshotNotFound = errors.New("no such snapshot")
	// ErrAmbiguousSnapshot means several snapshot ids start with the prefix.
	ErrAmbiguousSnapshot = errors.New("ambiguous snapshot id prefix")
	// ErrPathNotFound means a path does not exist in a snapshot.
	ErrPathNotFound = errors.New("path not in snapshot")
)

// Summary records what one backup did.
type Summary struct {
	Files          int64         `json:"files"`           // regular files in the snapshot
	Dirs           int64         `json:"dirs"`            // directories in the snapshot
	Others         int64         `json:"others"`          // symlinks, devices, fifos, sockets
	Size           int64         `json:"size"`            // logical bytes of the regular files
	NewFiles       int64         `json:"new_files"`       // files not in the parent snapshot
	ChangedFiles   int64         `json:"changed_files"`   // files whose content was read again
	UnchangedFiles int64         `json:"unchanged_files"` // files taken from the parent without reading
	FilesRead      int64         `json:"files_read"`      // files opened for reading
	BytesRead      int64         `json:"bytes_read"`      // content bytes read from the source
	NewBlobs       int64         `json:"new_blobs"`
	NewBytes       int64         `json:"new_bytes"`    // plaintext bytes of blobs new to the repository
	StoredBytes    int64         `json:"stored_bytes"` // bytes of packs written
	Errors         int64         `json:"errors"`       // entries that could not be read completely
	Start          time.Time     `json:"start"`
	Duration       time.Duration `json:"duration"`
}

// Snapshot is one backup.
type Snapshot struct {
	Version  int       `json:"version"`
	Time     time.Time `json:"time"`
	Host     string    `json:"host"`
	User     string    `json:"user"`
	Paths    []string  `json:"paths"` // absolute, cleaned, sorted
	Base     string    `json:"base"`  // directory relative paths resolve against
	Tags     []string  `json:"tags,omitempty"`
	Excludes []string  `json:"excludes,omitempty"`
	Parent   repo.ID   `json:"parent,omitzero"`
	// Original is the id of the snapshot this one is a copy of, made by
	// sync into a repository with other keys (where the copy's id and
	// tree differ); zero for a backup, and for a copy into a repository
	// that shares keys, which keeps the original's id.
	Original repo.ID `json:"original,omitzero"`
	Tree     repo.ID `json:"tree"`
	Summary  Summary `json:"summary"`
	Program  string  `json:"program"`

	ID repo.ID `json:"-"` // the object's name, set when loaded or saved
}

// Paths, like node names, are byte strings on Linux that need not be
// valid UTF-8, and a JSON string would replace such bytes with U+FFFD: the
// snapshot would then name a base directory its tree does not hold, and
// ls and restore of it would fail. So when a path is not UTF-8, every
// path of that field is also stored as bytes in a *_raw field, which
// decoding prefers; the plain field keeps a readable (lossy) copy for
// programs that only read it.

type snapshotJSON Snapshot // Snapshot without its methods

type snapshotWire struct {
	*snapshotJSON
	PathsRaw    [][]byte `json:"paths_raw,omitempty"`
	BaseRaw     []byte   `json:"base_raw,omitempty"`
	ExcludesRaw [][]byte `json:"excludes_raw,omitempty"`
}

// MarshalJSON encodes sn, adding raw fields for paths that are not UTF-8.
func (sn *Snapshot) MarshalJSON() ([]byte, error) {
	c := *sn
	w := snapshotWire{snapshotJSON: (*snapshotJSON)(&c)}
	w.PathsRaw, c.Paths = rawStrings(sn.Paths)
	w.ExcludesRaw, c.Excludes = rawStrings(sn.Excludes)
	if !utf8.ValidString(sn.Base) {
		w.BaseRaw, c.Base = []byte(sn.Base), strings.ToValidUTF8(sn.Base, "\uFFFD")
	}
	return json.Marshal(w)
}

// rawStrings returns nil and ss when every string is UTF-8, and otherwise
// ss as bytes and a lossy copy of ss.
func rawStrings(ss []string) ([][]byte, []string) {
	if !slices.ContainsFunc(ss, func(s string) bool { return !utf8.ValidString(s) }) {
		return nil, ss
	}
	raw := make([][]byte, len(ss))
	lossy := make([]string, len(ss))
	for i, s := range ss {
		raw[i], lossy[i] = []byte(s), strings.ToValidUTF8(s, "\uFFFD")
	}
	return raw, lossy
}

// UnmarshalJSON decodes what MarshalJSON wrote.
func (sn *Snapshot) UnmarshalJSON(b []byte) error {
	w := snapshotWire{snapshotJSON: (*snapshotJSON)(sn)}
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	if w.PathsRaw != nil {
		sn.Paths = fromRaw(w.PathsRaw)
	}
	if w.ExcludesRaw != nil {
		sn.Excludes = fromRaw(w.ExcludesRaw)
	}
	if w.BaseRaw != nil {
		sn.Base = string(w.BaseRaw)
	}
	return nil
}

func fromRaw(raw [][]byte) []string {
	ss := make([]string, len(raw))
	for i, b := range raw {
		ss[i] = string(b)
	}
	return ss
}

// Save stores sn as a new snapshot object, makes it visible to every
// client, and sets sn.ID. This client then remembers it, so that a store
// that later hides it is reported (see List).
func Save(ctx context.Context, r *repo.Repository, sn *Snapshot) error {
	sn.Version = snapshotVersion
	b, err := json.Marshal(sn)
	if err != nil {
		return err
	}
	id, err := r.SaveObject(ctx, storage.KindSnapshot, b)
	if err != nil {
		return err
	}
	sn.ID = id
	// Remembered only once others can see it: a snapshot whose flush
	// failed never reached the store, and must not be missed later.
	if err := storage.Flush(ctx, r.Store()); err != nil {
		return fmt.Errorf("storing snapshot %s: %w", id.Short(), err)
	}
	r.RememberSnapshot(sn.sighting())
	return nil
}

func (sn *Snapshot) sighting() repo.Sighting {
	return repo.Sighting{ID: sn.ID, Host: sn.Host, User: sn.User, Time: sn.Time}
}

// Load reads and decodes one snapshot object.
func Load(ctx context.Context, r *repo.Repository, id repo.ID) (*Snapshot, error) {
	b, err := r.LoadObject(ctx, storage.KindSnapshot, id)
	if err != nil {
		return nil, err
	}
	sn, err := decodeSnapshot(b)
	if err != nil {
		if errors.Is(err, repo.ErrNewerFormat) {
			return nil, fmt.Errorf("snapshot %s: %w", id.Short(), err)
		}
		return nil, &repo.IntegrityError{Kind: storage.KindSnapshot, Name: id.String(), Err: err}
	}
	sn.ID = id
	return sn, nil
}

func decodeSnapshot(b []byte) (*Snapshot, error) {
	var sn Snapshot
	if err := json.Unmarshal(b, &sn); err != nil {
		return nil, fmt.Errorf("decoding: %w", err)
	}
	if sn.Version > snapshotVersion {
		return nil, fmt.Errorf("snapshot version %d: %w", sn.Version, repo.ErrNewerFormat)
	}
	if sn.Version != snapshotVersion {
		return nil, fmt.Errorf("unknown snapshot version %d", sn.Version)
	}
	if sn.Tree.IsZero() || len(sn.Paths) == 0 {
		return nil, errors.New("snapshot has no tree or no paths")
	}
	return &sn, nil
}

// List loads every snapshot, oldest first. Snapshots that fail to load
// are left out and their errors joined into the error returned with the
// others, so one damaged snapshot hides no other.
//
// Snapshots this client has seen before that are missing, with no forget
// behind their removal, are reported as a warning per writer
// (repo.Repository.Warn), and the listing goes on: see Vanished.
func List(ctx context.Context, r *repo.Repository) ([]*Snapshot, error) {
	ids, err := r.ListObjects(ctx, storage.KindSnapshot)
	if err != nil {
		return nil, err
	}
	sns, err := load(ctx, r, ids)
	if ctx.Err() != nil {
		return nil, err
	}
	vanished, verr := Vanished(ctx, r, ids, sns)
	for _, v := range vanished {
		r.Warn(v)
	}
	if verr != nil && ctx.Err() == nil {
		r.Warn(fmt.Errorf("cannot tell whether snapshots were removed by forget or by a rollback of the store: %w", verr))
	}
	return sns, err
}

// Vanished compares a complete listing of snapshot ids, and the snapshots
// among them that loaded, with the snapshots this client has seen before
// (repo.Repository.CompareSnapshots), and remembers them. It returns an
// error per writer whose snapshots are gone with no forget behind their
// removal (wrapping repo.ErrRolledBack).
func Vanished(ctx context.Context, r *repo.Repository, ids []repo.ID, sns []*Snapshot) ([]*repo.VanishedError, error) {
	seen := make([]repo.Sighting, len(sns))
	for i, sn := range sns {
		seen[i] = sn.sighting()
	}
	return r.CompareSnapshots(ctx, ids, seen)
}

// loadParallel is how many snapshots load at once: on a registry each
// one not in the local cache is a request, and a thousand of them one
// after the other cost a thousand round trips.
const loadParallel = 8

// load loads the snapshots ids names, oldest first, as List does.
func load(ctx context.Context, r *repo.Repository, ids []repo.ID) ([]*Snapshot, error) {
	loaded := make([]*Snapshot, len(ids))
	errs := make([]error, len(ids))
	var g errgroup.Group
	g.SetLimit(loadParallel)
	for i, id := range ids {
		g.Go(func() error {
			loaded[i], errs[i] = Load(ctx, r, id)
			return nil
		})
	}
	g.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	sns := slices.DeleteFunc(loaded, func(sn *Snapshot) bool { return sn == nil })
	slices.SortFunc(sns, func(a, b *Snapshot) int {
		if c := a.Time.Compare(b.Time); c != 0 {
			return c
		}
		return strings.Compare(a.ID.String(), b.ID.String())
	})
	return sns, errors.Join(errs...)
}

// Remove deletes snapshot objects and returns those it removed, in order,
// until the first failure. The data they alone used stays until prune.
// It first stores a record of the removal, which tells every client that
// has seen these snapshots that a forget, not a rollback of the store,
// took them away.
//
// A snapshot whose object a retention (S3 Object Lock) keeps is no
// failure: Remove goes on with the others, and then returns the
// removed ones with a *RetainedError naming those that stay. Their
// removal is recorded: they stay listed until their date, and the
// first prune (or forget) after it removes them.
func Remove(ctx context.Context, r *repo.Repository, sns []*Snapshot) ([]*Snapshot, error) {
	ids := make([]repo.ID, len(sns))
	for i, sn := range sns {
		ids[i] = sn.ID
	}
	if err := r.RecordRemoval(ctx, ids); err != nil {
		return nil, err
	}
	var removed []*Snapshot
	var retained *RetainedError
	for _, sn := range sns {
		err := r.RemoveObject(ctx, storage.KindSnapshot, sn.ID)
		if until, ok := storage.RetainedUntil(err); ok {
			if retained == nil {
				retained = &RetainedError{}
			}
			retained.add(sn, until)
			continue
		}
		if err != nil {
			return removed, err
		}
		removed = append(removed, sn)
	}
	if retained != nil {
		return removed, retained
	}
	return removed, nil
}

// RetainedError names snapshots whose objects a retention (S3 Object
// Lock) kept Remove from deleting: their removal is recorded, they stay
// listed (and restorable) until Until at the latest, and the first
// prune or forget after their date removes them. It matches
// storage.ErrRetained.
type RetainedError struct {
	Snapshots   []*Snapshot
	From, Until time.Time // the earliest and the latest date
}

func (e *RetainedError) add(sn *Snapshot, until time.Time) {
	until = until.UTC()
	e.Snapshots = append(e.Snapshots, sn)
	if e.From.IsZero() || until.Before(e.From) {
		e.From = until
	}
	if until.After(e.Until) {
		e.Until = until
	}
}

// Error says which snapshots stay, until when, and what removes them.
func (e *RetainedError) Error() string {
	shorts := make([]string, len(e.Snapshots))
	for i, sn := range e.Snapshots {
		shorts[i] = sn.ID.Short()
	}
	when := "until " + e.Until.Format(time.RFC3339)
	if !e.From.Equal(e.Until) {
		when = "from " + e.From.Format(time.RFC3339) + " until " + e.Until.Format(time.RFC3339)
	}
	n := "1 snapshot is"
	if len(shorts) != 1 {
		n = fmt.Sprintf("%d snapshots are", len(shorts))
	}
	return fmt.Sprintf("%s retained by Object Lock %s (%s): their removal is recorded, and they stay listed until then; the first prune (or forget) after that date removes them",
		n, when, strings.Join(shorts, ", "))
}

// Unwrap makes a RetainedError match storage.ErrRetained.
func (e *RetainedError) Unwrap() error { return storage.ErrRetained }

// Retag stores sn again with other tags, under a new id, and removes
// the original (with a removal record, as forget does). The new one
// comes first, so that a failure between the two leaves both, never
// neither. It records the original's id (Original), so that sync treats
// it as the snapshot the destination may have already.
func Retag(ctx context.Context, r *repo.Repository, sn *Snapshot, tags []string) (*Snapshot, error) {
	c := *sn
	c.Tags, c.Original, c.ID = tags, sn.Origin(), repo.ID{}
	if err := Save(ctx, r, &c); err != nil {
		return nil, err
	}
	if _, err := Remove(ctx, r, []*Snapshot{sn}); err != nil {
		return &c, fmt.Errorf("snapshot %s was stored as %s with its new tags, but the original could not be removed (forget it): %w", sn.ID.Short(), c.ID.Short(), err)
	}
	return &c, nil
}

// Latest returns the newest of sns, which are sorted oldest first (as List
// returns them), preferring host's snapshots when host is not empty and
// sns holds any; nil when sns is empty.
func Latest(sns []*Snapshot, host string) *Snapshot {
	if host != "" {
		for i := len(sns) - 1; i >= 0; i-- {
			if sns[i].Host == host {
				return sns[i]
			}
		}
	}
	if len(sns) == 0 {
		return nil
	}
	return sns[len(sns)-1]
}

// Find returns the snapshot whose id starts with prefix. "latest" selects
// the most recent snapshot.
func Find(ctx context.Context, r *repo.Repository, prefix string) (*Snapshot, error) {
	if prefix == "latest" {
		sns, err := List(ctx, r)
		if err != nil {
			return nil, err
		}
		if len(sns) == 0 {
			return nil, fmt.Errorf("latest: the repository has no snapshots: %w", ErrSnapshotNotFound)
		}
		return sns[len(sns)-1], nil
	}
	prefix = strings.ToLower(prefix)
	if prefix == "" || strings.Trim(prefix, "0123456789abcdef") != "" {
		return nil, fmt.Errorf("%q is not a snapshot id prefix (hex digits): %w", prefix, ErrSnapshotNotFound)
	}
	ids, err := r.ListObjects(ctx, storage.KindSnapshot)
	if err != nil {
		return nil, err
	}
	var matches []repo.ID
	for _, id := range ids {
		if strings.HasPrefix(id.String(), prefix) {
			matches = append(matches, id)
		}
	}
	switch len(matches) {
	case 0:
		return nil, fmt.Errorf("no snapshot id starts with %q: %w", prefix, ErrSnapshotNotFound)
	case 1:
		return Load(ctx, r, matches[0])
	}
	shorts := make([]string, len(matches))
	for i, m := range matches {
		shorts[i] = m.String()[:min(len(m.String()), max(8, len(prefix)+2))]
	}
	return nil, fmt.Errorf("snapshot id prefix %q matches %d snapshots (%s): use more characters: %w",
		prefix, len(matches), strings.Join(shorts, ", "), ErrAmbiguousSnapshot)
}
