package local

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/cofferhq/coffer/storage"
	"github.com/cofferhq/coffer/storage/internal/streamio"
)

const (
	dirMode    = 0o700
	configName = "config"
	tmpName    = "tmp"
	// staleAge is how long a file in tmp/ may go unmodified before Open
	// removes it. A live Put keeps writing and so keeps its file's
	// modification time fresh; removing a file of a Put that did stall
	// that long only makes its rename fail, never corrupts anything.
	staleAge = time.Hour
)

// kindDirs names the directory that holds each kind.
var kindDirs = map[storage.Kind]string{
	storage.KindPack:      "packs",
	storage.KindIndex:     "index",
	storage.KindSnapshot:  "snapshots",
	storage.KindKey:       "keys",
	storage.KindLock:      "locks",
	storage.KindPlan:      "plans",
	storage.KindForgotten: "forgotten",
}

// Store is a repository in a local directory. It is safe for concurrent
// use, also by several processes, since every write is a rename.
type Store struct {
	dir string // absolute and clean

	dirtyMu sync.Mutex
	dirty   map[string]bool // directories with deletes not synced yet
}

var (
	_ storage.Store       = (*Store)(nil)
	_ storage.Describer   = (*Store)(nil)
	_ storage.LocalPather = (*Store)(nil)
	_ storage.Flusher     = (*Store)(nil)
)

// Open returns the store for location, a directory path or an
// fs:///path location; a relative path is made absolute against the
// current directory now, so that a later chdir does not move the store.
// Open does not touch the disk: Store.Create and Store.Open do.
//
// The signature matches storage.Opener.
func Open(ctx context.Context, location string) (storage.Store, error) {
	scheme, err := storage.Scheme(location)
	if err != nil {
		return nil, err
	}
	if scheme != storage.LocalScheme {
		return nil, storage.BadLocation(fmt.Errorf("location has scheme %q: want a directory path or fs:///path", scheme))
	}
	path := location
	if i := strings.Index(location, "://"); i >= 0 && strings.EqualFold(location[:i], storage.LocalScheme) {
		path = location[i+len("://"):]
		if path == "" {
			return nil, storage.BadLocation(errors.New(`location "fs://" has no directory path: write fs:///path/to/dir, or the path alone`))
		}
	}
	dir, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("location %s: %w", path, err)
	}
	return &Store{dir: dir, dirty: map[string]bool{}}, nil
}

// Location returns the absolute repository directory.
func (s *Store) Location() string { return s.dir }

// LocalPath returns the absolute repository directory, so that a backup
// can skip the repository it is writing to.
func (s *Store) LocalPath() string { return s.dir }

// Describe reports the store type and directory for `coffer info`.
func (s *Store) Describe(ctx context.Context) map[string]string {
	return map[string]string{"type": "local directory", "path": s.dir}
}

// Create makes the repository directory, with any missing parents, or
// uses an existing empty one, and writes config. It refuses a non-empty
// directory so that a typo cannot mix a repository into unrelated files.
func (s *Store) Create(ctx context.Context, config []byte) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("create repository in %s: %w", s.dir, err)
	}
	made := false
	fi, err := os.Stat(s.dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		if err := os.MkdirAll(s.dir, dirMode); err != nil {
			return fmt.Errorf("create repository: %w", err)
		}
		made = true
	case err != nil:
		return fmt.Errorf("create repository: %w", err)
	case !fi.IsDir():
		return fmt.Errorf("%s %w and is not a directory: choose an empty or new directory", s.dir, storage.ErrExists)
	default:
		empty, err := isEmptyDir(s.dir)
		if err != nil {
			return fmt.Errorf("create repository: %w", err)
		}
		if !empty {
			return fmt.Errorf("%s %w and is not empty: choose an empty or new directory", s.dir, storage.ErrExists)
		}
	}

	// tmp/ comes first: the config write needs it.
	subdirs := []string{tmpName}
	for _, kind := range storage.Kinds {
		subdirs = append(subdirs, kindDirs[kind])
	}
	for _, sub := range subdirs {
		if err := os.Mkdir(filepath.Join(s.dir, sub), dirMode); err != nil && !errors.Is(err, os.ErrExist) {
			return fmt.Errorf("create repository: %w", err)
		}
	}
	// The config goes last, so that an interrupted Create leaves a
	// directory that Open rejects rather than a half-made repository.
	err = s.writeAtomic(ctx, filepath.Join(s.dir, configName), bytes.NewReader(config), int64(len(config)))
	if err != nil {
		return fmt.Errorf("create repository: write config: %w", err)
	}
	if made {
		if err := syncDir(filepath.Dir(s.dir)); err != nil {
			return fmt.Errorf("create repository: %w", err)
		}
	}
	return nil
}

