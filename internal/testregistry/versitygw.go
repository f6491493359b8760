package testregistry

import (
	"context"
	"crypto/tls"
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

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/cofferhq/coffer/internal/testutil"
)

// S3Kind names an S3 server StartS3 can run.
type S3Kind string

// The S3 servers of the tests.
const (
	// VersityGW (github.com/versity/versitygw, pinned in tools/go.mod)
	// with its posix backend: one directory per bucket under DataDir.
	VersityGW S3Kind = "versitygw"
	// SeaweedFS (github.com/seaweedfs/seaweedfs, pinned in
	// tools/seaweedfs/go.mod): `weed server -filer -s3`, a master, a
	// volume server, a filer and the S3 gateway in one process.
	SeaweedFS S3Kind = "seaweedfs"
)

// S3Options configures StartS3.
type S3Options struct {
	// Server is the server to run; VersityGW when empty.
	Server S3Kind
	// TLS serves HTTPS with a certificate from a test CA (see
	// S3Server.CAFile); otherwise the server speaks plain HTTP.
	TLS bool
}

// S3Server is an S3 server process (see S3Kind) serving S3 on 127.0.0.1
// with its data in a temporary directory, with one identity whose keys
// are random.
type S3Server struct {
	// Kind is the server.
	Kind S3Kind
	// Host is "127.0.0.1:PORT".
	Host string
	// URL is "http://"+Host, or "https://"+Host with TLS.
	URL string
	// CAFile is the PEM file of the CA that signed the server's
	// certificate; empty without TLS.
	CAFile string
	// AccessKey and SecretKey are the root credentials.
	AccessKey, SecretKey string
	// Region is the region the server signs for.
	Region string
	// DataDir holds the server's data: for VersityGW the posix
	// backend's root, one directory per bucket; for SeaweedFS its
	// volumes and filer store.
	DataDir string

	t    testing.TB
	bin  string
	args []string
	env  []string // added to the process's environment
	logs *syncBuffer
	ca   *testCA

	mu   sync.Mutex
	proc *registryProc // nil when stopped
}

