//go:build linux

package cli

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

// A location that looks like a mistyped scheme is refused with the usage
// exit code before anything is created, while local paths that merely
// contain a colon are directories.
func TestMistypedSchemeLocations(t *testing.T) {
	tests := []struct {
		location  string
		fragments []string
	}{
		{"oci:host/repo", []string{"mistyped oci://", "oci://host/repo"}},
		{"oci:/host/repo", []string{"mistyped oci://", "oci://host/repo"}},
		{"oci//host/repo", []string{"mistyped oci://", "oci://host/repo"}},
		{"oci:", []string{"mistyped oci://"}},
		{"sftp:host", []string{`"sftp:"`, "oci://host/repo", "./sftp:host"}},
		// s3: may go without "//" (a bucket on AWS); an s3 location
		// without a bucket names no store.
		{"s3:", []string{"names no bucket", "s3:bucket/prefix"}},
		{"s3://bucket", []string{"no bucket", "s3://host[:port]/bucket/prefix", "s3:bucket/prefix"}},
	}
	for _, tt := range tests {
		t.Run(tt.location, func(t *testing.T) {
			dir := t.TempDir()
			t.Chdir(dir)
			h := newHarness(t)
			h.repo = tt.location
			wantOneLineError(t, h.at("create"), ExitUsage, tt.fragments...)
			wantOneLineError(t, h.at("ls"), ExitUsage, tt.fragments...)
			if entries, _ := os.ReadDir(dir); len(entries) != 0 {
				t.Errorf("a refused location left %v in the working directory", entries)
			}
		})
	}
	for _, loc := range []string{"./a:b", filepath.Join(t.TempDir(), "a:b"), "dir/oci:host"} {
		t.Run(loc, func(t *testing.T) {
			t.Chdir(t.TempDir())
			h := newHarness(t)
			h.repo = loc
			h.create()
			h.mustAt("ls")
			if _, err := os.Stat(filepath.Join(loc, "config")); err != nil {
				t.Fatalf("no repository at %s: %v", loc, err)
			}
		})
	}
}

// Malformed registry locations are refused with the usage exit code and
// a one-line message, before any request reaches the registry: a name
// over 255 characters was retried for a minute against a 500.
func TestBadRegistryLocations(t *testing.T) {
	var requests atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		http.Error(w, "boom", http.StatusInternalServerError)
	}))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	tests := []struct {
		location  string
		fragments []string
	}{
		{"oci://" + host + "/r#frag", []string{`"#" fragment`, "remove it"}},
		{"oci://" + host + "/" + strings.Repeat("a", 300), []string{"more than the 255", "use a shorter repository name"}},
		{"oci://" + host + "/Backups", []string{"invalid repository name", `write "backups"`}},
		{"oci://" + host + "/a___b", []string{"invalid repository name"}},
		{"oci://" + host + "/r:latest", []string{"not a tag or digest"}},
	}
	for _, tt := range tests {
		name := tt.location
		if len(name) > 60 {
			name = name[:60]
		}
		t.Run(name, func(t *testing.T) {
			h := newHarness(t)
			h.repo = tt.location
			wantOneLineError(t, h.at("create"), ExitUsage, tt.fragments...)
			wantOneLineError(t, h.at("ls"), ExitUsage, tt.fragments...)
		})
	}
	if n := requests.Load(); n != 0 {
		t.Errorf("the registry saw %d requests for malformed locations, want none", n)
	}
}
