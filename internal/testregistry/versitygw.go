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

// S3Options configures StartS3.
type S3Options struct {
	// TLS serves HTTPS with a certificate from a test CA (see
	// S3Server.CAFile); otherwise the server speaks plain HTTP.
	TLS bool
}

// S3Server is a VersityGW process (github.com/versity/versitygw, pinned
// in tools/go.mod) serving S3 on 127.0.0.1 with its posix backend on a
// temporary directory, in single-account mode with random root keys.
type S3Server struct {
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
	// DataDir is the posix backend's root: one directory per bucket.
	DataDir string

	t    testing.TB
	bin  string
	args []string
	logs *syncBuffer
	ca   *testCA

	mu   sync.Mutex
	proc *registryProc // nil when stopped
}

// StartS3 starts VersityGW as opt says on a free port of 127.0.0.1 and
// stops it at the end of the test (failing the test if it had died
// meanwhile). It skips loudly when the pinned binary cannot be had.
func StartS3(t testing.TB, opt S3Options) *S3Server {
	t.Helper()
	testutil.SkipInShort(t, "starts an S3 server")
	s := &S3Server{t: t, logs: &syncBuffer{}, bin: toolBin(t, "versitygw"), Region: "us-east-1",
		AccessKey: "coffer" + randomHex(6), SecretKey: randomHex(20)}
	dir := t.TempDir()
	s.DataDir = filepath.Join(dir, "data")
	if err := os.MkdirAll(s.DataDir, 0o755); err != nil {
		t.Fatalf("testutil: %v", err)
	}
	var tlsArgs []string
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
		certFile, keyFile, _, err := ca.serverTLS(dir, "s3")
		if err != nil {
			t.Fatalf("testutil: %v", err)
		}
		tlsArgs = []string{"--cert", certFile, "--key", keyFile}
	}
	t.Cleanup(func() {
		if err := s.stop(); err != nil {
			t.Errorf("testutil: S3 server on %s: %v\nserver output:\n%s", s.Host, err, s.logs.String())
		}
	})
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		port, err := freePort()
		if err != nil {
			t.Fatalf("testutil: %v", err)
		}
		s.Host = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		s.URL = "http://" + s.Host
		if opt.TLS {
			s.URL = "https://" + s.Host
		}
		s.args = append([]string{"--port", s.Host, "--quiet", "--region", s.Region}, tlsArgs...)
		s.args = append(s.args, "posix", s.DataDir)
		if lastErr = s.start(); lastErr == nil {
			break
		}
		if !strings.Contains(s.logs.String(), "address already in use") {
			break
		}
	}
	if lastErr != nil {
		t.Fatalf("testutil: starting versitygw: %v\nserver output:\n%s", lastErr, s.logs.String())
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
		s.t.Fatalf("testutil: stopping versitygw: %v\nserver output:\n%s", err, s.logs.String())
	}
}

// Start starts the stopped server again on the same port and data.
func (s *S3Server) Start() {
	s.t.Helper()
	if err := s.start(); err != nil {
		s.t.Fatalf("testutil: restarting versitygw on %s: %v\nserver output:\n%s", s.Host, err, s.logs.String())
	}
}

func (s *S3Server) start() error {
	fmt.Fprintf(s.logs, "=== %s %s\n", s.bin, strings.Join(s.args, " "))
	cmd := exec.Command(s.bin, s.args...)
	// The root keys go in the environment, not the command line, where
	// every user of the machine could read them.
	cmd.Env = append(os.Environ(), "ROOT_ACCESS_KEY="+s.AccessKey, "ROOT_SECRET_KEY="+s.SecretKey)
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

	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = s.tlsConfig()
	client := &http.Client{Transport: tr, Timeout: 2 * time.Second}
	defer client.CloseIdleConnections()
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-p.done:
			s.mu.Lock()
			s.proc = nil
			s.mu.Unlock()
			return fmt.Errorf("versitygw exited before answering: %v", p.err)
		default:
		}
		resp, err := client.Get(s.URL + "/")
		if err == nil {
			resp.Body.Close()
			return nil // any answer (403 without credentials) is up
		}
		if time.Now().After(deadline) {
			_ = s.stop()
			return fmt.Errorf("versitygw did not answer within 30s: %w", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
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
		crashed = fmt.Errorf("versitygw exited on its own: %v", p.err)
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
