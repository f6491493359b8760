package oci

import (
	"testing"

	"github.com/cofferhq/coffer/storage"
	"github.com/cofferhq/coffer/storage/storagetest"
)

// TestConformance runs the storage suite against ggcr's in-memory
// registry, made to untag deleted manifests as real registries do.
func TestConformance(t *testing.T) {
	reg := newTestRegistry(t, untagOnDelete, rfcRanges)
	storagetest.Run(t, func(t *testing.T) storage.Store {
		return openStoreNoClose(t, reg.newRepo(), nil)
	})
}

// TestConformanceDeleteRefused runs the suite against a registry that
// refuses every DELETE, so that keys and locks are deleted by tombstones.
func TestConformanceDeleteRefused(t *testing.T) {
	reg := newTestRegistry(t, refuseDeletes, rfcRanges)
	storagetest.Run(t, func(t *testing.T) storage.Store {
		return openStoreNoClose(t, reg.newRepo(), nil)
	})
}
