//go:build linux

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
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cofferhq/coffer/internal/testutil"
	"github.com/cofferhq/coffer/repo"
	"github.com/cofferhq/coffer/snapshot"
	"github.com/cofferhq/coffer/storage/local"
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
	src := filepath.Join(fastTempDir(t), "src")
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
	st, err := local.Open(ctx, dir)
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

// fastTempDir returns a temporary directory in memory (/dev/shm) when
// there is one: creating 200,000 files on a disk shared with other work
// took 20 to 30 s, five times as long.
func fastTempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("/dev/shm", "coffer-ui-test-")
	if err != nil {
		return t.TempDir()
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
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
	// Its processes start in goroutines, where a skip would not stop the test.
	testutil.SkipInShort(t, "runs the coffer binary")
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
		if i == 0 { // one, for an archive of 200,000 files takes seconds
			target = "/s/latest/archive" + wide + "?format=tar.gz"
		}
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

// Requests for one directory share one decoded copy and one copy of each
// sorted view; the trees kept stay within the cache's bytes, a directory
// leaves with its views, and one larger than the bound is served but not
// kept.
func TestTreeCacheSharesAndBounds(t *testing.T) {
	f := getFixture(t)
	ctx := t.Context()
	s, err := New(f.repo, Options{NoAuth: true})
	if err != nil {
		t.Fatal(err)
	}
	dirID := func(rel string) repo.ID {
		t.Helper()
		n, err := s.lookup(ctx, f.s2, f.srcPath(rel))
		if err != nil {
			t.Fatal(err)
		}
		return n.Subtree
	}
	big, code, docs := dirID("big"), dirID("code"), dirID("docs")
	c := newCache(f.repo)
	reverse := func(nodes []*snapshot.Node) []*snapshot.Node {
		r := slices.Clone(nodes)
		slices.Reverse(r)
		return r
	}
	var wg sync.WaitGroup
	got := make([][2][]*snapshot.Node, 20)
	for i := range got {
		wg.Go(func() {
			tree, err := c.tree(ctx, big)
			if err != nil {
				t.Error(err)
			}
			view, err := c.view(ctx, big, "rev", reverse)
			if err != nil {
				t.Error(err)
			}
			got[i] = [2][]*snapshot.Node{tree, view}
		})
	}
	wg.Wait()
	for i, g := range got {
		if len(g[0]) != bigDirEntries || len(g[1]) != bigDirEntries || &g[0][0] != &got[0][0][0] || &g[1][0] != &got[0][1][0] {
			t.Fatalf("request %d got its own copy of the tree or view (%d, %d entries)", i, len(g[0]), len(g[1]))
		}
	}

	// Used least recently: the big tree (its view's load touched it
	// before the view was kept), then its view, then the code tree. Docs
	// must evict the big one, which takes its view along.
	c = newCache(f.repo)
	for _, load := range []func() error{
		func() error { _, err := c.tree(ctx, big); return err },
		func() error { _, err := c.view(ctx, big, "rev", reverse); return err },
		func() error { _, err := c.tree(ctx, code); return err },
	} {
		if err := load(); err != nil {
			t.Fatal(err)
		}
	}
	c.mu.Lock()
	c.maxBytes = c.size
	c.mu.Unlock()
	kept := func(id repo.ID, view string) bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.size > c.maxBytes {
			t.Errorf("%d bytes kept, more than %d", c.size, c.maxBytes)
		}
		tl := c.trees[treeKey{id: id, view: view}]
		return tl != nil && tl.elem != nil
	}
	if _, err := c.tree(ctx, docs); err != nil {
		t.Fatal(err)
	}
	if kept(big, "") || kept(big, "rev") || !kept(code, "") || !kept(docs, "") {
		t.Errorf("kept: big %v, its view %v, code %v, docs %v; want only the big one and its view gone",
			kept(big, ""), kept(big, "rev"), kept(code, ""), kept(docs, ""))
	}
	c.mu.Lock()
	c.maxBytes = 64 << 10
	c.mu.Unlock()
	nodes, err := c.tree(ctx, big)
	if err != nil || len(nodes) != bigDirEntries {
		t.Fatalf("a tree larger than the cache: %d nodes, %v", len(nodes), err)
	}
	if kept(big, "") || !kept(docs, "") {
		t.Errorf("a tree larger than the cache: kept %v; the others kept %v", kept(big, ""), kept(docs, ""))
	}
}
