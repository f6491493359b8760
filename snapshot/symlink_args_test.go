//go:build linux

package snapshot

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cofferhq/coffer/storage/mem"
)

// catPath returns the content of the file at path p of sn.
func catPath(t *testing.T, sn *Snapshot, p string, r BlobLoader) ([]byte, *Node) {
	t.Helper()
	n, _, err := Resolve(t.Context(), r, sn, p)
	if err != nil {
		t.Fatalf("resolving %s: %v", p, err)
	}
	var buf bytes.Buffer
	if n.Type == TypeFile {
		if err := Cat(t.Context(), r, n, &buf); err != nil {
			t.Fatalf("cat %s: %v", p, err)
		}
	}
	return buf.Bytes(), n
}

// A path given through a symlink to a directory is backed up under the
// path given; a symlink given alone stays a symlink; a symlink given with
// a path below it is backed up as the directory it points to, with a
// warning. Nothing given is dropped.
func TestBackupPathsThroughSymlinks(t *testing.T) {
	t.Parallel()
	src := t.TempDir()
	real := filepath.Join(src, "real")
	writeFile(t, filepath.Join(real, "f"), []byte("file f\n"), 0o644)
	writeFile(t, filepath.Join(real, "g"), []byte("file g\n"), 0o644)
	writeFile(t, filepath.Join(src, "other", "h"), []byte("file h\n"), 0o644)
	link := filepath.Join(src, "link")
	if err := os.Symlink("real", link); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../real", filepath.Join(src, "other", "up")); err != nil {
		t.Fatal(err)
	}
	join := func(ps ...string) []string {
		for i, p := range ps {
			ps[i] = filepath.Join(src, p)
		}
		return ps
	}
	tests := []struct {
		name      string
		paths     []string
		files     map[string]string // snapshot path (absolute) -> content
		symlinks  []string          // snapshot paths that must be symlinks
		absent    []string          // snapshot paths that must not exist
		wantPaths []string
		warns     int
	}{
		{
			name: "link and link/f", paths: join("link", "link/f"),
			files:     map[string]string{"link/f": "file f\n", "link/g": "file g\n"},
			wantPaths: join("link", "link/f"), warns: 1,
		},
		{
			name: "link/f alone", paths: join("link/f"),
			files:     map[string]string{"link/f": "file f\n"},
			absent:    []string{"link/g"},
			wantPaths: join("link/f"),
		},
		{
			name: "link alone", paths: join("link"),
			symlinks:  []string{"link"},
			wantPaths: join("link"),
		},
		{
			name: "a directory and a path through a symlink in it", paths: join("other", "other/up/f"),
			files:     map[string]string{"other/h": "file h\n", "other/up/f": "file f\n"},
			absent:    []string{"other/up/g"},
			wantPaths: join("other", "other/up/f"),
		},
		{
			name: "a directory holding a symlink", paths: join("other"),
			files:     map[string]string{"other/h": "file h\n"},
			symlinks:  []string{"other/up"},
			wantPaths: join("other"),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := mem.New()
			rec := &progressRecorder{}
			sn := backup(t, newRepo(t, st), "", BackupOptions{Paths: tt.paths, Progress: rec})
			if sn.Summary.Errors != 0 {
				t.Errorf("backup recorded %d errors: %v", sn.Summary.Errors, rec.warnings())
			}
			if got := rec.warnings(); len(got) != tt.warns {
				t.Errorf("backup warned %v, want %d warnings", got, tt.warns)
			}
			if !slices.Equal(sn.Paths, tt.wantPaths) {
				t.Errorf("snapshot paths %q, want %q", sn.Paths, tt.wantPaths)
			}
			r := reopen(t, st)
			for p, want := range tt.files {
				got, n := catPath(t, sn, filepath.Join(src, p), r)
				if n.Type != TypeFile || string(got) != want {
					t.Errorf("%s: a %s holding %q, want a file holding %q", p, n.Type, got, want)
				}
			}
			for _, p := range tt.symlinks {
				if _, n := catPath(t, sn, filepath.Join(src, p), r); n.Type != TypeSymlink {
					t.Errorf("%s is a %s, want a symlink", p, n.Type)
				}
			}
			for _, p := range tt.absent {
				if n, _, err := Resolve(t.Context(), r, sn, filepath.Join(src, p)); err == nil {
					t.Errorf("%s is in the snapshot as a %s; it was not given", p, n.Type)
				}
			}
			// Restore puts the files where the paths given say.
			dst := t.TempDir()
			restore(t, r, sn, "/", dst)
			for p, want := range tt.files {
				got, err := os.ReadFile(filepath.Join(dst, src, p))
				if err != nil || string(got) != want {
					t.Errorf("restored %s: %q, %v; want %q", p, got, err, want)
				}
			}
		})
	}
}

// A path through a symlink to a file, or a dangling one, is an error
// that names the link, not a silent drop.
func TestBackupBelowSymlinkToFile(t *testing.T) {
	t.Parallel()
	src := t.TempDir()
	writeFile(t, filepath.Join(src, "file"), []byte("x"), 0o644)
	if err := os.Symlink("file", filepath.Join(src, "tofile")); err != nil {
		t.Fatal(err)
	}
	_, err := Backup(t.Context(), newRepo(t, mem.New()), BackupOptions{Paths: []string{filepath.Join(src, "tofile", "x")}})
	if err == nil || !strings.Contains(err.Error(), "tofile") {
		t.Fatalf("backup below a symlink to a file = %v, want an error naming it", err)
	}
}
