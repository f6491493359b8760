// Package all assembles the storage registry with every backend coffer
// ships, so that only the program's entry point depends on all of them.
package all

import (
	"github.com/cofferhq/coffer/storage"
	"github.com/cofferhq/coffer/storage/local"
	"github.com/cofferhq/coffer/storage/oci"
	"github.com/cofferhq/coffer/storage/s3"
)

// Options configure the backends that need configuring.
type Options struct {
	OCI oci.Options
	S3  s3.Options
}

// Registry returns a new registry with every built-in backend registered.
// Each call returns a fresh registry, so callers may add schemes of their
// own without affecting others.
func Registry(opt Options) *storage.Registry {
	r := storage.NewRegistry()
	r.Register(storage.LocalScheme, local.Open)
	r.Register("oci", oci.Opener(opt.OCI))
	r.Register("s3", s3.Opener(opt.S3))
	return r
}
