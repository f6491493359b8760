package oci

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"oras.land/oras-go/v2/registry/remote/auth"
	"oras.land/oras-go/v2/registry/remote/credentials"

	"github.com/cofferhq/coffer/storage"
	"github.com/cofferhq/coffer/storage/internal/transport"
)

// userAgent identifies coffer to registries.
const userAgent = "coffer"

// newTransport returns the base transport: opt.Transport, or one that
// verifies TLS against the system pool plus opt.CAFile.
func newTransport(opt Options) (http.RoundTripper, error) {
	if opt.Transport != nil {
		return opt.Transport, nil
	}
	return transport.New(opt.CAFile)
}

// uploadBody is a blob upload's body. http.NewRequest lets only in-memory
// readers be sent again (it sets GetBody for them); an uploadBody, which
// may be a section of a temporary file, can be too, through rewindBodies.
type uploadBody struct{ *io.SectionReader }

// Close does nothing: the body's owner closes what it reads from.
func (uploadBody) Close() error { return nil }

// rewindBodies gives requests with an uploadBody a GetBody, so that
// net/http can send them again (on a redirect, or a new HTTP/2
// connection).
type rewindBodies struct{ next http.RoundTripper }

func (t rewindBodies) RoundTrip(req *http.Request) (*http.Response, error) {
	if b, ok := req.Body.(uploadBody); ok && req.GetBody == nil {
		req = req.Clone(req.Context())
		req.GetBody = func() (io.ReadCloser, error) {
			return uploadBody{io.NewSectionReader(b.SectionReader, 0, b.Size())}, nil
		}
	}
	return t.next.RoundTrip(req)
}

// credentialSource describes where credentials come from, for errors.
type credentialSource struct {
	fn   auth.CredentialFunc
	desc string
	path string // the docker config file, when credentials come from it
}

// describe says where the credentials for host come from, or that there
// are none, for `coffer info`: a docker config that does not exist, or
// holds nothing for host, is not named as if it did.
func (c credentialSource) describe(ctx context.Context, host string) string {
	if c.path == "" {
		return c.desc
	}
	if _, err := os.Stat(c.path); errors.Is(err, fs.ErrNotExist) {
		return "none (no docker config at " + c.path + ")"
	}
	if cred, err := c.fn(ctx, host); err == nil && cred == auth.EmptyCredential {
		return "none for " + host + " in docker config " + c.path
	}
	return c.desc
}

// newCredentials resolves credentials as docker, oras and crane do: from
// explicit options first, else the docker config (with its credsStore and
// credHelpers).
func newCredentials(host string, opt Options) (credentialSource, error) {
	if opt.Username != "" || opt.Password != "" {
		return credentialSource{
			fn:   auth.StaticCredential(host, auth.Credential{Username: opt.Username, Password: opt.Password}),
			desc: "COFFER_REGISTRY_USERNAME/COFFER_REGISTRY_PASSWORD",
		}, nil
	}
	store, path, err := dockerStore(opt.DockerConfig)
	if err != nil {
		return credentialSource{}, err
	}
	fn := credentials.Credential(store)
	read := func(ctx context.Context, host string) (auth.Credential, error) {
		cred, err := fn(ctx, host)
		if err != nil {
			return cred, &credentialError{path: path, err: err}
		}
		return cred, nil
	}
	return credentialSource{fn: read, desc: "docker config " + path, path: path}, nil
}

// credentialError is a docker config whose credentials for a host cannot
// be read: a credsStore or credHelpers program that is missing or fails,
// an auth field that does not decode.
type credentialError struct {
	path string
	err  error
}

func (e *credentialError) Error() string {
	cause := e.err.Error()
	if strings.Contains(cause, "invalid config format") {
		// oras-go quotes the decoded auth field, the secret, in some of
		// these: say what is wrong without it.
		cause = "an auth field is not the base64 of user:password"
	}
	return fmt.Sprintf("reading its credentials from docker config %s: %s: fix that file (its credsStore or credHelpers entry, or the auth field), run coffer login again, or set COFFER_REGISTRY_USERNAME and COFFER_REGISTRY_PASSWORD", e.path, cause)
}

