package repo

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// KeyCache keeps the master keys of repositories opened with a
// passphrase for a while, in files only their owner can read, so that
// the commands that follow neither ask for the passphrase nor pay for
// the key derivation (about a quarter of a second by default), as sudo
// does with its timestamp and ssh-agent with a key's lifetime. It is
// opt-in: whoever can read the files as this user, or as root, holds
// the repository's keys until they expire (docs/design.md, "Key cache").
type KeyCache struct {
	// Dir holds one file per repository. It must be a directory only
	// its owner can enter; a memory file system (XDG_RUNTIME_DIR,
	// /dev/shm) keeps the keys off disks.
	Dir string
	// MaxAge bounds how old an entry may be to be used, and how long a
	// new entry lives.
	MaxAge time.Duration
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// keyCacheVersion is the version of the entry format.
const keyCacheVersion = 1

// keyCacheEntry is one repository's cached keys.
type keyCacheEntry struct {
	Version  int         `json:"version"`
	Location string      `json:"location"` // for `coffer cache`; not trusted
	KeyName  string      `json:"key"`      // the key object it was opened with
	Created  time.Time   `json:"created"`
	Expires  time.Time   `json:"expires"`
	Keys     *masterKeys `json:"keys"`
}

// CachedKey describes a key cache entry for listings.
type CachedKey struct {
	Path     string
	Location string
	Expires  time.Time
}

func (c *KeyCache) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

// entryPath names the entry of the repository whose sealed config is
// sealedCfg: the config is sealed with a random nonce when the
// repository is created and never rewritten, so its hash tells
// repositories apart, including copies of one store at two locations
// (which share keys anyway).
func (c *KeyCache) entryPath(sealedCfg []byte) string {
	sum := sha256.Sum256(sealedCfg)
	return filepath.Join(c.Dir, hex.EncodeToString(sum[:16])+".key")
}

// load returns the cached keys of a repository, or nil when there are
// none that may be used. An entry that is malformed or expired is
// removed.
func (c *KeyCache) load(sealedCfg []byte) (*keyCacheEntry, error) {
	if err := checkPrivateDir(c.Dir); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		return nil, err
	}
	path := c.entryPath(sealedCfg)
	b, err := readPrivateFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var e keyCacheEntry
	now := c.now()
	if json.Unmarshal(b, &e) != nil || e.Version != keyCacheVersion || e.Keys == nil || !e.Keys.valid() ||
		!now.Before(e.Expires) || !now.Before(e.Created.Add(c.MaxAge)) || now.Before(e.Created.Add(-time.Minute)) {
		c.remove(path)
		return nil, nil
	}
	return &e, nil
}

// store writes an entry for the repository, unless one that may be used
// is there: an entry lives MaxAge from when the passphrase was given,
// and is not extended by use.
func (c *KeyCache) store(sealedCfg []byte, location, keyName string, mk *masterKeys) error {
	if err := os.MkdirAll(c.Dir, 0o700); err != nil {
		return fmt.Errorf("key cache: %w", err)
	}
	if err := checkPrivateDir(c.Dir); err != nil {
		return err
	}
	now := c.now().UTC()
	b, err := json.Marshal(keyCacheEntry{Version: keyCacheVersion, Location: location, KeyName: keyName,
		Created: now, Expires: now.Add(c.MaxAge), Keys: mk})
	if err != nil {
		return err
	}
	f, err := os.CreateTemp(c.Dir, ".new-*")
	if err != nil {
		return fmt.Errorf("key cache: %w", err)
	}
	defer os.Remove(f.Name())
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return fmt.Errorf("key cache: %w", err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return fmt.Errorf("key cache: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("key cache: %w", err)
	}
	if err := os.Rename(f.Name(), c.entryPath(sealedCfg)); err != nil {
		return fmt.Errorf("key cache: %w", err)
	}
	// Entries expire when their repository is next opened; those of
	// repositories not opened again go now, so that no key outlives its
	// time by much.
	_, _ = c.List()
	return nil
}

// remove drops an entry; failing to is of no consequence beyond a
// stale file, which the next use finds expired.
func (c *KeyCache) remove(path string) { _ = os.Remove(path) }

// Forget removes every entry and returns how many there were.
func (c *KeyCache) Forget() (int, error) {
	// Not in a directory that is not this user's own: it could be a
	// link to files of theirs named like entries.
	if err := checkPrivateDir(c.Dir); errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	} else if err != nil {
		return 0, err
	}
	entries, err := os.ReadDir(c.Dir)
	if err != nil {
		return 0, fmt.Errorf("key cache: %w", err)
	}
	n := 0
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".key") && !strings.HasPrefix(e.Name(), ".new-") {
			continue
		}
		if err := os.Remove(filepath.Join(c.Dir, e.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return n, fmt.Errorf("key cache: %w", err)
		}
		if strings.HasSuffix(e.Name(), ".key") {
			n++
		}
	}
	return n, nil
}

// List returns the entries that have not expired, removing those that
// have, and files a write left behind.
func (c *KeyCache) List() ([]CachedKey, error) {
	if err := checkPrivateDir(c.Dir); errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	entries, err := os.ReadDir(c.Dir)
	if err != nil {
		return nil, fmt.Errorf("key cache: %w", err)
	}
	var keys []CachedKey
	for _, de := range entries {
		if strings.HasPrefix(de.Name(), ".new-") {
			// Left by a process that died between writing and renaming.
			if info, err := de.Info(); err == nil && c.now().Sub(info.ModTime()) > time.Minute {
				c.remove(filepath.Join(c.Dir, de.Name()))
			}
			continue
		}
		if !strings.HasSuffix(de.Name(), ".key") {
			continue
		}
		path := filepath.Join(c.Dir, de.Name())
		b, err := readPrivateFile(path)
		if err != nil {
			continue
		}
		var e keyCacheEntry
		if json.Unmarshal(b, &e) != nil || !c.now().Before(e.Expires) {
			c.remove(path)
			continue
		}
		keys = append(keys, CachedKey{Path: path, Location: e.Location, Expires: e.Expires})
	}
	return keys, nil
}

// readPrivateFile reads a regular file that only this user may read or
// write: a file others could have written is not trusted to hold keys,
// and one others could read has leaked them.
func readPrivateFile(path string) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|noFollow, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !info.Mode().IsRegular() {
		return nil, fmt.Errorf("key cache: %s is not a regular file", path)
	}
	if err := ownedPrivately(path, info); err != nil {
		return nil, err
	}
	if info.Size() > 1<<16 {
		return nil, fmt.Errorf("key cache: %s is too large to be an entry", path)
	}
	b := make([]byte, info.Size())
	if _, err := f.ReadAt(b, 0); err != nil {
		return nil, err
	}
	return b, nil
}

// checkPrivateDir checks that dir is a directory, not a link, owned by
// this user and closed to others.
func checkPrivateDir(dir string) error {
	info, err := os.Lstat(dir)
	if err != nil {
		return err
	}
	if !info.IsDir() {
		return fmt.Errorf("key cache: %s is not a directory", dir)
	}
	return ownedPrivately(dir, info)
}
