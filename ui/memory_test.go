package ui

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cofferhq/coffer/internal/testutil"
	"github.com/cofferhq/coffer/repo"
	"github.com/cofferhq/coffer/snapshot"
	"github.com/cofferhq/coffer/storage/fs"
)

const (
	wideEntries = 200_000
	// maxPeakRSS is what `coffer ui` may use at most while serving
	// memoryRequests requests at once on a wideEntries directory.
	maxPeakRSS     = 300 << 20
	memoryRequests = 50
)

// wideRepo backs up one directory of wideEntries empty files into a
// repository on local disk and returns the repository's directory and the
// snapshot path of the wide directory.
func wideRepo(t *testing.T) (string, string) {
	t.Helper()
	ctx := context.Background()
	src := filepath.Join(t.TempDir(), "src")
	wide := filepath.Join(src, "wide")
	if err := os.MkdirAll(wide, 0o755); err != nil {
		t.Fatal(err)
	}
	for i := range wideEntries {
		if err := os.WriteFile(filepath.Join(wide, fmt.Sprintf("e%06d", i)), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	writeFile(t, src, "hello.txt", []byte("hello\n"))
	dir := filepath.Join(t.TempDir(), "repo")
	st, err := fs.Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	r, err := repo.Create(ctx, st, []byte("pw"), repo.CreateOptions{KDF: repo.TestKDF})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := snapshot.Backup(ctx, r, snapshot.BackupOptions{Paths: []string{src}}); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	return dir, filepath.ToSlash(wide)
}

// vmStatus reads a field of /proc/<pid>/status in bytes.
func vmStatus(pid int, field string) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no %s in /proc/%d/status", field, pid)
}

// TestMemoryWideDirectory runs the real `coffer ui` on a directory of
// 200,000 entries and sends it 50 requests at once (directory pages in
// every order, file views, raw files, searches); the process's peak
// resident size (VmHWM) must stay under 300 MiB.
func TestMemoryWideDirectory(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a 200,000-entry directory")
	}
	if _, err := os.Stat("/proc/self/status"); err != nil {
		testutil.SkipLoudly(t, "no /proc: cannot read the peak RSS")
	}
	bin := testutil.CofferBinary(t)
	start := time.Now()
	dir, wide := wideRepo(t)
	t.Logf("repository with %d entries built in %v", wideEntries, time.Since(start).Round(time.Millisecond))

	cmd := exec.Command(bin, "-json", "at", dir, "ui", "-no-auth", "-no-spawn")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(),
		"COFFER_PASSPHRASE=pw", "COFFER_CACHE_DIR=" + t.TempDir()}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Kill()
		cmd.Wait()
	}()
	var ready struct{ URL string }
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err == nil {
		err = json.Unmarshal([]byte(line), &ready)
	}
	if err != nil || ready.URL == "" {
		t.Fatalf("coffer ui did not print its URL: %v %q\n%s", err, line, stderr.String())
	}
	base := strings.TrimSuffix(ready.URL, "/")
	pid := cmd.Process.Pid
	idle, err := vmStatus(pid, "VmHWM")
	if err != nil {
		t.Fatal(err)
	}

	browse := "/s/latest/browse" + wide
	targets := []string{
		browse,
		browse + "?page=200",
		browse + "?page=400",
		browse + "?sort=size&order=desc",
		browse + "?sort=mtime&page=7",
		browse + "?sort=mode&order=desc&page=399",
		"/s/latest/file" + wide + "/e123456",
		"/s/latest/file" + wide + "/e000001",
		"/s/latest/raw" + wide + "/e199999",
		"/search?name=e19999*",
		"/search?name=*",
	}
	client := &http.Client{Timeout: 2 * time.Minute}
	start = time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, memoryRequests)
	for i := range memoryRequests {
		target := targets[i%len(targets)]
		wg.Go(func() {
			resp, err := client.Get(base + target)
			if err != nil {
				errs <- err
				return
			}
			defer resp.Body.Close()
			io.Copy(io.Discard, resp.Body)
			if resp.StatusCode != http.StatusOK {
				errs <- fmt.Errorf("GET %s: %s", target, resp.Status)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	elapsed := time.Since(start)
	peak, err := vmStatus(pid, "VmHWM")
	if err != nil {
		t.Fatal(err)
	}
	after, err := vmStatus(pid, "VmRSS")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d requests in %v: peak RSS %d MiB (idle %d MiB), %d MiB after",
		memoryRequests, elapsed.Round(time.Millisecond), peak>>20, idle>>20, after>>20)
	if peak >= maxPeakRSS {
		t.Errorf("peak RSS %d MiB, want under %d MiB", peak>>20, maxPeakRSS>>20)
	}
}
