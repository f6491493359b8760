package testregistry

import (
	"bytes"
	"net/http"
	"testing"
	"time"
)

// TestNginx: the proxy passes requests to the registry, keeps the Host
// the client asked for (the registry's upload Locations name the proxy),
// and refuses a body over its limit with 413, which it counts.
func TestNginx(t *testing.T) {
	r := StartRegistry(t, RegistryOptions{Kind: Distribution, Delete: true})
	n := StartNginx(t, r, NginxOptions{MaxBodySize: "1m"})
	base := "http://" + n.Host + "/v2/nginx/blobs/uploads/"

	resp, err := http.Post(base, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusAccepted || !bytes.Contains([]byte(loc), []byte(n.Host)) {
		t.Fatalf("POST through nginx: %d, Location %q; want 202 and a Location on %s", resp.StatusCode, loc, n.Host)
	}
	for _, size := range []int{1 << 20, 1<<20 + 1} {
		req, _ := http.NewRequest(http.MethodPatch, loc, bytes.NewReader(make([]byte, size)))
		req.Header.Set("Content-Type", "application/octet-stream")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		want := http.StatusAccepted
		if size > 1<<20 {
			want = http.StatusRequestEntityTooLarge
		}
		if resp.StatusCode != want {
			t.Errorf("PATCH of %d bytes through a 1m limit: %d, want %d", size, resp.StatusCode, want)
		}
		if resp.StatusCode == http.StatusAccepted {
			loc = resp.Header.Get("Location")
		}
	}
	// nginx logs a refused request once it has closed the connection.
	deadline := time.Now().Add(5 * time.Second)
	for n.Refused() == 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if got := n.Refused(); got != 1 {
		t.Errorf("Refused() = %d, want 1", got)
	}
}
