package testregistry

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/cofferhq/coffer/internal/testutil"
)

// RegistryKind selects which registry implementation StartRegistry runs.
type RegistryKind int

const (
	// Distribution is CNCF Distribution v3.1.2, built from tools/go.mod.
	Distribution RegistryKind = iota
	// Registry28 is Debian's docker-registry package (Distribution
	// 2.8), /usr/bin/docker-registry.
	Registry28
)

// String returns the kind's name, suitable for a subtest.
func (k RegistryKind) String() string {
	switch k {
	case Distribution:
		return "distribution-v3"
	case Registry28:
		return "registry-2.8"
	}
	return "RegistryKind(" + strconv.Itoa(int(k)) + ")"
}

// RegistryKinds lists every RegistryKind, for tests that run against
// each.
var RegistryKinds = []RegistryKind{Distribution, Registry28}

// AuthKind selects how a registry started by StartRegistry authenticates
// its clients.
type AuthKind int

const (
	// AuthNone lets anyone do anything.
	AuthNone AuthKind = iota
	// AuthBasic checks basic credentials against an htpasswd file
	// (bcrypt, at the minimum cost so that tests stay fast).
	AuthBasic
	// AuthToken sends clients to an in-process TokenServer for bearer
	// tokens, which it hands out for the registry's basic credentials.
	AuthToken
)

// String returns the kind's name, suitable for a subtest.
func (a AuthKind) String() string {
	switch a {
	case AuthNone:
		return "noauth"
	case AuthBasic:
		return "basic"
	case AuthToken:
		return "token"
	}
	return "AuthKind(" + strconv.Itoa(int(a)) + ")"
}

// RegistryOptions configures StartRegistry.
type RegistryOptions struct {
	// Kind is the registry implementation.
	Kind RegistryKind
	// Delete enables the deletion of manifests and blobs
	// (storage.delete.enabled); without it DELETE answers 405.
	Delete bool
	// TLS serves HTTPS with a certificate from a test CA (see
	// Registry.CAFile); otherwise the registry speaks plain HTTP.
	TLS bool
	// Auth is how clients authenticate.
	Auth AuthKind
}

// Registry is a registry process started by StartRegistry, listening on
// 127.0.0.1 and storing into a temporary directory.
type Registry struct {
	// Options are the options it was started with.
	Options RegistryOptions
	// Host is "127.0.0.1:PORT".
	Host string
	// URL is "http://"+Host, or "https://"+Host with TLS.
	URL string
	// CAFile is the PEM file of the CA that signed the registry's (and
	// its token server's) certificate; empty without TLS.
	CAFile string
	// Username and Password are the credentials it accepts; empty with
	// AuthNone.
	Username, Password string
	// DockerConfig is a directory holding a config.json whose "auths"
	// entry for Host holds Username and Password, for use as
	// $DOCKER_CONFIG (it has no entries with AuthNone).
	DockerConfig string
	// DataDir is the root directory of the registry's filesystem
	// storage.
	DataDir string
	// ConfigFile is the registry's configuration file.
	ConfigFile string
	// Token is the token server, with AuthToken; nil otherwise.
	Token *TokenServer

	t      testing.TB
	bin    string
	logs   *syncBuffer
	client *http.Client
	ca     *testCA // with TLS

	mu   sync.Mutex
	proc *registryProc // nil when stopped
}

// registryProc is one run of the registry process.
type registryProc struct {
	proc *os.Process
	done chan struct{} // closed once the process has exited
	err  error         // how it exited; read it after done
}

