//go:build linux

package cli

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cofferhq/coffer/internal/testregistry"
	"github.com/cofferhq/coffer/internal/testutil"
)

// uploaded sums the request bytes a proxy received for blob uploads.
func uploaded(p *testregistry.FaultProxy) int64 {
	var n int64
	for class, b := range p.Sent() {
		if strings.HasSuffix(class, " upload") {
			n += b
		}
	}
	return n
}

// syncSummary runs a -json sync and returns its summary event.
func syncSummary(t *testing.T, h *harness, args ...string) map[string]any {
	t.Helper()
	r := h.run(append([]string{"-json", "at", h.repo, "sync"}, args...)...)
	if r.code != 0 {
		t.Fatalf("sync %v: exit %d: %s", args, r.code, r.stderr)
	}
	for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		var ev map[string]any
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatalf("sync -json printed %q: %v", line, err)
		}
		if ev["type"] == "summary" {
			return ev
		}
	}
	t.Fatalf("sync -json printed no summary: %q", r.stdout)
	return nil
}

// The chain of the issue: a local repository synced to a registry
// repository (other keys: re-encrypted), that one to a second repository
// on the same registry created with -from (shared keys: packs mounted,
// no pack bytes uploaded), and that one back to a local repository
// created with -from it (packs downloaded as they are). Every copy passes
// check -read-data and restores identical trees; a second sync uploads
// no pack; syncing back finds every snapshot there already.
func TestSyncChain(t *testing.T) {
	reg := testregistry.StartRegistry(t, testregistry.RegistryOptions{Kind: testregistry.Distribution, Delete: true})
	proxy := testregistry.StartFaultProxy(t, reg.URL, testregistry.FaultOptions{})
	local := newHarness(t)
	src := sourceTree(t)
	local.create()
	local.backup(src, "-tag", "first")
	if err := os.WriteFile(filepath.Join(src, "more.bin"), testutil.RandomBytes(9, 3<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	local.backup(src)

	on := func(repo string) *harness {
		h := *local
		h.repo = repo
		return &h
	}
	one, two := on(proxy.Location("one")), on(proxy.Location("two"))
	back := on(filepath.Join(t.TempDir(), "back"))
	one.create()

	proxy.Reset()
	s := syncSummary(t, local, "to", one.repo)
	if s["copied"] != 2.0 || s["same_keys"] != false || uploaded(proxy) < 4<<20 {
		t.Fatalf("local -> one: %v, %d bytes uploaded", s, uploaded(proxy))
	}
	proxy.Reset()
	s = syncSummary(t, local, "to", one.repo)
	if s["copied"] != 0.0 || s["skipped"] != 2.0 || s["packs_written"] != 0.0 {
		t.Errorf("second sync local -> one: %v", s)
	}
	// The only upload is the lock object, not a pack or index.
	if n := uploaded(proxy); n > 4<<10 {
		t.Errorf("second sync uploaded %d bytes (%v)", n, proxy.Sent())
	}

	two.mustAt("create", "-from", one.repo)
	proxy.Reset()
	s = syncSummary(t, one, "to", two.repo)
	if s["copied"] != 2.0 || s["same_keys"] != true || s["packs_copied"] == 0.0 || s["packs_mounted"] != s["packs_copied"] {
		t.Errorf("one -> two on one registry: %v", s)
	}
	if n := uploaded(proxy); n > 64<<10 {
		t.Errorf("one -> two mounted its packs, yet uploaded %d bytes (%v)", n, proxy.Sent())
	}

	back.mustAt("create", "-from", two.repo)
	s = syncSummary(t, back, "from", two.repo)
	if s["copied"] != 2.0 || s["same_keys"] != true || s["packs_copied"] == 0.0 || s["packs_mounted"] != 0.0 {
		t.Errorf("back from two: %v", s)
	}
	if s = syncSummary(t, local, "from", back.repo); s["copied"] != 0.0 || s["skipped"] != 2.0 {
		t.Errorf("local from back: %v", s)
	}

	want := filepath.Join(t.TempDir(), "want")
	local.mustAt("restore", "latest", "-to", want)
	for _, h := range []*harness{one, two, back} {
		h.checkReadData("after sync to " + h.repo)
		ls := h.mustAt("ls")
		if n := strings.Count(ls, "\n"); n != 2 || !strings.Contains(ls, "[first]") {
			t.Errorf("%s lists %d snapshots: %s", h.repo, n, ls)
		}
		got := filepath.Join(t.TempDir(), "got")
		h.mustAt("restore", "latest", "-to", got)
		testutil.CompareTrees(t, want, got)
	}
}

// A sync killed mid-way (kill -9) and run again sends only the rest: what
// the first run's packs brought is not uploaded again.
func TestSyncResumes(t *testing.T) {
	testutil.SkipInShort(t, "a sync of 48 MiB through a slow proxy")
	reg := testregistry.StartRegistry(t, testregistry.RegistryOptions{Kind: testregistry.Distribution})
	// Every request waits 200-500 ms, so that the sync takes long enough
	// to be killed in the middle.
	proxy := testregistry.StartFaultProxy(t, reg.URL, testregistry.FaultOptions{Rate: 1, Kinds: []testregistry.FaultKind{testregistry.FaultSlow}})
	local := newHarness(t)
	local.create()
	local.backup(bigTree(t, 48), "-pack-size", "1")
	dst := *local
	dst.repo = proxy.Location("resume")
	dst.mustAt("create", "-pack-size", "1")

	proxy.Reset()
	const total = 48 << 20
	sync := binaryCmd(t, local, "-reference-within", "1s", "at", local.repo, "sync", "to", dst.repo)
	var stderr bytes.Buffer
	sync.Stderr = &stderr
	if err := sync.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Minute)
	for uploaded(proxy) < total/2 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	sync.Process.Signal(syscall.SIGKILL)
	sync.Wait()
	first := uploaded(proxy)
	if first < total/2 || first > total*9/10 {
		t.Fatalf("the first sync uploaded %d of %d bytes before it was killed: not mid-way (%s)", first, total, stderr.String())
	}
	if r := dst.mustAt("ls"); r != "" {
		t.Fatalf("a killed sync left a snapshot: %q", r)
	}

	proxy.SetRate(0)
	proxy.Reset()
	s := syncSummary(t, local, "to", dst.repo)
	second := uploaded(proxy)
	t.Logf("uploaded %d bytes before the kill, %d after, of %d", first, second, total)
	// What was in flight at the kill, and what was uploaded but not yet
	// referenced (-reference-within 1s), is sent again: a few packs.
	if second > total-first+16<<20 {
		t.Errorf("the resumed sync uploaded %d bytes after %d of %d: more than the rest", second, first, total)
	}
	if s["copied"] != 1.0 {
		t.Errorf("resumed sync: %v", s)
	}
	dst.checkReadData("after a resumed sync")
	want, got := filepath.Join(t.TempDir(), "want"), filepath.Join(t.TempDir(), "got")
	local.mustAt("restore", "latest", "-to", want)
	dst.mustAt("restore", "latest", "-to", got)
	testutil.CompareTrees(t, want, got)
}

// Bad sync and create -from commands fail with one line and their exit
// code, and write nothing.
func TestSyncBadInputs(t *testing.T) {
	h := newHarness(t)
	h.create()
	h.backup(sourceTree(t))
	other := *h
	other.repo = filepath.Join(t.TempDir(), "other")
	other.env = map[string]string{"COFFER_PASSPHRASE": "another passphrase", "COFFER_CACHE_DIR": h.env["COFFER_CACHE_DIR"]}
	other.create()
	missing := filepath.Join(t.TempDir(), "missing")

	wantOneLineError(t, h.at("sync"), ExitUsage, "to <store>")
	wantOneLineError(t, h.at("sync", other.repo), ExitUsage, "to <store>")
	wantOneLineError(t, h.at("sync", "to", h.repo), ExitUsage, "this repository")
	wantOneLineError(t, h.at("sync", "to", missing), ExitNoRepository, "create")
	wantOneLineError(t, h.at("sync", "to", other.repo), ExitWrongPassword, "-other-passphrase-file")
	wantOneLineError(t, h.at("sync", "ffffffff", "to", other.repo), ExitWrongPassword)
	fresh := filepath.Join(t.TempDir(), "fresh")
	wantOneLineError(t, h.run("at", fresh, "create", "-from", missing), ExitNoRepository, missing)
	for _, p := range []string{missing, fresh} {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("create -from a missing repository left %s behind", p)
		}
	}

	h.env["COFFER_OTHER_PASSPHRASE"] = "another passphrase"
	wantOneLineError(t, h.at("sync", "ffffffff", "to", other.repo), ExitNoSnapshot, "ffffffff")
	if out := other.mustAt("ls"); out != "" {
		t.Errorf("failed syncs stored snapshots: %q", out)
	}
	if out := h.mustAt("sync", "to", other.repo); !strings.Contains(out, "1 snapshot copied") {
		t.Errorf("sync with COFFER_OTHER_PASSPHRASE: %q", out)
	}
	file := filepath.Join(t.TempDir(), "pw")
	os.WriteFile(file, []byte("wrong\n"), 0o600)
	wantOneLineError(t, h.run("-other-passphrase-file", file, "at", h.repo, "sync", "from", other.repo), ExitWrongPassword)
}

