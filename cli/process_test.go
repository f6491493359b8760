//go:build linux

package cli

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cofferhq/coffer/internal/testutil"
)

// These tests run the real binary: signals, kill -9 and other users
// cannot be exercised in-process.

func binaryCmd(t *testing.T, h *harness, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(testutil.CofferBinary(t), args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}
	for k, v := range h.env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	return cmd
}

// bigTree writes n MiB of incompressible data in files of 8 MiB.
func bigTree(t *testing.T, mib int) string {
	t.Helper()
	src := t.TempDir()
	for i := 0; i*8 < mib; i++ {
		name := filepath.Join(src, "f"+string(rune('a'+i)))
		if err := os.WriteFile(name, testutil.RandomBytes(int64(i), 8<<20), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return src
}

func countPacks(repoDir string) int {
	packs, _ := filepath.Glob(filepath.Join(repoDir, "packs", "*", "*"))
	return len(packs)
}

// An interrupted backup (kill -9, or Ctrl-C) leaves no snapshot, the
// repository passes check, and the next backup reuses the packs.
func TestInterruptedBackup(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGKILL, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			h := newHarness(t)
			src := bigTree(t, 160)
			h.create()
			backup := binaryCmd(t, h, "-json", "at", h.repo, "backup", src)
			var stderr bytes.Buffer
			backup.Stderr = &stderr
			if err := backup.Start(); err != nil {
				t.Fatal(err)
			}
			deadline := time.Now().Add(60 * time.Second)
			for countPacks(h.repo) < 2 && time.Now().Before(deadline) {
				time.Sleep(5 * time.Millisecond)
			}
			if err := backup.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			err := backup.Wait()
			uploaded := countPacks(h.repo)
			if uploaded < 2 {
				t.Fatalf("only %d packs were written before the signal", uploaded)
			}
			if sig == syscall.SIGINT {
				if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != ExitInterrupted {
					t.Errorf("after SIGINT: %v, want exit code %d (stderr %s)", err, ExitInterrupted, stderr.String())
				}
			}
			if out := h.mustAt("ls"); out != "" {
				t.Fatalf("an interrupted backup left a snapshot: %q", out)
			}
			if r := h.at("check"); r.code != 0 || !strings.Contains(r.stdout, "not indexed yet") {
				t.Fatalf("check after interruption: exit %d\n%s%s", r.code, r.stdout, r.stderr)
			}
			r := h.run("-json", "at", h.repo, "backup", src)
			if r.code != 0 {
				t.Fatalf("backup after interruption: %d %s", r.code, r.stderr)
			}
			var sum struct {
				Summary struct {
					Size        int64 `json:"size"`
					StoredBytes int64 `json:"stored_bytes"`
				} `json:"summary"`
			}
			if err := json.Unmarshal(summaryLine(t, r.stdout), &sum); err != nil {
				t.Fatal(err)
			}
			// The packs already uploaded (at least 2 x 32 MiB) are reused,
			// so the second run stores that much less.
			if sum.Summary.StoredBytes > sum.Summary.Size-int64(uploaded-1)*32<<20 {
				t.Errorf("second backup stored %d of %d bytes: the %d uploaded packs were not reused",
					sum.Summary.StoredBytes, sum.Summary.Size, uploaded)
			}
			if out := h.mustAt("check", "-read-data"); !strings.Contains(out, "no errors") {
				t.Errorf("check -read-data: %s", out)
			}
			restored := t.TempDir()
			h.mustAt("restore", "latest", "-to", restored)
			testutil.CompareTrees(t, src, restored)
		})
	}
}

// The seed's commands, verbatim, through the real binary.
func TestWalkthroughBinary(t *testing.T) {
	h := newHarness(t)
	src := sourceTree(t)
	run := func(args ...string) string {
		cmd := binaryCmd(t, h, args...)
		cmd.Dir = src
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("coffer %s: %v", strings.Join(args, " "), err)
		}
		return string(out)
	}
	run("at", h.repo, "create")
	if out := run("-silent", "at", h.repo, "backup"); out != "" {
		t.Errorf("silent backup printed %q", out)
	}
	ls := run("at", h.repo, "ls")
	id := strings.Fields(ls)[1]
	if got := run("at", h.repo, "cat", id[:3]+":LICENSE"); got != licenseText {
		t.Errorf("cat: %q", got)
	}
	run("at", h.repo, "restore", id[:3], "-to", "./restored")
	// Move the restored tree out of the source before comparing the two.
	restored := filepath.Join(t.TempDir(), "restored")
	if err := os.Rename(filepath.Join(src, "restored"), restored); err != nil {
		t.Fatal(err)
	}
	testutil.CompareTrees(t, src, restored)
}

