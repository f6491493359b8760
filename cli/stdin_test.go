//go:build linux

package cli

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cofferhq/coffer/internal/testutil"
)

// Standard input, as -stdin-name or stdin:NAME, is stored as one file at
// the top of the snapshot, which cat gives back.
func TestBackupStdinName(t *testing.T) {
	h := newHarness(t)
	h.create()
	dump := "CREATE TABLE t (x int);\n" + strings.Repeat("INSERT INTO t VALUES (1);\n", 1000)
	for _, args := range [][]string{{"-stdin-name", "db.sql"}, {"stdin:db.sql"}} {
		r := runWithStdin(h, dump, append([]string{"at", h.repo, "backup"}, args...)...)
		if r.code != 0 {
			t.Fatalf("backup %v: exit %d: %s", args, r.code, r.stderr)
		}
		if got := h.mustAt("cat", "latest:db.sql"); got != dump {
			t.Fatalf("backup %v: cat gives %d bytes, want the %d of standard input", args, len(got), len(dump))
		}
	}
	ls := h.mustAt("ls", "-l", "latest")
	if !strings.Contains(ls, "-rw-------") || !strings.Contains(ls, "db.sql") {
		t.Fatalf("ls -l latest: want db.sql of mode 0600:\n%s", ls)
	}
	// -json reports the summary as for any backup.
	r := runWithStdin(h, dump, "-json", "at", h.repo, "backup", "-stdin-name", "db.sql")
	var sum struct {
		Type    string `json:"type"`
		Summary struct {
			Files int64 `json:"files"`
			Size  int64 `json:"size"`
		} `json:"summary"`
	}
	if r.code != 0 || json.Unmarshal(summaryLine(t, r.stdout), &sum) != nil ||
		sum.Type != "summary" || sum.Summary.Files != 1 || sum.Summary.Size != int64(len(dump)) {
		t.Fatalf("backup -json -stdin-name: exit %d, %+v\n%s%s", r.code, sum, r.stdout, r.stderr)
	}
}

// An empty standard input saves the snapshot, holding an empty file, but
// warns and exits 3, so that a dump job that wrote nothing does not pass.
func TestBackupStdinEmpty(t *testing.T) {
	h := newHarness(t)
	h.create()
	r := runWithStdin(h, "", "at", h.repo, "backup", "-stdin-name", "db.sql")
	if r.code != ExitPartial || !strings.Contains(r.stderr, "standard input was empty") {
		t.Fatalf("backup of empty stdin: exit %d, want %d and a warning:\n%s", r.code, ExitPartial, r.stderr)
	}
	if got := h.mustAt("cat", "latest:db.sql"); got != "" {
		t.Fatalf("cat: %q, want an empty file", got)
	}
}

// -stdin-name with paths, or a name that is no file name, is a usage
// error, and nothing is stored.
func TestBackupStdinUsage(t *testing.T) {
	h := newHarness(t)
	h.create()
	dir := t.TempDir()
	for _, args := range [][]string{
		{"-stdin-name", "db.sql", dir},
		{"-stdin-name", "db.sql", "stdin:x"},
		{"stdin:db.sql", dir},
		{"-stdin-name", ""},
		{"-stdin-name", "."},
		{"-stdin-name", ".."},
		{"-stdin-name", "a/b"},
		{"stdin:"},
		{"stdin:../x"},
	} {
		r := runWithStdin(h, "data", append([]string{"at", h.repo, "backup"}, args...)...)
		if r.code != ExitUsage || strings.Count(strings.TrimSpace(r.stderr), "\n") > 0 {
			t.Errorf("backup %q: exit %d, want %d and one line:\n%s", args, r.code, ExitUsage, r.stderr)
		}
	}
	if out := h.mustAt("ls"); strings.TrimSpace(out) != "" {
		t.Fatalf("ls after usage errors: %s", out)
	}
}

