// Package storage defines the Store interface that every coffer backend
// implements, the errors backends report, and the parsing of store locations.
//
// A store knows bytes and names, nothing else: it never sees plaintext, keys
// or snapshot structure. Everything above this package is backend-agnostic.
package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"
)

// Kind is the class of an object in a store. Backends may place kinds in
// separate namespaces (directories, tags, manifests); names only need to be
// unique within a kind.
type Kind string

// The kinds of object a coffer repository stores.
const (
	// KindPack holds packs of encrypted blobs, named by the hex SHA-256 of
	// their stored bytes.
	KindPack Kind = "pack"
	// KindIndex holds index objects, named by the hex SHA-256 of their bytes.
	KindIndex Kind = "index"
	// KindSnapshot holds snapshot objects, named by the hex SHA-256 of their
	// bytes.
	KindSnapshot Kind = "snapshot"
	// KindKey holds wrapped master keys, named by the hex SHA-256 of their
	// bytes.
	KindKey Kind = "key"
	// KindLock holds lock objects, named by a random hex id.
	KindLock Kind = "lock"
	// KindPlan holds prune plans (the packs a prune will delete), named by
	// the hex SHA-256 of their bytes.
	KindPlan Kind = "plan"
	// KindForgotten holds removal records (the snapshots a forget
	// removed, so that readers can tell a removal from a rollback), named
	// by the hex SHA-256 of their bytes.
	KindForgotten Kind = "forgotten"
)

// Kinds lists every kind, in the order a conformance test walks them.
var Kinds = []Kind{KindPack, KindIndex, KindSnapshot, KindKey, KindLock, KindPlan, KindForgotten}

// NotCreatable returns err marked as ErrNotCreatable: its message is
// err's, and errors.Is matches both err's chain and ErrNotCreatable.
func NotCreatable(err error) error { return notCreatableError{err} }

type notCreatableError struct{ err error }

func (e notCreatableError) Error() string   { return e.err.Error() }
func (e notCreatableError) Unwrap() []error { return []error{ErrNotCreatable, e.err} }

// Sentinel errors a Store wraps so that callers can match them with errors.Is.
var (
	// ErrNotFound means the object (or, from Open, the repository) does not exist.
	ErrNotFound = errors.New("not found")
	// ErrExists means Create found a repository or other content already there.
	ErrExists = errors.New("already exists")
	// ErrLostReferences means the store lists references whose manifests
	// it has lost (a registry's refs tags after its garbage collection ran
	// while coffer wrote): what they referenced cannot be listed, and no
	// listing is whole until they are repaired (RefsRepairer). It is not
	// ErrCorrupt: no object's bytes failed a check.
	ErrLostReferences = errors.New("the store lost references")
	// ErrNotCreatable marks an Open that found no repository where Create
	// would not make one either: the location holds other data, is not a
	// directory, or its bucket does not exist. Such errors also match
	// ErrNotFound, and say what to do instead of creating one there.
	ErrNotCreatable = errors.New("no repository can be created there")
	// ErrInvalidName means a name is not a valid object name (see ValidName).
	ErrInvalidName = errors.New("invalid object name")
	// ErrInvalidRange means a Range lies outside the object.
	ErrInvalidRange = errors.New("invalid range")
	// ErrNotSupported means the backend cannot perform the operation at all,
	// for example a registry that refuses DELETE.
	ErrNotSupported = errors.New("not supported by this store")
	// ErrAccessDenied means the store refused the credentials, or the
	// access they grant is not enough.
	ErrAccessDenied = errors.New("access denied")
	// ErrCorrupt means the store holds bytes that fail its own check, as
	// a registry blob that does not match its digest, every time it is
	// read: damaged or tampered with.
	ErrCorrupt = errors.New("stored data is corrupted or was tampered with")
	// ErrRetained means the store refused to delete an object that a
	// retention (S3 Object Lock) keeps until a date: the delete will
	// succeed after it. A Store returns it as a *RetainedError, which
	// says the date; it also matches ErrAccessDenied, as the refusal
	// it is.
	ErrRetained = errors.New("retained")
)

// RetainedError is a Delete refused because the object is retained
// until Until (S3 Object Lock): nothing is wrong, and the same delete
// succeeds after that date. It matches ErrRetained and ErrAccessDenied.
type RetainedError struct {
	Op    string    // what was refused, with the location
	By    string    // what retains it, as "Object Lock"
	Until time.Time // when the retention ends
}

