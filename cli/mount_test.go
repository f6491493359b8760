//go:build linux

package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cofferhq/coffer/internal/testregistry"
	"github.com/cofferhq/coffer/internal/testutil"
)

// requireFUSE skips (loudly; in CI it fails) a test that mounts, where
// the kernel's FUSE device or the right to mount is missing.
func requireFUSE(t *testing.T) {
	t.Helper()
	testutil.SkipInShort(t, "mounts a FUSE file system")
	if _, err := os.Stat("/dev/fuse"); err != nil {
		testutil.SkipLoudly(t, "needs /dev/fuse: "+err.Error())
	}
	if os.Geteuid() != 0 {
		if _, err := exec.LookPath("fusermount3"); err != nil {
			testutil.SkipLoudly(t, "needs root or fusermount3 (apt install fuse3) to mount")
		}
	}
}

// mounted is a `coffer mount` running in-process.
type mounted struct {
	dir    string
	cancel context.CancelFunc
	done   chan result
}

// mount starts `coffer at <repo> mount [flags] DIR` on a new directory
// and returns once the file system serves.
func (h *harness) mount(t *testing.T, flags ...string) *mounted {
	t.Helper()
	m := &mounted{dir: filepath.Join(t.TempDir(), "mnt"), done: make(chan result, 1)}
	if err := os.Mkdir(m.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	m.cancel = cancel
	args := append(append([]string{"at", h.repo, "mount"}, flags...), m.dir)
	go func() {
		var stdout, stderr bytes.Buffer
		code := Main(ctx, Env{Args: args, Stdin: strings.NewReader(""), Stdout: &stdout, Stderr: &stderr,
			Getenv: func(k string) string { return h.env[k] }})
		m.done <- result{stdout.String(), stderr.String(), code}
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-m.done:
		case <-time.After(10 * time.Second):
			exec.Command("umount", "-l", m.dir).Run()
		}
	})
	for deadline := time.Now().Add(20 * time.Second); ; {
		if _, err := os.Lstat(filepath.Join(m.dir, "snapshots")); err == nil {
			settlePoll(t, m.dir)
			return m
		}
		select {
		case r := <-m.done:
			t.Fatalf("mount ended before serving: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("mount did not serve within 20s")
		}
	}
}

// settlePoll has the kernel learn that the mount at dir answers no poll
// requests, before this process, which serves it, opens a file on it.
//
// os.Open registers every file with the runtime's epoll, and on a FUSE
// file epoll_ctl sends the server a POLL request, waited for while the
// thread keeps its P. Should a collection start stopping the world then,
// it waits for that thread, which waits for the server, which cannot run
// (seen once in CI: the collector in gcMarkDone, the test in epoll_ctl,
// for 45 minutes). go-fuse's fs.Mount does the same as this, but its own
// goroutine may still be on the way when the mount first answers. poll,
// a system call that gives up the P, on go-fuse's file for it is
// answered ENOSYS, after which the kernel sends this mount no POLL.
func settlePoll(t *testing.T, dir string) {
	t.Helper()
	fd, err := unix.Open(filepath.Join(dir, ".go-fuse-epoll-hack"), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("opening go-fuse's poll file on the mount: %v", err)
	}
	defer unix.Close(fd)
	_, _ = unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}, 0)
}

// stop ends the mount by ctx (Ctrl-C) and returns its result.
func (m *mounted) stop(t *testing.T) result {
	t.Helper()
	m.cancel()
	return m.wait(t)
}

func (m *mounted) wait(t *testing.T) result {
	t.Helper()
	select {
	case r := <-m.done:
		m.done <- r // for Cleanup
		return r
	case <-time.After(20 * time.Second):
		t.Fatal("mount did not end within 20s")
	}
	return result{}
}

