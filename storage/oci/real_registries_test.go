package oci

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/cofferhq/coffer/internal/testutil"
	"github.com/cofferhq/coffer/storage"
	"github.com/cofferhq/coffer/storage/storagetest"
)

// TestConformanceRealRegistries runs the storage conformance suite against
// the real registries: CNCF Distribution v3 and Debian's registry 2.8,
// with delete on and off, with TLS and basic auth, and with token auth.
func TestConformanceRealRegistries(t *testing.T) {
	variants := []testutil.RegistryOptions{
		{Kind: testutil.Distribution, Delete: true},
		{Kind: testutil.Distribution, Delete: false},
		{Kind: testutil.Distribution, Delete: true, TLS: true, Auth: testutil.AuthBasic},
		{Kind: testutil.Distribution, Delete: true, Auth: testutil.AuthToken},
		{Kind: testutil.Registry28, Delete: true},
		{Kind: testutil.Registry28, Delete: false, TLS: true, Auth: testutil.AuthToken},
	}
	for _, v := range variants {
		t.Run(fmt.Sprintf("%s-delete=%v-tls=%v-%s", v.Kind, v.Delete, v.TLS, v.Auth), func(t *testing.T) {
			reg := testutil.StartRegistry(t, v)
			var n atomic.Int64
			storagetest.Run(t, func(t *testing.T) storage.Store {
				st, err := Open(context.Background(), reg.Location(fmt.Sprintf("suite/r%d", n.Add(1))), Options{
					CAFile: reg.CAFile, DockerConfig: reg.DockerConfig, CacheDir: t.TempDir(), Writer: "suite",
				})
				if err != nil {
					t.Fatal(err)
				}
				return st
			})
		})
	}
}
