package oci

import (
	"strings"
	"testing"
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
		{in: "oci://r.example/repo?insecure-http=yes", errHas: "unknown option"},
		{in: "oci://r.example/repo?insecure-http=true&insecure-http=true", errHas: "unknown option"},
		{in: "oci://r.example/repo?insecure-http=true&x=1", errHas: "unknown option"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			l, err := parseLocation(tt.in)
			if tt.host == "" {
				if err == nil {
					t.Fatalf("parseLocation(%q) = %+v, want an error", tt.in, l)
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