// StartS3 starts the server opt names on free ports of 127.0.0.1 and
// stops it at the end of the test (failing the test if it had died
// meanwhile). It skips loudly when the pinned binary cannot be had.
func StartS3(t testing.TB, opt S3Options) *S3Server {
	t.Helper()
	testutil.SkipInShort(t, "starts an S3 server")
	if opt.Server == "" {
		opt.Server = VersityGW
	}
	bin := map[S3Kind]string{VersityGW: "versitygw", SeaweedFS: "weed"}[opt.Server]
	if bin == "" {
		t.Fatalf("testutil: unknown S3 server %q", opt.Server)
	}
	s := &S3Server{t: t, Kind: opt.Server, logs: &syncBuffer{}, bin: toolBin(t, bin), Region: "us-east-1",
		AccessKey: "coffer" + randomHex(6), SecretKey: randomHex(20)}
	dir := t.TempDir()
	s.DataDir = filepath.Join(dir, "data")
	if err := os.MkdirAll(s.DataDir, 0o755); err != nil {
		t.Fatalf("testutil: %v", err)
	}
	var certFile, keyFile string
	if opt.TLS {
		ca, err := newTestCA("coffer test CA")
		if err != nil {
			t.Fatalf("testutil: %v", err)
		}
		s.ca = ca
		s.CAFile = filepath.Join(dir, "ca.pem")
		if err := os.WriteFile(s.CAFile, ca.certPEM, 0o644); err != nil {
			t.Fatalf("testutil: %v", err)
		}
		if certFile, keyFile, _, err = ca.serverTLS(dir, "s3"); err != nil {
			t.Fatalf("testutil: %v", err)
		}
	}
	t.Cleanup(func() {
		if err := s.stop(); err != nil {
			t.Errorf("testutil: S3 server on %s: %v\nserver output:\n%s", s.Host, err, s.logs.String())
		}
	})
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		logged := len(s.logs.String())
		if attempt > 0 {
			// What the failed attempt stored stays out of the next: a
			// SeaweedFS volume server that finds the last attempt's
			// cluster id in its directory is refused by the new master,
			// which then has no volume to write to, and never gets ready.
			if err := os.RemoveAll(s.DataDir); err != nil {
				t.Fatalf("testutil: %v", err)
			}
			if err := os.MkdirAll(s.DataDir, 0o755); err != nil {
				t.Fatalf("testutil: %v", err)
			}
		}
		port, err := freePort()
		if err != nil {
			t.Fatalf("testutil: %v", err)
		}
		s.Host = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		s.URL = "http://" + s.Host
		if opt.TLS {
			s.URL = "https://" + s.Host
		}
		switch opt.Server {
		case VersityGW:
			s.args = []string{"--port", s.Host, "--quiet", "--region", s.Region}
			if opt.TLS {
				s.args = append(s.args, "--cert", certFile, "--key", keyFile)
			}
			s.args = append(s.args, "posix", s.DataDir)
			// The root keys go in the environment, not the command
			// line, where every user of the machine could read them.
			s.env = []string{"ROOT_ACCESS_KEY=" + s.AccessKey, "ROOT_SECRET_KEY=" + s.SecretKey}
		case SeaweedFS:
			if s.args, err = s.seaweedArgs(dir, port, certFile, keyFile); err != nil {
				t.Fatalf("testutil: %v", err)
			}
		}
		if lastErr = s.start(); lastErr == nil {
			break
		}
		// Another process took a port between freePort and the server's
		// listen: the next attempt picks others. Any other failure is the
		// test's to see.
		if !strings.Contains(s.logs.String()[logged:], "address already in use") {
			break
		}
	}
	if lastErr != nil {
		t.Fatalf("testutil: starting %s: %v\nserver output:\n%s", s.Kind, lastErr, s.logs.String())
	}
	return s
}

// Location returns the coffer location of prefix in bucket,
// "s3://HOST/BUCKET/PREFIX".
func (s *S3Server) Location(bucket, prefix string) string {
	return "s3://" + s.Host + "/" + strings.TrimSuffix(bucket+"/"+prefix, "/")
}

// Env returns the AWS variables that hold the root credentials and the
// region.
func (s *S3Server) Env() map[string]string {
	return map[string]string{
		"AWS_ACCESS_KEY_ID":     s.AccessKey,
		"AWS_SECRET_ACCESS_KEY": s.SecretKey,
		"AWS_REGION":            s.Region,
	}
}

// Client returns a minio-go client with the root credentials, for tests
// that look at a bucket from outside coffer.
func (s *S3Server) Client(t testing.TB) *minio.Client {
	t.Helper()
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if s.ca != nil {
		tr.TLSClientConfig = s.tlsConfig()
	}
	c, err := minio.New(s.Host, &minio.Options{
		Creds: credentials.NewStaticV4(s.AccessKey, s.SecretKey, ""), Secure: s.ca != nil,
		Transport: tr, Region: s.Region, BucketLookup: minio.BucketLookupPath,
	})
	if err != nil {
		t.Fatalf("testutil: S3 client: %v", err)
	}
	return c
}

// Versions returns every version and delete marker stored under prefix
// in bucket, as a versioned listing shows them (ListObjectVersions), for
// tests that check what stays stored behind what a plain listing shows.
// On a bucket without versioning, each object is one version.
func (s *S3Server) Versions(t testing.TB, bucket, prefix string) []minio.ObjectInfo {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var versions []minio.ObjectInfo
	for obj := range s.Client(t).ListObjects(ctx, bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true, WithVersions: true}) {
		if obj.Err != nil {
			t.Fatalf("testutil: listing the versions under %s/%s: %v", bucket, prefix, obj.Err)
		}
		versions = append(versions, obj)
	}
	return versions
}

