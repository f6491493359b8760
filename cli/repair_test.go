//go:build linux

package cli

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/cofferhq/coffer/internal/testregistry"
	"github.com/cofferhq/coffer/internal/testutil"
	"github.com/cofferhq/coffer/storage"
	"github.com/cofferhq/coffer/storage/all"
	"github.com/cofferhq/coffer/storage/oci"
)

// damage deletes objects straight from the store, as a failing disk or a
// careless operator would.
func damage(t *testing.T, h *harness, kind storage.Kind, pick func(names []string, sizes map[string]int64) []string) []string {
	t.Helper()
	st, err := all.Registry(all.Options{OCI: oci.Options{DockerConfig: h.env["DOCKER_CONFIG"], CacheDir: t.TempDir()}}).Open(t.Context(), h.repo)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	sizes := map[string]int64{}
	if err := st.List(t.Context(), kind, func(name string, size int64) error {
		names = append(names, name)
		sizes[name] = size
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	slices.Sort(names)
	gone := pick(names, sizes)
	for _, name := range gone {
		if err := st.Delete(t.Context(), kind, name); err != nil {
			t.Fatal(err)
		}
	}
	if err := storage.Flush(t.Context(), st); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	h.env["COFFER_CACHE_DIR"] = t.TempDir() // no cached copy hides the damage
	return gone
}

// repair index after the index objects are deleted: every snapshot
// restores.
func TestRepairIndex(t *testing.T) {
	for name, newH := range bothStores("repair") {
		t.Run(name, func(t *testing.T) {
			h := newH(t)
			h.create()
			src := filepath.Join(t.TempDir(), "src")
			ids := churnHistory(t, h, src, 3)
			damage(t, h, storage.KindIndex, func(names []string, _ map[string]int64) []string { return names })
			restored := filepath.Join(t.TempDir(), "broken")
			wantOneLineError(t, h.at("restore", ids[2], "-to", restored), ExitCorrupt, "not in index")
			// prune refuses to work from a missing index.
			wantOneLineError(t, h.at("prune"), ExitCorrupt, "not in index")

			out := h.mustAt("repair", "index")
			if !strings.Contains(out, "0 damaged packs") {
				t.Errorf("repair index: %s", out)
			}
			h.checkReadData("after repair index")
			for r, id := range ids {
				want := filepath.Join(t.TempDir(), "want")
				churnTree(t, want, r)
				restored := filepath.Join(t.TempDir(), "r")
				h.mustAt("restore", id, "-to", restored)
				testutil.CompareTrees(t, want, restored)
			}
		})
	}
}

// repair snapshots after one pack is deleted: the repaired snapshots
// restore everything else, and the lost files are listed.
func TestRepairSnapshots(t *testing.T) {
	for name, newH := range bothStores("repair") {
		t.Run(name, func(t *testing.T) {
			h := newH(t)
			h.mustAt("create", "-pack-size", "1") // a pack holds a file or two
			src := filepath.Join(t.TempDir(), "src")
			ids := churnHistory(t, h, src, 2)
			// A pack of file contents (tree packs are small): a lost tree
			// loses what is below it, which the test could not tell apart.
			damage(t, h, storage.KindPack, func(names []string, sizes map[string]int64) []string {
				for _, n := range names {
					if sizes[n] > 256<<10 {
						return []string{n}
					}
				}
				t.Fatal("no data pack")
				return nil
			})
			chk := h.at("check")
			if chk.code != ExitCorrupt {
				t.Fatalf("check after a pack was deleted: exit %d", chk.code)
			}
			// check names the files the missing pack held.
			var affected []string
			for _, m := range regexp.MustCompile(`(?m)^affected: snapshot ([0-9a-f]{8}) (\S+) `).FindAllStringSubmatch(chk.stdout, -1) {
				affected = append(affected, m[1]+" "+m[2])
			}
			h.mustAt("repair", "index")
			dry := h.mustAt("repair", "snapshots", "-dry-run")
			out := h.mustAt("repair", "snapshots")
			t.Logf("repair snapshots:\n%s", out)
			lost := regexp.MustCompile(`(?m)^snapshot ([0-9a-f]{8}): lost (\S+): `).FindAllStringSubmatch(out, -1)
			if len(lost) == 0 {
				t.Fatalf("repair snapshots listed no lost file:\n%s", out)
			}
			var lostFiles []string
			for _, l := range lost {
				lostFiles = append(lostFiles, l[1]+" "+l[2])
			}
			if !sameSet(affected, lostFiles) {
				t.Errorf("check named the files %v as affected, repair lost %v", affected, lostFiles)
			}
			if strings.Count(dry, "would lose") != len(lost) {
				t.Errorf("the dry run listed %d losses, the repair %d", strings.Count(dry, "would lose"), len(lost))
			}
			h.checkReadData("after repair")
			ls := h.mustAt("ls")
			if strings.Count(ls, "\n") != 2 {
				t.Fatalf("after repair, ls lists:\n%s", ls)
			}
			// Each repaired snapshot restores its source minus the files it
			// lists as lost.
			for r := range 2 {
				sn := regexp.MustCompile(`([0-9a-f]{8}) .*`+regexp.QuoteMeta(src)).FindAllStringSubmatch(ls, -1)[r][1]
				want := filepath.Join(t.TempDir(), "want")
				churnTree(t, want, r)
				for _, l := range lost {
					if l[1] == ids[r] {
						os.Remove(filepath.Join(want, strings.TrimPrefix(l[2], src+"/")))
					}
				}
				restored := filepath.Join(t.TempDir(), "r")
				h.mustAt("restore", sn, "-to", restored)
				testutil.CompareTrees(t, want, restored)
			}
		})
	}
}

// Tampering with a registry's storage is reported as on a local
// store: a pack, an index object and a snapshot whose bytes were changed
// in the registry's own storage make check and restore exit 15 (after
// the registry was asked again, in case a transfer was damaged), naming
// the object, and nothing is restored as good.
func TestOCITamperedExitCodes(t *testing.T) {
	reg := testregistry.StartRegistry(t, testregistry.RegistryOptions{Kind: testregistry.Distribution, Delete: true})
	h := ociHarness(t, reg, "tamper")
	src := sourceTree(t)
	h.create()
	h.backup(src)

	names := map[storage.Kind]string{}
	for _, kind := range []storage.Kind{storage.KindPack, storage.KindIndex, storage.KindSnapshot} {
		damage(t, h, kind, func(all []string, sizes map[string]int64) []string {
			for _, n := range all { // the largest: for packs, one of file contents
				if names[kind] == "" || sizes[n] > sizes[names[kind]] {
					names[kind] = n
				}
			}
			return nil
		})
	}
	flip := func(hex string) {
		t.Helper()
		p := filepath.Join(reg.DataDir, "docker/registry/v2/blobs/sha256", hex[:2], hex, "data")
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		b[len(b)/2] ^= 0x40
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		h.env["COFFER_CACHE_DIR"] = t.TempDir() // no cached copy hides it
	}
	for _, kind := range []storage.Kind{storage.KindPack, storage.KindIndex, storage.KindSnapshot} {
		name := names[kind]
		t.Run(string(kind), func(t *testing.T) {
			flip(name)
			defer flip(name) // back
			want := string(kind) + " " + name + " is corrupted or was tampered with"
			checkArgs := []string{"check"}
			if kind == storage.KindPack {
				checkArgs = append(checkArgs, "-read-data")
			}
			to := t.TempDir()
			for _, args := range [][]string{checkArgs, {"restore", "latest", "-to", to}} {
				r := h.at(args...)
				if r.code != ExitCorrupt || !strings.Contains(r.stderr, want) {
					t.Errorf("%s with a tampered %s: exit %d, want %d and %q\nstdout: %s\nstderr: %s",
						strings.Join(args, " "), kind, r.code, ExitCorrupt, want, r.stdout, r.stderr)
				}
			}
			// What a restore wrote before it met the damage is the
			// source's bytes, never the damaged ones.
			assertNoWrongContent(t, src, to)
		})
	}
}