// snapshotDir returns the name under snapshots/ of the snapshot with the
// short id.
func snapshotDir(t *testing.T, mnt, short string) string {
	t.Helper()
	names, err := os.ReadDir(filepath.Join(mnt, "snapshots"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range names {
		if strings.HasSuffix(e.Name(), "-"+short) {
			if !regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ-[0-9a-f]{8}$`).MatchString(e.Name()) {
				t.Errorf("snapshot directory %q is not named <time>-<id>", e.Name())
			}
			return e.Name()
		}
	}
	t.Fatalf("snapshots/ has no directory for %s: %v", short, names)
	return ""
}

// wantUnmounted asserts that nothing is mounted on dir any more, that it
// is empty, and that no goroutine of go-fuse is left serving.
func wantUnmounted(t *testing.T, dir string) {
	t.Helper()
	mounts, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(mounts), " "+dir+" ") {
		t.Errorf("%s is still mounted", dir)
	}
	if names, err := os.ReadDir(dir); err != nil || len(names) != 0 {
		t.Errorf("mount point after unmounting: %v, %v", names, err)
	}
	var stacks string
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		buf := make([]byte, 1<<20)
		stacks = string(buf[:runtime.Stack(buf, true)])
		if !strings.Contains(stacks, "hanwen/go-fuse") && !strings.Contains(stacks, "coffer/mount.") {
			return
		}
	}
	t.Errorf("goroutines of the mount are left:\n%s", stacks)
}

// A mounted snapshot is the backed-up tree: diff -r finds nothing,
// metadata is as recorded (CompareTrees: modes, owners, mtimes, sizes,
// symlinks, hard links, xattrs, devices), 1,000 random reads match the
// source, and the hosts/, tags/ and latest views name the right
// snapshots. Ctrl-C (ctx) unmounts, exit 0, nothing left serving.
func TestMountMatchesSource(t *testing.T) {
	requireFUSE(t)
	h := newHarness(t)
	h.create()
	src := filepath.Join(t.TempDir(), "src")
	man := testutil.GenerateTree(t, src, testutil.TreeOptions{Seed: 14, Files: 80, LargeFileSize: 6 << 20})
	first := h.backup("-tag", "daily", "-host", "alpha", src)
	second := h.backup("-tag", "weekly", "-host", "beta", src)
	runtime.SetDefaultGOMAXPROCS()
	procs := runtime.GOMAXPROCS(0)
	m := h.mount(t)
	if got := runtime.GOMAXPROCS(0); got != 2*procs {
		t.Errorf("GOMAXPROCS while mounted = %d, want twice the default %d (moreProcs)", got, procs)
	}
	if os.Geteuid() == 0 {
		// As 128 KiB, tar waits on a round trip per 128 KiB. The mount
		// serves (h.mount sees snapshots/) a moment before it raises it.
		got := readAheadKB(t, m.dir)
		for deadline := time.Now().Add(5 * time.Second); got != 1024 && time.Now().Before(deadline); {
			time.Sleep(10 * time.Millisecond)
			got = readAheadKB(t, m.dir)
		}
		if got != 1024 {
			t.Errorf("the mount's read_ahead_kb is %d, want 1024", got)
		}
	}

	snap := filepath.Join(m.dir, "snapshots", snapshotDir(t, m.dir, first))
	diffR(t, src, snap)
	testutil.CompareTreesWith(t, src, snap, testutil.CompareOptions{NotSparse: true})

	var files []string
	for _, p := range man.Paths {
		if fi, err := os.Lstat(filepath.Join(src, p)); err == nil && fi.Mode().IsRegular() && fi.Size() > 0 {
			files = append(files, p)
		}
	}
	rng := rand.New(rand.NewPCG(14, 2))
	for i := range 1000 {
		p := files[rng.IntN(len(files))]
		if i%3 == 0 {
			p = man.LargeFile // the multi-chunk file gets a share of its own
		}
		want, err := os.ReadFile(filepath.Join(src, p))
		if err != nil {
			t.Fatal(err)
		}
		off := rng.Int64N(int64(len(want)))
		n := 1 + rng.IntN(min(len(want)-int(off), 3<<20))
		got := make([]byte, n)
		f, err := os.Open(filepath.Join(snap, p))
		if err != nil {
			t.Fatal(err)
		}
		k, err := f.ReadAt(got, off)
		f.Close()
		if err != nil && !(err == io.EOF && k == n) {
			t.Fatalf("read %d: %s at %d+%d: %v", i, p, off, n, err)
		}
		if !bytes.Equal(got, want[off:off+int64(n)]) {
			t.Fatalf("read %d: %s at %d+%d differs from the source", i, p, off, n)
		}
	}

	snap2 := snapshotDir(t, m.dir, second)
	links := map[string]string{
		"latest":             "snapshots/" + snap2,
		"hosts/beta/latest":  snap2,
		"hosts/alpha/latest": snapshotDir(t, m.dir, first),
		"tags/weekly/latest": snap2,
		"tags/daily/latest":  snapshotDir(t, m.dir, first),
	}
	for link, want := range links {
		if got, err := os.Readlink(filepath.Join(m.dir, link)); err != nil || got != want {
			t.Errorf("%s -> %q, %v; want %q", link, got, err, want)
		}
	}
	for _, view := range []string{"hosts/alpha", "tags/daily"} {
		names := dirNames(t, filepath.Join(m.dir, view))
		if want := []string{snapshotDir(t, m.dir, first), "latest"}; !slices.Equal(names, want) {
			t.Errorf("%s holds %v, want %v", view, names, want)
		}
	}
	if names, want := dirNames(t, m.dir), []string{"hosts", "latest", "snapshots", "tags"}; !slices.Equal(names, want) {
		t.Errorf("the mount's top holds %v, want %v", names, want)
	}
	// The views' snapshot directories are the snapshot, as is latest.
	testutil.CompareTreesWith(t, src, filepath.Join(m.dir, "tags", "weekly", "latest")+"/", testutil.CompareOptions{NotSparse: true})

	if err := os.WriteFile(filepath.Join(snap, "new"), nil, 0o644); !errors.Is(err, syscall.EROFS) {
		t.Errorf("creating a file in the mount: %v, want EROFS", err)
	}

	r := m.stop(t)
	if r.code != 0 || !strings.Contains(r.stdout, "2 snapshots") {
		t.Errorf("mount stopped by Ctrl-C: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	wantUnmounted(t, m.dir)
}

// A program that reads files and lists a directory (tar, cp -r) finds
// the directory's small files in the kernel's cache once its listing
// has ended, before it closes it: reading them sends coffer no READ
// (-debug logs every request). Rewinding the listing lists it again.
func TestMountListingPushesSmallFiles(t *testing.T) {
	requireFUSE(t)
	h := newHarness(t)
	h.create()
	src := t.TempDir()
	want := map[string][]byte{"a/first": testutil.RandomBytes(1, 3000)}
	for i := range 30 {
		want[fmt.Sprintf("b/f%02d", i)] = testutil.RandomBytes(int64(2+i), 1+i*250)
	}
	for p, b := range want {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(src, p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(src, p), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	h.backup(src)
	m := h.mount(t, "-debug")
	snap := filepath.Join(m.dir, "latest")

	// A file read: from now on the mount serves a reading program.
	if got, err := os.ReadFile(filepath.Join(snap, "a", "first")); err != nil || !bytes.Equal(got, want["a/first"]) {
		t.Fatalf("reading a/first: %v", err)
	}
	d, err := os.Open(filepath.Join(snap, "b"))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	names, err := d.Readdirnames(-1) // to the end: the kernel asks past it twice
	if err != nil || len(names) != 30 {
		t.Fatalf("listing b: %d names, %v", len(names), err)
	}
	// Marks the log: what follows are the reads of b's files.
	if _, err := os.Lstat(filepath.Join(snap, "b", "marker-before-reads")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the marker lookup: %v", err)
	}
	for _, name := range names {
		got, err := os.ReadFile(filepath.Join(snap, "b", name))
		if err != nil || !bytes.Equal(got, want["b/"+name]) {
			t.Fatalf("b/%s differs from the source (%v)", name, err)
		}
	}
	if _, err := d.Seek(0, io.SeekStart); err != nil {
		t.Fatalf("rewinding the listing: %v", err)
	}
	again, err := d.Readdirnames(-1)
	if slices.Sort(names); err != nil || !slices.Equal(slices.Sorted(slices.Values(again)), names) {
		t.Errorf("the listing read again after rewinding it: %d names, %v; want the %d of the first", len(again), err, len(names))
	}
	d.Close()

	r := m.stop(t)
	// settlePoll's work: no file the test opened on the mount was polled,
	// only go-fuse's file for it (inode 2^64-1).
	for _, poll := range regexp.MustCompile(`(?m)rx \d+: POLL n(\d+)`).FindAllStringSubmatch(r.stderr, -1) {
		if poll[1] != strconv.FormatUint(^uint64(0), 10) {
			t.Errorf("the mount was sent a POLL for inode %s; want none but for go-fuse's poll file", poll[1])
		}
	}
	_, after, ok := strings.Cut(r.stderr, "marker-before-reads")
	if !ok {
		t.Fatalf("the -debug log has no lookup of the marker:\n%.2000s", r.stderr)
	}
	if reads := regexp.MustCompile(`(?m)rx \d+: READ `).FindAllString(after, -1); len(reads) > 0 {
		t.Errorf("reading the 30 listed files sent %d READs to coffer, want none (pushed into the kernel's cache before the listing ended)", len(reads))
	}
}

// diffR runs diff -r, which must find no difference. GNU diff does not
// compare special files and says so even when both are of one type: those
// lines are no difference (CompareTrees checks their types).
func diffR(t *testing.T, want, got string) {
	t.Helper()
	out, err := exec.Command("diff", "-r", "--no-dereference", want, got).CombinedOutput()
	same := regexp.MustCompile(`^File .* is a (fifo|socket|character special file|block special file) while file .* is a (fifo|socket|character special file|block special file)$`)
	var diffs []string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if m := same.FindStringSubmatch(line); line != "" && (m == nil || m[1] != m[2]) {
			diffs = append(diffs, line)
		}
	}
	if len(diffs) > 0 || (err != nil && len(out) == 0) {
		t.Errorf("diff -r %s %s: %v\n%s", want, got, err, strings.Join(diffs, "\n"))
	}
}

// readAheadKB returns the kernel's read-ahead for the mount at dir, in
// KiB: its backing device's setting.
func readAheadKB(t *testing.T, dir string) int {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(dir, &st); err != nil {
		t.Fatal(err)
	}
	path := fmt.Sprintf("/sys/class/bdi/%d:%d/read_ahead_kb", unix.Major(st.Dev), unix.Minor(st.Dev))
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return kb
}

func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// umount(8) of the mount point, with a file open and read before it, ends
// the command too: exit 0, nothing mounted or serving.
func TestMountUmountEnds(t *testing.T) {
	requireFUSE(t)
	h := newHarness(t)
	h.create()
	h.backup(sourceTree(t))
	m := h.mount(t)
	b, err := os.ReadFile(filepath.Join(m.dir, "latest", "LICENSE"))
	if err != nil || string(b) != licenseText {
		t.Fatalf("LICENSE through the mount: %q, %v", b, err)
	}
	if out, err := exec.Command("umount", m.dir).CombinedOutput(); err != nil {
		t.Fatalf("umount: %v: %s", err, out)
	}
	if r := m.wait(t); r.code != 0 {
		t.Errorf("mount after umount: exit %d, stderr %q", r.code, r.stderr)
	}
	wantUnmounted(t, m.dir)
}

// The coffer process, sent SIGINT as by Ctrl-C, unmounts and exits 0:
// no process is left, the mount point is empty.
func TestMountProcessInterrupt(t *testing.T) {
	requireFUSE(t)
	h := newHarness(t)
	h.create()
	h.backup(sourceTree(t))
	dir := filepath.Join(t.TempDir(), "mnt")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(testutil.CofferBinary(t), "at", h.repo, "mount", dir)
	for k, v := range h.env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		exec.Command("umount", "-l", dir).Run()
	})
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, err := os.Lstat(filepath.Join(dir, "latest")); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("mount did not serve within 20s: %s", stderr.String())
		}
	}
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("coffer mount after SIGINT: %v; stderr %s", err, stderr.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("coffer mount still runs 20s after SIGINT")
	}
	wantUnmounted(t, dir)
}

// A byte flipped in a data pack makes reads of the blobs it holds fail
// with EIO, as restore fails, and never return other bytes; the warning
// says why.
func TestMountTamperedPackIsEIO(t *testing.T) {
	requireFUSE(t)
	h := newHarness(t)
	h.create()
	src := t.TempDir()
	data := testutil.RandomBytes(3, 5<<20)
	if err := os.WriteFile(filepath.Join(src, "data.bin"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	h.backup(src)
	flipByte(t, largestPack(t, h.repo), 0.5)
	m := h.mount(t)
	f, err := os.Open(filepath.Join(m.dir, "latest", "data.bin"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sawEIO := false
	buf := make([]byte, 128<<10)
	for off := int64(0); off < int64(len(data)); off += int64(len(buf)) {
		n, err := f.ReadAt(buf, off)
		if errors.Is(err, syscall.EIO) {
			sawEIO = true
			continue
		}
		if err != nil && err != io.EOF {
			t.Fatalf("read at %d: %v, want EIO or data", off, err)
		}
		if !bytes.Equal(buf[:n], data[off:off+int64(n)]) {
			t.Fatalf("read at %d returned bytes that are not the file's", off)
		}
	}
	if !sawEIO {
		t.Error("no read failed, though a pack the file is stored in is damaged")
	}
	f.Close()
	r := m.stop(t)
	if r.code != 0 || !strings.Contains(r.stderr, "data.bin") || !strings.Contains(r.stderr, "pack") {
		t.Errorf("mount: exit %d, stderr %q, want a warning naming the file and the pack", r.code, r.stderr)
	}
}

// largestPack returns the largest pack file of a local repository: with
// one big file backed up, a data pack.
func largestPack(t *testing.T, repoDir string) string {
	t.Helper()
	packs, _ := filepath.Glob(filepath.Join(repoDir, "packs", "*", "*"))
	best, size := "", int64(-1)
	for _, p := range packs {
		if fi, err := os.Stat(p); err == nil && fi.Size() > size {
			best, size = p, fi.Size()
		}
	}
	if best == "" {
		t.Fatal("repository has no packs")
	}
	return best
}

// A mount point that is missing, not a directory or not empty is refused
// in one line saying what to do, exit 2, before the repository is opened.
func TestMountRefusesBadMountpoint(t *testing.T) {
	h := newHarness(t) // no repository: the check comes first
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	full := filepath.Join(dir, "full")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(full, "inside"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, dir string
		want      []string
	}{
		{"missing", filepath.Join(dir, "nope"), []string{"does not exist", "mkdir"}},
		{"file", file, []string{"is not a directory", "empty directory"}},
		{"not empty", full, []string{"is not empty", "inside", "empty directory"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := h.at("mount", c.dir)
			wantOneLineError(t, r, ExitUsage, append([]string{c.dir}, c.want...)...)
		})
	}
	wantOneLineError(t, h.at("mount"), ExitUsage, "one directory")
}

// A repository on a registry mounts the same: diff -r of the mounted
// snapshot against the source is empty.
func TestMountOCI(t *testing.T) {
	requireFUSE(t)
	reg := testregistry.StartRegistry(t, testregistry.RegistryOptions{Kind: testregistry.Distribution})
	h := ociHarness(t, reg, "mount")
	h.create()
	src := sourceTree(t)
	h.backup(src)
	m := h.mount(t)
	diffR(t, src, filepath.Join(m.dir, "latest")+"/")
	if r := m.stop(t); r.code != 0 {
		t.Errorf("mount: exit %d, stderr %q", r.code, r.stderr)
	}
	wantUnmounted(t, m.dir)
}

// Ctrl-C while a file in the mount is open detaches the mount (nothing
// new can be opened) and says so; the command ends, exit 0, once the file
// is closed, with nothing left mounted or serving.
func TestMountBusyCtrlC(t *testing.T) {
	requireFUSE(t)
	h := newHarness(t)
	h.create()
	h.backup(sourceTree(t))
	m := h.mount(t)
	f, err := os.Open(filepath.Join(m.dir, "latest", "LICENSE"))
	if err != nil {
		t.Fatal(err)
	}
	m.cancel()
	select {
	case r := <-m.done:
		f.Close()
		t.Fatalf("mount ended with a file open in it: exit %d, stderr %q", r.code, r.stderr)
	case <-time.After(500 * time.Millisecond):
	}
	b := make([]byte, len(licenseText))
	if n, err := f.Read(b); err != nil || string(b[:n]) != licenseText {
		t.Errorf("the open file after Ctrl-C: %q, %v", b[:n], err)
	}
	f.Close()
	r := m.wait(t)
	if r.code != 0 || !strings.Contains(r.stderr, "busy") {
		t.Errorf("mount: exit %d, stderr %q, want exit 0 and a warning that it was busy", r.code, r.stderr)
	}
	wantUnmounted(t, m.dir)
}
