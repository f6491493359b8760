//go:build linux

package snapshot

import (
	"bytes"
	"path/filepath"
	"slices"
	"testing"
)

// A backed-up directory whose own path is not UTF-8 can be listed and
// restored: the snapshot's paths and base keep their bytes.
func TestNonUTF8BasePath(t *testing.T) {
	t.Parallel()
	for _, sk := range storeKinds {
		t.Run(sk.name, func(t *testing.T) {
			src := filepath.Join(t.TempDir(), "\xff\xfe-dir")
			writeFile(t, filepath.Join(src, "f\xe9"), []byte("latin-1 name\n"), 0o644)
			writeFile(t, filepath.Join(src, "sub", "g"), []byte("g\n"), 0o644)
			dst := t.TempDir()
			rt := backupAndRestore(t, sk.open(t), src, dst)
			if !slices.Equal(rt.loaded.Paths, []string{src}) || rt.loaded.Base != src {
				t.Fatalf("loaded snapshot has paths %q and base %q, want %q", rt.loaded.Paths, rt.loaded.Base, src)
			}
			nodes := listSnapshot(t, rt.r, rt.loaded)
			if got := sortedKeys(nodes); !slices.Equal(got, []string{"f\xe9", "sub", "sub/g"}) {
				t.Errorf("listing %q", got)
			}
			for _, p := range []string{"f\xe9", "sub/g"} {
				sameFile(t, filepath.Join(src, p), filepath.Join(dst, p))
			}
		})
	}
}

// Snapshots whose paths are UTF-8 are encoded as before, with no raw
// fields; others carry raw fields and a readable copy.
func TestSnapshotJSONRawPaths(t *testing.T) {
	sn := &Snapshot{Version: snapshotVersion, Paths: []string{"/a", "/b"}, Base: "/", Excludes: []string{"*.o"}}
	b, err := sn.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(b, []byte("_raw")) {
		t.Errorf("UTF-8 paths encoded with raw fields: %s", b)
	}
	sn = &Snapshot{Version: snapshotVersion, Paths: []string{"/a", "/x\xff"}, Base: "/x\xff", Excludes: []string{"\xfe*"}}
	b, err = sn.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"paths_raw"`, `"base_raw"`, `"excludes_raw"`, "\"/x\uFFFD\""} {
		if !bytes.Contains(b, []byte(want)) {
			t.Errorf("encoding %s lacks %s", b, want)
		}
	}
	var got Snapshot
	if err := got.UnmarshalJSON(b); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got.Paths, sn.Paths) || got.Base != sn.Base || !slices.Equal(got.Excludes, sn.Excludes) {
		t.Errorf("decoded paths %q base %q excludes %q, want %q %q %q", got.Paths, got.Base, got.Excludes, sn.Paths, sn.Base, sn.Excludes)
	}
}
