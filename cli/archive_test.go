//go:build linux

package cli

import (
	"bytes"
	"context"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cofferhq/coffer/internal/testutil"
)

// tarCarries is what a tar archive cannot hold of sourceTree: the socket,
// and holes (sparse files are written whole, so GNU tar extracts them
// allocated).
var tarCarries = testutil.CompareOptions{Ignore: []string{"special/socket"}, NotSparse: true}

// extract runs an extraction command (GNU tar, unzip) in dir.
func extract(t *testing.T, dir string, name string, args ...string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		testutil.SkipLoudly(t, name+" is not installed")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// archiveBoth writes the archive of ref with -o and to stdout, checks
// that both hold the same bytes, and returns the file.
func archiveBoth(t *testing.T, h *harness, ref, format string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "x."+format)
	h.mustAt("archive", ref, "-format", format, "-o", out)
	file, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	stdout := h.mustAt("archive", ref, "-format", format)
	if !bytes.Equal([]byte(stdout), file) {
		t.Errorf("archive %s -format %s: stdout (%d bytes) differs from the -o file (%d bytes)", ref, format, len(stdout), len(file))
	}
	return out
}

func TestArchiveTar(t *testing.T) {
	h := newHarness(t)
	src := sourceTree(t)
	h.create()
	h.backup(src)
	for format, flags := range map[string]string{"tar": "-xpf", "tar.gz": "-xzpf"} {
		t.Run(format, func(t *testing.T) {
			out := archiveBoth(t, h, "latest", format)
			dir := t.TempDir()
			extract(t, dir, "tar", flags, out, "--numeric-owner", "--xattrs", "--xattrs-include=*")
			got := filepath.Join(dir, "project") // named after the backed-up directory
			testutil.CompareTreesWith(t, src, got, tarCarries)
			// CompareTrees checks hard-link groups and symlink targets;
			// these say it plainly.
			a, errA := os.Stat(filepath.Join(got, "hard/triple1"))
			b, errB := os.Stat(filepath.Join(got, "a/b/triple3"))
			if errA != nil || errB != nil || !os.SameFile(a, b) {
				t.Errorf("hard/triple1 and a/b/triple3 are not one inode after extraction (%v, %v)", errA, errB)
			}
			if fi, err := os.Lstat(filepath.Join(got, "links/rel")); err != nil || fi.Mode()&fs.ModeSymlink == 0 {
				t.Errorf("links/rel is not a symlink after extraction (%v)", err)
			}
		})
	}
}

func TestArchiveSubtree(t *testing.T) {
	h := newHarness(t)
	src := sourceTree(t)
	h.create()
	h.backup(src)
	out := filepath.Join(t.TempDir(), "b.tar")
	h.mustAt("archive", "latest:a/b", "-o", out) // tar by default
	dir := t.TempDir()
	extract(t, dir, "tar", "-xpf", out, "--numeric-owner", "--xattrs", "--xattrs-include=*")
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 || ents[0].Name() != "b" {
		t.Fatalf("archive of a/b holds %v, want only b/", ents)
	}
	// a/b/triple3's other names are outside a/b: it is archived as a file.
	testutil.CompareTreesWith(t, filepath.Join(src, "a/b"), filepath.Join(dir, "b"), tarCarries)
}

