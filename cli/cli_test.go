//go:build linux

package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cofferhq/coffer/internal/testregistry"
	"github.com/cofferhq/coffer/internal/testutil"
)

// The seed's walkthrough, in-process: create, -silent backup of the
// current directory, ls in the seed's format, cat by prefix, restore,
// check -read-data.
func TestWalkthrough(t *testing.T) {
	h := newHarness(t)
	src := sourceTree(t)
	t.Chdir(src)

	h.create()
	if r := h.run("-silent", "at", h.repo, "backup"); r.code != 0 || r.stdout != "" {
		t.Fatalf("silent backup: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	ls := h.mustAt("ls")
	line := regexp.MustCompile(`^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)   ([0-9a-f]{8}) {3,}(\d+(\.\d)? [KMG]i?B) {2,}\d+s ` + regexp.QuoteMeta(src) + "\n$")
	m := line.FindStringSubmatch(ls)
	if m == nil {
		t.Fatalf("ls output %q does not match the seed's format", ls)
	}
	// Columns sit where the seed has them: id at 23, size right-aligned
	// to column 41, duration to 51.
	if strings.Index(ls, m[2]) != 23 || strings.Index(ls, m[3])+len(m[3]) != 41 || ls[51] != ' ' {
		t.Errorf("ls columns differ from the seed: %q", ls)
	}
	id := m[2]
	if got := h.mustAt("cat", id[:3]+":LICENSE"); got != licenseText {
		t.Errorf("cat returned %q", got)
	}
	restored := filepath.Join(t.TempDir(), "restored")
	h.mustAt("restore", id[:3], "-to", restored)
	testutil.CompareTrees(t, src, restored)
	if out := h.mustAt("check", "-read-data"); !strings.Contains(out, "no errors were found") {
		t.Errorf("check output %q", out)
	}
}

func TestFlagsAcceptBothSpellings(t *testing.T) {
	h := newHarness(t)
	src := sourceTree(t)
	h.create()
	for _, silent := range []string{"-silent", "--silent"} {
		if r := h.run(silent, "at", h.repo, "backup", "--tag", "x", src); r.code != 0 || r.stdout != "" {
			t.Errorf("%s backup: exit %d stdout %q stderr %q", silent, r.code, r.stdout, r.stderr)
		}
	}
	if out := h.mustAt("ls"); strings.Count(out, "[x]") != 2 {
		t.Errorf("tags not listed: %q", out)
	}
}

func TestRepositoryFromEnvironment(t *testing.T) {
	h := newHarness(t)
	h.create()
	h.env["COFFER_REPOSITORY"] = h.repo
	if r := h.run("ls"); r.code != 0 {
		t.Fatalf("ls with COFFER_REPOSITORY: %d %s", r.code, r.stderr)
	}
	delete(h.env, "COFFER_REPOSITORY")
	wantOneLineError(t, h.run("ls"), ExitUsage, "COFFER_REPOSITORY")
}

// Each bad input of the issue gets a one-line error naming the problem
// and its documented exit code.
func TestBadInputs(t *testing.T) {
	h := newHarness(t)
	src := sourceTree(t)
	h.create()
	id := h.backup(src)

	t.Run("wrong passphrase", func(t *testing.T) {
		h.env["COFFER_PASSPHRASE"] = "not it"
		defer func() { h.env["COFFER_PASSPHRASE"] = testPassphrase }()
		wantOneLineError(t, h.at("ls"), ExitWrongPassword, "wrong passphrase")
	})
	t.Run("store path missing", func(t *testing.T) {
		missing := filepath.Join(t.TempDir(), "nope")
		wantOneLineError(t, h.run("at", missing, "ls"), ExitNoRepository, missing, "does not exist", "create")
	})
	t.Run("not a repository", func(t *testing.T) {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, "file"), []byte("x"), 0o644)
		r := h.run("at", dir, "ls")
		wantOneLineError(t, r, ExitNoRepository, "not a coffer repository", "holds other files", "new or empty one")
		if strings.Contains(r.stderr, "create one with") {
			t.Errorf("suggests creating a repository where create refuses to: %s", r.stderr)
		}
	})
	t.Run("create on a non-empty directory", func(t *testing.T) {
		wantOneLineError(t, h.run("at", src, "create"), ExitNoRepository, "not empty")
	})
	t.Run("create over a repository", func(t *testing.T) {
		wantOneLineError(t, h.at("create"), ExitNoRepository, "already")
	})
	t.Run("unknown snapshot", func(t *testing.T) {
		other := "0"
		if id[0] == '0' {
			other = "1"
		}
		wantOneLineError(t, h.at("cat", other+":LICENSE"), ExitNoSnapshot, "no snapshot id starts with")
	})
	t.Run("not a snapshot id", func(t *testing.T) {
		wantOneLineError(t, h.at("cat", "xyz:LICENSE"), ExitNoSnapshot, "not a snapshot id")
	})
	t.Run("path not in snapshot", func(t *testing.T) {
		wantOneLineError(t, h.at("cat", id+":no/such/file"), ExitNoPath, "no/such/file", "not in snapshot")
	})
	t.Run("restore over existing files", func(t *testing.T) {
		target := t.TempDir()
		os.WriteFile(filepath.Join(target, "LICENSE"), []byte("mine"), 0o644)
		before := treeState(t, target)
		wantOneLineError(t, h.at("restore", id, "-to", target), ExitTarget, "LICENSE", "-overwrite")
		if treeState(t, target) != before {
			t.Error("a refused restore changed the target")
		}
		h.mustAt("restore", id, "-to", target, "-overwrite")
		if b, _ := os.ReadFile(filepath.Join(target, "LICENSE")); string(b) != licenseText {
			t.Error("-overwrite did not replace the file")
		}
	})
	t.Run("restore into a file", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "afile")
		os.WriteFile(file, []byte("mine"), 0o644)
		for _, to := range []string{file, filepath.Join(file, "sub")} {
			wantOneLineError(t, h.at("restore", id, "-to", to), ExitTarget, "-to")
			wantOneLineError(t, h.at("restore", id, "-to", to, "-overwrite"), ExitTarget, "-to")
		}
		if b, _ := os.ReadFile(file); string(b) != "mine" {
			t.Errorf("a refused restore changed the file in its way: %q", b)
		}
	})
	t.Run("usage", func(t *testing.T) {
		wantOneLineError(t, h.at("restore", id), ExitUsage, "-to")
		wantOneLineError(t, h.at("frobnicate"), ExitUsage, "unknown command")
		wantOneLineError(t, h.at("check", "-read-data-subset", "200%"), ExitUsage, "percentage")
		// A value the flag package cannot parse says what it must look like.
		wantOneLineError(t, h.run("-retry-for", "10x", "at", h.repo, "ls"), ExitUsage, `-retry-for "10x": want a duration such as`)
		wantOneLineError(t, h.at("ls", "-retry-for", "10x"), ExitUsage, `-retry-for "10x": want a duration such as`)
		wantOneLineError(t, h.at("-limit-upload", "abc", "ls"), ExitUsage, `-limit-upload "abc": want a whole number`)
		// A cache directory that is a file is said to be unusable.
		notDir := filepath.Join(t.TempDir(), "file")
		os.WriteFile(notDir, nil, 0o600)
		if r := h.run("-cache-dir", notDir, "at", h.repo, "ls"); r.code != 0 || !strings.Contains(r.stderr, "warning: the cache directory cannot be used") {
			t.Errorf("ls with a -cache-dir that is a file: exit %d, stderr %q; want 0 and a warning", r.code, r.stderr)
		}
		// Files named by flags that are not there.
		missing := filepath.Join(t.TempDir(), "missing")
		wantOneLineError(t, h.at("-ca-file", missing, "ls"), ExitUsage, "-ca-file", missing, "PEM file")
		wantOneLineError(t, h.at("backup", "-exclude-file", missing, "."), ExitUsage, "-exclude-file "+missing, "file of patterns")
		// A path to back up that is not there, or runs through a file.
		wantOneLineError(t, h.at("backup", t.TempDir(), missing), ExitUsage, "backup "+missing+": no such file or directory; give paths that exist")
		wantOneLineError(t, h.at("backup", filepath.Join(notDir, "x")), ExitUsage, "no such file or directory; give paths that exist")
	})
}