// MakeBucket creates a bucket.
func (s *S3Server) MakeBucket(t testing.TB, name string) {
	t.Helper()
	s.makeBucket(t, name, false)
}

// MakeLockedBucket creates a bucket with Object Lock enabled.
func (s *S3Server) MakeLockedBucket(t testing.TB, name string) {
	t.Helper()
	s.makeBucket(t, name, true)
}

func (s *S3Server) makeBucket(t testing.TB, name string, lock bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.Client(t).MakeBucket(ctx, name, minio.MakeBucketOptions{Region: s.Region, ObjectLocking: lock}); err != nil {
		t.Fatalf("testutil: creating bucket %s: %v\nserver output:\n%s", name, err, s.logs.String())
	}
}

// Logs returns what the server has written so far.
func (s *S3Server) Logs() string { return s.logs.String() }

// Stop stops the server (SIGTERM, then SIGKILL), keeping its data and
// port for Start.
func (s *S3Server) Stop() {
	s.t.Helper()
	if err := s.stop(); err != nil {
		s.t.Fatalf("testutil: stopping %s: %v\nserver output:\n%s", s.Kind, err, s.logs.String())
	}
}

// Start starts the stopped server again on the same port and data.
func (s *S3Server) Start() {
	s.t.Helper()
	if err := s.start(); err != nil {
		s.t.Fatalf("testutil: restarting %s on %s: %v\nserver output:\n%s", s.Kind, s.Host, err, s.logs.String())
	}
}

func (s *S3Server) start() error {
	fmt.Fprintf(s.logs, "=== %s %s\n", s.bin, strings.Join(s.args, " "))
	cmd := exec.Command(s.bin, s.args...)
	cmd.Env = append(os.Environ(), s.env...)
	cmd.Stdout, cmd.Stderr = s.logs, s.logs
	cmd.SysProcAttr = registrySysProcAttr()
	p := &registryProc{done: make(chan struct{})}
	started := make(chan error, 1)
	go func() {
		// See Registry.start: the thread lives as long as the child.
		runtime.LockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		p.proc = cmd.Process
		started <- nil
		p.err = cmd.Wait()
		close(p.done)
	}()
	if err := <-started; err != nil {
		return fmt.Errorf("starting %s: %w", s.bin, err)
	}
	s.mu.Lock()
	s.proc = p
	s.mu.Unlock()

	ready := s.answers
	if s.Kind == SeaweedFS {
		ready = s.seaweedReady
	}
	// SeaweedFS's gateway answers before its volume server has joined
	// the master, and a cold start of the three takes a while on a
	// busy machine.
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case <-p.done:
			s.mu.Lock()
			s.proc = nil
			s.mu.Unlock()
			return fmt.Errorf("%s exited before answering: %v", s.Kind, p.err)
		default:
		}
		err := ready()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			_ = s.stop()
			return fmt.Errorf("%s was not ready within 60s: %w", s.Kind, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// answers reports whether the server answers HTTP at all (403 without
// credentials is an answer).
func (s *S3Server) answers() error {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = s.tlsConfig()
	client := &http.Client{Transport: tr, Timeout: 2 * time.Second}
	defer client.CloseIdleConnections()
	resp, err := client.Get(s.URL + "/")
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}

func (s *S3Server) tlsConfig() *tls.Config {
	if s.ca == nil {
		return nil
	}
	return &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: s.ca.pool()}
}

func (s *S3Server) stop() error {
	s.mu.Lock()
	p := s.proc
	s.proc = nil
	s.mu.Unlock()
	if p == nil {
		return nil
	}
	var crashed error
	select {
	case <-p.done:
		crashed = fmt.Errorf("%s exited on its own: %v", s.Kind, p.err)
	default:
		_ = p.proc.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			_ = p.proc.Kill()
			<-p.done
		}
	}
	return crashed
}
