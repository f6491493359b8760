package repo

import (
	"errors"
	"os"
	"testing"

	"github.com/cofferhq/coffer/internal/testutil"
)

// TestHashFileCutShort checks that a pack file cut short under a mapping
// is an error, where reading the mapping past the file's end would
// otherwise kill the process with SIGBUS.
func TestHashFileCutShort(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "pack-*")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(testutil.RandomBytes(1, hashWindow+100)); err != nil {
		t.Fatal(err)
	}
	// The second window maps past the end: the builder counted more
	// bytes than the file holds, as when another process truncated it.
	_, err = hashFile(f, 3*hashWindow)
	if !errors.Is(err, errMappingFault) {
		t.Fatalf("hashFile of a file cut short = %v, want %v", err, errMappingFault)
	}
}