func isEmptyDir(dir string) (bool, error) {
	f, err := os.Open(dir)
	if err != nil {
		return false, err
	}
	defer f.Close()
	names, err := f.Readdirnames(1)
	if errors.Is(err, io.EOF) {
		return true, nil
	}
	return len(names) == 0, err
}

// Open reads the config written by Create, telling a missing directory
// apart from a directory that is not a repository, since the two call for
// different fixes. It also removes stale files left in tmp/ by crashed
// processes.
func (s *Store) Open(ctx context.Context) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("open repository %s: %w", s.dir, err)
	}
	fi, err := os.Stat(s.dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil, fmt.Errorf("repository %w: directory %s does not exist", storage.ErrNotFound, s.dir)
	case err != nil:
		return nil, fmt.Errorf("open repository: %w", err)
	case !fi.IsDir():
		return nil, storage.NotCreatable(fmt.Errorf("repository %w: %s is not a directory: give the directory a repository is in, or a new one to create it in",
			storage.ErrNotFound, s.dir))
	}
	config, err := os.ReadFile(filepath.Join(s.dir, configName))
	switch {
	case errors.Is(err, os.ErrNotExist) && !emptyDir(s.dir):
		return nil, storage.NotCreatable(fmt.Errorf("repository %w: %s is not a coffer repository (no config file) and holds other files: give the directory a repository is in, or a new or empty one to create it in",
			storage.ErrNotFound, s.dir))
	case errors.Is(err, os.ErrNotExist):
		return nil, fmt.Errorf("repository %w: %s is not a coffer repository (no config file)", storage.ErrNotFound, s.dir)
	case err != nil:
		return nil, fmt.Errorf("open repository: %w", err)
	}
	s.removeStaleTmp(time.Now().Add(-staleAge))
	return config, nil
}

// removeStaleTmp removes files in tmp/ last modified before cutoff. It is
// best effort: a leftover file costs only disk space.
func (s *Store) removeStaleTmp(cutoff time.Time) {
	dir := filepath.Join(s.dir, tmpName)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		if info, err := e.Info(); err == nil && info.ModTime().Before(cutoff) {
			_ = os.Remove(filepath.Join(dir, e.Name()))
		}
	}
}

// objectPath returns where kind/name lives. The arguments must have
// passed storage.CheckArgs, which also keeps the path inside s.dir.
func (s *Store) objectPath(kind storage.Kind, name string) string {
	if kind == storage.KindPack {
		return filepath.Join(s.dir, kindDirs[kind], shard(name), name)
	}
	return filepath.Join(s.dir, kindDirs[kind], name)
}

// shard returns the pack subdirectory for name: its first two characters,
// or the whole name when it is shorter.
func shard(name string) string {
	return name[:min(2, len(name))]
}