func TestArchiveZip(t *testing.T) {
	h := newHarness(t)
	src := sourceTree(t)
	h.create()
	h.backup(src)
	out := archiveBoth(t, h, "latest", "zip")
	dir := t.TempDir()
	// -K keeps setuid, setgid and sticky bits.
	extract(t, dir, "unzip", "-q", "-K", out)
	got := filepath.Join(dir, "project")
	n := 0
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if rel == "." {
			return nil
		}
		w, err := os.Lstat(p)
		if err != nil {
			return err
		}
		gp := filepath.Join(got, rel)
		typ := w.Mode().Type()
		if typ != 0 && typ != fs.ModeDir && typ != fs.ModeSymlink {
			if _, err := os.Lstat(gp); err == nil {
				t.Errorf("%s: a %s is in the zip, which cannot hold it", rel, typ)
			}
			return nil
		}
		g, err := os.Lstat(gp)
		if err != nil {
			t.Errorf("%s: missing after unzip: %v", rel, err)
			return nil
		}
		n++
		if g.Mode().Type() != typ {
			t.Errorf("%s: type %s, want %s", rel, g.Mode().Type(), typ)
			return nil
		}
		switch typ {
		case fs.ModeSymlink: // unzip sets neither a symlink's mode nor its times
			wt, _ := os.Readlink(p)
			gt, _ := os.Readlink(gp)
			if wt != gt {
				t.Errorf("%s: symlink target %q, want %q", rel, gt, wt)
			}
			return nil
		case 0:
			wb, _ := os.ReadFile(p)
			gb, _ := os.ReadFile(gp)
			if !bytes.Equal(wb, gb) {
				t.Errorf("%s: content differs", rel)
			}
		}
		// Permissions with setuid, setgid and sticky.
		if w.Mode() != g.Mode() {
			t.Errorf("%s: mode %s, want %s", rel, g.Mode(), w.Mode())
		}
		if w.ModTime().Unix() != g.ModTime().Unix() { // the extended timestamp has seconds
			t.Errorf("%s: mtime %s, want %s", rel, g.ModTime(), w.ModTime())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 50 {
		t.Errorf("compared only %d entries", n)
	}
}

func TestArchiveRefusals(t *testing.T) {
	h := newHarness(t)
	src := sourceTree(t)
	h.create()
	h.backup(src)

	var stdout, stderr bytes.Buffer
	code := Main(context.Background(), Env{
		Args: []string{"at", h.repo, "archive", "latest"}, Stdout: &stdout, Stderr: &stderr,
		Getenv:     func(k string) string { return h.env[k] },
		IsTerminal: func(w any) bool { return w == any(&stdout) },
	})
	wantOneLineError(t, result{stdout.String(), stderr.String(), code}, ExitUsage, "terminal", "-o FILE")
	if stdout.Len() != 0 {
		t.Errorf("%d bytes written to the terminal", stdout.Len())
	}

	existing := filepath.Join(t.TempDir(), "x.tar")
	if err := os.WriteFile(existing, []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	wantOneLineError(t, h.at("archive", "latest", "-o", existing), ExitUsage, existing, "exists")
	if b, _ := os.ReadFile(existing); string(b) != "mine" {
		t.Errorf("an existing file was overwritten: %q", b)
	}
	wantOneLineError(t, h.at("archive", "latest", "-format", "rar"), ExitUsage, "rar", "tar.gz")
	wantOneLineError(t, h.at("archive", "latest:no/such", "-format", "tar"), ExitNoPath, "no/such")
}

func TestArchiveDamagedData(t *testing.T) {
	h := newHarness(t)
	h.env["COFFER_CACHE_DIR"] = ""
	src := sourceTree(t)
	h.create()
	h.backup(src)
	flipByte(t, firstPack(t, h.repo), 0.3)
	dir := t.TempDir()
	r := h.run("-no-cache", "at", h.repo, "archive", "latest", "-o", filepath.Join(dir, "x.tar"))
	wantOneLineError(t, r, ExitCorrupt, "corrupted")
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("a failed archive left %v behind", ents)
	}
}

// An archive -o whose file system fills up exits with the disk-full code,
// names the archive (not its temporary file) and what to do, and leaves
// nothing there.
func TestArchiveOutOfSpace(t *testing.T) {
	testutil.RequireRoot(t, "mounting tmpfs")
	h := newHarness(t)
	src := t.TempDir()
	os.WriteFile(filepath.Join(src, "big"), testutil.RandomBytes(3, 4<<20), 0o644)
	h.create()
	h.backup(src)
	dir := mountTmpfs(t, "", 0, "size=1m")
	out := filepath.Join(dir, "a.tar")
	wantOneLineError(t, h.at("archive", "latest", "-o", out), ExitDiskFull, "writing "+out, "no space left", "write the archive elsewhere")
	if entries, err := os.ReadDir(dir); err != nil || len(entries) != 0 {
		t.Errorf("the full file system holds %d entries after the failed archive (%v), want none", len(entries), err)
	}
}
