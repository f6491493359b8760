//go:build linux

package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/cofferhq/coffer/internal/testregistry"
	"github.com/cofferhq/coffer/internal/testutil"
)

const testPassphrase = "6292d531ecede679b5e4afbbe9ce994a"

// harness runs coffer commands in-process against one repository.
type harness struct {
	t    *testing.T
	repo string
	env  map[string]string
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	dir := t.TempDir()
	return &harness{t: t, repo: filepath.Join(dir, "repo"), env: map[string]string{
		"COFFER_PASSPHRASE": testPassphrase,
		"COFFER_CACHE_DIR":  filepath.Join(dir, "cache"),
	}}
}

type result struct {
	stdout, stderr string
	code           int
}

// run runs `coffer <args...>` with the harness environment.
func (h *harness) run(args ...string) result {
	h.t.Helper()
	var stdout, stderr bytes.Buffer
	code := Main(context.Background(), Env{
		Args: args, Stdin: strings.NewReader(""), Stdout: &stdout, Stderr: &stderr,
		Getenv: func(k string) string { return h.env[k] },
	})
	return result{stdout.String(), stderr.String(), code}
}

// at runs `coffer at <repo> <args...>`.
func (h *harness) at(args ...string) result {
	h.t.Helper()
	return h.run(append([]string{"at", h.repo}, args...)...)
}

// mustAt runs a command that must succeed and returns its stdout.
func (h *harness) mustAt(args ...string) string {
	h.t.Helper()
	r := h.at(args...)
	if r.code != 0 {
		h.t.Fatalf("coffer %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r.stdout
}

// create makes the repository.
func (h *harness) create() {
	h.t.Helper()
	h.mustAt("create")
}

// backup backs up dir and returns the new snapshot's short id.
func (h *harness) backup(args ...string) string {
	h.t.Helper()
	out := h.mustAt(append([]string{"backup"}, args...)...)
	m := regexp.MustCompile(`snapshot ([0-9a-f]{8}) saved`).FindStringSubmatch(out)
	if m == nil {
		h.t.Fatalf("backup printed no snapshot id: %q", out)
	}
	return m[1]
}

// sourceTree generates a small tree with a LICENSE file and returns it.
func sourceTree(t *testing.T) string {
	t.Helper()
	src := filepath.Join(t.TempDir(), "project")
	testutil.GenerateTree(t, src, testutil.TreeOptions{Seed: 7, Files: 20, LargeFileSize: 2 << 20})
	if err := os.WriteFile(filepath.Join(src, "LICENSE"), []byte(licenseText), 0o644); err != nil {
		t.Fatal(err)
	}
	return src
}

const licenseText = `Permission to use, copy, modify, and distribute this software for any
purpose with or without fee is hereby granted, provided that the above
copyright notice and this permission notice appear in all copies.
`

// wantOneLineError asserts a failed command's exit code and that stderr
// is a single line containing every fragment.
func wantOneLineError(t *testing.T, r result, code int, fragments ...string) {
	t.Helper()
	if r.code != code {
		t.Errorf("exit code %d, want %d; stderr: %s", r.code, code, r.stderr)
	}
	lines := strings.Split(strings.TrimRight(r.stderr, "\n"), "\n")
	if len(lines) != 1 || lines[0] == "" {
		t.Errorf("stderr should be one line, got %d: %q", len(lines), r.stderr)
	}
	for _, f := range fragments {
		if !strings.Contains(r.stderr, f) {
			t.Errorf("stderr %q does not mention %q", r.stderr, f)
		}
	}
}

// firstPack returns the path of some pack file of an fs repository.
func firstPack(t *testing.T, repoDir string) string {
	t.Helper()
	packs, _ := filepath.Glob(filepath.Join(repoDir, "packs", "*", "*"))
	if len(packs) == 0 {
		t.Fatal("repository has no packs")
	}
	return packs[0]
}

// flipByte inverts one byte of a file at the given fraction of its length.
func flipByte(t *testing.T, path string, where float64) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	i := int(float64(len(b)-1) * where)
	b[i] ^= 0xff
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// treeState records names, sizes and mtimes under dir, to prove a failed
// command wrote nothing.
func treeState(t *testing.T, dir string) string {
	t.Helper()
	var sb strings.Builder
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if fi.IsDir() {
			// A directory's time changes when an entry comes and goes,
			// such as a command's lock; the entries themselves are listed.
			sb.WriteString(p + " " + fi.Mode().String() + "\n")
			return nil
		}
		sb.WriteString(p + " " + fi.Mode().String() + " " + fi.ModTime().String() + " " + strconv.FormatInt(fi.Size(), 10) + "\n")
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return sb.String()
}

// bothStores returns the harness makers the lifecycle tests run on: a
// local directory, and a repository named repo on a CNCF Distribution
// registry of its own.
func bothStores(repo string) map[string]func(t *testing.T) *harness {
	return map[string]func(t *testing.T) *harness{
		"local": newHarness,
		"distribution": func(t *testing.T) *harness {
			reg := testregistry.StartRegistry(t, testregistry.RegistryOptions{Kind: testregistry.Distribution, Delete: true})
			return ociHarness(t, reg, repo)
		},
	}
}

// checkReadData runs check -read-data, which must find no errors.
func (h *harness) checkReadData(when string) {
	h.t.Helper()
	if out := h.mustAt("check", "-read-data"); !strings.Contains(out, "no errors were found") {
		h.t.Errorf("check -read-data %s: %s", when, out)
	}
}

// summaryLine returns the summary event of a -json command's output,
// which status events may precede.
func summaryLine(t *testing.T, stdout string) []byte {
	t.Helper()
	for _, line := range strings.Split(strings.TrimSpace(stdout), "\n") {
		if strings.Contains(line, `"type":"summary"`) {
			return []byte(line)
		}
	}
	t.Fatalf("no summary event in %q", stdout)
	return nil
}

// mountTmpfs mounts a tmpfs with flags and opts (like "size=1m") on dir,
// a new temporary directory when dir is "", until t ends, and returns
// the mount point. It needs root (testutil.RequireRoot).
func mountTmpfs(t *testing.T, dir string, flags uintptr, opts string) string {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", flags, opts); err != nil {
		t.Fatalf("mount tmpfs: %v", err)
	}
	t.Cleanup(func() { syscall.Unmount(dir, syscall.MNT_DETACH) })
	return dir
}
