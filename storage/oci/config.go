package oci

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/user"
	"strings"
	"time"

	"oras.land/oras-go/v2/registry"
)

// Options configure how a registry is reached. Zero values are the
// defaults.
type Options struct {
	// InsecureHTTP allows plain HTTP to hosts that are not loopback
	// addresses. Loopback hosts fall back to plain HTTP on their own when
	// they do not speak TLS at all.
	InsecureHTTP bool
	// CAFile is a PEM bundle of extra certificate authorities to trust,
	// added to the system pool (which honours SSL_CERT_FILE).
	CAFile string
	// Username and Password, when set, are used for this registry instead
	// of the docker credential store (COFFER_REGISTRY_USERNAME and
	// COFFER_REGISTRY_PASSWORD).
	Username, Password string
	// DockerConfig is the directory of the docker config.json to read
	// credentials from; empty means $DOCKER_CONFIG or ~/.docker.
	DockerConfig string
	// CacheDir holds immutable manifests and the capability probe; empty
	// disables caching.
	CacheDir string
	// Writer is this client's label in the layout; empty derives one
	// from the host and user names (hashed, so tags reveal neither).
	Writer string
	// ReferenceWithin bounds how long an uploaded pack waits for a tag to
	// reach it (DefaultReferenceWithin when zero): less than the grace
	// time of a registry's online garbage collection.
	ReferenceWithin time.Duration
	// RetryFor is how long an operation that keeps failing in a way that
	// passes with time (the registry down or restarting, 429, 5xx,
	// resets, timeouts) is retried before it fails (DefaultRetryFor when
	// zero).
	RetryFor time.Duration
	// Logf receives notices meant for the user, such as waiting after a
	// 429; nil discards them.
	Logf func(format string, args ...any)
	// Transport replaces the base HTTP transport (tests use it to inject
	// faults). TLS settings are applied only to the default transport.
	Transport http.RoundTripper
}

// location is a parsed oci:// location.
type location struct {
	host     string // host[:port]
	repo     string // path/to/repo
	insecure bool   // ?insecure-http=true
}

func (l location) String() string { return "oci://" + l.host + "/" + l.repo }

// parseLocation parses oci://host[:port]/path/to/repo[?insecure-http=true].
func parseLocation(s string) (location, error) {
	rest, ok := strings.CutPrefix(s, "oci://")
	if !ok {
		return location{}, fmt.Errorf("registry location %q must start with oci://", s)
	}
	u, err := url.Parse("oci://" + rest)
	if err != nil {
		return location{}, fmt.Errorf("registry location %q: %w", s, err)
	}
	if u.User != nil {
		return location{}, fmt.Errorf("registry location must not carry credentials: use `coffer login %s` or COFFER_REGISTRY_USERNAME/PASSWORD", u.Host)
	}
	l := location{host: u.Host, repo: strings.Trim(u.Path, "/")}
	for k, v := range u.Query() {
		switch {
		case k == "insecure-http" && len(v) == 1 && (v[0] == "true" || v[0] == "1"):
			l.insecure = true
		case k == "insecure-http" && len(v) == 1 && (v[0] == "false" || v[0] == "0"):
		default:
			return location{}, fmt.Errorf("registry location: unknown option %q (known: insecure-http=true)", k)
		}
	}
	if l.host == "" || l.repo == "" {
		return location{}, fmt.Errorf("registry location %q needs a host and a repository: oci://host[:port]/path/to/repo", s)
	}
	ref := registry.Reference{Registry: l.host, Repository: l.repo}
	if err := ref.ValidateRegistry(); err != nil {
		return location{}, fmt.Errorf("registry location %q: invalid host: %w", s, err)
	}
	if err := ref.ValidateRepository(); err != nil {
		return location{}, fmt.Errorf("registry location %q: invalid repository name %q (lowercase letters, digits and . _ - / only)", s, l.repo)
	}
	return l, nil
}

// isLoopback reports whether host[:port] names this machine.
func isLoopback(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.Trim(host, "[]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// defaultWriter derives a stable client identity from the host and user
// names, hashed so that tag names disclose neither.
func defaultWriter() string {
	host, _ := os.Hostname()
	name := ""
	if u, err := user.Current(); err == nil {
		name = u.Username
	}
	sum := sha256.Sum256([]byte("coffer writer\x00" + host + "\x00" + name))
	return hex.EncodeToString(sum[:8])
}

// validWriter reports whether w can be part of a tag.
func validWriter(w string) bool {
	if w == "" || len(w) > 64 {
		return false
	}
	for _, c := range w {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}