// An unreadable file is warned about, recorded, and makes the exit code
// 3 while the snapshot is still saved. Root reads everything, so as root
// the backup runs as nobody.
func TestUnreadableFileIsPartial(t *testing.T) {
	h := newHarness(t)
	base := t.TempDir()
	os.Chmod(base, 0o755)
	os.Chmod(filepath.Dir(base), 0o755) // the test's own temp root is 0700
	src := filepath.Join(base, "src")
	os.Mkdir(src, 0o755)
	os.WriteFile(filepath.Join(src, "ok"), []byte("fine"), 0o644)
	os.WriteFile(filepath.Join(src, "secret"), []byte("hidden"), 0o000)
	h.repo = filepath.Join(base, "repo")
	h.env["COFFER_CACHE_DIR"] = filepath.Join(base, "cache")
	h.create()

	cmd := binaryCmd(t, h, "at", h.repo, "backup", src)
	if os.Geteuid() == 0 {
		// Hand the repository and cache to nobody; the secret stays root's.
		for _, dir := range []string{h.repo, h.env["COFFER_CACHE_DIR"]} {
			filepath.Walk(dir, func(p string, _ os.FileInfo, _ error) error { return os.Lchown(p, 65534, 65534) })
		}
		os.Chmod(filepath.Dir(testutil.CofferBinary(t)), 0o755)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != ExitPartial {
		t.Fatalf("backup with an unreadable file: %v, want exit %d; stderr %s", err, ExitPartial, stderr.String())
	}
	if !strings.Contains(stderr.String(), "warning: "+filepath.Join(src, "secret")) || !strings.Contains(stderr.String(), "permission denied") {
		t.Errorf("stderr does not warn about the file: %s", stderr.String())
	}
	if !strings.Contains(stdout.String(), "saved") {
		t.Errorf("partial snapshot not saved: %s", stdout.String())
	}
	if got := h.mustAt("cat", "latest:ok"); got != "fine" {
		t.Errorf("readable file: %q", got)
	}
	if out := h.mustAt("ls", "-l", "latest"); !strings.Contains(out, "secret") {
		t.Errorf("unreadable file not recorded: %s", out)
	}
	readingIncompleteIsPartial(t, h, filepath.Base(src), "secret", len("hidden"))
}

// readingIncompleteIsPartial checks that cat, restore, archive (tar and
// zip) and restore's JSON summary each write a file that was not read at
// backup time as the empty file the snapshot holds, warn about it, and
// exit 3: none passes the file off as complete, none makes up its bytes,
// and the archives stay well-formed (a tar header that promised the
// file's size on disk ended the archive there).
func readingIncompleteIsPartial(t *testing.T, h *harness, dir, name string, size int) {
	t.Helper()
	wantPartial := func(what string, r result, warning string) {
		t.Helper()
		if r.code != ExitPartial || !strings.Contains(r.stderr, warning) || strings.Count(strings.TrimSpace(r.stderr), "\n") > 1 {
			t.Errorf("%s of a file not read at backup time: exit %d, want %d, and a warning naming it (%q); stderr:\n%s", what, r.code, ExitPartial, warning, r.stderr)
		}
	}
	r := h.at("cat", "latest:"+name)
	wantPartial("cat", r, fmt.Sprintf("was not read in full at backup time (open %s: permission denied): wrote the 0 of its %d bytes", filepath.Join(filepath.Dir(h.repo), dir, name), size))
	if r.stdout != "" {
		t.Errorf("cat wrote %q for a file the snapshot holds none of", r.stdout)
	}

	target := filepath.Join(t.TempDir(), "restored")
	r = h.at("restore", "latest", "-to", target)
	wantPartial("restore", r, "restored with the 0 of its "+strconv.Itoa(size)+" bytes")
	if fi, err := os.Lstat(filepath.Join(target, name)); err != nil || fi.Size() != 0 {
		t.Errorf("restored %s: %v, size %d, want an empty file", name, err, fi.Size())
	}
	jsonTarget := filepath.Join(t.TempDir(), "restored")
	r = h.at("-json", "restore", "latest", "-to", jsonTarget)
	if r.code != ExitPartial || !strings.Contains(r.stdout, `"incomplete":1`) {
		t.Errorf("restore -json: exit %d, want %d with a summary counting the file incomplete:\n%s", r.code, ExitPartial, r.stdout)
	}
	// Its bytes are what the restored files hold, not their sizes at
	// backup time.
	var onDisk int64
	filepath.WalkDir(jsonTarget, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				onDisk += fi.Size()
			}
		}
		return nil
	})
	if want := fmt.Sprintf(`"bytes":%d,`, onDisk); !strings.Contains(r.stdout, want) {
		t.Errorf("restore -json summary does not say %s, what the restored files hold:\n%s", want, r.stdout)
	}

	r = h.at("archive", "latest")
	wantPartial("archive", r, dir+"/"+name+": was not readable at backup time")
	files := map[string]int64{}
	tr := tar.NewReader(strings.NewReader(r.stdout))
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("archive is not a well-formed tar: %v", err)
		}
		n, err := io.Copy(io.Discard, tr)
		if err != nil || n != hdr.Size {
			t.Fatalf("tar entry %s: %d of %d bytes: %v", hdr.Name, n, hdr.Size, err)
		}
		files[hdr.Name] = n
	}
	if n, ok := files[dir+"/"+name]; !ok || n != 0 {
		t.Errorf("tar holds %s with %d bytes (present %v), want an empty file; entries %v", name, n, ok, files)
	}
	if files[dir+"/ok"] != int64(len("fine")) {
		t.Errorf("tar holds the readable file with %d bytes, want %d; entries %v", files[dir+"/ok"], len("fine"), files)
	}

	r = h.at("archive", "latest", "-format", "zip")
	wantPartial("archive -format zip", r, dir+"/"+name+": was not readable at backup time")
	zr, err := zip.NewReader(strings.NewReader(r.stdout), int64(len(r.stdout)))
	if err != nil {
		t.Fatalf("zip archive: %v", err)
	}
	found := false
	for _, f := range zr.File {
		if f.Name == dir+"/"+name {
			found = f.UncompressedSize64 == 0
		}
	}
	if !found {
		t.Errorf("zip does not hold %s as an empty file", name)
	}
}