// Mounts where the registry asks for credentials: registry 2.8 with
// token auth (the token must grant pull on the source repository and
// push on the destination) and Distribution with TLS and basic auth.
// Every pack is mounted, and the copy restores and checks clean.
func TestSyncMountWithAuth(t *testing.T) {
	for _, opt := range []testregistry.RegistryOptions{
		{Kind: testregistry.Registry28, Auth: testregistry.AuthToken},
		{Kind: testregistry.Distribution, TLS: true, Auth: testregistry.AuthBasic},
	} {
		t.Run(opt.Kind.String()+"/"+opt.Auth.String(), func(t *testing.T) {
			reg := testregistry.StartRegistry(t, opt)
			one := ociHarness(t, reg, "team/one")
			two := *one
			two.repo = reg.Location("team/two")
			run := func(h *harness, args ...string) string {
				t.Helper()
				r := h.run(withCA(reg, append([]string{"at", h.repo}, args...)...)...)
				if r.code != 0 {
					t.Fatalf("%v: exit %d: %s", args, r.code, r.stderr)
				}
				return r.stdout
			}
			src := sourceTree(t)
			run(one, "create")
			run(one, "backup", src)
			run(&two, "create", "-from", one.repo)
			out := run(one, "sync", "to", two.repo)
			m := regexp.MustCompile(`(\d+) packs? copied whole \((\d+) mounted\)`).FindStringSubmatch(out)
			if m == nil || m[1] == "0" || m[1] != m[2] || !strings.Contains(out, "1 snapshot copied") {
				t.Fatalf("sync on one registry did not mount every pack: %q", out)
			}
			if out := run(&two, "check", "-read-data"); !strings.Contains(out, "no errors were found") {
				t.Errorf("check of the mounted copy: %s", out)
			}
			got := filepath.Join(t.TempDir(), "got")
			run(&two, "restore", "latest", "-to", got)
			testutil.CompareTrees(t, src, got)
		})
	}
}
