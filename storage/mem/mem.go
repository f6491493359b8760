// Package mem implements an in-memory storage.Store for fast tests.
//
// It keeps the same contract as the real backends (it passes storagetest),
// so code tested against it behaves the same on disk; nothing survives the
// process.
package mem

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"sync"

	"github.com/cofferhq/coffer/storage"
	"github.com/cofferhq/coffer/storage/internal/streamio"
)

// maxPrealloc caps the buffer reserved up front for a Put, so that a bogus
// size fails when the body runs dry instead of exhausting memory first.
const maxPrealloc = 256 << 20

// Store is an in-memory store. The zero value is not usable; call New.
// It is safe for concurrent use.
type Store struct {
	location string

	mu      sync.RWMutex
	created bool
	config  []byte
	// objects maps kind to name to bytes. A stored slice is never
	// modified, only replaced, so readers handed out by Get may share it.
	objects map[storage.Kind]map[string][]byte
}

var (
	_ storage.Store     = (*Store)(nil)
	_ storage.Describer = (*Store)(nil)
)

// New returns an empty store that has not been created, with a location
// unique to it.
func New() *Store {
	var id [8]byte
	_, _ = rand.Read(id[:]) // never fails, see crypto/rand.Read
	return &Store{
		location: "mem://" + hex.EncodeToString(id[:]),
		objects:  make(map[storage.Kind]map[string][]byte),
	}
}

// Location returns "mem://" followed by the store's random id.
func (s *Store) Location() string { return s.location }

// Describe reports the store type for `coffer info`.
func (s *Store) Describe(ctx context.Context) map[string]string {
	return map[string]string{"type": "memory", "location": s.location}
}

// Create stores config. It fails with ErrExists if Create already ran or
// any object has been put.
func (s *Store) Create(ctx context.Context, config []byte) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("create %s: %w", s.location, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.created {
		return fmt.Errorf("create %s: repository %w", s.location, storage.ErrExists)
	}
	for _, objs := range s.objects {
		if len(objs) > 0 {
			return fmt.Errorf("create %s: store %w and is not empty", s.location, storage.ErrExists)
		}
	}
	s.created = true
	s.config = bytes.Clone(config)
	if s.config == nil {
		s.config = []byte{}
	}
	return nil
}

// Open returns a copy of the config written by Create.
func (s *Store) Open(ctx context.Context) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("open %s: %w", s.location, err)
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if !s.created {
		return nil, fmt.Errorf("%s holds no repository: %w", s.location, storage.ErrNotFound)
	}
	return bytes.Clone(s.config), nil
}

// Put copies body and stores it under kind/name. The object becomes
// visible only once all of it was read.
func (s *Store) Put(ctx context.Context, kind storage.Kind, name string, body storage.Body) error {
	if err := storage.CheckArgs(kind, name); err != nil {
		return fmt.Errorf("put: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("put %s %s: %w", kind, name, err)
	}
	size := body.Size()
	if kind != storage.KindLock {
		// Objects are content-addressed, so an object of the same name and
		// size is this one: skip reading it again.
		if old, err := s.Stat(ctx, kind, name); err == nil {
			return checkSameSize(kind, name, old, size)
		}
	}
	var buf bytes.Buffer
	buf.Grow(int(min(size, maxPrealloc)))
	// The wrapper hides bytes.Buffer's ReadFrom, which would grow the
	// buffer past size just to see EOF.
	if err := streamio.CopyExact(ctx, struct{ io.Writer }{&buf}, body.Reader(), size); err != nil {
		return fmt.Errorf("put %s %s: %w", kind, name, err)
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	objs := s.objects[kind]
	if objs == nil {
		objs = make(map[string][]byte)
		s.objects[kind] = objs
	}
	if old, ok := objs[name]; ok && kind != storage.KindLock {
		// Another Put of the same name won the race while we were reading.
		return checkSameSize(kind, name, int64(len(old)), size)
	}
	objs[name] = buf.Bytes()
	return nil
}

// checkSameSize decides a Put of an object that is already stored: the
// same size means the same content-addressed object.
func checkSameSize(kind storage.Kind, name string, old, size int64) error {
	if old != size {
		return fmt.Errorf("put %s %s: stored with %d bytes, not %d: %w", kind, name, old, size, storage.ErrExists)
	}
	return nil
}

// Get returns a reader of the object, or of rng within it.
func (s *Store) Get(ctx context.Context, kind storage.Kind, name string, rng *storage.Range) (io.ReadCloser, error) {
	if err := storage.CheckArgs(kind, name); err != nil {
		return nil, fmt.Errorf("get: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("get %s %s: %w", kind, name, err)
	}
	data, err := s.lookup(kind, name)
	if err != nil {
		return nil, fmt.Errorf("get %w", err)
	}
	if rng != nil {
		size := int64(len(data))
		if rng.Offset < 0 || rng.Length <= 0 || rng.Offset > size-rng.Length {
			return nil, fmt.Errorf("get %s %s: range %v of %d-byte object: %w", kind, name, rng, size, storage.ErrInvalidRange)
		}
		data = data[rng.Offset : rng.Offset+rng.Length]
	}
	return io.NopCloser(bytes.NewReader(data)), nil
}

// Stat returns the object's size.
func (s *Store) Stat(ctx context.Context, kind storage.Kind, name string) (int64, error) {
	if err := storage.CheckArgs(kind, name); err != nil {
		return 0, fmt.Errorf("stat: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("stat %s %s: %w", kind, name, err)
	}
	data, err := s.lookup(kind, name)
	if err != nil {
		return 0, fmt.Errorf("stat %w", err)
	}
	return int64(len(data)), nil
}

func (s *Store) lookup(kind storage.Kind, name string) ([]byte, error) {
	s.mu.RLock()
	data, ok := s.objects[kind][name]
	s.mu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("%s %s: %w", kind, name, storage.ErrNotFound)
	}
	return data, nil
}

// List calls fn for each object of kind. It works on a snapshot of the
// names, so fn may call other methods of the store.
func (s *Store) List(ctx context.Context, kind storage.Kind, fn func(name string, size int64) error) error {
	if !storage.ValidKind(kind) {
		return fmt.Errorf("list: unknown object kind %q: %w", kind, storage.ErrInvalidName)
	}
	type entry struct {
		name string
		size int64
	}
	s.mu.RLock()
	entries := make([]entry, 0, len(s.objects[kind]))
	for name, data := range s.objects[kind] {
		entries = append(entries, entry{name, int64(len(data))})
	}
	s.mu.RUnlock()
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("list %s: %w", kind, err)
		}
		if err := fn(e.name, e.size); err != nil {
			return err
		}
	}
	return nil
}

// Delete removes an object.
func (s *Store) Delete(ctx context.Context, kind storage.Kind, name string) error {
	if err := storage.CheckArgs(kind, name); err != nil {
		return fmt.Errorf("delete: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("delete %s %s: %w", kind, name, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.objects[kind][name]; !ok {
		return fmt.Errorf("delete %s %s: %w", kind, name, storage.ErrNotFound)
	}
	delete(s.objects[kind], name)
	return nil
}

// Close does nothing: the objects stay until the Store is garbage.
func (s *Store) Close() error { return nil }