// Error says what was refused, until when, and that it can be done
// after that.
func (e *RetainedError) Error() string {
	by := e.By
	if by == "" {
		by = "the store"
	}
	return fmt.Sprintf("%s: retained by %s until %s: it can be deleted after that, by the same command",
		e.Op, by, e.Until.UTC().Format(time.RFC3339))
}

// Is makes a RetainedError match ErrRetained and ErrAccessDenied.
func (e *RetainedError) Is(target error) bool {
	return target == ErrRetained || target == ErrAccessDenied
}

// RetainedUntil returns the date until which err, or an error it wraps,
// says the object is retained, and whether it is such an error.
func RetainedUntil(err error) (time.Time, bool) {
	var re *RetainedError
	if errors.As(err, &re) {
		return re.Until, true
	}
	return time.Time{}, false
}

// Range selects Length bytes starting at Offset. Length must be positive.
type Range struct {
	Offset int64
	Length int64
}

// String formats r the way error messages show it.
func (r Range) String() string { return fmt.Sprintf("[%d,+%d)", r.Offset, r.Length) }

// Store is a place that holds a coffer repository's objects.
//
// Objects of every kind but KindLock are named by the lowercase hex
// SHA-256 of their bytes, which is how coffer names them; a backend may
// rely on it (the OCI backend stores them as blobs under that digest) and
// refuse a Put whose bytes do not match with ErrInvalidName.
//
// Guarantees every implementation makes (storagetest checks them):
//   - Put is atomic: a concurrent or later Get, Stat or List sees either the
//     whole object or nothing, never a prefix, even if the process dies
//     mid-Put. Putting an object that already exists with the same bytes
//     succeeds; objects are never modified in place except KindLock.
//   - Read-after-write: once Put returns, Get, Stat and List on this Store
//     see the object, and once Delete returns they do not. A store that
//     is not a Flusher shows both to other clients at once; a Flusher
//     shows Puts once Flush or Close returns, and Deletes once Flush
//     returns (Close drops Deletes not flushed). Puts become visible to
//     others before the Deletes made after them.
//   - Put stores exactly the body's Size bytes. A body whose reads fail,
//     or that ends before Size, fails the Put (wrapping the read error),
//     which then stores nothing; a store may succeed without reading the
//     body of an object it holds already.
//   - Get with a Range returns exactly Length bytes or an error; a short or
//     mis-positioned answer from the medium is an error, never data.
//   - List returns every object of a kind exactly once, in no given order.
//   - Methods are safe for concurrent use.
type Store interface {
	// Location returns the store's location as the user would type it, with
	// any credentials removed.
	Location() string

	// Create initialises an empty store and writes the repository config.
	// It fails with ErrExists if the location already holds a repository
	// or any other content.
	Create(ctx context.Context, config []byte) error

	// Open returns the repository config written by Create. It fails with
	// an error wrapping ErrNotFound if the location holds no repository.
	Open(ctx context.Context) ([]byte, error)

	// Put stores body under kind/name. It may read the body more than
	// once, in part or whole and from several goroutines (a retried
	// upload reads it again), but not after it returns: the body's bytes
	// must stay unchanged until then, and a store that keeps them longer
	// copies them.
	Put(ctx context.Context, kind Kind, name string, body Body) error

	// Get returns the object's bytes, or only the bytes selected by rng
	// when rng is not nil. The caller must close the reader. A missing
	// object is an error wrapping ErrNotFound.
	Get(ctx context.Context, kind Kind, name string, rng *Range) (io.ReadCloser, error)

	// Stat returns the object's size in bytes.
	Stat(ctx context.Context, kind Kind, name string) (int64, error)

	// List calls fn for each object of the given kind with its name and
	// size. An error from fn stops the listing and is returned.
	List(ctx context.Context, kind Kind, fn func(name string, size int64) error) error

	// Delete removes an object. Deleting a missing object wraps ErrNotFound;
	// a delete that a retention refuses (S3 Object Lock) returns a
	// *RetainedError, which matches ErrRetained and says until when.
	Delete(ctx context.Context, kind Kind, name string) error

	// Close releases resources. Objects Put before Close stay stored.
	Close() error
}

// Flusher is implemented by stores that batch what they make visible to
// other clients (the OCI store references new packs in batches, and drops
// deleted objects from its references in batches). Deletes between two
// Flushes reach other clients in no given order, so a caller that needs
// one delete seen before another flushes in between.
type Flusher interface {
	// Flush returns once every Put and Delete made before it is visible
	// to every client.
	Flush(ctx context.Context) error
}

