package oci

import (
	"errors"
	"strings"
	"testing"

	"github.com/cofferhq/coffer/storage"
)

func TestParseLocation(t *testing.T) {
	tests := []struct {
		in       string
		host     string // empty when parseLocation must fail
		repo     string
		insecure bool
		errHas   string // a fragment the error must contain
	}{
		{in: "oci://registry.example.com/backups", host: "registry.example.com", repo: "backups"},
		{in: "oci://ghcr.io/org/team/coffer-repo_1.x", host: "ghcr.io", repo: "org/team/coffer-repo_1.x"},
		{in: "oci://localhost:5000/repo", host: "localhost:5000", repo: "repo"},
		{in: "oci://127.0.0.1:5000/a/b/c/", host: "127.0.0.1:5000", repo: "a/b/c"},
		{in: "oci://[::1]:5000/repo", host: "[::1]:5000", repo: "repo"},
		{in: "oci://registry.example.com:443/repo", host: "registry.example.com:443", repo: "repo"},
		{in: "oci://r.example/repo?insecure-http=true", host: "r.example", repo: "repo", insecure: true},
		{in: "oci://r.example/repo?insecure-http=1", host: "r.example", repo: "repo", insecure: true},

		{in: "r.example/repo", errHas: "must start with oci://"},
		{in: "https://r.example/repo", errHas: "must start with oci://"},
		{in: "OCI://r.example/repo", errHas: "must start with oci://"},
		{in: "oci://user:hunter2@r.example/repo", errHas: "must not carry credentials"},
		{in: "oci://user@r.example/repo", errHas: "must not carry credentials"},
		{in: "oci://r.example", errHas: "needs a host and a repository"},
		{in: "oci://r.example/", errHas: "needs a host and a repository"},
		{in: "oci:///repo", errHas: "needs a host and a repository"},
		{in: "oci://r.example:port/repo"},
		{in: "oci://r.example/Repo", errHas: "invalid repository name"},
		{in: "oci://r.example/a//b", errHas: "invalid repository name"},
		{in: "oci://r.example/-a", errHas: "invalid repository name"},
		{in: "oci://r.example/a..b", errHas: "invalid repository name"},
		{in: "oci://r.example/a%20b", errHas: "invalid repository name"},
		{in: "oci://r.example/repo?foo=bar", errHas: "unknown option"},
		{in: "oci://r.example/repo?insecure-http=yes", errHas: `insecure-http="yes": write insecure-http=true`},
		{in: "oci://r.example/repo?insecure-http=true&insecure-http=true", errHas: "insecure-http is given 2 times: give it once"},
		{in: "oci://r.example/repo?insecure-http=true&x=1", errHas: "unknown option"},

		// The distribution spec's name grammar.
		{in: "oci://r.example/a__b", host: "r.example", repo: "a__b"},
		{in: "oci://r.example/a---b.c_d/e", host: "r.example", repo: "a---b.c_d/e"},
		{in: "oci://r.example/a___b", errHas: "invalid repository name"},
		{in: "oci://r.example/a._b", errHas: "invalid repository name"},
		{in: "oci://r.example/a.-b", errHas: "invalid repository name"},
		{in: "oci://r.example/a-", errHas: "invalid repository name"},
		{in: "oci://r.example/a_", errHas: "invalid repository name"},
		{in: "oci://r.example/_a", errHas: "invalid repository name"},
		{in: "oci://r.example/a/.b", errHas: "invalid repository name"},
		{in: "oci://r.example/caf\u00e9", errHas: "invalid repository name"},
		{in: "oci://r.example/Repo", errHas: `write "repo"`},
		{in: "oci://r.example/repo:latest", errHas: `not a tag or digest: remove ":latest"`},
		{in: "oci://r.example/repo@sha256:abc", errHas: "not a tag or digest"},
		// A port a connection cannot be made to, and an option's bad value.
		{in: "oci://127.0.0.1:/t/r", errHas: "a colon but no port after it"},
		{in: "oci://127.0.0.1:99999/t/r", errHas: "not a number from 1 to 65535"},
		{in: "oci://127.0.0.1:0/t/r", errHas: "not a number from 1 to 65535"},
		{in: "oci://[::1]:/t/r", errHas: "a colon but no port after it: write [::1]:PORT"},
		{in: "oci://::1/t/r", errHas: "more than one colon"},
		{in: "oci://h:5000:1/t/r", errHas: "more than one colon"},
		{in: "oci://h/r?insecure-http=maybe", errHas: `insecure-http="maybe": write insecure-http=true`},
		// Fragments and over-long names are refused before any request.
		{in: "oci://h/r#frag", errHas: `"#" fragment`},
		{in: "oci://h/r#", errHas: `"#" fragment`},
		{in: "oci://h/r?insecure-http=true#x", errHas: `"#" fragment`},
		{in: "oci://h/" + strings.Repeat("a", 253), host: "h", repo: strings.Repeat("a", 253)},
		{in: "oci://h/" + strings.Repeat("a", 254), errHas: "256 characters together, more than the 255"},
		{in: "oci://h/" + strings.Repeat("a", 300), errHas: "use a shorter repository name"},
		{in: "oci://h/" + strings.Repeat("ab/", 100) + "c", errHas: "more than the 255"},
	}
	for _, tt := range tests {
		name := tt.in
		if len(name) > 60 {
			name = name[:60] + "..."
		}
		t.Run(name, func(t *testing.T) {
			l, err := parseLocation(tt.in)
			if tt.host == "" {
				if err == nil {
					t.Fatalf("parseLocation(%q) = %+v, want an error", tt.in, l)
				}
				// The command line is at fault, not the registry: the
				// CLI reports it with the usage exit code.
				if !errors.Is(err, storage.ErrBadLocation) {
					t.Errorf("parseLocation(%q) error %q is not a storage.ErrBadLocation", tt.in, err)
				}
				if strings.Contains(err.Error(), "\n") {
					t.Errorf("parseLocation(%q) error %q is more than one line", tt.in, err)
				}
				if !strings.Contains(err.Error(), tt.errHas) {
					t.Errorf("parseLocation(%q) error %q does not say %q", tt.in, err, tt.errHas)
				}
				if strings.Contains(err.Error(), "hunter2") {
					t.Errorf("parseLocation(%q) error %q shows the password", tt.in, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseLocation(%q): %v", tt.in, err)
			}
			if l.host != tt.host || l.repo != tt.repo || l.insecure != tt.insecure {
				t.Fatalf("parseLocation(%q) = host %q repo %q insecure %v; want %q %q %v",
					tt.in, l.host, l.repo, l.insecure, tt.host, tt.repo, tt.insecure)
			}
			// The location a user sees names host and repository only.
			if want := "oci://" + tt.host + "/" + tt.repo; l.String() != want {
				t.Errorf("String() = %q, want %q", l.String(), want)
			}
		})
	}
}

func TestIsLoopback(t *testing.T) {
	tests := map[string]bool{
		"localhost":      true,
		"localhost:5000": true,
		"127.0.0.1":      true,
		"127.0.0.1:5000": true,
		"127.8.9.10:80":  true,
		"[::1]:5000":     true,
		"[::1]":          true,
		"::1":            true,

		"registry.example.com":      false,
		"registry.example.com:5000": false,
		"localhost.example.com":     false,
		"mylocalhost:5000":          false,
		"10.0.0.1:5000":             false,
		"192.168.1.1":               false,
		"0.0.0.0:5000":              false,
		"[::2]:5000":                false,
		"[::ffff:10.0.0.1]:5000":    false,
		"":                          false,
	}
	for host, want := range tests {
		if got := isLoopback(host); got != want {
			t.Errorf("isLoopback(%q) = %v, want %v", host, got, want)
		}
	}
}