func (e *credentialError) Unwrap() error { return e.err }

// dockerStore opens the docker credential store (config.json plus its
// helpers). Writes go to config.json in plain text only when no helper is
// configured, as `docker login` does.
func dockerStore(dir string) (credentials.Store, string, error) {
	if dir == "" {
		dir = os.Getenv("DOCKER_CONFIG")
	}
	if dir == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return nil, "", fmt.Errorf("finding the docker config: %w", err)
		}
		dir = filepath.Join(home, ".docker")
	}
	path := filepath.Join(dir, "config.json")
	store, err := credentials.NewStore(path, credentials.StoreOptions{AllowPlaintextPut: true})
	if err != nil {
		return nil, "", fmt.Errorf("reading docker config %s: %w", path, err)
	}
	return store, path, nil
}

// newAuthClient builds the oras-go client: auth (token, basic,
// anonymous, with a token cache) over the base transport. Nothing below
// it retries: every operation is retried as a whole (retry.go).
func newAuthClient(host string, base http.RoundTripper, creds credentialSource) *auth.Client {
	c := &auth.Client{
		Client:     &http.Client{Transport: rewindBodies{retryAfterRecorder{base}}},
		Cache:      auth.NewCache(),
		Credential: creds.fn,
	}
	c.SetUserAgent(userAgent)
	if isLoopback(host) {
		// A registry on this machine may have its token service on this
		// machine too; oras-go refuses loopback realms by default to stop
		// a remote registry from pointing clients at local services.
		c.BlockedRealmPrefixes = slices.DeleteFunc(auth.DefaultBlockedRealmPrefixes(), func(p netip.Prefix) bool {
			return p.Contains(netip.MustParseAddr("127.0.0.1")) || p.Contains(netip.IPv6Loopback())
		})
	}
	return c
}

// detectScheme decides between HTTPS and plain HTTP with one request to
// /v2/. HTTPS is the default; plain HTTP is used when asked for, or for a
// loopback host whose server does not speak TLS at all. A certificate
// that fails verification is always an error. Errors are the transport's,
// for the retry policy to judge; connectError explains them.
func detectScheme(ctx context.Context, host string, base http.RoundTripper, insecure bool) (plainHTTP bool, err error) {
	if insecure {
		return true, nil
	}
	attempt, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(attempt, http.MethodGet, "https://"+host+"/v2/", nil)
	if err != nil {
		return false, storage.BadLocation(fmt.Errorf("registry host %q: %w", host, err))
	}
	resp, err := base.RoundTrip(req)
	if err == nil {
		resp.Body.Close()
		return false, nil
	}
	var recordErr tls.RecordHeaderError
	if isLoopback(host) && errors.As(err, &recordErr) {
		return true, nil // a plain-HTTP server on this machine
	}
	if attempt.Err() != nil && ctx.Err() == nil {
		// A registry that does not answer is retried, not cancelled.
		return false, fmt.Errorf("no answer within 30s: %w", os.ErrDeadlineExceeded)
	}
	return false, err
}

// connectError turns a transport failure into advice.
func connectError(host string, err error) error {
	var unknownAuthority x509.UnknownAuthorityError
	var hostnameErr x509.HostnameError
	var certInvalid x509.CertificateInvalidError
	var recordErr tls.RecordHeaderError
	var opErr *net.OpError
	switch {
	case errors.As(err, &unknownAuthority):
		return fmt.Errorf("registry %s: TLS certificate signed by an unknown authority: trust its CA with -ca-file or SSL_CERT_FILE", host)
	case errors.As(err, &hostnameErr), errors.As(err, &certInvalid):
		return fmt.Errorf("registry %s: TLS certificate is not valid for this host (%v): fix the certificate or use the name it was issued for", host, err)
	case errors.As(err, &recordErr):
		return fmt.Errorf("registry %s does not speak TLS: use -insecure-http (or ?insecure-http=true) to allow plain HTTP", host)
	case errors.As(err, &opErr) && opErr.Op == "dial":
		return fmt.Errorf("cannot reach registry %s: %v%s", host, opErr.Err, retryNote(err))
	}
	return fmt.Errorf("registry %s: %w", host, err)
}