// StartRegistry starts a registry as opt says, on a free port of
// 127.0.0.1 with filesystem storage in a temporary directory, waits
// until GET /v2/ answers, and stops it at the end of the test (failing
// the test if it had died meanwhile). It skips the test loudly (see
// testutil.SkipLoudly) if the registry's program is not available here.
func StartRegistry(t testing.TB, opt RegistryOptions) *Registry {
	t.Helper()
	testutil.SkipInShort(t, "starts a registry")
	r := &Registry{Options: opt, t: t, logs: &syncBuffer{}}
	switch opt.Kind {
	case Distribution:
		r.bin = toolBin(t, "registry")
	case Registry28:
		if _, err := os.Stat(Registry28Binary); err != nil {
			testutil.SkipLoudly(t, "Debian's registry 2.8 is not installed (apt-get install docker-registry): "+err.Error())
		}
		r.bin = Registry28Binary
	default:
		t.Fatalf("testutil: unknown registry kind %v", opt.Kind)
	}

	dir := t.TempDir()
	r.DataDir = filepath.Join(dir, "data")
	r.ConfigFile = filepath.Join(dir, "config.yml")
	r.DockerConfig = filepath.Join(dir, "docker")
	for _, d := range []string{r.DataDir, r.DockerConfig} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatalf("testutil: %v", err)
		}
	}

	var ca *testCA
	if opt.TLS || opt.Auth == AuthToken {
		var err error
		if ca, err = newTestCA("coffer test CA"); err != nil {
			t.Fatalf("testutil: %v", err)
		}
		caFile := filepath.Join(dir, "ca.pem")
		if err := os.WriteFile(caFile, ca.certPEM, 0o644); err != nil {
			t.Fatalf("testutil: %v", err)
		}
		if opt.TLS {
			r.CAFile = caFile
			r.ca = ca
		}
	}
	r.client = r.newClient()

	var cfg strings.Builder
	fmt.Fprintf(&cfg, "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\n")
	fmt.Fprintf(&cfg, "storage:\n  filesystem:\n    rootdirectory: %s\n", yamlQuote(r.DataDir))
	fmt.Fprintf(&cfg, "  delete:\n    enabled: %t\n", opt.Delete)
	fmt.Fprintf(&cfg, "  maintenance:\n    uploadpurging:\n      enabled: false\n")
	// The address is filled in by start; the rest of the http section
	// follows it.
	httpRest := fmt.Sprintf("  secret: %s\n", randomHex(16))
	if opt.TLS {
		certFile, keyFile, _, err := ca.serverTLS(dir, "registry")
		if err != nil {
			t.Fatalf("testutil: %v", err)
		}
		httpRest += fmt.Sprintf("  tls:\n    certificate: %s\n    key: %s\n", yamlQuote(certFile), yamlQuote(keyFile))
	}

	if opt.Auth != AuthNone {
		r.Username, r.Password = "coffer", randomHex(12)
	}
	switch opt.Auth {
	case AuthNone:
	case AuthBasic:
		hash, err := bcrypt.GenerateFromPassword([]byte(r.Password), bcrypt.MinCost)
		if err != nil {
			t.Fatalf("testutil: hashing the htpasswd password: %v", err)
		}
		htpasswd := filepath.Join(dir, "htpasswd")
		if err := os.WriteFile(htpasswd, []byte(r.Username+":"+string(hash)+"\n"), 0o600); err != nil {
			t.Fatalf("testutil: %v", err)
		}
		fmt.Fprintf(&cfg, "auth:\n  htpasswd:\n    realm: coffer-test-registry\n    path: %s\n", yamlQuote(htpasswd))
	case AuthToken:
		r.Token = startTokenServer(t, ca, filepath.Join(dir, "ca.pem"), dir, opt.TLS, r.Username, r.Password)
		fmt.Fprintf(&cfg, "auth:\n  token:\n    realm: %s\n    service: %s\n    issuer: %s\n    rootcertbundle: %s\n",
			yamlQuote(r.Token.URL), yamlQuote(r.Token.Service), yamlQuote(r.Token.Issuer), yamlQuote(r.Token.RootCertFile))
	default:
		t.Fatalf("testutil: unknown auth kind %v", opt.Auth)
	}
	baseCfg := cfg.String()

	t.Cleanup(func() {
		if err := r.stop(); err != nil {
			t.Errorf("testutil: %v registry on %s: %v\nregistry output:\n%s", opt.Kind, r.Host, err, r.Logs())
		}
	})

	// Pick a free port; should another process take it between our
	// probe and the registry's bind, try again with another.
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		port, err := freePort()
		if err != nil {
			t.Fatalf("testutil: %v", err)
		}
		r.Host = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		r.URL = "http://" + r.Host
		if opt.TLS {
			r.URL = "https://" + r.Host
		}
		full := baseCfg + fmt.Sprintf("http:\n  addr: %s\n", r.Host) + httpRest
		if err := os.WriteFile(r.ConfigFile, []byte(full), 0o644); err != nil {
			t.Fatalf("testutil: %v", err)
		}
		if lastErr = r.start(); lastErr == nil {
			break
		}
		if !strings.Contains(r.logs.String(), "address already in use") {
			break
		}
	}
	if lastErr != nil {
		t.Fatalf("testutil: starting %v: %v\nregistry output:\n%s", opt.Kind, lastErr, r.Logs())
	}
	r.writeDockerConfig(t)
	return r
}