func TestAmbiguousPrefix(t *testing.T) {
	h := newHarness(t)
	src := t.TempDir()
	h.create()
	ids := map[byte]string{}
	for i := 0; i < 40; i++ {
		os.WriteFile(filepath.Join(src, "f"), []byte{byte(i)}, 0o644)
		id := h.backup(src)
		if prev, ok := ids[id[0]]; ok {
			wantOneLineError(t, h.at("cat", id[:1]+":f"), ExitNoSnapshot, "matches 2 snapshots", prev, id)
			return
		}
		ids[id[0]] = id
	}
	t.Fatal("40 snapshots and no two ids share a first hex digit")
}

func TestNewerFormat(t *testing.T) {
	h := newHarness(t)
	h.create()
	cfg := filepath.Join(h.repo, "config")
	b, _ := os.ReadFile(cfg)
	b[0]++
	os.WriteFile(cfg, b, 0o600)
	h.env["COFFER_PASSPHRASE"] = "" // must fail before asking for a passphrase
	wantOneLineError(t, h.at("ls"), ExitNewerFormat, "format version 2", "upgrade")

	// A config changed past its first byte fails authentication; the
	// object is named once ("config", not "config config").
	b[0]--
	b[len(b)-1] ^= 1
	os.WriteFile(cfg, b, 0o600)
	h.env["COFFER_PASSPHRASE"] = testPassphrase
	r := h.at("ls")
	wantOneLineError(t, r, ExitCorrupt, "config is corrupted or was tampered with")
	if strings.Contains(r.stderr, "config config") {
		t.Errorf("the config is named twice: %s", r.stderr)
	}
}

