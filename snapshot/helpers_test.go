//go:build linux

package snapshot

// Shared fixtures of the snapshot package's end-to-end tests: repositories
// on both kinds of store, backup and restore shorthands, progress
// recorders, and the privilege juggling some tests need as root.

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/cofferhq/coffer/internal/testutil"
	"github.com/cofferhq/coffer/repo"
	"github.com/cofferhq/coffer/storage"
	"github.com/cofferhq/coffer/storage/local"
	"github.com/cofferhq/coffer/storage/mem"
)

const testPassphrase = "coffer snapshot test"

// testPackSize keeps packs small so that a few MiB of test data spread over
// several packs.
const testPackSize = 1 << 20

// storeKinds are the stores the end-to-end tests run against. Each open
// returns a new, empty (not yet created) store.
var storeKinds = []struct {
	name string
	open func(t *testing.T) storage.Store
}{
	{"mem", func(t *testing.T) storage.Store { return mem.New() }},
	{"fs", func(t *testing.T) storage.Store { return newFSStore(t, filepath.Join(t.TempDir(), "repo")) }},
}

// newFSStore returns a local-directory store at dir (not yet created).
func newFSStore(t *testing.T, dir string) *local.Store {
	t.Helper()
	st, err := local.Open(t.Context(), dir)
	if err != nil {
		t.Fatal(err)
	}
	return st.(*local.Store)
}

// newRepo creates a repository in st.
func newRepo(t *testing.T, st storage.Store) *repo.Repository {
	t.Helper()
	r, err := repo.Create(t.Context(), st, []byte(testPassphrase), repo.CreateOptions{KDF: repo.TestKDF, PackSize: testPackSize})
	if err != nil {
		t.Fatalf("creating repository: %v", err)
	}
	return r
}

// newSmallChunkRepo creates a repository in st that cuts content into
// chunks of 64-256 KiB instead of the default 0.5-8 MiB, for tests that
// need a file of a few MiB to span many chunks and packs whatever the
// repository's random chunker key.
func newSmallChunkRepo(t *testing.T, st storage.Store) *repo.Repository {
	t.Helper()
	r, err := repo.Create(t.Context(), st, []byte(testPassphrase), repo.CreateOptions{
		KDF: repo.TestKDF, PackSize: testPackSize, ChunkMin: 64 << 10, ChunkAvg: 128 << 10, ChunkMax: 256 << 10})
	if err != nil {
		t.Fatalf("creating repository: %v", err)
	}
	return r
}

// reopen opens the repository in st afresh and loads its index, as the
// next run of coffer would: nothing is shared with the handle that wrote it.
func reopen(t *testing.T, st storage.Store) *repo.Repository {
	t.Helper()
	r, err := repo.Open(t.Context(), st, func() ([]byte, error) { return []byte(testPassphrase), nil }, repo.OpenOptions{})
	if err != nil {
		t.Fatalf("opening repository: %v", err)
	}
	if err := r.LoadIndex(t.Context()); err != nil {
		t.Fatalf("loading index: %v", err)
	}
	return r
}

// backup backs up opt.Paths (src when opt is zero) and fails the test on
// error.
func backup(t *testing.T, r *repo.Repository, src string, opt BackupOptions) *Snapshot {
	t.Helper()
	if len(opt.Paths) == 0 {
		opt.Paths = []string{src}
	}
	sn, err := Backup(t.Context(), r, opt)
	if err != nil {
		t.Fatalf("backup of %v: %v", opt.Paths, err)
	}
	return sn
}

// restore restores path p of sn into target and fails the test on error.
func restore(t *testing.T, r *repo.Repository, sn *Snapshot, p, target string) RestoreSummary {
	t.Helper()
	sum, err := Restore(t.Context(), r, sn, p, RestoreOptions{Target: target})
	if err != nil {
		t.Fatalf("restore of %q into %s: %v", p, target, err)
	}
	return sum
}

// roundTrip is what backupAndRestore did.
type roundTrip struct {
	r      *repo.Repository // reopened after the backup
	saved  *Snapshot        // as Backup returned it
	loaded *Snapshot        // as found in the reopened repository
	sum    RestoreSummary
	warns  []warning // of the restore
	// progress recorded the restore's progress
	progress *progressRecorder
}

// backupAndRestore backs src up into a new repository in st, reopens the
// repository, finds the snapshot by an 8-digit id prefix and restores all
// of it into dst.
func backupAndRestore(t *testing.T, st storage.Store, src, dst string) roundTrip {
	t.Helper()
	rt := roundTrip{saved: backup(t, newRepo(t, st), src, BackupOptions{})}
	rt.r = reopen(t, st)
	var err error
	if rt.loaded, err = Find(t.Context(), rt.r, rt.saved.ID.String()[:8]); err != nil {
		t.Fatalf("finding the snapshot just made: %v", err)
	}
	rec := &progressRecorder{}
	if rt.sum, err = Restore(t.Context(), rt.r, rt.loaded, "", RestoreOptions{Target: dst, Progress: rec}); err != nil {
		t.Fatalf("restore into %s: %v", dst, err)
	}
	rt.warns = rec.warnings()
	rt.progress = rec
	return rt
}