// Location returns the coffer location of repo in the registry,
// "oci://HOST/REPO".
func (r *Registry) Location(repo string) string {
	return "oci://" + r.Host + "/" + repo
}

// Logs returns what the registry process has written to its standard
// output and error so far, across restarts.
func (r *Registry) Logs() string { return r.logs.String() }

// Client returns an HTTP client that trusts the registry's CA (and its
// token server's). It carries no credentials.
func (r *Registry) Client() *http.Client { return r.client }

// TLSConfig returns a TLS configuration trusting only the registry's CA,
// or nil without TLS.
func (r *Registry) TLSConfig() *tls.Config {
	if r.ca == nil {
		return nil
	}
	return &tls.Config{RootCAs: r.ca.pool(), MinVersion: tls.VersionTLS12}
}

// DockerEnv returns the environment entry that points docker-style
// clients (oras among them) at DockerConfig.
func (r *Registry) DockerEnv() []string {
	return []string{"DOCKER_CONFIG=" + r.DockerConfig}
}

// OrasFlags returns the oras flags that reach this registry: --plain-http
// without TLS, --ca-file with it, and --registry-config for the
// credentials.
func (r *Registry) OrasFlags() []string {
	flags := []string{"--registry-config", filepath.Join(r.DockerConfig, "config.json")}
	if r.Options.TLS {
		return append(flags, "--ca-file", r.CAFile)
	}
	return append(flags, "--plain-http")
}

// Stop stops the registry (SIGTERM, then SIGKILL after ten seconds),
// keeping its data and port for Start. It does nothing if the registry
// is not running. Stop and Start fail the test given to StartRegistry,
// so call them from its goroutine.
func (r *Registry) Stop() {
	r.t.Helper()
	if err := r.stop(); err != nil {
		r.t.Fatalf("testutil: stopping the %v registry: %v\nregistry output:\n%s", r.Options.Kind, err, r.Logs())
	}
}

// Start starts the stopped registry again, on the same port with the
// same data, and waits until it answers.
func (r *Registry) Start() {
	r.t.Helper()
	r.mu.Lock()
	running := r.proc != nil
	r.mu.Unlock()
	if running {
		r.t.Fatalf("testutil: Start: the %v registry on %s is already running", r.Options.Kind, r.Host)
	}
	if err := r.start(); err != nil {
		r.t.Fatalf("testutil: restarting the %v registry on %s: %v\nregistry output:\n%s", r.Options.Kind, r.Host, err, r.Logs())
	}
}

// SetReadOnly restarts the registry with its maintenance read-only mode
// on or off (maintenance.readonly.enabled: reads work, every write is
// refused with 405), keeping its data and port.
func (r *Registry) SetReadOnly(on bool) {
	r.t.Helper()
	b, err := os.ReadFile(r.ConfigFile)
	if err != nil {
		r.t.Fatalf("testutil: %v", err)
	}
	const purging = "    uploadpurging:\n      enabled: false\n"
	const readOnly = "    readonly:\n      enabled: true\n"
	cfg := strings.Replace(string(b), purging+readOnly, purging, 1)
	if on {
		cfg = strings.Replace(cfg, purging, purging+readOnly, 1)
	}
	if err := os.WriteFile(r.ConfigFile, []byte(cfg), 0o644); err != nil {
		r.t.Fatalf("testutil: %v", err)
	}
	r.Stop()
	r.Start()
}

// GarbageCollect runs the registry's offline garbage collector over its
// storage ("garbage-collect [--delete-untagged] CONFIG"). A running
// registry is stopped for it and started again afterwards.
func (r *Registry) GarbageCollect(t testing.TB, deleteUntagged bool) {
	t.Helper()
	r.mu.Lock()
	running := r.proc != nil
	r.mu.Unlock()
	if running {
		if err := r.stop(); err != nil {
			t.Fatalf("testutil: stopping the %v registry for garbage collection: %v\nregistry output:\n%s", r.Options.Kind, err, r.Logs())
		}
	}
	args := []string{"garbage-collect"}
	if deleteUntagged {
		args = append(args, "--delete-untagged")
	}
	args = append(args, r.ConfigFile)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, r.bin, args...)
	cmd.Env = registryEnv()
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("testutil: %s %s: %v\n%s", r.bin, strings.Join(args, " "), err, out.String())
	}
	if running {
		if err := r.start(); err != nil {
			t.Fatalf("testutil: restarting the %v registry after garbage collection: %v\nregistry output:\n%s", r.Options.Kind, err, r.Logs())
		}
	}
}