// Flush calls st's Flush when it has one.
func Flush(ctx context.Context, st Store) error {
	if f, ok := st.(Flusher); ok {
		return f.Flush(ctx)
	}
	return nil
}

// Compacter is implemented by stores whose bookkeeping grows with every
// writer session and can be merged (the OCI store's refs tags).
type Compacter interface {
	// Compact merges the store's bookkeeping when it has grown. It is
	// safe with concurrent Puts, but not with another client's Compact
	// or Flush of Deletes.
	Compact(ctx context.Context) error
}

// RefsRepairer is implemented by stores that reference objects from
// manifests of their own (the OCI store's refs tags), which a registry
// can lose while it still lists their tags.
type RefsRepairer interface {
	// RepairRefs retires the references whose manifests are gone, after
	// re-publishing what the local cache knows they held and the store
	// still has; one the cache knows nothing of is retired only with
	// force. report is called per such reference, with the objects
	// re-published and the objects gone (-1 each when the cache knows
	// nothing of it) and whether it was retired. It returns how many were
	// retired.
	RepairRefs(ctx context.Context, force bool, report func(ref string, kept, lost int, retired bool)) (int, error)
}

// Refresher is implemented by stores that remember their listings for a
// while (the OCI store reads its references once per 30 s).
type Refresher interface {
	// Refresh makes the next List read the store afresh.
	Refresh()
}

// Refresh calls st's Refresh when it has one. Code that must see every
// object written before it lists (the lock protocol) calls it first.
func Refresh(st Store) {
	if r, ok := st.(Refresher); ok {
		r.Refresh()
	}
}

// Describer is implemented by stores that can report facts about
// themselves (type, capabilities) for `coffer info`.
type Describer interface {
	Describe(ctx context.Context) map[string]string
}

// Concurrency is implemented by stores that want more (or fewer) writes
// in flight than a local disk does, such as a registry across a network.
type Concurrency interface {
	// Concurrency returns how many Puts of large objects to run at once.
	Concurrency() int
}

// LocalPather is implemented by stores that keep their objects in a
// directory of the local file system (the local store), so that a backup
// of a tree holding that directory can leave the repository out instead
// of backing it up into itself.
type LocalPather interface {
	// LocalPath returns the store's directory as an absolute path.
	LocalPath() string
}

// FilePutter is implemented by stores that can take over a file an
// object was assembled in. A caller gets the file from CreateTemp and
// hands it over with PutFile: a store on a local file system moves it
// into place instead of copying its bytes; the OCI store uploads it and
// keeps it until a tag references the object, to upload it again if the
// registry loses it before then.
type FilePutter interface {
	// CreateTemp returns a new, empty file on the store's file system.
	CreateTemp() (*os.File, error)
	// PutFile stores f, which CreateTemp returned and which holds exactly
	// size bytes, as kind/name, with Put's guarantees. It takes f: when
	// PutFile returns, f is closed and gone from its temporary path,
	// whether it succeeded or not.
	PutFile(ctx context.Context, kind Kind, name string, f *os.File, size int64) error
}

// Mounter is implemented by stores that can take an object from another
// store without its bytes passing through coffer: a registry mounts a
// blob from another repository on the same registry (cross-repository
// blob mount), which uploads nothing.
type Mounter interface {
	// Mount stores kind/name, size bytes long, by taking it from src,
	// with Put's guarantees. It returns false and no error when it cannot
	// (src is another kind of store or on another registry, or the
	// registry declines the mount); the caller then copies the bytes.
	Mount(ctx context.Context, kind Kind, name string, size int64, src Store) (bool, error)
}

// ValidName reports whether name can be used as an object name: 1 to 128
// characters from [0-9a-z-], not starting with '-'. Names chosen by coffer
// are lowercase hex, which every backend can store verbatim.
func ValidName(name string) bool {
	if len(name) == 0 || len(name) > 128 || name[0] == '-' {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c == '-') {
			return false
		}
	}
	return true
}

// ValidKind reports whether k is one of Kinds.
func ValidKind(k Kind) bool {
	for _, known := range Kinds {
		if k == known {
			return true
		}
	}
	return false
}

// CheckArgs validates kind and name and returns an error wrapping
// ErrInvalidName when either is unusable. Backends call it first.
func CheckArgs(kind Kind, name string) error {
	if !ValidKind(kind) {
		return fmt.Errorf("unknown object kind %q: %w", kind, ErrInvalidName)
	}
	if !ValidName(name) {
		return fmt.Errorf("%s %q: %w", kind, name, ErrInvalidName)
	}
	return nil
}
