package oci

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"sync"

	"github.com/opencontainers/go-digest"

	"github.com/cofferhq/coffer/internal/cachefile"
)

// diskCache keeps immutable manifests (addressed by digest) and the
// capability probe of one registry repository on local disk. A nil or
// empty cache does nothing. Everything read back is verified, so a damaged
// cache costs a request, never a wrong answer.
type diskCache struct {
	dir string
	// tombstones are the tombstone marks this process set, which hold
	// when the directory is unusable too.
	tombstones sync.Map // string -> struct{}
}

func newDiskCache(base, location string) *diskCache {
	if base == "" {
		return &diskCache{}
	}
	sum := sha256.Sum256([]byte(location))
	c := &diskCache{dir: filepath.Join(base, "oci", hex.EncodeToString(sum[:12]))}
	cachefile.Use(c.dir) // `coffer cache` tells caches in use from old ones
	return c
}

// Caches lists the registry caches (manifests and capabilities, one
// directory per location) in the cache directory base.
func Caches(base string) ([]cachefile.Dir, error) {
	return cachefile.Dirs(filepath.Join(base, "oci"), func(name string) bool {
		_, err := hex.DecodeString(name)
		return err == nil && len(name) == 24
	})
}

func (c *diskCache) manifest(d digest.Digest) []byte {
	if c.dir == "" || d.Validate() != nil {
		return nil
	}
	b, err := os.ReadFile(filepath.Join(c.dir, "manifests", d.Encoded()))
	if err != nil || digest.FromBytes(b) != d {
		return nil
	}
	return b
}

func (c *diskCache) putManifest(d digest.Digest, b []byte) {
	if c.dir != "" && d.Validate() == nil {
		c.write(filepath.Join("manifests", d.Encoded()), b)
	}
}

// cachedRef is a refs tag as last read: the manifest it named.
type cachedRef struct {
	Digest   digest.Digest `json:"digest"`
	Manifest []byte        `json:"manifest"`
}

// refsFile holds the refs tags read last, in one file rather than one
// per tag: a cold listing of a repository with many refs tags wrote
// thousands of small files, which cost more than their requests.
const refsFile = "refs.json"

// refs returns the refs tags the last listing read, those whose manifest
// matches its digest.
func (c *diskCache) refs() map[string]cachedRef {
	var m map[string]cachedRef
	if b := c.read(refsFile); b == nil || json.Unmarshal(b, &m) != nil {
		return nil
	}
	for tag, r := range m {
		if r.Digest.Validate() != nil || digest.FromBytes(r.Manifest) != r.Digest {
			delete(m, tag)
		}
	}
	return m
}

// putRefs records the refs tags a listing read. A tag may move (to a
// tombstone) after this: the record only says which manifest to expect.
func (c *diskCache) putRefs(m map[string]cachedRef) {
	if b, err := json.Marshal(m); err == nil {
		c.write(refsFile, b)
	}
}

func (c *diskCache) read(name string) []byte {
	if c.dir == "" {
		return nil
	}
	b, _ := os.ReadFile(filepath.Join(c.dir, name))
	return b
}

// write stores a file of the cache; failures only cost the cache.
func (c *diskCache) write(name string, b []byte) {
	if c.dir != "" {
		cachefile.Write(filepath.Join(c.dir, name), b)
	}
}

// isTombstone reports whether tag was seen pointing at a tombstone. Tags
// coffer retires are never written again (their names are random, or
// name objects that are never stored again), so that stays true.
func (c *diskCache) isTombstone(tag string) bool {
	if _, ok := c.tombstones.Load(tag); ok {
		return true
	}
	if c.dir == "" {
		return false
	}
	_, err := os.Stat(filepath.Join(c.dir, "tombstones", tag))
	return err == nil
}

func (c *diskCache) putTombstone(tag string) {
	c.tombstones.Store(tag, struct{}{})
	c.write(filepath.Join("tombstones", tag), nil)
}

func (c *diskCache) dropTombstone(tag string) {
	c.tombstones.Delete(tag)
	if c.dir != "" {
		_ = os.Remove(filepath.Join(c.dir, "tombstones", tag))
	}
}
