//go:build linux

package cli

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cofferhq/coffer/internal/testutil"
)

// lsPaths lists every path of a snapshot, relative to dir.
func (h *harness) lsPaths(t *testing.T, snap, dir string) []string {
	t.Helper()
	var out []string
	for _, l := range strings.Split(strings.TrimSpace(h.mustAt("ls", "-r", snap)), "\n") {
		if l != "" {
			out = append(out, strings.TrimSuffix(strings.TrimPrefix(l, dir+"/"), "/"))
		}
	}
	slices.Sort(out)
	return out
}

func TestBackupExcludes(t *testing.T) {
	h := newHarness(t)
	src := t.TempDir()
	for _, p := range []string{"a.log", "keep.log", "src/main.go", "src/x.log", "build/out.o", "src/build/y", "top-only", "src/top-only", "notes.tmp"} {
		os.MkdirAll(filepath.Dir(filepath.Join(src, p)), 0o755)
		os.WriteFile(filepath.Join(src, p), []byte(p), 0o644)
	}
	exclFile := filepath.Join(t.TempDir(), "excludes")
	os.WriteFile(exclFile, []byte("# comment\n*.tmp\n\n"), 0o644)
	h.create()
	id := h.backup("-exclude", "*.log", "-exclude", "!keep.log", "--exclude", "build/", "-exclude", "/top-only", "-exclude-file", exclFile, src)
	got := h.lsPaths(t, id, src)
	want := []string{"keep.log", "src", "src/main.go", "src/top-only"}
	if !slices.Equal(got, want) {
		t.Errorf("backed up %q, want %q", got, want)
	}
}

// The repository and the cache are never backed up, even when they sit
// inside the backed-up directory.
func TestBackupSkipsRepositoryAndCache(t *testing.T) {
	h := newHarness(t)
	src := t.TempDir()
	os.WriteFile(filepath.Join(src, "data"), []byte("x"), 0o644)
	h.repo = filepath.Join(src, "repo")
	h.env["COFFER_CACHE_DIR"] = filepath.Join(src, "cache")
	h.create()
	h.backup(src)
	id := h.backup(src) // the cache exists now
	if got := h.lsPaths(t, id, src); !slices.Equal(got, []string{"data"}) {
		t.Errorf("backed up %q, want only data", got)
	}
}

