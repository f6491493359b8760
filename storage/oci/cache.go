package oci

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"

	"github.com/opencontainers/go-digest"

	"github.com/cofferhq/coffer/internal/cachefile"
)

// diskCache keeps immutable manifests (addressed by digest) and the
// capability probe of one registry repository on local disk. A nil or
// empty cache does nothing. Everything read back is verified, so a damaged
// cache costs a request, never a wrong answer.
type diskCache struct{ dir string }

func newDiskCache(base, location string) *diskCache {
	if base == "" {
		return &diskCache{}
	}
	sum := sha256.Sum256([]byte(location))
	return &diskCache{dir: filepath.Join(base, "oci", hex.EncodeToString(sum[:12]))}
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
