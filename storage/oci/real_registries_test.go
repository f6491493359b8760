package oci

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/cofferhq/coffer/internal/testregistry"
	"github.com/cofferhq/coffer/storage"
	"github.com/cofferhq/coffer/storage/storagetest"
)

// TestConformanceRealRegistries runs the storage conformance suite against
// the real registries: CNCF Distribution v3 and Debian's registry 2.8,
// with delete on and off, with TLS and basic auth, and with token auth.
func TestConformanceRealRegistries(t *testing.T) {
	variants := []testregistry.RegistryOptions{
		{Kind: testregistry.Distribution, Delete: true},
		{Kind: testregistry.Distribution, Delete: false},
		{Kind: testregistry.Distribution, Delete: true, TLS: true, Auth: testregistry.AuthBasic},
		{Kind: testregistry.Distribution, Delete: true, Auth: testregistry.AuthToken},
		{Kind: testregistry.Registry28, Delete: true},
		{Kind: testregistry.Registry28, Delete: false, TLS: true, Auth: testregistry.AuthToken},
	}
	for _, v := range variants {
		t.Run(fmt.Sprintf("%s-delete=%v-tls=%v-%s", v.Kind, v.Delete, v.TLS, v.Auth), func(t *testing.T) {
			reg := testregistry.StartRegistry(t, v)
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

// TestTokenCaching checks that bearer tokens are fetched from the token
// server once per scope and reused, not fetched for every request.
// (Expiry cannot be shown quickly: Distribution accepts tokens up to a
// minute past their expiry to allow for clock skew.)
func TestTokenCaching(t *testing.T) {
	reg := testregistry.StartRegistry(t, testregistry.RegistryOptions{Kind: testregistry.Distribution, Delete: true, Auth: testregistry.AuthToken})
	ctx := context.Background()
	st, err := Open(ctx, reg.Location("tokens/r"), Options{DockerConfig: reg.DockerConfig, CacheDir: t.TempDir(), Writer: "t"})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Create(ctx, []byte("config")); err != nil {
		t.Fatal(err)
	}
	before := reg.Token.Issued()
	for i := 0; i < 10; i++ {
		if b, err := st.Open(ctx); err != nil || string(b) != "config" {
			t.Fatalf("read %d: %q %v", i, b, err)
		}
	}
	if n := reg.Token.Issued() - before; n > 2 {
		t.Errorf("%d tokens issued for 10 reads: tokens are not cached", n)
	}
}
