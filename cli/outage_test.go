//go:build linux

package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cofferhq/coffer/internal/testregistry"
	"github.com/cofferhq/coffer/internal/testutil"
)

// outageSource is a tree big enough, with 1 MiB packs, for a backup to
// make a few dozen uploads and a restore as many reads.
func outageSource(t *testing.T, seed int64) string {
	t.Helper()
	src := sourceTree(t)
	for i, name := range []string{"a.bin", "b.bin", "c.bin"} {
		if err := os.WriteFile(filepath.Join(src, name), testutil.RandomBytes(seed+int64(i), 8<<20), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return src
}

// waitUp waits for the proxy to listen again after an outage.
func waitUp(t *testing.T, p *testregistry.FaultProxy, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !p.Up() {
		if time.Now().After(deadline) {
			t.Fatalf("the proxy is still down after %s", within)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestOCIOutage: a registry host that refuses connections for 15 s in
// the middle of a backup, and again of a restore, and a registry that
// restarts behind a proxy answering 502 meanwhile: each command waits,
// tells the user, and completes with byte-identical results.
func TestOCIOutage(t *testing.T) {
	t.Parallel()
	reg := testregistry.StartRegistry(t, testregistry.RegistryOptions{Kind: testregistry.Distribution})
	proxy := testregistry.StartFaultProxy(t, reg.URL, testregistry.FaultOptions{})
	h := ociHarness(t, reg, "outage")
	h.repo = proxy.Location("outage")
	h.mustAt("create", "-pack-size", "1")

	const outage = 15 * time.Second
	src := outageSource(t, 1)
	proxy.Reset()
	proxy.At("PUT upload", 5, func() { proxy.Refuse(outage) })
	start := time.Now()
	r := h.at("backup", src)
	if r.code != 0 {
		t.Fatalf("backup through a %s outage: exit %d: %s", outage, r.code, r.stderr)
	}
	if took := time.Since(start); took < outage {
		t.Fatalf("backup took %s: the outage did not happen during it", took)
	}
	if !strings.Contains(r.stderr, "connection refused") || !strings.Contains(r.stderr, "retrying") {
		t.Errorf("backup through an outage told the user nothing about it: %q", r.stderr)
	}

	restored := t.TempDir()
	h.env["COFFER_CACHE_DIR"] = t.TempDir() // every read goes to the registry
	proxy.Reset()
	proxy.At("GET blob range", 5, func() { proxy.Refuse(outage) })
	start = time.Now()
	if r := h.at("restore", "latest", "-to", restored); r.code != 0 {
		t.Fatalf("restore through a %s outage: exit %d: %s", outage, r.code, r.stderr)
	}
	if took := time.Since(start); took < outage {
		t.Fatalf("restore took %s: the outage did not happen during it", took)
	}
	testutil.CompareTrees(t, src, restored)

	// The registry itself restarts on the same storage, 12 s down, while
	// the proxy in front of it answers 502: retried uploads must start
	// new upload sessions (resuming the old one ends in 416).
	src2 := outageSource(t, 10)
	proxy.Reset()
	proxy.At("PUT upload", 5, func() {
		reg.Stop()
		time.Sleep(12 * time.Second)
		reg.Start()
	})
	if r := h.at("backup", src2); r.code != 0 {
		t.Fatalf("backup through a registry restart behind a proxy: exit %d: %s", r.code, r.stderr)
	}
	if out := h.mustAt("ls"); strings.Count(out, "\n") != 2 {
		t.Errorf("after two backups, ls shows:\n%s", out)
	}
	restored2 := t.TempDir()
	h.mustAt("restore", "latest", "-to", restored2)
	testutil.CompareTrees(t, src2, restored2)
	h.checkReadData("after two outages")
}

// TestOCIOutageLongerThanRetryFor: a 2 minute outage with -retry-for 30s
// fails the backup cleanly (exit 1, naming the flag, no snapshot), and the
// next backup, once the registry is back, completes.
func TestOCIOutageLongerThanRetryFor(t *testing.T) {
	t.Parallel()
	reg := testregistry.StartRegistry(t, testregistry.RegistryOptions{Kind: testregistry.Distribution})
	proxy := testregistry.StartFaultProxy(t, reg.URL, testregistry.FaultOptions{})
	h := ociHarness(t, reg, "long-outage")
	h.repo = proxy.Location("long-outage")
	h.mustAt("create", "-pack-size", "1")
	first := sourceTree(t)
	h.backup(first)

	src := outageSource(t, 2)
	proxy.Reset()
	proxy.At("PUT upload", 5, func() { proxy.Refuse(2 * time.Minute) })
	start := time.Now()
	r := h.run("-retry-for", "30s", "at", h.repo, "backup", src)
	took := time.Since(start)
	// Notices and status lines come first; the error is the last line.
	lines := strings.Split(strings.TrimRight(r.stderr, "\n"), "\n")
	if last := lines[len(lines)-1]; r.code != ExitFailure || !strings.HasPrefix(last, "coffer: ") ||
		!strings.Contains(last, "-retry-for") || !strings.Contains(last, "connection refused") {
		t.Errorf("backup through an outage longer than -retry-for: exit %d, last line %q; want exit %d and an error naming the cause and -retry-for\n%s",
			r.code, last, ExitFailure, r.stderr)
	}
	if took < 30*time.Second || took > 90*time.Second {
		t.Errorf("backup gave up after %s, want about the 30s of -retry-for", took)
	}

	waitUp(t, proxy, 3*time.Minute)
	if out := h.mustAt("ls"); strings.Count(out, "\n") != 1 || !strings.Contains(out, first) {
		t.Errorf("after a failed backup, ls shows more than the first snapshot:\n%s", out)
	}
	h.backup(src)
	restored := t.TempDir()
	h.mustAt("restore", "latest", "-to", restored)
	testutil.CompareTrees(t, src, restored)
	h.checkReadData("after a failed backup and the next one")
}

// TestOCIOnlineGC: a registry that deletes blobs no tag has reached 20 s
// after their upload (zot's and Harbor's online GC), behind a slow link:
// a 300 MiB backup with -reference-within 10s references every pack in
// time, loses none, and check -read-data passes.
func TestOCIOnlineGC(t *testing.T) {
	t.Parallel()
	const grace = 20 * time.Second
	reg := testregistry.StartRegistry(t, testregistry.RegistryOptions{Kind: testregistry.Distribution, Delete: true})
	front := testregistry.StartGCFront(t, reg, "online-gc", testregistry.GCFrontOptions{Grace: grace, UploadRate: 1536 << 10})
	h := ociHarness(t, reg, "online-gc")
	h.repo = front.Location()
	h.mustAt("create")
	src := t.TempDir()
	for i := range 30 {
		if err := os.WriteFile(filepath.Join(src, fmt.Sprintf("part-%02d", i)), testutil.RandomBytes(int64(100+i), 10<<20), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	if r := h.run("-reference-within", "10s", "at", h.repo, "backup", src); r.code != 0 {
		t.Fatalf("backup under online GC: exit %d: %s", r.code, r.stderr)
	}
	took := time.Since(start)
	t.Logf("backup of 300 MiB took %s; %d uploads; the longest wait for a reference %s; reaped %d",
		took, front.Uploads(), front.MaxLag(), len(front.Reaped()))
	if took < 2*grace {
		t.Fatalf("the backup took %s: too fast for the test to show anything (packs wait for the end of a backup otherwise)", took)
	}
	if front.Uploads() < 10 {
		t.Errorf("%d uploads: the test needs many packs", front.Uploads())
	}
	if lag := front.MaxLag(); lag > grace {
		t.Errorf("an upload waited %s for a reference, more than the %s grace time", lag, grace)
	}
	if reaped := front.Reaped(); len(reaped) > 0 {
		t.Errorf("the GC front deleted %d blobs coffer uploaded: %v", len(reaped), reaped)
	}
	h.checkReadData("under online GC")
	restored := t.TempDir()
	h.mustAt("restore", "latest", "-to", restored)
	testutil.CompareTrees(t, src, restored)
}

// TestOCIGCReapsBeforeReference: a registry whose online GC gives
// unreferenced uploads less time than the backup waits to reference them
// (a 10 s grace, -reference-within 5m) deletes packs the backup uploaded.
// The refs manifest that would reference them is refused for missing
// layers; coffer uploads them again from the files it held, says so, and
// the backup completes; check -read-data passes and the restore is
// identical.
func TestOCIGCReapsBeforeReference(t *testing.T) {
	t.Parallel()
	const grace = 10 * time.Second
	reg := testregistry.StartRegistry(t, testregistry.RegistryOptions{Kind: testregistry.Distribution, Delete: true})
	front := testregistry.StartGCFront(t, reg, "gc-reaps", testregistry.GCFrontOptions{Grace: grace, UploadRate: 256 << 10})
	h := ociHarness(t, reg, "gc-reaps")
	h.repo = front.Location()
	h.mustAt("create", "-pack-size", "1")
	src := t.TempDir()
	for i := range 4 {
		if err := os.WriteFile(filepath.Join(src, fmt.Sprintf("part-%d", i)), testutil.RandomBytes(int64(200+i), 4<<20), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	r := h.run("-reference-within", "5m", "at", h.repo, "backup", src)
	t.Logf("%d uploads; reaped %d", front.Uploads(), len(front.Reaped()))
	if r.code != 0 {
		t.Fatalf("backup under a GC shorter than its reference window: exit %d: %s", r.code, r.stderr)
	}
	if len(front.Reaped()) == 0 {
		t.Fatalf("the GC front reaped nothing: the test shows nothing (stderr: %s)", r.stderr)
	}
	if !strings.Contains(r.stderr, "uploaded them again") {
		t.Errorf("no notice that lost uploads were uploaded again:\n%s", r.stderr)
	}
	h.checkReadData("after uploads lost to online GC")
	restored := t.TempDir()
	h.mustAt("restore", "latest", "-to", restored)
	testutil.CompareTrees(t, src, restored)
}