// Put writes body into a file in tmp/ and renames it into place only once
// all of it has been written and synced, so no reader ever sees a partial
// object.
//
// Objects other than locks are content-addressed, so when one of the same
// name and size already exists Put succeeds without reading body; the same
// name with another size fails with ErrExists. Locks are replaced.
func (s *Store) Put(ctx context.Context, kind storage.Kind, name string, body storage.Body) error {
	if err := storage.CheckArgs(kind, name); err != nil {
		return fmt.Errorf("put: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("put %s %s: %w", kind, name, err)
	}
	size := body.Size()
	path := s.objectPath(kind, name)
	if kind != storage.KindLock {
		if fi, err := os.Stat(path); err == nil {
			if fi.Size() != size {
				return fmt.Errorf("put %s %s: stored with %d bytes, not %d: %w", kind, name, fi.Size(), size, storage.ErrExists)
			}
			return nil
		}
	}
	if err := s.writeAtomic(ctx, path, body.Reader(), size); err != nil {
		return fmt.Errorf("put %s %s: %w", kind, name, err)
	}
	return nil
}

// CreateTemp returns a new file in tmp/, for PutFile.
func (s *Store) CreateTemp() (*os.File, error) {
	return os.CreateTemp(filepath.Join(s.dir, tmpName), "put-*")
}

// PutFile renames f, from CreateTemp, into place as kind/name once it is
// synced, with Put's guarantees and without copying its bytes.
func (s *Store) PutFile(ctx context.Context, kind storage.Kind, name string, f *os.File, size int64) (err error) {
	if filepath.Dir(f.Name()) != filepath.Join(s.dir, tmpName) {
		f.Close() // not ours to remove
		return fmt.Errorf("put %s %s: file %s was not made by this store's CreateTemp", kind, name, f.Name())
	}
	committed := false
	defer func() {
		if !committed {
			f.Close()
			os.Remove(f.Name())
		}
		if err != nil {
			err = fmt.Errorf("put %s %s: %w", kind, name, err)
		}
	}()
	if err := storage.CheckArgs(kind, name); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if fi.Size() != size {
		return fmt.Errorf("file holds %d bytes, not the declared %d", fi.Size(), size)
	}
	path := s.objectPath(kind, name)
	if kind != storage.KindLock {
		if fi, err := os.Stat(path); err == nil {
			if fi.Size() != size {
				return fmt.Errorf("stored with %d bytes, not %d: %w", fi.Size(), size, storage.ErrExists)
			}
			return nil
		}
	}
	committed = true
	return s.commit(f, path)
}

// commit syncs and closes f, a file in tmp/, and renames it to path,
// making the parent of path if needed. On failure f is removed.
func (s *Store) commit(f *os.File, path string) (err error) {
	tmp := f.Name()
	closed := false
	defer func() {
		if err != nil {
			if !closed {
				f.Close()
			}
			os.Remove(tmp)
		}
	}()
	if err := f.Sync(); err != nil {
		return err
	}
	closed = true
	if err := f.Close(); err != nil {
		return err
	}
	parent := filepath.Dir(path)
	if err := ensureDir(parent); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	// Without this the rename may be lost in a crash even though Put
	// reported success.
	return syncDir(parent)
}

// writeAtomic writes exactly size bytes from r to path through a
// temporary file in tmp/. It makes the parent of path if needed.
func (s *Store) writeAtomic(ctx context.Context, path string, r io.Reader, size int64) error {
	// The temporary name carries the target's so that leftovers can be
	// traced to what was being written.
	f, err := os.CreateTemp(filepath.Join(s.dir, tmpName), filepath.Base(path)+"-*")
	if err != nil {
		return err
	}
	if err := streamio.CopyExact(ctx, f, r, size); err != nil {
		f.Close()
		os.Remove(f.Name())
		return err
	}
	return s.commit(f, path)
}

// ensureDir makes dir if it is missing, and its parents, which only
// happens for a new pack shard or a kind directory removed by hand.
func ensureDir(dir string) error {
	err := os.Mkdir(dir, dirMode)
	switch {
	case err == nil:
		return syncDir(filepath.Dir(dir))
	case errors.Is(err, os.ErrExist):
		return nil
	case errors.Is(err, os.ErrNotExist) && filepath.Dir(dir) != dir:
		if err := ensureDir(filepath.Dir(dir)); err != nil {
			return err
		}
		return ensureDir(dir)
	default:
		return err
	}
}

// syncDir makes the entries of dir durable. Filesystems that cannot sync
// a directory (some network and FUSE ones) report EINVAL or ENOTSUP; they
// offer no stronger guarantee to ask for, so those errors are ignored.
func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if errors.Is(err, syscall.EINVAL) || errors.Is(err, syscall.ENOTSUP) {
		return nil
	}
	return err
}

