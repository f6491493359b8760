//go:build linux

package snapshot

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/cofferhq/coffer/internal/testutil"
)

// Standard input is stored as one regular file at the top of the
// snapshot, cut into chunks as a file of the same content would be.
func TestBackupStdin(t *testing.T) {
	r := newRepo(t, storeKinds[0].open(t))
	data := testutil.RandomBytes(1, 5<<20)
	sn, err := Backup(t.Context(), r, BackupOptions{StdinName: "db.sql", Stdin: bytes.NewReader(data)})
	if err != nil {
		t.Fatal(err)
	}
	if len(sn.Paths) != 1 || sn.Paths[0] != "/db.sql" || sn.Base != "/" {
		t.Fatalf("paths %q, base %q: want [/db.sql] and /", sn.Paths, sn.Base)
	}
	if sn.Summary.Files != 1 || sn.Summary.Size != int64(len(data)) || sn.Summary.Errors != 0 {
		t.Fatalf("summary %+v", sn.Summary)
	}
	n, _, err := Resolve(t.Context(), r, sn, "db.sql")
	if err != nil {
		t.Fatal(err)
	}
	if n.Type != TypeFile || n.Mode != StdinMode || n.UID != uint32(os.Getuid()) || len(n.Content) < 2 {
		t.Fatalf("node %+v: want a file of mode %o owned by uid %d in several chunks", n, StdinMode, os.Getuid())
	}
	var got bytes.Buffer
	if err := Cat(t.Context(), r, n, &got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Bytes(), data) {
		t.Fatal("cat of the stored standard input differs from what was read")
	}
}

// An empty standard input is a warning, and the snapshot holds an empty
// file.
func TestBackupStdinEmpty(t *testing.T) {
	r := newRepo(t, storeKinds[0].open(t))
	sn, err := Backup(t.Context(), r, BackupOptions{StdinName: "db.sql", Stdin: strings.NewReader("")})
	if err != nil {
		t.Fatal(err)
	}
	if sn.Summary.Errors != 1 || sn.Summary.Files != 1 {
		t.Fatalf("summary %+v: want one file and one error", sn.Summary)
	}
	n, _, err := Resolve(t.Context(), r, sn, "db.sql")
	if err != nil || n.Size != 0 || n.Error != "" {
		t.Fatalf("node %+v, %v: want an empty file with no error recorded", n, err)
	}
}

func TestCheckStdinName(t *testing.T) {
	for _, name := range []string{"", ".", "..", "a/b", "/db.sql", "a\x00b"} {
		if CheckStdinName(name) == nil {
			t.Errorf("CheckStdinName(%q) = nil, want an error", name)
		}
	}
	for _, name := range []string{"db.sql", "..db", "stdin", "a b"} {
		if err := CheckStdinName(name); err != nil {
			t.Errorf("CheckStdinName(%q) = %v", name, err)
		}
	}
}

// A pipe or a character device given as a path is refused before
// anything is stored; inside a backed-up directory it is a special file.
func TestBackupStreamPath(t *testing.T) {
	r := newRepo(t, storeKinds[0].open(t))
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{fifo, "/dev/null", "/dev/stdin"} {
		if _, err := Backup(t.Context(), r, BackupOptions{Paths: []string{p}}); !errors.Is(err, ErrStreamPath) {
			t.Errorf("backup %s: %v, want ErrStreamPath", p, err)
		}
	}
	if sns, err := List(t.Context(), r); err != nil || len(sns) != 0 {
		t.Fatalf("%d snapshots, %v: want none", len(sns), err)
	}
	sn, err := Backup(t.Context(), r, BackupOptions{Paths: []string{dir}})
	if err != nil {
		t.Fatal(err)
	}
	if sn.Summary.Others != 1 {
		t.Fatalf("summary %+v: want the fifo as one special file", sn.Summary)
	}
}
