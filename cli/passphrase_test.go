//go:build linux

package cli

import (
	"os"
	"path/filepath"
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
