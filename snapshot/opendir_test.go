//go:build linux

package snapshot

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestOpenDir checks the walk's directory listing: entries sorted by
// name, the directory kept open when asked (its entries can be looked up
// from its descriptor, as walkDir does on Linux, the only system where it
// keeps it), and an error naming the path for what is not a directory.
func TestOpenDir(t *testing.T) {
	root := t.TempDir()
	for _, name := range []string{"b", "a", "c.txt"} {
		if err := os.WriteFile(filepath.Join(root, name), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(root, "d"), 0o755); err != nil {
		t.Fatal(err)
	}
	names := func(entries []os.DirEntry) []string {
		var out []string
		for _, e := range entries {
			out = append(out, e.Name())
		}
		return out
	}

	for _, keep := range []bool{false, true} {
		entries, dir, err := openDir(root, keep)
		if err != nil {
			t.Fatalf("openDir(keep %t): %v", keep, err)
		}
		if got, want := names(entries), []string{"a", "b", "c.txt", "d"}; !slices.Equal(got, want) {
			t.Errorf("openDir(keep %t) listed %q, want %q", keep, got, want)
		}
		if (dir != nil) != keep {
			t.Errorf("openDir(keep %t) returned the directory open: %t", keep, dir != nil)
		}
		if dir != nil {
			// What walkDir does with it (readMetaSince): entries looked
			// up by name from the directory's descriptor.
			var st unix.Stat_t
			if err := unix.Fstatat(int(dir.Fd()), "d", &st, unix.AT_SYMLINK_NOFOLLOW); err != nil || st.Mode&unix.S_IFMT != unix.S_IFDIR {
				t.Errorf("looking up d from the kept directory: mode %#o, %v", st.Mode, err)
			}
			dir.Close()
		}
	}

	for _, tc := range []struct {
		name  string
		path  string
		isErr error // nil: any error
	}{
		{"missing", filepath.Join(root, "gone"), fs.ErrNotExist},
		{"a file", filepath.Join(root, "c.txt"), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, dir, err := openDir(tc.path, true)
			if dir != nil {
				dir.Close()
			}
			if err == nil {
				t.Fatalf("openDir(%s) = nil error", tc.path)
			}
			if tc.isErr != nil && !errors.Is(err, tc.isErr) {
				t.Errorf("openDir(%s) = %v, want %v", tc.path, err, tc.isErr)
			}
			if !strings.Contains(err.Error(), tc.path) {
				t.Errorf("openDir(%s)'s error does not name the path: %v", tc.path, err)
			}
		})
	}
}
