package repo

import (
	"crypto/sha256"
	"os"
	"testing"

	"github.com/cofferhq/coffer/internal/testutil"
)

// TestHashFile checks that a pack file's name is the SHA-256 of its
// first size bytes, whole windows or not, and that readHash, which
// finishes what a failed mapping left, continues from where it stopped.
func TestHashFile(t *testing.T) {
	const window = 2 << 20 // hashWindow on Linux
	for _, tc := range []struct {
		name       string
		file, size int
	}{
		{"one byte", 1, 1},
		{"under a window", window - 1, window - 1},
		{"one window", window, window},
		{"a window and a byte", window + 1, window + 1},
		{"three windows and a part", 3*window + 17, 3*window + 17},
		{"less than the file holds", 2*window + 5, window + 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := testutil.RandomBytes(int64(tc.file), tc.file)
			f, err := os.CreateTemp(t.TempDir(), "pack-*")
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if _, err := f.Write(data); err != nil {
				t.Fatal(err)
			}
			want := ID(sha256.Sum256(data[:tc.size]))
			got, err := hashFile(f, int64(tc.size))
			if err != nil {
				t.Fatal(err)
			}
			if got != want {
				t.Errorf("hashFile = %s, want %s", got.Short(), want.Short())
			}
			// As after a window mapped and hashed, then a failed mapping.
			h := sha256.New()
			off := min(tc.size, window)
			h.Write(data[:off])
			if got, err := readHash(h, f, int64(off), int64(tc.size)); err != nil || got != want {
				t.Errorf("readHash from %d = %s, %v; want %s", off, got.Short(), err, want.Short())
			}
		})
	}
}