// listSnapshot returns every node below the snapshot's base directory (the
// backed-up directory) by slash-separated path relative to it.
func listSnapshot(t *testing.T, r *repo.Repository, sn *Snapshot) map[string]*Node {
	t.Helper()
	base, _, err := Resolve(t.Context(), r, sn, "")
	if err != nil {
		t.Fatalf("resolving the snapshot's base: %v", err)
	}
	nodes := map[string]*Node{}
	err = Walk(t.Context(), r, "", base.Subtree, func(p string, n *Node) error {
		nodes[p] = n
		return nil
	})
	if err != nil {
		t.Fatalf("walking snapshot %s: %v", sn.ID.Short(), err)
	}
	return nodes
}

// sortedKeys returns the keys of m in order.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// storeBytes is the total size of every object in st.
func storeBytes(t *testing.T, st storage.Store) int64 {
	t.Helper()
	var total int64
	for _, kind := range storage.Kinds {
		err := st.List(t.Context(), kind, func(_ string, size int64) error {
			total += size
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return total
}

// writeFile writes data to path, making missing parents.
func writeFile(t *testing.T, path string, data []byte, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil { // past the umask
		t.Fatal(err)
	}
}

// treeCounts counts what a backup of root should report: regular files
// (every hard-link name), directories (root included), other entries, and
// the logical size of the regular files.
type treeCounts struct{ files, dirs, others, size int64 }

func countTree(t *testing.T, root string) treeCounts {
	t.Helper()
	var c treeCounts
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			c.dirs++
		case d.Type().IsRegular():
			fi, err := d.Info()
			if err != nil {
				return err
			}
			c.files++
			c.size += fi.Size()
		default:
			c.others++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// dirState describes everything below dir (type, mode, size, mtime,
// content, link target), so a test can prove an operation left it alone.
func dirState(t *testing.T, dir string) map[string]string {
	t.Helper()
	state := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		desc := fmt.Sprintf("st_mode=%#o size=%d mtime=%d.%09d ino=%d", st.Mode, st.Size, st.Mtim.Sec, st.Mtim.Nsec, st.Ino)
		switch {
		case d.Type().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			desc += fmt.Sprintf(" content=%q", b)
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			desc += " -> " + target
		}
		rel, _ := filepath.Rel(dir, p)
		state[rel] = desc
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return state
}

// sameFile reports differences between two regular files: content, mode,
// mtime, and that got is no less sparse than want (within 64 KiB).
func sameFile(t *testing.T, want, got string) {
	t.Helper()
	wb, err := os.ReadFile(want)
	if err != nil {
		t.Fatal(err)
	}
	gb, err := os.ReadFile(got)
	if err != nil {
		t.Errorf("restored file: %v", err)
		return
	}
	if !bytes.Equal(wb, gb) {
		t.Errorf("%s: content differs from %s (%d vs %d bytes)", got, want, len(gb), len(wb))
	}
	var ws, gs unix.Stat_t
	if err := unix.Lstat(want, &ws); err != nil {
		t.Fatal(err)
	}
	if err := unix.Lstat(got, &gs); err != nil {
		t.Fatal(err)
	}
	if ws.Mode != gs.Mode || ws.Mtim != gs.Mtim || ws.Uid != gs.Uid || ws.Gid != gs.Gid {
		t.Errorf("%s: st_mode %#o mtime %v owner %d:%d, want %#o %v %d:%d", got, gs.Mode, gs.Mtim, gs.Uid, gs.Gid, ws.Mode, ws.Mtim, ws.Uid, ws.Gid)
	}
	if gs.Blocks > ws.Blocks+128 { // 128 blocks of 512 bytes: 64 KiB
		t.Errorf("%s: %d blocks allocated, the original has %d: holes not kept", got, gs.Blocks, ws.Blocks)
	}
}

// flipByte inverts the bits of the byte at off in the file at path.
func flipByte(t *testing.T, path string, off int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatalf("reading byte %d of %s: %v", off, path, err)
	}
	b[0] ^= 0xff
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// packPath returns the file of a pack in the local store at repoDir.
func packPath(repoDir string, id repo.ID) string {
	name := id.String()
	return filepath.Join(repoDir, "packs", name[:2], name)
}

// warning is one Warn call recorded by a progressRecorder.
type warning struct {
	path string
	err  error
}

// progressRecorder records the warnings of a backup, a restore or a check.
// It implements BackupProgress and RestoreProgress and is safe for
// concurrent use, since both are called from several goroutines.
type progressRecorder struct {
	mu    sync.Mutex
	warns []warning
	// What Total said and what Processed added up to (restore).
	totalFiles, totalBytes int64
	files, bytes           int64
	// What Scanned added up to (backup), and in how many calls.
	scannedFiles, scannedBytes, scans int64
}

func (p *progressRecorder) Scanned(files, bytes int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.scannedFiles += files
	p.scannedBytes += bytes
	p.scans++
}

func (p *progressRecorder) Processed(files, bytes int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.files += files
	p.bytes += bytes
}

func (p *progressRecorder) Total(files, bytes int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.totalFiles, p.totalBytes = files, bytes
}

// checkDone fails the test unless what was processed is what the totals
// announced.
func (p *progressRecorder) checkDone(t *testing.T) {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.files != p.totalFiles || p.bytes != p.totalBytes || p.totalFiles == 0 {
		t.Errorf("progress: processed %d files, %d bytes; the totals said %d, %d", p.files, p.bytes, p.totalFiles, p.totalBytes)
	}
}

func (p *progressRecorder) Warn(path string, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.warns = append(p.warns, warning{path, err})
}

func (p *progressRecorder) warnings() []warning {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.warns)
}

var (
	_ BackupProgress  = (*progressRecorder)(nil)
	_ RestoreProgress = (*progressRecorder)(nil)
)

// nobodyUID is the user tests drop to as root to meet permission errors
// that root never sees.
const nobodyUID = 65534

// sharedTempDir returns a new directory under os.TempDir that any user
// may traverse, removed at the end of the test. t.TempDir's parent is
// private to its owner, so another user cannot reach into it.
func sharedTempDir(t *testing.T, pattern string) string {
	t.Helper()
	dir, err := os.MkdirTemp("", pattern)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// runTestAsNobody re-runs the test named name in a copy of this test binary
// as uid and gid 65534, with env added to the environment, and fails unless
// it passes. The copy lives in a directory nobody may execute from, since
// go test builds the binary into a private one (the approach of
// TestMetaCreateSpecialNeedsRoot).
func runTestAsNobody(t *testing.T, name string, env ...string) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		testutil.SkipLoudly(t, fmt.Sprintf("cannot find the test binary: %v", err))
	}
	data, err := os.ReadFile(exe)
	if err != nil {
		testutil.SkipLoudly(t, fmt.Sprintf("cannot copy the test binary: %v", err))
	}
	dir := sharedTempDir(t, "coffer-snapshot-exe-")
	copyExe := filepath.Join(dir, "snapshot.test")
	if err := os.WriteFile(copyExe, data, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(copyExe, "-test.run=^"+name+"$", "-test.count=1", "-test.v")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobodyUID, Gid: nobodyUID}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		if errors.Is(err, fs.ErrPermission) {
			testutil.SkipLoudly(t, fmt.Sprintf("cannot run as uid %d: %v", nobodyUID, err))
		}
		t.Fatalf("%s as uid %d: %v\n%s", name, nobodyUID, err, out)
	}
	if !bytes.Contains(out, []byte("--- PASS: "+name)) {
		t.Fatalf("%s as uid %d did not run:\n%s", name, nobodyUID, out)
	}
}

// chownTree gives everything below and including root to uid:gid.
func chownTree(t *testing.T, root string, uid, gid int) {
	t.Helper()
	err := filepath.WalkDir(root, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, gid)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// mountTmpfs mounts a tmpfs on dir with the given flags and options and
// unmounts it when the test ends (before t.TempDir removes dir, as cleanups
// run last-registered first). It skips the test loudly (fails it in CI) if
// the kernel refuses.
func mountTmpfs(t *testing.T, dir string, flags uintptr, data string) {
	t.Helper()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", flags, data); err != nil {
		testutil.SkipLoudly(t, fmt.Sprintf("cannot mount a tmpfs on %s (%v): needs root with CAP_SYS_ADMIN", dir, err))
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, 0); err != nil {
			t.Errorf("unmounting %s: %v", dir, err)
			_ = syscall.Unmount(dir, syscall.MNT_DETACH)
		}
	})
}

// fastTempDir returns a new empty directory for a test that creates many
// files. As root it mounts a tmpfs there, since creating inodes on some
// disks costs a millisecond each; elsewhere (or if mounting fails) it is
// a plain t.TempDir.
func fastTempDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if os.Geteuid() != 0 {
		return dir
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=256m,mode=0700"); err != nil {
		t.Logf("no tmpfs for %s (%v): using the disk", dir, err)
		return dir
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, 0); err != nil {
			t.Errorf("unmounting %s: %v", dir, err)
			_ = syscall.Unmount(dir, syscall.MNT_DETACH)
		}
	})
	return dir
}
