//go:build linux

package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// An explicit -passphrase-file wins over COFFER_PASSPHRASE, which may be
// left over in the environment; so does -new-passphrase-file over
// COFFER_NEW_PASSPHRASE.
func TestPassphraseFileWinsOverEnv(t *testing.T) {
	h := newHarness(t)
	h.create() // with COFFER_PASSPHRASE = testPassphrase
	dir := t.TempDir()
	writeFile := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	right := writeFile("right", testPassphrase+"\n")
	wrong := writeFile("wrong", "not the passphrase\n")

	h.env["COFFER_PASSPHRASE"] = "not the passphrase"
	if r := h.run("-passphrase-file", right, "at", h.repo, "ls"); r.code != 0 {
		t.Fatalf("right -passphrase-file, wrong COFFER_PASSPHRASE: exit %d, %s", r.code, r.stderr)
	}
	h.env["COFFER_PASSPHRASE"] = testPassphrase
	r := h.run("-passphrase-file", wrong, "at", h.repo, "ls")
	wantOneLineError(t, r, ExitWrongPassword)

	// key add: the new key's passphrase comes from the file, not the
	// environment; each then opens the repository.
	other := writeFile("other", "a third passphrase\n")
	h.env["COFFER_NEW_PASSPHRASE"] = "from the environment"
	h.mustAt("key", "add", "-new-passphrase-file", other)
	delete(h.env, "COFFER_PASSPHRASE")
	if r := h.run("-passphrase-file", other, "at", h.repo, "ls"); r.code != 0 {
		t.Fatalf("the key added from -new-passphrase-file does not open: exit %d, %s", r.code, r.stderr)
	}
	h.env["COFFER_PASSPHRASE"] = "from the environment"
	wantOneLineError(t, h.at("ls"), ExitWrongPassword)
}

// With -key-cache (or COFFER_KEY_CACHE), a passphrase that opened the
// repository once is not needed again until the entry expires or
// `cache -forget-keys` removes it; key management still asks for it.
func TestKeyCache(t *testing.T) {
	h := newHarness(t)
	runtimeDir := t.TempDir()
	h.env["XDG_RUNTIME_DIR"] = runtimeDir
	h.create()
	h.backup(sourceTree(t))

	h.env["COFFER_KEY_CACHE"] = "15m"
	h.mustAt("ls")
	entries, _ := filepath.Glob(filepath.Join(runtimeDir, "coffer", "keys", "*.key"))
	if len(entries) != 1 {
		t.Fatalf("key cache entries: %q, want 1", entries)
	}

	// A passphrase is neither needed nor checked while the key is cached.
	h.env["COFFER_PASSPHRASE"] = "not the passphrase"
	if out := h.mustAt("ls"); strings.Count(out, "/project\n") != 1 {
		t.Errorf("ls with a cached key: %q", out)
	}
	wantOneLineError(t, h.at("key", "list"), ExitWrongPassword)
	// -key-cache 0 turns the environment's off.
	wantOneLineError(t, h.run("-key-cache", "0", "at", h.repo, "ls"), ExitWrongPassword)
	// sync opens the other repository with the passphrase given for
	// this one, though this one's keys came from the cache.
	h.env["COFFER_PASSPHRASE"] = testPassphrase
	other := filepath.Join(t.TempDir(), "other")
	if r := h.run("at", other, "create"); r.code != 0 {
		t.Fatalf("create: %s", r.stderr)
	}
	if r := h.at("sync", "to", other); r.code != 0 {
		t.Fatalf("sync with a cached key: exit %d, %s", r.code, r.stderr)
	}
	h.env["COFFER_PASSPHRASE"] = "not the passphrase"
	// Without -key-cache the cache is not looked in.
	delete(h.env, "COFFER_KEY_CACHE")
	wantOneLineError(t, h.at("ls"), ExitWrongPassword)

	h.env["COFFER_KEY_CACHE"] = "15m"
	out := h.run("cache")
	if out.code != 0 || !strings.Contains(out.stdout, "key of "+h.repo+" cached until ") {
		t.Fatalf("cache: exit %d, %q", out.code, out.stdout)
	}
	// This one's, and the other's, which sync opened.
	if out := h.run("cache", "-forget-keys"); out.code != 0 || !strings.Contains(out.stdout, "forgot 2 cached keys\n") {
		t.Fatalf("cache -forget-keys: exit %d, %q %q", out.code, out.stdout, out.stderr)
	}
	wantOneLineError(t, h.at("ls"), ExitWrongPassword)

	for _, bad := range []struct{ env, flag string }{{"15", ""}, {"", "-1s"}} {
		h.env["COFFER_KEY_CACHE"] = bad.env
		args := []string{"at", h.repo, "ls"}
		if bad.flag != "" {
			args = append([]string{"-key-cache", bad.flag}, args...)
		}
		wantOneLineError(t, h.run(args...), ExitUsage, "duration")
	}
}