// Tampered or truncated objects are named and never restored as good data.
func TestTamperedObjects(t *testing.T) {
	tests := []struct {
		name    string
		tamper  func(t *testing.T, repoDir string)
		command []string
		want    []string
	}{
		{"pack byte", func(t *testing.T, d string) { flipByte(t, firstPack(t, d), 0.3) }, []string{"check", "-read-data"}, []string{"pack"}},
		{"pack byte on restore", func(t *testing.T, d string) { flipByte(t, firstPack(t, d), 0.3) }, []string{"restore", "ID", "-to", "TARGET"}, []string{"corrupted", "check -read-data names what is damaged", "-ignore-errors"}},
		{"truncated pack", func(t *testing.T, d string) {
			p := firstPack(t, d)
			fi, _ := os.Stat(p)
			os.Truncate(p, fi.Size()/2)
		}, []string{"check"}, []string{"pack", "size"}},
		{"index", func(t *testing.T, d string) {
			idx, _ := filepath.Glob(filepath.Join(d, "index", "*"))
			flipByte(t, idx[0], 0.5)
		}, []string{"ls", "ID"}, []string{"index", "corrupted"}}, // ls of snapshots reads no index
		{"snapshot", func(t *testing.T, d string) {
			sns, _ := filepath.Glob(filepath.Join(d, "snapshots", "*"))
			flipByte(t, sns[0], 0.5)
		}, []string{"ls"}, []string{"snapshot", "corrupted"}},
		{"key", func(t *testing.T, d string) {
			keys, _ := filepath.Glob(filepath.Join(d, "keys", "*"))
			flipByte(t, keys[0], 0.5)
		}, []string{"ls"}, []string{"key", "corrupted"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			h.env["COFFER_CACHE_DIR"] = "" // a cached index would hide index tampering
			src := sourceTree(t)
			h.create()
			id := h.backup(src)
			tt.tamper(t, h.repo)
			target := filepath.Join(t.TempDir(), "target")
			args := make([]string, len(tt.command))
			for i, a := range tt.command {
				args[i] = strings.NewReplacer("ID", id, "TARGET", target).Replace(a)
			}
			r := h.run(append([]string{"-no-cache", "at", h.repo}, args...)...)
			if r.code != ExitCorrupt {
				t.Fatalf("exit %d, want %d; stderr %q", r.code, ExitCorrupt, r.stderr)
			}
			for _, w := range tt.want {
				if !strings.Contains(r.stderr, w) {
					t.Errorf("stderr %q does not mention %q", r.stderr, w)
				}
			}
			assertNoWrongContent(t, src, target)
		})
	}
}