// A pipe given as a path, which would be stored as a fifo node and not
// what flows through it, is refused before anything is stored, with a
// pointer to -stdin-name. A pipe inside a backed-up directory is stored
// as a special file, as ever.
func TestBackupFIFOPath(t *testing.T) {
	h := newHarness(t)
	h.create()
	dir := t.TempDir()
	fifo := filepath.Join(dir, "pipe")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	r := h.at("backup", fifo)
	if r.code != ExitUsage || !strings.Contains(r.stderr, "a pipe cannot be backed up as a path") || !strings.Contains(r.stderr, "-stdin-name") {
		t.Fatalf("backup of a fifo: exit %d, want %d and a pointer to -stdin-name:\n%s", r.code, ExitUsage, r.stderr)
	}
	if out := h.mustAt("ls"); strings.TrimSpace(out) != "" {
		t.Fatalf("ls after a refused fifo: %s", out)
	}
	h.backup(dir)
	if ls := h.mustAt("ls", "-l", "latest"); !strings.Contains(ls, "pipe") {
		t.Fatalf("a fifo inside a backed-up directory is missing:\n%s", ls)
	}
}

// `pg_dump | coffer backup /dev/stdin` once stored a symlink and exited
// 0: it is a usage error, and no snapshot is saved.
func TestBackupDevStdinPath(t *testing.T) {
	h := newHarness(t)
	h.create()
	for _, p := range []string{"/dev/stdin", "/dev/fd/0", "/proc/self/fd/0"} {
		cmd := binaryCmd(t, h, "at", h.repo, "backup", p)
		cmd.Stdin = strings.NewReader("a dump") // a pipe, as from pg_dump
		out, err := cmd.CombinedOutput()
		if cmd.ProcessState.ExitCode() != ExitUsage || !strings.Contains(string(out), "standard input cannot be backed up as a path; to store standard input as a file, use -stdin-name NAME") {
			t.Fatalf("backup %s: %v, want exit %d and a pointer to -stdin-name:\n%s", p, err, ExitUsage, out)
		}
	}
	if out := h.mustAt("ls"); strings.TrimSpace(out) != "" {
		t.Fatalf("ls after refused paths: %s", out)
	}
}

// streamHash is a deterministic incompressible stream of n bytes, written
// to w a MiB at a time, and returns its SHA-256.
func streamHash(w io.Writer, seed uint64, n int64) ([]byte, error) {
	var key [32]byte
	binary.LittleEndian.PutUint64(key[:], seed)
	rng := rand.NewChaCha8(key)
	hash := sha256.New()
	buf := make([]byte, 1<<20)
	for n > 0 {
		b := buf[:min(int64(len(buf)), n)]
		rng.Read(b)
		hash.Write(b)
		if _, err := w.Write(b); err != nil {
			return nil, err
		}
		n -= int64(len(b))
	}
	return hash.Sum(nil), nil
}

// 1 GiB through a pipe is stored without holding it in memory, and cat
// gives it back identical.
func TestBackupStdinGiB(t *testing.T) {
	testutil.SkipInShort(t, "pipes 1 GiB through the coffer binary")
	h := newHarness(t)
	h.create()
	const size = 1 << 30
	cmd := binaryCmd(t, h, "at", h.repo, "backup", "-stdin-name", "big.dump")
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	want, werr := streamHash(in, 7, size)
	in.Close()
	if err := cmd.Wait(); err != nil || werr != nil {
		t.Fatalf("backup of 1 GiB from stdin: %v, %v\n%s", err, werr, stderr.String())
	}
	rss := cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss << 10 // KiB on Linux
	t.Logf("backup of 1 GiB from stdin: %v, max RSS %d MiB", time.Since(start), rss>>20)
	if rss > 512<<20 {
		t.Errorf("backup of 1 GiB from stdin: max RSS %d MiB: standard input is held in memory", rss>>20)
	}

	cat := binaryCmd(t, h, "at", h.repo, "cat", "latest:big.dump")
	hash := sha256.New()
	count := &countWriter{w: hash}
	cat.Stdout, cat.Stderr = count, os.Stderr
	if err := cat.Run(); err != nil {
		t.Fatal(err)
	}
	if count.n != size || !bytes.Equal(hash.Sum(nil), want) {
		t.Fatalf("cat gives %d bytes that differ from the %d piped in", count.n, int64(size))
	}
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	return c.w.Write(p)
}
