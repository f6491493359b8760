//go:build linux

package snapshot

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cofferhq/coffer/storage/mem"
)

// TestScanTotals checks that the totals the scanner gives a progress
// display are what the first backup stores: the same regular files,
// leaving out what excludes and skipped paths leave out (but not a
// skipped path given to back up), symlinks not followed and not counted,
// in a tree deeper than the walk holds directories open. (A symlink given
// to back up together with a path below it is where they differ: the
// walk follows it, the scan does not.)
func TestScanTotals(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		// tree makes the files under src and returns the backup's
		// options (Paths default to src) and how many regular files it
		// stores.
		tree func(t *testing.T, src string) (BackupOptions, int64)
	}{
		{"excludes", func(t *testing.T, src string) (BackupOptions, int64) {
			for i := range 12 {
				writeFile(t, filepath.Join(src, fmt.Sprintf("d%d/f%d.txt", i%3, i)), []byte(strings.Repeat("x", i+1)), 0o644)
				writeFile(t, filepath.Join(src, fmt.Sprintf("d%d/f%d.log", i%3, i)), make([]byte, 1000), 0o644)
			}
			writeFile(t, filepath.Join(src, "d1/cache/a"), make([]byte, 5000), 0o644)
			writeFile(t, filepath.Join(src, "d1/cache/b/c"), make([]byte, 5000), 0o644)
			return BackupOptions{Excludes: []string{"*.log", "cache/"}}, 12
		}},
		{"skipped path", func(t *testing.T, src string) (BackupOptions, int64) {
			writeFile(t, filepath.Join(src, "keep/a"), []byte("a"), 0o644)
			writeFile(t, filepath.Join(src, "repo/data/p1"), make([]byte, 3000), 0o644)
			writeFile(t, filepath.Join(src, "repo/config"), make([]byte, 300), 0o644)
			return BackupOptions{SkipPaths: []string{filepath.Join(src, "repo")}}, 1
		}},
		{"skipped path given to back up", func(t *testing.T, src string) (BackupOptions, int64) {
			writeFile(t, filepath.Join(src, "repo/config"), make([]byte, 300), 0o644)
			writeFile(t, filepath.Join(src, "repo/data/p1"), make([]byte, 3000), 0o644)
			return BackupOptions{Paths: []string{filepath.Join(src, "repo")}, SkipPaths: []string{filepath.Join(src, "repo")}}, 2
		}},
		{"symlinks", func(t *testing.T, src string) (BackupOptions, int64) {
			writeFile(t, filepath.Join(src, "d/f"), make([]byte, 700), 0o644)
			for _, l := range [][2]string{{"d", "to-dir"}, {"d/f", "to-file"}, {"missing", "dangling"}} {
				if err := os.Symlink(filepath.Join(src, l[0]), filepath.Join(src, l[1])); err != nil {
					t.Fatal(err)
				}
			}
			return BackupOptions{}, 1
		}},
		{"deeper than the held directories", func(t *testing.T, src string) (BackupOptions, int64) {
			dir := src
			for i := range maxHeldDirs + 3 {
				dir = filepath.Join(dir, "d")
				writeFile(t, filepath.Join(dir, "f"), make([]byte, i), 0o644)
			}
			return BackupOptions{}, maxHeldDirs + 3
		}},
		{"files and directories as roots", func(t *testing.T, src string) (BackupOptions, int64) {
			writeFile(t, filepath.Join(src, "one"), make([]byte, 123), 0o644)
			writeFile(t, filepath.Join(src, "two/a"), make([]byte, 45), 0o644)
			writeFile(t, filepath.Join(src, "two/b/c"), make([]byte, 6), 0o644)
			writeFile(t, filepath.Join(src, "not-given"), make([]byte, 1), 0o644)
			return BackupOptions{Paths: []string{filepath.Join(src, "one"), filepath.Join(src, "two")}}, 3
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			src := t.TempDir()
			opt, files := tc.tree(t, src)
			r := newRepo(t, mem.New())
			sn := backup(t, r, src, opt)
			s := sn.Summary
			if s.Files != files {
				t.Fatalf("the backup stored %d files, want %d", s.Files, files)
			}
			// The scan on its own: beside a backup it is stopped when the
			// backup ends, which here may be before it does.
			if len(opt.Paths) == 0 {
				opt.Paths = []string{src}
			}
			prog := &progressRecorder{}
			opt.Progress = prog
			newArchiver(r, opt, r.Config().PackSize).scan(t.Context(), opt.Paths)
			if prog.scannedFiles != s.Files || prog.scannedBytes != s.Size {
				t.Errorf("scanned %d files of %d bytes; the snapshot has %d of %d", prog.scannedFiles, prog.scannedBytes, s.Files, s.Size)
			}
		})
	}
}

// BenchmarkScan runs the progress display's scanner over a tree of 20,000
// empty files in 2,100 directories three levels deep, or over the tree
// named by COFFER_BENCH_SCAN_DIR.
func BenchmarkScan(b *testing.B) {
	root := os.Getenv("COFFER_BENCH_SCAN_DIR")
	if root == "" {
		root = b.TempDir()
		for i := range 100 {
			for j := range 20 {
				dir := filepath.Join(root, fmt.Sprintf("a%03d", i), fmt.Sprintf("b%02d", j))
				if err := os.MkdirAll(dir, 0o755); err != nil {
					b.Fatal(err)
				}
				for k := range 10 {
					if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%d", k)), nil, 0o644); err != nil {
						b.Fatal(err)
					}
				}
			}
		}
	}
	var files int64
	for b.Loop() {
		prog := &progressRecorder{}
		a := &archiver{prog: prog, excludes: newExcludes(nil), skip: map[string]bool{}}
		a.scan(b.Context(), []string{root})
		files = prog.scannedFiles
	}
	b.ReportMetric(float64(files), "files")
}