// assertNoWrongContent fails if any regular file restored under target has
// content that differs from the source without being a prefix of zeros:
// a restore may stop part-way, but what it wrote must be the source's
// bytes (files are created at full size, so unwritten ranges are zero).
func assertNoWrongContent(t *testing.T, src, target string) {
	t.Helper()
	filepath.Walk(target, func(p string, fi os.FileInfo, err error) error {
		if err != nil || !fi.Mode().IsRegular() {
			return nil
		}
		rel, _ := filepath.Rel(target, p)
		want, err := os.ReadFile(filepath.Join(src, rel))
		if err != nil {
			return nil
		}
		got, _ := os.ReadFile(p)
		for i := range got {
			if i >= len(want) || (got[i] != want[i] && got[i] != 0) {
				t.Errorf("%s: restored byte %d is neither the source's nor unwritten", rel, i)
				return nil
			}
		}
		return nil
	})
}

func TestRestoreTargetErrors(t *testing.T) {
	testutil.RequireRoot(t, "mounting tmpfs")
	h := newHarness(t)
	src := t.TempDir()
	os.WriteFile(filepath.Join(src, "big"), testutil.RandomBytes(1, 4<<20), 0o644)
	h.create()
	id := h.backup(src)

	mount := func(t *testing.T, flags uintptr, opts string) string { return mountTmpfs(t, "", flags, opts) }
	t.Run("not writable", func(t *testing.T) {
		dir := mount(t, syscall.MS_RDONLY, "size=1m")
		wantOneLineError(t, h.at("restore", id, "-to", filepath.Join(dir, "out")), ExitTarget, "not writable")
	})
	t.Run("disk full", func(t *testing.T) {
		dir := mount(t, 0, "size=1m")
		wantOneLineError(t, h.at("restore", id, "-to", dir), ExitDiskFull, "no space left", "big")
	})
}

// A backup that runs out of room for its pack files fails with the
// disk-full code, says where to make room, and leaves the repository as it
// was: a local repository's own file system (packs are assembled there and
// renamed into place), or TMPDIR for a registry.
func TestBackupOutOfSpace(t *testing.T) {
	testutil.RequireRoot(t, "mounting tmpfs")
	src := t.TempDir()
	os.WriteFile(filepath.Join(src, "big"), testutil.RandomBytes(2, 4<<20), 0o644)
	tmpfs := func(t *testing.T) string { return mountTmpfs(t, "", 0, "size=1m") }
	t.Run("local repository", func(t *testing.T) {
		h := newHarness(t)
		h.repo = filepath.Join(tmpfs(t), "repo")
		h.create()
		// tmp/ is scratch: a pack file was made and removed there, which
		// changed its mtime and nothing else.
		state := func() string {
			lines := strings.Split(treeState(t, h.repo), "\n")
			return strings.Join(slices.DeleteFunc(lines, func(l string) bool {
				return strings.HasPrefix(l, filepath.Join(h.repo, "tmp")+" ")
			}), "\n")
		}
		before := state()
		wantOneLineError(t, h.at("backup", src), ExitDiskFull, "no space left", "repository's file system")
		if after := state(); after != before {
			t.Errorf("a backup that ran out of space changed the repository:\nbefore:\n%s\nafter:\n%s", before, after)
		}
	})
	t.Run("TMPDIR missing or a file, registry", func(t *testing.T) {
		reg := testregistry.StartRegistry(t, testregistry.RegistryOptions{Kind: testregistry.Distribution, Delete: true})
		h := ociHarness(t, reg, "coffer/notmp")
		h.create()
		file := filepath.Join(t.TempDir(), "file")
		os.WriteFile(file, nil, 0o644)
		for _, tmp := range []string{filepath.Join(t.TempDir(), "gone"), file} {
			h.env["TMPDIR"] = tmp
			wantOneLineError(t, h.at("backup", src), ExitFailure, tmp+" (TMPDIR)", "set TMPDIR to a directory that exists")
		}
	})
	t.Run("TMPDIR, registry", func(t *testing.T) {
		reg := testregistry.StartRegistry(t, testregistry.RegistryOptions{Kind: testregistry.Distribution, Delete: true})
		h := ociHarness(t, reg, "coffer/full")
		h.create()
		tmp := tmpfs(t)
		h.env["TMPDIR"] = tmp
		wantOneLineError(t, h.at("backup", src), ExitDiskFull, "no space left", tmp, "set TMPDIR")
		entries, err := os.ReadDir(tmp)
		if err != nil || len(entries) != 0 {
			t.Errorf("TMPDIR holds %d entries after the failed backup (%v), want none: pack files are unlinked", len(entries), err)
		}
		if out := h.mustAt("ls"); out != "" {
			t.Errorf("snapshots listed after the failed backup: %q", out)
		}
		h.env["TMPDIR"] = t.TempDir()
		h.backup(src)
		if out := strings.TrimSpace(h.mustAt("ls")); strings.Count(out, "\n") != 0 || out == "" {
			t.Errorf("after a successful retry, ls lists %q, want one snapshot", out)
		}
	})
}