// Get opens the object's file, limited to rng when rng is not nil.
func (s *Store) Get(ctx context.Context, kind storage.Kind, name string, rng *storage.Range) (io.ReadCloser, error) {
	if err := storage.CheckArgs(kind, name); err != nil {
		return nil, fmt.Errorf("get: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("get %s %s: %w", kind, name, err)
	}
	f, err := os.Open(s.objectPath(kind, name))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("get %s %s: %w", kind, name, storage.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("get %s %s: %w", kind, name, err)
	}
	fi, err := f.Stat()
	if err == nil && !fi.Mode().IsRegular() {
		err = fmt.Errorf("%s is not a regular file", f.Name())
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("get %s %s: %w", kind, name, err)
	}
	if rng == nil {
		return f, nil
	}
	// Written so that Offset+Length cannot overflow.
	if rng.Offset < 0 || rng.Length <= 0 || rng.Offset > fi.Size()-rng.Length {
		f.Close()
		return nil, fmt.Errorf("get %s %s: range %v of %d-byte object: %w", kind, name, rng, fi.Size(), storage.ErrInvalidRange)
	}
	return sectionReadCloser{io.NewSectionReader(f, rng.Offset, rng.Length), f}, nil
}

// sectionReadCloser reads a section of a file and closes the file.
type sectionReadCloser struct {
	*io.SectionReader
	io.Closer
}

// Stat returns the size of the object's file.
func (s *Store) Stat(ctx context.Context, kind storage.Kind, name string) (int64, error) {
	if err := storage.CheckArgs(kind, name); err != nil {
		return 0, fmt.Errorf("stat: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("stat %s %s: %w", kind, name, err)
	}
	fi, err := os.Stat(s.objectPath(kind, name))
	if errors.Is(err, os.ErrNotExist) {
		return 0, fmt.Errorf("stat %s %s: %w", kind, name, storage.ErrNotFound)
	}
	if err == nil && !fi.Mode().IsRegular() {
		err = fmt.Errorf("%s is not a regular file", s.objectPath(kind, name))
	}
	if err != nil {
		return 0, fmt.Errorf("stat %s %s: %w", kind, name, err)
	}
	return fi.Size(), nil
}

// List walks the kind's directory, and for packs its shards. Files whose
// names are not valid object names, or that sit in the wrong shard, are
// not objects coffer wrote, and are skipped rather than reported, so that
// editor backups or OS metadata files do not break a listing.
func (s *Store) List(ctx context.Context, kind storage.Kind, fn func(name string, size int64) error) error {
	if !storage.ValidKind(kind) {
		return fmt.Errorf("list: unknown object kind %q: %w", kind, storage.ErrInvalidName)
	}
	dir := filepath.Join(s.dir, kindDirs[kind])
	if kind != storage.KindPack {
		return s.listDir(ctx, kind, dir, "", fn)
	}
	shards, err := s.readKindDir(kind, dir)
	if err != nil {
		return err
	}
	for _, sh := range shards {
		if !sh.IsDir() || len(sh.Name()) > 2 || !storage.ValidName(sh.Name()) {
			continue
		}
		if err := s.listDir(ctx, kind, filepath.Join(dir, sh.Name()), sh.Name(), fn); err != nil {
			return err
		}
	}
	return nil
}

// readKindDir reads the top directory of a kind. A missing one means no
// objects, unless the whole repository is gone: then the listing must
// fail, or a vanished disk would look like an empty repository.
func (s *Store) readKindDir(kind storage.Kind, dir string) ([]os.DirEntry, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		if _, err := os.Stat(filepath.Join(s.dir, configName)); errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("list %s: repository %s: %w", kind, s.dir, storage.ErrNotFound)
		}
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", kind, err)
	}
	return entries, nil
}

// listDir reports the objects in dir. shardName, when not empty, is the
// pack shard that dir holds.
func (s *Store) listDir(ctx context.Context, kind storage.Kind, dir, shardName string, fn func(string, int64) error) error {
	var entries []os.DirEntry
	var err error
	if shardName == "" {
		entries, err = s.readKindDir(kind, dir)
	} else {
		entries, err = os.ReadDir(dir)
		if errors.Is(err, os.ErrNotExist) { // shard removed since the parent was read
			return nil
		}
		if err != nil {
			err = fmt.Errorf("list %s: %w", kind, err)
		}
	}
	if err != nil {
		return err
	}
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("list %s: %w", kind, err)
		}
		name := e.Name()
		if !e.Type().IsRegular() || !storage.ValidName(name) || shardName != "" && shard(name) != shardName {
			continue
		}
		info, err := e.Info()
		if errors.Is(err, os.ErrNotExist) { // deleted since the directory was read
			continue
		}
		if err != nil {
			return fmt.Errorf("list %s: %w", kind, err)
		}
		if err := fn(name, info.Size()); err != nil {
			return err
		}
	}
	return nil
}

// Delete removes the object's file. It does not sync the directory, so
// that deleting many objects costs one sync per directory: Flush syncs
// the directories of the deletes since the last one. prune relies on its
// deletes persisting in order (index objects before the packs they
// list), and flushes between them.
func (s *Store) Delete(ctx context.Context, kind storage.Kind, name string) error {
	if err := storage.CheckArgs(kind, name); err != nil {
		return fmt.Errorf("delete: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("delete %s %s: %w", kind, name, err)
	}
	path := s.objectPath(kind, name)
	err := os.Remove(path)
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("delete %s %s: %w", kind, name, storage.ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("delete %s %s: %w", kind, name, err)
	}
	s.dirtyMu.Lock()
	s.dirty[filepath.Dir(path)] = true
	s.dirtyMu.Unlock()
	return nil
}

// Flush makes the deletes so far durable: it syncs the directories they
// removed files from (storage.Flusher).
func (s *Store) Flush(ctx context.Context) error {
	s.dirtyMu.Lock()
	dirs := s.dirty
	s.dirty = map[string]bool{}
	s.dirtyMu.Unlock()
	for dir := range dirs {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := syncDir(dir); err != nil {
			return fmt.Errorf("syncing %s: %w", dir, err)
		}
	}
	return nil
}

// Close does nothing; the store holds no open resources.
func (s *Store) Close() error { return nil }

// emptyDir reports whether dir has no entries (false if it cannot be read).
func emptyDir(dir string) bool {
	empty, err := isEmptyDir(dir)
	return empty && err == nil
}
