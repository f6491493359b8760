//go:build linux

package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cofferhq/coffer/internal/testregistry"
)

// orasAt runs oras against reg with its credentials and transport flags
// and fails the test on error.
func orasAt(t *testing.T, reg *testregistry.Registry, args ...string) string {
	t.Helper()
	out, err := testregistry.Oras(t, reg.DockerEnv(), append(args, reg.OrasFlags()...)...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// refsHolding returns the refs tag whose manifest lists the snapshot, and
// the manifest, of each refs tag.
func refsHolding(t *testing.T, reg *testregistry.Registry, repo, snapshotID string) (string, map[string][]byte) {
	t.Helper()
	ref := reg.Host + "/" + repo
	manifests := map[string][]byte{}
	holder := ""
	for _, tag := range strings.Fields(orasAt(t, reg, "repo", "tags", ref)) {
		if !strings.HasPrefix(tag, "coffer-refs-") {
			continue
		}
		m := orasAt(t, reg, "manifest", "fetch", ref+":"+tag)
		manifests[tag] = []byte(m)
		var parsed struct {
			Layers []struct{ MediaType, Digest string }
		}
		if err := json.Unmarshal([]byte(m), &parsed); err != nil {
			t.Fatalf("refs manifest %s: %v", tag, err)
		}
		for _, l := range parsed.Layers {
			if l.Digest == "sha256:"+snapshotID {
				holder = tag
			}
		}
	}
	if holder == "" {
		t.Fatalf("no refs tag lists snapshot %s", snapshotID)
	}
	return holder, manifests
}

// pushManifest puts a manifest under a tag, as a registry replaying an
// older state would.
func pushManifest(t *testing.T, reg *testregistry.Registry, repo, tag string, manifest []byte) {
	t.Helper()
	f := filepath.Join(t.TempDir(), "manifest.json")
	if err := os.WriteFile(f, manifest, 0o644); err != nil {
		t.Fatal(err)
	}
	orasAt(t, reg, "manifest", "push", "--media-type", "application/vnd.oci.image.manifest.v1+json", reg.Host+"/"+repo+":"+tag, f)
}

// snapshotsJSON returns the snapshots `ls -json` lists.
func snapshotsJSON(t *testing.T, h *harness) []map[string]any {
	t.Helper()
	var out []map[string]any
	r := h.run("-json", "at", h.repo, "ls")
	if r.code != 0 {
		t.Fatalf("ls -json: exit %d, stderr %q", r.code, r.stderr)
	}
	for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		var v map[string]any
		if err := json.Unmarshal([]byte(line), &v); err != nil {
			t.Fatalf("ls -json line %q: %v", line, err)
		}
		if v["type"] == "snapshot" {
			out = append(out, v)
		}
	}
	return out
}

// wantRollbackReported asserts that ls lists the snapshots left, warns on
// one stderr line that the gone one is missing, naming its writer, and
// exits 0, and that check exits 15 naming it.
func wantRollbackReported(t *testing.T, h *harness, what, gone, writer string, left int) {
	t.Helper()
	r := h.at("ls")
	if r.code != 0 || strings.Count(r.stdout, "\n") != left {
		t.Errorf("%s: ls exit %d, listed:\n%s\nwant exit 0 and %d snapshots", what, r.code, r.stdout, left)
	}
	lines := strings.Split(strings.TrimRight(r.stderr, "\n"), "\n")
	if len(lines) != 1 || !strings.HasPrefix(lines[0], "warning: snapshot "+gone+" of writer "+writer) || !strings.Contains(lines[0], "no forget removed it") {
		t.Errorf("%s: ls stderr %q; want one warning that snapshot %s of writer %s is missing", what, r.stderr, gone, writer)
	}
	r = h.at("check")
	if r.code != ExitCorrupt || !strings.Contains(r.stderr, "error: snapshot "+gone+" of writer "+writer) || !strings.Contains(r.stderr, "rolled back") {
		t.Errorf("%s: check exit %d, stderr %q; want exit %d naming snapshot %s of writer %s", what, r.code, r.stderr, ExitCorrupt, gone, writer)
	}
}

// wantNothingReported asserts that ls and check are quiet and content.
func wantNothingReported(t *testing.T, h *harness, what string, left int) {
	t.Helper()
	r := h.at("ls")
	if r.code != 0 || r.stderr != "" || strings.Count(r.stdout, "\n") != left {
		t.Errorf("%s: ls exit %d, stderr %q, listed:\n%s\nwant exit 0, no warning, %d snapshots", what, r.code, r.stderr, r.stdout, left)
	}
	if r := h.at("check"); r.code != 0 || !strings.Contains(r.stdout, "no errors were found") {
		t.Errorf("%s: check exit %d, stdout %q, stderr %q", what, r.code, r.stdout, r.stderr)
	}
}

// TestOCIRollbackDetected: on Distribution, a refs tag moved back to an
// older manifest (the snapshot's own layer gone) and a refs tag deleted
// both hide the newest snapshot; ls keeps listing the others and warns
// on stderr naming the snapshot and its writer, check exits 15, until
// the tag is back. A forget by another client (its own cache) and by
// this one, with -prune, is never reported, by either client; a new
// cache detects nothing.
func TestOCIRollbackDetected(t *testing.T) {
	reg := testregistry.StartRegistry(t, testregistry.RegistryOptions{Kind: testregistry.Distribution, Delete: true})
	const repo = "rollback"
	h := ociHarness(t, reg, repo)
	h.create()
	src := sourceTree(t)
	h.backup(src)
	if err := os.WriteFile(filepath.Join(src, "new.txt"), []byte("second"), 0o644); err != nil {
		t.Fatal(err)
	}
	h.backup(src)
	sns := snapshotsJSON(t, h)
	if len(sns) != 2 {
		t.Fatalf("ls -json listed %d snapshots, want 2", len(sns))
	}
	newest := sns[1]["id"].(string)
	short := newest[:8]
	writer := sns[1]["user"].(string) + "@" + sns[1]["host"].(string)
	other := *h
	other.env = map[string]string{}
	for k, v := range h.env {
		other.env[k] = v
	}
	other.env["COFFER_CACHE_DIR"] = t.TempDir()
	wantNothingReported(t, &other, "other client, before", 2)

	tag, manifests := refsHolding(t, reg, repo, newest)
	if len(manifests) != 2 {
		t.Fatalf("%d refs tags after two backups, want one each", len(manifests))
	}
	original := manifests[tag]

	// (a) The tag goes back to an older manifest: its content without
	// the snapshot (the packs and index stay listed).
	var m map[string]any
	if err := json.Unmarshal(original, &m); err != nil {
		t.Fatal(err)
	}
	var kept []any
	for _, l := range m["layers"].([]any) {
		if l.(map[string]any)["digest"] != "sha256:"+newest {
			kept = append(kept, l)
		}
	}
	m["layers"] = kept
	older, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	pushManifest(t, reg, repo, tag, older)
	wantRollbackReported(t, h, "tag rolled back", short, writer, 1)
	wantRollbackReported(t, &other, "tag rolled back, other client", short, writer, 1)
	late := *h
	late.env = map[string]string{}
	for k, v := range h.env {
		late.env[k] = v
	}
	late.env["COFFER_CACHE_DIR"] = t.TempDir()
	wantNothingReported(t, &late, "tag rolled back, new cache", 1)

	// The other refs manifest replayed under the tag: the same.
	for t2, m := range manifests {
		if t2 != tag {
			pushManifest(t, reg, repo, tag, m)
		}
	}
	wantRollbackReported(t, h, "other manifest under the tag", short, writer, 1)

	pushManifest(t, reg, repo, tag, original)
	wantNothingReported(t, h, "tag back", 2)

	// (b) The tag is deleted.
	orasAt(t, reg, "manifest", "delete", "--force", reg.Host+"/"+repo+":"+tag)
	wantRollbackReported(t, h, "tag deleted", short, writer, 1)
	wantRollbackReported(t, &other, "tag deleted, other client", short, writer, 1)
	pushManifest(t, reg, repo, tag, original)
	wantNothingReported(t, h, "tag back again", 2)
	wantNothingReported(t, &other, "tag back again, other client", 2)

	// (c) forget by the other client, then by this one with -prune.
	other.mustAt("forget", short)
	wantNothingReported(t, h, "after the other client's forget", 1)
	wantNothingReported(t, &other, "after its own forget", 1)
	third := h.backup(src)
	wantNothingReported(t, &other, "after a third backup", 2)
	h.mustAt("forget", "-prune", third)
	wantNothingReported(t, h, "after its own forget -prune", 1)
	wantNothingReported(t, &other, "after the other client's forget -prune", 1)
}