// A failed command writes nothing to the repository.
func TestFailedCommandsWriteNothing(t *testing.T) {
	h := newHarness(t)
	src := sourceTree(t)
	h.create()
	id := h.backup(src)
	before := treeState(t, h.repo)
	h.at("cat", id+":missing")
	h.at("restore", "ffffffff", "-to", t.TempDir())
	h.env["COFFER_PASSPHRASE"] = "wrong"
	h.at("backup", src)
	h.env["COFFER_PASSPHRASE"] = testPassphrase
	h.at("backup", filepath.Join(src, "does-not-exist"))
	if after := treeState(t, h.repo); after != before {
		t.Errorf("failed commands changed the repository:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

func TestJSONOutput(t *testing.T) {
	h := newHarness(t)
	src := sourceTree(t)
	h.create()
	h.backup(src)
	for _, cmd := range [][]string{{"ls"}, {"backup", src}, {"check"}, {"info"}, {"restore", "latest", "-to", t.TempDir()}} {
		r := h.run(append([]string{"-json", "at", h.repo}, cmd...)...)
		if r.code != 0 {
			t.Fatalf("%v: exit %d: %s", cmd, r.code, r.stderr)
		}
		lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
		for _, l := range lines {
			var v map[string]any
			if err := json.Unmarshal([]byte(l), &v); err != nil || v["type"] == nil {
				t.Errorf("%v: line %q is not a typed JSON object: %v", cmd, l, err)
			}
		}
		if strings.Contains(r.stdout, testPassphrase) {
			t.Errorf("%v: passphrase in JSON output", cmd)
		}
	}
	r := h.run("-json", "at", h.repo, "cat", "0000:x")
	var v map[string]any
	if err := json.Unmarshal([]byte(r.stderr), &v); err != nil || v["exit_code"] != float64(ExitNoSnapshot) {
		t.Errorf("JSON error %q: %v", r.stderr, err)
	}
}

func TestKeys(t *testing.T) {
	h := newHarness(t)
	h.create()
	h.env["COFFER_NEW_PASSPHRASE"] = "second"
	h.mustAt("key", "add")
	if out := h.mustAt("key", "list"); strings.Count(out, "\n") != 2 || strings.Count(out, "*") != 1 {
		t.Fatalf("key list: %q", out)
	}
	h.env["COFFER_PASSPHRASE"] = "second"
	h.env["COFFER_NEW_PASSPHRASE"] = "third"
	h.mustAt("key", "passwd")
	h.env["COFFER_PASSPHRASE"] = "second"
	wantOneLineError(t, h.at("ls"), ExitWrongPassword)
	h.env["COFFER_PASSPHRASE"] = "third"
	out := h.mustAt("key", "list")
	var other string
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if !strings.HasPrefix(l, "*") {
			other = strings.Fields(l)[0]
		}
	}
	cur := strings.Fields(strings.TrimPrefix(strings.Split(out, "*")[1], " "))[0]
	wantOneLineError(t, h.at("key", "rm", cur), ExitFailure, "in use")
	h.mustAt("key", "rm", other[:4])
	h.env["COFFER_PASSPHRASE"] = testPassphrase
	wantOneLineError(t, h.at("ls"), ExitWrongPassword)
}

func TestDiffAndLs(t *testing.T) {
	h := newHarness(t)
	src := t.TempDir()
	os.MkdirAll(filepath.Join(src, "d"), 0o755)
	os.WriteFile(filepath.Join(src, "d", "a"), []byte("one"), 0o644)
	os.WriteFile(filepath.Join(src, "gone"), []byte("x"), 0o644)
	os.Symlink("a", filepath.Join(src, "d", "ln"))
	h.create()
	a := h.backup(src)
	os.WriteFile(filepath.Join(src, "d", "a"), []byte("two!"), 0o644)
	os.Remove(filepath.Join(src, "gone"))
	os.WriteFile(filepath.Join(src, "new"), []byte("n"), 0o644)
	b := h.backup(src)
	out := h.mustAt("diff", a, b)
	for _, want := range []string{"M " + src + "/d/a (3 B -> 4 B)", "- " + src + "/gone", "+ " + src + "/new", "1 added, 1 removed, 1 modified"} {
		if !strings.Contains(out, want) {
			t.Errorf("diff output lacks %q:\n%s", want, out)
		}
	}
	if out := h.mustAt("ls", b); out != "d/\nnew\n" {
		t.Errorf("ls %s = %q", b, out)
	}
	if out := h.mustAt("ls", "-r", b+":d"); out != src+"/d/a\n"+src+"/d/ln\n" {
		t.Errorf("ls -r = %q", out)
	}
	if out := h.mustAt("ls", "-l", b+":d"); !regexp.MustCompile(`^-rw-r--r-- \S+ +\S+ +4 \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ a\nlrwxrwxrwx \S+ +\S+ +1 \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ ln -> a\n$`).MatchString(out) {
		t.Errorf("ls -l = %q", out)
	}
	// Identical snapshots: nothing to say, and success.
	if r := h.at("diff", b, b); r.code != 0 || r.stdout != "" || r.stderr != "" {
		t.Errorf("diff of a snapshot with itself: exit %d, %q, %q", r.code, r.stdout, r.stderr)
	}
}

// A symlink in the target where the snapshot has a directory is replaced,
// never followed out of the target.
func TestRestoreDoesNotFollowSymlinkInTarget(t *testing.T) {
	h := newHarness(t)
	src := t.TempDir()
	os.MkdirAll(filepath.Join(src, "sub"), 0o755)
	os.WriteFile(filepath.Join(src, "sub", "f"), []byte("data"), 0o644)
	h.create()
	id := h.backup(src)
	target, outside := t.TempDir(), t.TempDir()
	os.Symlink(outside, filepath.Join(target, "sub"))
	wantOneLineError(t, h.at("restore", id, "-to", target), ExitTarget, "sub")
	h.mustAt("restore", id, "-to", target, "-overwrite")
	if entries, _ := os.ReadDir(outside); len(entries) != 0 {
		t.Errorf("restore wrote through a symlink out of the target: %v", entries)
	}
	if b, err := os.ReadFile(filepath.Join(target, "sub", "f")); err != nil || string(b) != "data" {
		t.Errorf("sub/f: %q %v", b, err)
	}
}

func TestRestoreIntoSymlinkedTarget(t *testing.T) {
	h := newHarness(t)
	src := t.TempDir()
	os.WriteFile(filepath.Join(src, "f"), []byte("data"), 0o644)
	h.create()
	id := h.backup(src)
	real := t.TempDir()
	link := filepath.Join(t.TempDir(), "link")
	os.Symlink(real, link)
	h.mustAt("restore", id, "-to", link)
	if b, err := os.ReadFile(filepath.Join(real, "f")); err != nil || string(b) != "data" {
		t.Errorf("restore through a symlinked target: %q %v", b, err)
	}
}

// One damaged snapshot is named, but hides no other and blocks no backup.
func TestDamagedSnapshotHidesNothing(t *testing.T) {
	h := newHarness(t)
	src := t.TempDir()
	os.WriteFile(filepath.Join(src, "f"), []byte("1"), 0o644)
	h.create()
	h.backup(src)
	sns, _ := filepath.Glob(filepath.Join(h.repo, "snapshots", "*"))
	flipByte(t, sns[0], 0.5)
	good := h.backup(src)
	r := h.at("ls")
	if r.code != ExitCorrupt || !strings.Contains(r.stdout, good) || !strings.Contains(r.stderr, filepath.Base(sns[0])) {
		t.Errorf("ls with a damaged snapshot: exit %d\nstdout %q\nstderr %q", r.code, r.stdout, r.stderr)
	}
}

// `coffer ui -no-spawn` serves the repository on loopback behind a token
// and stops cleanly on Ctrl-C.
func TestUICommand(t *testing.T) {
	h := newHarness(t)
	src := sourceTree(t)
	h.create()
	h.backup(src)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	out := &syncWriter{}
	done := make(chan int)
	go func() {
		done <- Main(ctx, Env{Args: []string{"at", h.repo, "ui", "-no-spawn"}, Stdout: out, Stderr: out,
			Getenv: func(k string) string { return h.env[k] }})
	}()
	var url string
	for i := 0; i < 100 && url == ""; i++ {
		time.Sleep(50 * time.Millisecond)
		url = regexp.MustCompile(`http://127\.0\.0\.1:\d+/\S*token=\S+`).FindString(out.String())
	}
	if url == "" {
		t.Fatalf("ui printed no URL with a token: %q", out.String())
	}
	base := url[:strings.Index(url[len("http://"):], "/")+len("http://")]
	if resp, err := http.Get(base + "/"); err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("without the token: %v %v, want 401", resp, err)
	}
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar} // the token becomes a cookie, then a redirect
	resp, err := browser.Get(url)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("with the token: %v %v", resp, err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), "Repository") {
		t.Errorf("overview page: %.200s", body)
	}
	cancel()
	select {
	case code := <-done:
		if code != ExitOK {
			t.Errorf("ui stopped with exit code %d, want 0: %s", code, out.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("ui did not stop after Ctrl-C")
	}
}

// syncWriter is a buffer safe for a writer and a reader goroutine.
type syncWriter struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (w *syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(p)
}

func (w *syncWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// check reads index objects and snapshots from the store even when the
// cache holds them: a stored object damaged after a command cached it is
// found, where other commands go on with the intact cached copy.
func TestCheckReadsStoredObjects(t *testing.T) {
	for _, kind := range []string{"snapshots", "index"} {
		t.Run(kind, func(t *testing.T) {
			h := newHarness(t)
			h.env["COFFER_CACHE_DIR"] = t.TempDir()
			h.create()
			id := h.backup(sourceTree(t))
			h.mustAt("ls", id) // caches the snapshot and the index
			stored, _ := filepath.Glob(filepath.Join(h.repo, kind, "*"))
			if len(stored) != 1 {
				t.Fatalf("%d objects in %s, want 1", len(stored), kind)
			}
			flipByte(t, stored[0], 0.5)
			if r := h.run("at", h.repo, "ls", id); r.code != 0 {
				t.Errorf("ls with the cached copy: exit %d, stderr %q", r.code, r.stderr)
			}
			r := h.run("at", h.repo, "check")
			if r.code != ExitCorrupt || !strings.Contains(r.stderr, strings.TrimSuffix(kind, "s")) {
				t.Errorf("check of a damaged stored %s with an intact cached copy: exit %d (want %d), stderr %q", kind, r.code, ExitCorrupt, r.stderr)
			}
		})
	}
}

// A command line a command cannot run with is rejected before the
// repository is opened: no passphrase asked, no key derived, no request
// to the store. Against a store that does not exist, an error found
// after opening would be the missing repository's (exit 3).
func TestUsageBeforeOpening(t *testing.T) {
	h := newHarness(t)
	missing := filepath.Join(t.TempDir(), "nope")
	out := filepath.Join(t.TempDir(), "exists.tar")
	if err := os.WriteFile(out, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"archive"}, "archive takes one"},
		{[]string{"archive", "latest", "-format", "rar", "-o", "x"}, "rar"},
		{[]string{"archive", "latest", "-o", out}, "already exists"},
		{[]string{"backup", "-pack-size", "100KiB"}, "-pack-size"},
		{[]string{"backup", "stdin:db.sql", "src"}, "standard input is backed up alone"},
		{[]string{"cat", "latest"}, "needs a path after the snapshot id"},
		{[]string{"check", "x"}, "check takes no arguments"},
		{[]string{"check", "-read-data-subset", "ten"}, "-read-data-subset wants a percentage"},
		{[]string{"diff", "latest"}, "diff takes two arguments"},
		{[]string{"diff", "latest", "d61", "-content"}, "apply to a live path only"},
		{[]string{"diff", "latest", "./no-such-path"}, "no such file"},
		{[]string{"find"}, "find needs a pattern"},
		{[]string{"find", "-regex", "("}, "regular expression"},
		{[]string{"forget"}, "forget needs snapshot ids, or a policy"},
		{[]string{"forget", "-keep-last", "1", "d61"}, "not both"},
		{[]string{"forget", "-keep-last", "1", "-group-by", "color"}, "color"},
		{[]string{"info", "x"}, "info takes no arguments"},
		{[]string{"key"}, "key needs a subcommand"},
		{[]string{"key", "rm"}, "key rm <id>"},
		{[]string{"ls", "a", "b"}, "ls takes at most one"},
		{[]string{"prune", "x"}, "prune takes no arguments"},
		{[]string{"repair", "everything"}, "repair needs what to repair"},
		{[]string{"restore", "latest"}, "restore needs -to DIR"},
		{[]string{"restore", "latest", "-to", "-"}, "not stdout"},
		{[]string{"sync", "oci://localhost:5000/x"}, "sync needs `to <store>` or `from <store>`"},
		{[]string{"tag", "d61"}, "tag needs -add TAGS"},
		{[]string{"tag", "-set", "a", "-add", "b", "d61"}, "not both"},
		{[]string{"tag", "-add", "a"}, "tag needs snapshot ids"},
		{[]string{"ui", "x"}, "ui takes no arguments"},
		{[]string{"ui", "-addr", "nonsense"}, `ui -addr "nonsense" is not a host:port`},
		{[]string{"ui", "-addr", "127.0.0.1:99999"}, "127.0.0.1:8080"},
		{[]string{"unlock", "x"}, "unlock takes no arguments"},
	}
	for _, tt := range tests {
		r := h.run(append([]string{"at", missing}, tt.args...)...)
		if r.code != ExitUsage || !strings.Contains(r.stderr, tt.want) {
			t.Errorf("coffer at MISSING %s: exit %d, %q; want exit %d naming %q", strings.Join(tt.args, " "), r.code, strings.TrimSpace(r.stderr), ExitUsage, tt.want)
		}
	}
	// -addr forms net.Listen takes pass the check, and fail only on the
	// missing repository.
	for _, args := range [][]string{
		{"ui", "-addr", ""},
		{"ui", "-addr", ":8080"},
		{"ui", "-addr", "[::1]:0"},
		{"ui", "-addr", "localhost:"},
		{"ui", "-addr", "localhost:http"},
	} {
		if r := h.run(append([]string{"at", missing}, args...)...); r.code != ExitNoRepository {
			t.Errorf("coffer at MISSING %q: exit %d, %q; want %d, the missing repository", args, r.code, strings.TrimSpace(r.stderr), ExitNoRepository)
		}
	}
}

// TestStorePackSizeBeforeOpening: a pack size no backup can use, written
// into the configuration file by hand (store add refuses it), is a usage
// error before the store, which here does not exist, is opened.
func TestStorePackSizeBeforeOpening(t *testing.T) {
	h := newHarness(t)
	cfg := filepath.Join(t.TempDir(), "config.json")
	missing := filepath.Join(t.TempDir(), "nope")
	stored := fmt.Sprintf(`{"stores": {"bad": {"location": %q, "pack_size": "100KiB"}}}`, missing)
	if err := os.WriteFile(cfg, []byte(stored), 0o600); err != nil {
		t.Fatal(err)
	}
	h.env["COFFER_CONFIG"] = cfg
	wantOneLineError(t, h.run("at", "@bad", "backup", t.TempDir()), ExitUsage, "store option pack-size=100KiB", "512KiB")
	// -pack-size on the command line wins over the store's.
	r := h.run("at", "@bad", "backup", "-pack-size", "1MiB", t.TempDir())
	if r.code == ExitUsage || strings.Contains(r.stderr, "pack-size") {
		t.Errorf("backup -pack-size 1MiB on a store with pack-size=100KiB: exit %d, %q; want the missing store's error", r.code, strings.TrimSpace(r.stderr))
	}
}