func TestBackupDryRunStoresNothing(t *testing.T) {
	h := newHarness(t)
	src := sourceTree(t)
	h.create()
	before := treeState(t, h.repo)
	out := h.mustAt("backup", "-dry-run", src)
	if !strings.Contains(out, "would be saved (dry run)") {
		t.Errorf("dry run output: %q", out)
	}
	if treeState(t, h.repo) != before {
		t.Error("a dry run changed the repository")
	}
	if out := h.mustAt("ls"); out != "" {
		t.Errorf("a dry run left a snapshot: %q", out)
	}

	// After a backup, a dry run estimates what the next one adds: the
	// new file's data (and the trees that change), as much as the
	// backup then stores.
	h.backup(src)
	if err := os.WriteFile(filepath.Join(src, "new.bin"), testutil.RandomBytes(21, 3<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	newBytes := func(args ...string) int64 {
		var ev struct {
			Type    string
			Summary struct {
				NewBytes int64 `json:"new_bytes"`
			}
		}
		for _, line := range strings.Split(strings.TrimSpace(h.mustRun(append([]string{"-json", "at", h.repo, "backup"}, args...)...)), "\n") {
			if json.Unmarshal([]byte(line), &ev) == nil && ev.Type == "summary" {
				return ev.Summary.NewBytes
			}
		}
		t.Fatalf("backup %v printed no summary", args)
		return 0
	}
	estimate := newBytes("-dry-run", src)
	if estimate < 3<<20 || estimate > 3<<20+64<<10 {
		t.Errorf("dry run estimates %d new bytes, want the new 3 MiB file and a few trees", estimate)
	}
	// Equal but for the trees of the source's ancestors: the snapshot
	// records /tmp with its times, which other processes change between
	// the two runs (two tests creating temporary directories), and a tree
	// with other times may compress a byte or two longer or shorter. A
	// miscount is a whole blob: here a chunk of the new file or a tree
	// with entries, each over a hundred bytes.
	if actual := newBytes(src); actual < estimate-64 || actual > estimate+64 {
		t.Errorf("the dry run estimated %d new bytes, the backup stored %d; want them within 64 bytes", estimate, actual)
	}
}

func TestBackupOneFileSystem(t *testing.T) {
	testutil.RequireRoot(t, "mounting a tmpfs inside the source tree")
	h := newHarness(t)
	src := t.TempDir()
	os.WriteFile(filepath.Join(src, "here"), []byte("x"), 0o644)
	mnt := filepath.Join(src, "mnt")
	os.Mkdir(mnt, 0o755)
	mountTmpfs(t, mnt, 0, "size=1m")
	os.WriteFile(filepath.Join(mnt, "elsewhere"), []byte("y"), 0o644)
	h.create()
	all := h.lsPaths(t, h.backup(src), src)
	one := h.lsPaths(t, h.backup("-one-file-system", src), src)
	if !slices.Equal(all, []string{"here", "mnt", "mnt/elsewhere"}) {
		t.Errorf("without -one-file-system: %q", all)
	}
	if !slices.Equal(one, []string{"here", "mnt"}) {
		t.Errorf("with -one-file-system: %q (the mount point is kept, its contents are not)", one)
	}
}

func TestCheckSubsetAndInfo(t *testing.T) {
	h := newHarness(t)
	src := bigTree(t, 80)
	h.create()
	h.backup(src)
	h.backup(src)
	out := h.mustAt("check", "-read-data-subset", "50%")
	var packs, read int
	if _, err := fmt.Sscanf(out[strings.Index(out, "blobs, ")+len("blobs, "):], "%d packs (read %d packs", &packs, &read); err != nil {
		t.Fatalf("check output %q: %v", out, err)
	}
	if packs < 3 || read != packs/2 && read != (packs+1)/2 {
		t.Errorf("-read-data-subset 50%% of %d packs read %d: %q", packs, read, out)
	}
	info := h.mustAt("info")
	for _, want := range []string{"snapshots       2", "dedup ratio     2.00x", "store type      local directory", "format version  1"} {
		if !strings.Contains(info, want) {
			t.Errorf("info lacks %q:\n%s", want, info)
		}
	}
}

func TestProgressDisplays(t *testing.T) {
	h := newHarness(t)
	src := sourceTree(t)
	h.create()
	var stderr strings.Builder
	code := Main(t.Context(), Env{
		Args: []string{"at", h.repo, "backup", src}, Stdout: &strings.Builder{}, Stderr: &stderr,
		Getenv: func(k string) string { return h.env[k] }, IsTerminal: func(any) bool { return true },
	})
	if code != 0 || !strings.Contains(stderr.String(), "backup") || !strings.Contains(stderr.String(), "files") {
		t.Errorf("terminal progress: exit %d, stderr %q", code, stderr.String())
	}
	p := (&app{out: &printer{}, env: Env{Stderr: &strings.Builder{}, IsTerminal: func(any) bool { return false }}}).newProgress("restore", "files")
	p.Total(10, 1000)
	p.Processed(4, 400)
	if line := p.line(); !strings.Contains(line, "restore: 4/10 files") || !strings.Contains(line, "40%") || !strings.Contains(line, "ETA") {
		t.Errorf("plain progress line %q", line)
	}
	p.done()
}

// TestBackupCompression backs up the same tree with -compression off and
// with the default into two repositories: the default stores the
// compressible text in far fewer bytes, both restore the same tree, and a
// mode that does not exist is a usage error naming the modes.
func TestBackupCompression(t *testing.T) {
	src := sourceTree(t)
	var text strings.Builder
	for i := range 40_000 {
		fmt.Fprintf(&text, "2026-11-27T10:00:%02dZ INFO request %d served in %d ms\n", i%60, i, i%500)
	}
	if err := os.WriteFile(filepath.Join(src, "app.log"), []byte(text.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	sizes := map[string]int64{}
	for _, mode := range []string{"off", "auto"} {
		h := newHarness(t)
		h.create()
		args := []string{src}
		if mode != "auto" {
			args = []string{"-compression", mode, src}
		}
		id := h.backup(args...)
		sizes[mode] = dirSize(t, filepath.Join(h.repo, "packs"))
		target := t.TempDir()
		h.mustAt("restore", id, "-to", target)
		testutil.CompareTrees(t, src, target)
		h.mustAt("check", "-read-data")
	}
	// app.log is 2 MiB of text that zstd shrinks tenfold.
	if saved := sizes["off"] - sizes["auto"]; saved < 1<<20 {
		t.Errorf("packs: %d bytes with -compression off, %d by default: want the default to save over 1 MiB", sizes["off"], sizes["auto"])
	}

	h := newHarness(t)
	h.create()
	wantOneLineError(t, h.at("backup", "-compression", "gzip", src), ExitUsage,
		`unknown compression "gzip"`, "auto, off, fastest, better, max")
}

// dirSize adds up the sizes of the regular files below dir.
func dirSize(t *testing.T, dir string) int64 {
	t.Helper()
	var n int64
	err := filepath.WalkDir(dir, func(_ string, d os.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		n += fi.Size()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}