// Without COFFER_PASSPHRASE or -passphrase-file, create asks on the
// terminal twice and refuses two different answers. script(1) gives the
// binary a pseudo-terminal.
func TestInteractivePassphrase(t *testing.T) {
	// Its processes start in goroutines, where a skip would not stop the test.
	testutil.SkipInShort(t, "runs the coffer binary")
	scriptBin, err := exec.LookPath("script")
	if err != nil {
		testutil.SkipLoudly(t, "script(1) from util-linux is needed for a pseudo-terminal")
	}
	h := newHarness(t)
	delete(h.env, "COFFER_PASSPHRASE")
	typed := func(answers ...string) (string, error) {
		cmd := exec.Command(scriptBin, "-qec", testutil.CofferBinary(t)+" at "+h.repo+" create", "/dev/null")
		cmd.Env = binaryCmd(t, h).Env
		pr, pw := io.Pipe()
		cmd.Stdin = pr
		go func() {
			for _, a := range answers {
				time.Sleep(300 * time.Millisecond)
				io.WriteString(pw, a+"\n")
			}
			time.Sleep(time.Second)
			pw.Close()
		}()
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := typed("first", "second"); err == nil || !strings.Contains(out, "the two passphrases differ") {
		t.Fatalf("mismatched confirmation: %v\n%s", err, out)
	}
	if out, err := typed("typed secret", "typed secret"); err != nil || !strings.Contains(out, "created repository") {
		t.Fatalf("create with a typed passphrase: %v\n%s", err, out)
	}
	h.env["COFFER_PASSPHRASE"] = "typed secret"
	h.mustAt("key", "list")
}

// A command interrupted while its -passphrase-command runs exits as
// interrupted, not as a failed passphrase command, and says what it left
// behind in its own terms, not a backup's.
func TestInterruptedWhileAskingPassphrase(t *testing.T) {
	h := newHarness(t)
	h.create()
	delete(h.env, "COFFER_PASSPHRASE")
	cmd := binaryCmd(t, h, "-passphrase-command", "sleep 100", "at", h.repo, "ls")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != ExitInterrupted {
		t.Fatalf("ls interrupted during its passphrase command: %v, want exit %d; stderr %s", err, ExitInterrupted, stderr.String())
	}
	if got := strings.TrimSpace(stderr.String()); got != "coffer: interrupted" {
		t.Errorf("stderr %q, want %q", got, "coffer: interrupted")
	}
}
