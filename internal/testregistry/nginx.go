package testregistry

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cofferhq/coffer/internal/testutil"
)

// NginxOptions configures StartNginx.
type NginxOptions struct {
	// MaxBodySize is nginx's client_max_body_size, such as "1m" (its
	// default, and what this is when empty).
	MaxBodySize string
	// NoRequestBuffering sets proxy_request_buffering off: nginx passes
	// request bodies on as they arrive instead of spooling each whole
	// to a file first (its default).
	NoRequestBuffering bool
}

// Nginx is Debian's nginx, run as a reverse proxy in front of a registry
// as sites put one in front of theirs, with the body limit that makes
// large uploads fail with 413. It serves plain HTTP on 127.0.0.1.
type Nginx struct {
	// Host is "127.0.0.1:PORT".
	Host string
	// Dir holds its configuration, logs and temporary files.
	Dir string

	proc *exec.Cmd
	done chan error
}

// nginxBinary finds nginx: on PATH, or where Debian puts it (/usr/sbin,
// which is not on every user's PATH).
func nginxBinary() (string, error) {
	if p, err := exec.LookPath("nginx"); err == nil {
		return p, nil
	}
	if _, err := os.Stat("/usr/sbin/nginx"); err == nil {
		return "/usr/sbin/nginx", nil
	}
	return "", fmt.Errorf("nginx is not installed (apt-get install nginx)")
}

// StartNginx starts nginx in front of reg (which must serve plain HTTP)
// with a configuration of its own in a temporary directory, and stops it
// at the end of the test. Without nginx the test is skipped, or fails
// where COFFER_TEST_DISALLOW_SKIP=1.
func StartNginx(t testing.TB, reg *Registry, opt NginxOptions) *Nginx {
	t.Helper()
	testutil.SkipInShort(t, "starts nginx")
	bin, err := nginxBinary()
	if err != nil {
		testutil.SkipLoudly(t, err.Error())
	}
	if reg.Options.TLS {
		t.Fatalf("testutil: StartNginx proxies registries that serve plain HTTP")
	}
	if opt.MaxBodySize == "" {
		opt.MaxBodySize = "1m"
	}
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	n := &Nginx{Host: fmt.Sprintf("127.0.0.1:%d", port), Dir: dir, done: make(chan error, 1)}
	buffering := "on"
	if opt.NoRequestBuffering {
		buffering = "off"
	}
	user := ""
	if os.Geteuid() == 0 {
		// As root, nginx's workers would run as nobody, who cannot write
		// to the test's temporary directory.
		user = "user root;"
	}
	conf := fmt.Sprintf(`%s
worker_processes 1;
pid %[2]s/nginx.pid;
error_log %[2]s/error.log info;
events { worker_connections 256; }
http {
	access_log %[2]s/access.log;
	client_body_temp_path %[2]s/client_body;
	proxy_temp_path %[2]s/proxy;
	fastcgi_temp_path %[2]s/fastcgi;
	uwsgi_temp_path %[2]s/uwsgi;
	scgi_temp_path %[2]s/scgi;
	server {
		listen %[3]s;
		client_max_body_size %[4]s;
		chunked_transfer_encoding on;
		location / {
			proxy_pass http://%[5]s;
			proxy_http_version 1.1;
			# The registry builds upload Locations from the Host it sees.
			proxy_set_header Host $http_host;
			proxy_set_header X-Forwarded-Proto $scheme;
			proxy_request_buffering %[6]s;
			proxy_buffering off;
			proxy_read_timeout 900s;
		}
	}
}
`, user, dir, n.Host, opt.MaxBodySize, reg.Host, buffering)
	confFile := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(confFile, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	// Its output goes to a file, not a pipe: Wait would wait for every
	// worker holding a pipe to end.
	outFile := filepath.Join(dir, "output.log")
	out, err := os.Create(outFile)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	cmd := exec.Command(bin, "-c", confFile, "-p", dir, "-e", filepath.Join(dir, "error.log"), "-g", "daemon off;")
	cmd.Stdout, cmd.Stderr = out, out
	// As for the registry: the kernel ends nginx when the thread that
	// started it exits, so a crashed test leaves no proxy behind.
	cmd.SysProcAttr = registrySysProcAttr()
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		n.done <- cmd.Wait()
	}()
	if err := <-started; err != nil {
		t.Fatalf("testutil: starting nginx: %v", err)
	}
	n.proc = cmd
	t.Cleanup(func() {
		// SIGTERM: nginx's fast stop, which ends its workers at once;
		// a graceful one (SIGQUIT) waits for a client's idle connection
		// for up to a minute.
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-n.done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-n.done
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", n.Host, time.Second)
		if err == nil {
			c.Close()
			return n
		}
		select {
		case err := <-n.done:
			output, _ := os.ReadFile(outFile)
			t.Fatalf("testutil: nginx exited before listening: %v\n%s%s", err, output, n.ErrorLog())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("testutil: nginx did not listen on %s within 20s\n%s", n.Host, n.ErrorLog())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Location returns the oci:// location of repo through the proxy.
func (n *Nginx) Location(repo string) string { return "oci://" + n.Host + "/" + repo }

// ErrorLog returns nginx's error log, for a failing test's message.
func (n *Nginx) ErrorLog() string {
	b, _ := os.ReadFile(filepath.Join(n.Dir, "error.log"))
	return string(b)
}

// Refused counts the requests nginx answered with 413 (its access log,
// which has a request once nginx has closed its connection).
func (n *Nginx) Refused() int {
	b, _ := os.ReadFile(filepath.Join(n.Dir, "access.log"))
	return strings.Count(string(b), `" 413 `)
}
