//go:build linux

package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Named stores: a configuration round trip with a passphrase-command and
// a passphrase-file, used by `at @NAME`, COFFER_REPOSITORY=@NAME and as
// sync's other store; the file is private and holds no passphrase; bad
// names and options are refused with one line.
func TestNamedStores(t *testing.T) {
	h := newHarness(t)
	delete(h.env, "COFFER_PASSPHRASE")
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "conf", "config.json")
	h.env["COFFER_CONFIG"] = cfgPath
	pwFile := filepath.Join(dir, "pw")
	if err := os.WriteFile(pwFile, []byte("first secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	second := filepath.Join(dir, "second")

	h.mustRun("store", "add", "prod", h.repo, "passphrase-command=cat "+pwFile, "pack-size=1")
	h.mustRun("store", "add", "copy", second, "passphrase-command=printf %s 'other secret'", "retry-for=1m")
	fi, err := os.Stat(cfgPath)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("configuration file: %v, mode %v; want 0600", err, fi.Mode())
	}
	b, _ := os.ReadFile(cfgPath)
	if strings.Contains(string(b), "first secret") || strings.Contains(string(b), "\"passphrase\"") {
		t.Errorf("the configuration holds a passphrase:\n%s", b)
	}
	if list := h.mustRun("store", "list"); !strings.Contains(list, "@prod") || !strings.Contains(list, h.repo) || !strings.Contains(list, "@copy") {
		t.Errorf("store list:\n%s", list)
	}

	h.mustRun("at", "@prod", "create")
	var info struct {
		PackSize int64 `json:"pack_size"`
	}
	json.Unmarshal([]byte(h.mustRun("-json", "at", "@prod", "info")), &info)
	if info.PackSize != 1<<20 {
		t.Errorf("create on a store with pack-size=1: pack size %d", info.PackSize)
	}
	h.mustRun("at", "@prod", "backup", sourceTree(t))
	h.env["COFFER_REPOSITORY"] = "@prod"
	if ls := h.mustRun("ls"); strings.Count(ls, "\n") != 1 {
		t.Errorf("COFFER_REPOSITORY=@prod ls: %q", ls)
	}
	delete(h.env, "COFFER_REPOSITORY")
	// The flag wins over the store's passphrase.
	wrong := filepath.Join(dir, "wrong")
	os.WriteFile(wrong, []byte("nope"), 0o600)
	wantOneLineError(t, h.run("at", "@prod", "ls", "-passphrase-file", wrong), ExitWrongPassword)

	// The other store's passphrase comes from its own configuration.
	h.mustRun("at", "@copy", "create")
	if out := h.mustRun("at", "@prod", "sync", "to", "@copy"); !strings.Contains(out, "1 snapshot copied") {
		t.Errorf("sync to @copy: %q", out)
	}
	if ls := h.mustRun("at", "@copy", "ls"); strings.Count(ls, "\n") != 1 {
		t.Errorf("ls of the copy: %q", ls)
	}

	wantOneLineError(t, h.run("at", "@nope", "ls"), ExitUsage, `no store named "nope"`, "@copy, @prod")
	wantOneLineError(t, h.run("store", "add", "prod", h.repo), ExitUsage, "exists already")
	wantOneLineError(t, h.run("store", "add", "x", h.repo, "passphrase=hunter2"), ExitUsage, "plain text")
	wantOneLineError(t, h.run("store", "add", "x", h.repo, "retry-for=soon"), ExitUsage, "retry-for")
	wantOneLineError(t, h.run("store", "add", "x", h.repo, "pack-size=100KiB"), ExitUsage, "pack-size=100KiB", "512KiB")
	wantOneLineError(t, h.run("store", "add", "x", h.repo, "colour=blue"), ExitUsage, "unknown store option", "passphrase-command")
	wantOneLineError(t, h.run("store", "add", "x", "oci:host/repo"), ExitUsage, "oci://")
	wantOneLineError(t, h.run("store", "add", ".hidden", h.repo), ExitUsage, "store name")
	h.mustRun("store", "add", "broken", h.repo, "passphrase-command=echo oops >&2; exit 3")
	r := h.run("at", "@broken", "ls")
	wantOneLineError(t, r, ExitFailure, "passphrase-command", "oops")

	// The same passphrase from the flag and the variable, on the plain
	// location.
	if ls := h.mustRun("-passphrase-command", "cat "+pwFile, "at", h.repo, "ls"); strings.Count(ls, "\n") != 1 {
		t.Errorf("-passphrase-command: %q", ls)
	}
	h.env["COFFER_PASSPHRASE_COMMAND"] = "cat " + pwFile
	if ls := h.mustRun("at", h.repo, "ls"); strings.Count(ls, "\n") != 1 {
		t.Errorf("COFFER_PASSPHRASE_COMMAND: %q", ls)
	}
	delete(h.env, "COFFER_PASSPHRASE_COMMAND")

	h.mustRun("store", "rm", "broken")
	if list := h.mustRun("store", "list"); strings.Contains(list, "@broken") {
		t.Errorf("store rm left it:\n%s", list)
	}
	wantOneLineError(t, h.run("store", "rm", "broken"), ExitUsage, "no store named")
}