// start runs the registry process and waits for it to answer GET /v2/.
func (r *Registry) start() error {
	fmt.Fprintf(r.logs, "=== %s serve %s\n", r.bin, r.ConfigFile)
	cmd := exec.Command(r.bin, "serve", r.ConfigFile)
	cmd.Env = registryEnv()
	cmd.Stdout, cmd.Stderr = r.logs, r.logs
	cmd.SysProcAttr = registrySysProcAttr()

	// The process is started and waited for by a goroutine locked to
	// its thread, so that where the kernel kills the child when the
	// thread that started it exits (registrySysProcAttr asks for that,
	// so that a crashed test leaves no registry behind), the thread
	// lives exactly as long as the child.
	p := &registryProc{done: make(chan struct{})}
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		p.proc = cmd.Process
		started <- nil
		p.err = cmd.Wait()
		close(p.done)
		// Returning with the thread locked ends the thread.
	}()
	if err := <-started; err != nil {
		return fmt.Errorf("starting %s: %w", r.bin, err)
	}
	r.mu.Lock()
	r.proc = p
	r.mu.Unlock()

	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-p.done:
			r.mu.Lock()
			r.proc = nil
			r.mu.Unlock()
			return fmt.Errorf("the registry exited before answering: %v", p.err)
		default:
		}
		code, err := r.ping()
		if err == nil && (code == http.StatusOK || code == http.StatusUnauthorized) {
			return nil
		}
		if time.Now().After(deadline) {
			_ = r.stop()
			if err == nil {
				err = fmt.Errorf("GET /v2/ answered %d", code)
			}
			return fmt.Errorf("the registry did not answer within 30s: %w", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// ping sends GET /v2/ and returns the status code.
func (r *Registry) ping() (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.URL+"/v2/", nil)
	if err != nil {
		return 0, err
	}
	resp, err := r.client.Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// stop ends the registry process if it runs. It reports an error if the
// process had died on its own.
func (r *Registry) stop() error {
	r.mu.Lock()
	p := r.proc
	r.proc = nil
	r.mu.Unlock()
	if p == nil {
		return nil
	}
	var crashed error
	select {
	case <-p.done:
		crashed = fmt.Errorf("the registry exited on its own: %v", p.err)
	default:
		_ = p.proc.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			_ = p.proc.Kill()
			<-p.done
		}
	}
	// The client's idle connections point at the dead process.
	r.client.CloseIdleConnections()
	return crashed
}

// newClient returns an HTTP client trusting the registry's CA, if any.
func (r *Registry) newClient() *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = r.TLSConfig()
	return &http.Client{Transport: tr, Timeout: 60 * time.Second}
}

// writeDockerConfig writes DockerConfig/config.json.
func (r *Registry) writeDockerConfig(t testing.TB) {
	t.Helper()
	auths := map[string]any{}
	if r.Username != "" {
		auths[r.Host] = map[string]string{
			"auth": base64.StdEncoding.EncodeToString([]byte(r.Username + ":" + r.Password)),
		}
	}
	b, err := json.MarshalIndent(map[string]any{"auths": auths}, "", "\t")
	if err != nil {
		t.Fatalf("testutil: %v", err)
	}
	if err := os.WriteFile(filepath.Join(r.DockerConfig, "config.json"), b, 0o600); err != nil {
		t.Fatalf("testutil: %v", err)
	}
}

// registryEnv is the environment of registry processes: ours, without
// any REGISTRY_* overrides of the configuration, and with OpenTelemetry
// export (which v3 would otherwise try to send to localhost:4318) off.
func registryEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "REGISTRY_") || strings.HasPrefix(kv, "OTEL_") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, "OTEL_TRACES_EXPORTER=none", "OTEL_METRICS_EXPORTER=none", "OTEL_LOGS_EXPORTER=none")
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("finding a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// yamlQuote quotes s as a YAML double-quoted scalar (JSON's string
// syntax is a subset of it).
func yamlQuote(s string) string {
	b, err := json.Marshal(s)
	if err != nil {
		panic(err) // strings always marshal
	}
	return string(b)
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail
	}
	return hex.EncodeToString(b)
}

// syncBuffer is a bytes.Buffer safe for concurrent writes and reads.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
