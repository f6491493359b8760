//go:build linux

package snapshot

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/cofferhq/coffer/internal/testutil"
	"github.com/cofferhq/coffer/repo"
	"github.com/cofferhq/coffer/storage"
	"github.com/cofferhq/coffer/storage/mem"
)

// TestBackupPackSize backs up files larger than the default chunker's
// chunks and a directory whose tree is larger than a pack with a pack
// size below the chunker's average chunk: every pack stays within it,
// the restore is identical, and a second backup with the same pack size
// finds every chunk piece stored already.
func TestBackupPackSize(t *testing.T) {
	const packSize = repo.MinPackSize
	src := t.TempDir()
	for i, n := range []int{3 << 20, 5<<20 + 123, 700 << 10, 100} {
		writeFile(t, filepath.Join(src, fmt.Sprintf("f%d", i)), testutil.RandomBytes(int64(i+1), n), 0o644)
	}
	wide := filepath.Join(src, "wide")
	if err := os.Mkdir(wide, 0o755); err != nil {
		t.Fatal(err)
	}
	// About 1.2 MiB of encoded nodes by encodedSizeBound's reckoning.
	for i := range 2000 {
		writeFile(t, filepath.Join(wide, fmt.Sprintf("file-with-a-longish-name-%05d", i)), []byte{byte(i)}, 0o644)
	}
	st := mem.New()
	r := newRepo(t, st)
	sn := backup(t, r, src, BackupOptions{PackSize: packSize})
	var packs, over int
	err := st.List(t.Context(), storage.KindPack, func(name string, size int64) error {
		packs++
		if size > packSize {
			over++
			t.Errorf("pack %s: %d bytes, over the pack size %d", name[:8], size, packSize)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if packs < 18 {
		t.Errorf("%d packs for 9 MiB of random data in 512 KiB packs", packs)
	}
	r = reopen(t, st)
	dst := t.TempDir()
	restore(t, r, sn, "", dst)
	testutil.CompareTrees(t, src, dst)

	// A file's chunks are cut as before and split the same way: no new
	// data when the files are read again, without a parent snapshot (a
	// directory's tree blob may change: its times were read again).
	again := backup(t, r, src, BackupOptions{PackSize: packSize, Host: "another"})
	if again.Summary.FilesRead == 0 || again.Summary.NewBytes > 16<<10 {
		t.Errorf("second backup with the same pack size read %d files and stored %d new bytes, want no chunk",
			again.Summary.FilesRead, again.Summary.NewBytes)
	}
}
