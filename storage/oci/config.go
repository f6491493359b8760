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
	"regexp"
	"strings"
	"time"

	"oras.land/oras-go/v2/registry"

	"github.com/cofferhq/coffer/storage"
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
	// TempDir holds the files of packs while they are uploaded and until
	// a refs tag references them (os.TempDir() when empty).
	TempDir string
	// UploadChunk, when positive, uploads blobs larger than it in chunks
	// of at most this many bytes (at least MinUploadChunk), for a proxy
	// that limits request bodies; zero uploads every blob in one request.
	UploadChunk int64
	// LimitUpload and LimitDownload, when positive, hold what is sent to
	// and read from the registry to that many bytes per second, over all
	// requests of the Store.
	LimitUpload, LimitDownload int64
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

// repoNameRegexp is the repository name grammar of the OCI distribution
// spec (v1.1, "Pulling manifests"): path components of lowercase letters
// and digits, joined within a component by one ".", one or two "_", or
// any number of "-", and separated by "/".
var repoNameRegexp = regexp.MustCompile(`^[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*$`)

// maxNameLength bounds host + "/" + repository: the distribution spec
// notes that clients limit the name to 255 characters, and registries
// answer a longer one with errors that look transient (a 500 from
// Distribution), which would be retried for a minute in vain.
const maxNameLength = 255

// parseLocation parses oci://host[:port]/path/to/repo[?insecure-http=true].
// Every error is a storage.BadLocation, found before any request is made.
func parseLocation(s string) (location, error) {
	l, err := parseLocationText(s)
	if err != nil {
		return location{}, storage.BadLocation(err)
	}
	return l, nil
}

func parseLocationText(s string) (location, error) {
	rest, ok := strings.CutPrefix(s, "oci://")
	if !ok {
		return location{}, fmt.Errorf("registry location %q must start with oci://", s)
	}
	// A fragment means nothing to a registry; dropping it would store the
	// backups somewhere other than the user thinks.
	if strings.Contains(rest, "#") {
		return location{}, fmt.Errorf("registry location %q has a \"#\" fragment, which names nothing in a registry: remove it and write oci://host[:port]/path/to/repo", s)
	}
	u, err := url.Parse("oci://" + rest)
	if err != nil {
		return location{}, fmt.Errorf("registry location %q: %w (write oci://host[:port]/path/to/repo)", s, err)
	}
	if u.User != nil {
		return location{}, fmt.Errorf("registry location must not carry credentials: use `coffer login %s` or COFFER_REGISTRY_USERNAME/PASSWORD", u.Host)
	}
	if err := storage.CheckPort(u.Host); err != nil {
		return location{}, fmt.Errorf("registry location %q: %w", s, err)
	}
	l := location{host: u.Host, repo: strings.Trim(u.Path, "/")}
	for k, v := range u.Query() {
		switch {
		case k == "insecure-http" && len(v) == 1 && (v[0] == "true" || v[0] == "1"):
			l.insecure = true
		case k == "insecure-http" && len(v) == 1 && (v[0] == "false" || v[0] == "0"):
		case k == "insecure-http" && len(v) > 1:
			return location{}, fmt.Errorf("registry location: insecure-http is given %d times: give it once", len(v))
		case k == "insecure-http":
			return location{}, fmt.Errorf("registry location: insecure-http=%q: write insecure-http=true, or leave the option out for HTTPS", v[0])
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
	if err := checkRepoName(l.host, l.repo); err != nil {
		return location{}, fmt.Errorf("registry location oci://%s/...: %w", l.host, err)
	}
	return l, nil
}

// checkRepoName checks a repository name against the distribution spec,
// saying what to change.
func checkRepoName(host, name string) error {
	if n := len(host) + 1 + len(name); n > maxNameLength {
		return fmt.Errorf("host and repository name are %d characters together, more than the %d registries accept: use a shorter repository name", n, maxNameLength)
	}
	if repoNameRegexp.MatchString(name) {
		return nil
	}
	if i := strings.IndexAny(name, ":@"); i >= 0 {
		return fmt.Errorf("invalid repository name %q: a location names a repository, not a tag or digest: remove %q", name, name[i:])
	}
	if lower := strings.ToLower(name); lower != name && repoNameRegexp.MatchString(lower) {
		return fmt.Errorf("invalid repository name %q: repository names are lowercase: write %q", name, lower)
	}
	return fmt.Errorf("invalid repository name %q: use lowercase letters and digits, joined by one \".\", one or two \"_\" or dashes, with \"/\" between path components", name)
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
