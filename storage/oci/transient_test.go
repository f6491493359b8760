package oci

import (
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// TestTransientFailureIsNotRemembered refuses the first upload of the
// empty config blob once: the operation fails, but the store must try
// again next time rather than fail every later manifest push.
func TestTransientFailureIsNotRemembered(t *testing.T) {
	var refused atomic.Int64
	refuseOnce := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodPut && strings.Contains(r.URL.Path, "/blobs/uploads/") &&
				r.URL.Query().Get("digest") == ocispec.DescriptorEmptyJSON.Digest.String() && refused.Add(1) == 1 {
				writeRegistryError(w, http.StatusForbidden, "DENIED", "try again later")
				return
			}
			next.ServeHTTP(w, r)
		})
	}
	reg := newTestRegistry(t, refuseOnce)
	st := openStore(t, reg.newRepo(), nil)
	if err := st.Create(t.Context(), []byte("config")); err == nil {
		t.Fatal("Create succeeded although the registry refused a blob it needs")
	}
	if err := st.Create(t.Context(), []byte("config")); err != nil {
		t.Fatalf("Create once the registry accepts uploads again: %v", err)
	}
	if _, err := st.Open(t.Context()); err != nil {
		t.Fatalf("Open: %v", err)
	}
}
