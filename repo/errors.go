package repo

import (
	"errors"
	"fmt"

	"github.com/cofferhq/coffer/storage"
)

// Errors returned by the repository, matched with errors.Is.
var (
	// ErrWrongPassphrase means no key object could be opened with the
	// passphrase given.
	ErrWrongPassphrase = errors.New("wrong passphrase: no key in this repository opens with it")
	// ErrNewerFormat means the repository was written by a newer coffer.
	ErrNewerFormat = errors.New("written by a newer coffer: upgrade coffer to read it")
	// ErrCorrupt means a stored object failed authentication or decoding.
	// It is always wrapped in an *IntegrityError naming the object,
	// including damage the store found itself (storage.ErrCorrupt, as a
	// registry blob that fails its digest): callers see one error for a
	// damaged object whichever layer noticed.
	ErrCorrupt = errors.New("data is corrupted or was tampered with")
	// ErrBlobNotFound means the index has no entry for a blob.
	ErrBlobNotFound = errors.New("blob not in index")
	// ErrNoTempSpace means the temporary directory, where packs are
	// written before they are stored, is full.
	ErrNoTempSpace = errors.New("no space left for temporary pack files")
)

// IntegrityError reports a stored object that failed verification. It
// wraps ErrCorrupt, so errors.Is(err, ErrCorrupt) matches.
type IntegrityError struct {
	Kind storage.Kind // the object's kind; "blob" for a blob inside a pack
	Name string       // the object's name or blob id
	Pack string       // for a blob, the pack holding it
	Err  error        // what failed, e.g. authentication
}

func (e *IntegrityError) Error() string {
	where := fmt.Sprintf("%s %s", e.Kind, e.Name)
	if string(e.Kind) == e.Name {
		where = e.Name // the config, which is one of its kind
	}
	if e.Pack != "" {
		where += " in pack " + e.Pack
	}
	return fmt.Sprintf("%s is corrupted or was tampered with: %v", where, e.Err)
}

// Unwrap lets errors.Is match ErrCorrupt and the underlying cause.
func (e *IntegrityError) Unwrap() []error { return []error{ErrCorrupt, e.Err} }

func corrupt(kind storage.Kind, name string, format string, args ...any) error {
	return &IntegrityError{Kind: kind, Name: name, Err: fmt.Errorf(format, args...)}
}

// storeCorrupt returns the *IntegrityError for kind/name when err, from
// reading it, says that the store found its bytes damaged, so that such
// damage is reported as this package reports damage it finds itself; it
// returns nil for any other err.
func storeCorrupt(kind storage.Kind, name string, err error) error {
	if !errors.Is(err, storage.ErrCorrupt) {
		return nil
	}
	return corrupt(kind, name, "content does not match its name (truncated or altered)")
}

// Errors about keys and prefixes.
var (
	// ErrNoSuchKey means no key object matches the id given.
	ErrNoSuchKey = errors.New("no such key")
	// ErrKeyInUse means the key to remove is the one that opened the repository.
	ErrKeyInUse = errors.New("cannot remove the key in use; open the repository with another passphrase first")
	// ErrAmbiguous means an id prefix matches more than one object.
	ErrAmbiguous = errors.New("ambiguous id prefix")
)
