package snapshot

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/cofferhq/coffer/repo"
	"github.com/cofferhq/coffer/storage/mem"
)

func TestSmoke(t *testing.T) {
	ctx := context.Background()
	src := t.TempDir()
	big := make([]byte, 5<<20)
	for i := range big {
		big[i] = byte(i * 7 % 251)
	}
	os.WriteFile(filepath.Join(src, "big"), big, 0o644)
	os.MkdirAll(filepath.Join(src, "a/b"), 0o755)
	os.WriteFile(filepath.Join(src, "a/b/small"), []byte("hello"), 0o600)
	os.Symlink("a/b/small", filepath.Join(src, "link"))
	st := mem.New()
	r, err := repo.Create(ctx, st, []byte("pw"), repo.CreateOptions{KDF: repo.TestKDF, PackSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	sn, err := Backup(ctx, r, BackupOptions{Paths: []string{src}})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", sn.Summary)
	r2, err := repo.Open(ctx, st, func() ([]byte, error) { return []byte("pw"), nil }, repo.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := r2.LoadIndex(ctx); err != nil {
		t.Fatal(err)
	}
	sn2, err := Find(ctx, r2, sn.ID.String()[:4])
	if err != nil {
		t.Fatal(err)
	}
	n, _, err := Resolve(ctx, r2, sn2, "a/b/small")
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := Cat(ctx, r2, n, &buf); err != nil || buf.String() != "hello" {
		t.Fatal(err, buf.String())
	}
	dst := t.TempDir()
	if _, err := Restore(ctx, r2, sn2, "", RestoreOptions{Target: dst}); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(filepath.Join(dst, "big"))
	if !bytes.Equal(got, big) {
		t.Fatal("big differs")
	}
	sn3, err := Backup(ctx, r2, BackupOptions{Paths: []string{src}})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", sn3.Summary)
	if sn3.Summary.BytesRead != 0 {
		t.Fatal("re-read")
	}
}
