//go:build linux

package snapshot

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/cofferhq/coffer/storage/mem"
)

// Files whose stat size is 0 but that have content when read, as in
// procfs, are read to EOF and stored with what was read.
func TestBackupZeroSizeFileWithContent(t *testing.T) {
	t.Parallel()
	const proc = "/proc/version"
	fi, err := os.Stat(proc)
	if err != nil || fi.Size() != 0 {
		t.Skipf("%s: size %v, %v; need a file whose stat size is 0", proc, fi, err)
	}
	want, err := os.ReadFile(proc)
	if err != nil || len(want) == 0 {
		t.Skipf("%s reads as %q, %v", proc, want, err)
	}
	// A genuinely empty file still reads as empty.
	empty := filepath.Join(t.TempDir(), "empty")
	writeFile(t, empty, nil, 0o644)

	st := mem.New()
	rec := &progressRecorder{}
	sn := backup(t, newRepo(t, st), "", BackupOptions{Paths: []string{proc, "/proc/self/status", empty}, Progress: rec})
	if sn.Summary.Errors != 0 || len(rec.warnings()) != 0 {
		t.Fatalf("backup: %d errors, warnings %v", sn.Summary.Errors, rec.warnings())
	}
	r := reopen(t, st)
	got, n := catPath(t, sn, proc, r)
	if !bytes.Equal(got, want) || n.Size != int64(len(want)) {
		t.Errorf("%s stored as %d bytes (size %d) %q, want %q", proc, len(got), n.Size, got, want)
	}
	// /proc/self is a symlink: the path given through it is stored.
	if got, _ := catPath(t, sn, "/proc/self/status", r); !bytes.Contains(got, []byte("Name:")) {
		t.Errorf("/proc/self/status stored as %q", got)
	}
	if got, n := catPath(t, sn, empty, r); len(got) != 0 || n.Size != 0 {
		t.Errorf("an empty file stored as %q (size %d)", got, n.Size)
	}
	dst := t.TempDir()
	restore(t, r, sn, proc, dst)
	if b, err := os.ReadFile(filepath.Join(dst, "version")); err != nil || !bytes.Equal(b, want) {
		t.Errorf("restored %s: %q, %v; want %q", proc, b, err, want)
	}
}

// A stat-size-0 file longer than one chunk is cut by the chunker as it is
// read, with no size known ahead: /proc/kallsyms is megabytes long.
func TestBackupZeroSizeFileManyChunks(t *testing.T) {
	t.Parallel()
	const proc = "/proc/kallsyms"
	want, err := os.ReadFile(proc)
	fi, serr := os.Stat(proc)
	if err != nil || serr != nil || fi.Size() != 0 || len(want) < 1<<20 {
		t.Skipf("%s: need a readable file of stat size 0 and over 1 MiB of content (%v, %v)", proc, err, serr)
	}
	st := mem.New()
	sn := backup(t, newSmallChunkRepo(t, st), "", BackupOptions{Paths: []string{proc}})
	r := reopen(t, st)
	got, n := catPath(t, sn, proc, r)
	if len(n.Content) < 2 {
		t.Errorf("%s stored as %d chunks, want several", proc, len(n.Content))
	}
	if !bytes.Equal(got, want) {
		// A module loaded meanwhile changes it: compare with a new read.
		if again, _ := os.ReadFile(proc); !bytes.Equal(got, again) {
			t.Errorf("%s stored as %d bytes that differ from its %d", proc, len(got), len(want))
		}
	}
}
