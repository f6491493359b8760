package oci

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/cofferhq/coffer/storage"
)

// fetchJSON fetches a manifest or index by tag or digest and decodes it
// into v, checking that the registry serves it under its media type.
func fetchJSON(t *testing.T, st *Store, ref string, v any) ocispec.Descriptor {
	t.Helper()
	desc, rc, err := st.repo.Manifests().FetchReference(t.Context(), ref)
	if err != nil {
		t.Fatalf("fetching %s: %v", ref, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	if digest.FromBytes(b) != desc.Digest {
		t.Fatalf("%s: content does not match digest %s", ref, desc.Digest)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("decoding %s: %v", ref, err)
	}
	return desc
}

// checkRoot checks that tag is a coffer root index of valid segment
// artifacts and returns its segment descriptors and their layers.
func checkRoot(t *testing.T, st *Store, tag string) ([]ocispec.Descriptor, []ocispec.Descriptor) {
	t.Helper()
	var idx ocispec.Index
	desc := fetchJSON(t, st, tag, &idx)
	if desc.MediaType != ocispec.MediaTypeImageIndex || idx.MediaType != ocispec.MediaTypeImageIndex {
		t.Errorf("%s is served as %q with mediaType %q, want an OCI image index", tag, desc.MediaType, idx.MediaType)
	}
	if idx.SchemaVersion != 2 || idx.ArtifactType != artifactRoot {
		t.Errorf("%s: schemaVersion %d artifactType %q, want 2 and %q", tag, idx.SchemaVersion, idx.ArtifactType, artifactRoot)
	}
	var layers []ocispec.Descriptor
	for i, seg := range idx.Manifests {
		if seg.MediaType != ocispec.MediaTypeImageManifest || seg.ArtifactType != artifactSegment {
			t.Errorf("%s segment %d descriptor: mediaType %q artifactType %q", tag, i, seg.MediaType, seg.ArtifactType)
		}
		var m ocispec.Manifest
		got := fetchJSON(t, st, seg.Digest.String(), &m)
		if got.Size != seg.Size {
			t.Errorf("%s segment %d: descriptor size %d, manifest %d bytes", tag, i, seg.Size, got.Size)
		}
		if m.SchemaVersion != 2 || m.MediaType != ocispec.MediaTypeImageManifest || m.ArtifactType != artifactSegment {
			t.Errorf("segment %d: schemaVersion %d mediaType %q artifactType %q; want an OCI artifact manifest of type %q",
				i, m.SchemaVersion, m.MediaType, m.ArtifactType, artifactSegment)
		}
		if c := m.Config; c.MediaType != ocispec.MediaTypeEmptyJSON || c.Digest != ocispec.DescriptorEmptyJSON.Digest || c.Size != 2 {
			t.Errorf("segment %d config = %+v, want the empty descriptor", i, c)
		}
		if n := len(m.Layers); n == 0 || n > maxSegmentLayers {
			t.Errorf("segment %d has %d layers, want 1 to %d", i, n, maxSegmentLayers)
		}
		layers = append(layers, m.Layers...)
	}
	// The empty config every manifest names must be in the registry, or
	// registries that check references refuse the manifests.
	if ok, err := st.repo.Blobs().Exists(t.Context(), ocispec.DescriptorEmptyJSON); err != nil || !ok {
		t.Errorf("the empty config blob is not in the repository (%v, %v)", ok, err)
	}
	return idx.Manifests, layers
}

// pushSmallBlobs uploads n distinct small blobs of a kind and returns
// their descriptors.
func pushSmallBlobs(t *testing.T, st *Store, kind storage.Kind, n int) []ocispec.Descriptor {
	t.Helper()
	descs := make([]ocispec.Descriptor, n)
	for i := range descs {
		data := fmt.Appendf(nil, "%s blob %d", kind, i)
		d := ocispec.Descriptor{MediaType: layerMediaType[kind], Digest: digest.FromBytes(data), Size: int64(len(data))}
		if err := st.pushBlob(t.Context(), d, bytes.NewReader(data)); err != nil {
			t.Fatalf("pushing blob %d: %v", i, err)
		}
		descs[i] = d
	}
	return descs
}

func listNames(t *testing.T, st storage.Store, kind storage.Kind) map[string]int64 {
	t.Helper()
	got := map[string]int64{}
	err := st.List(t.Context(), kind, func(name string, size int64) error {
		if _, dup := got[name]; dup {
			t.Errorf("List %s returned %s twice", kind, name)
		}
		got[name] = size
		return nil
	})
	if err != nil {
		t.Fatalf("List %s: %v", kind, err)
	}
	return got
}

func checkListed(t *testing.T, st storage.Store, kind storage.Kind, want []ocispec.Descriptor) {
	t.Helper()
	got := listNames(t, st, kind)
	if len(got) != len(want) {
		t.Errorf("List %s returned %d objects, want %d", kind, len(got), len(want))
	}
	for _, d := range want {
		if size, ok := got[d.Digest.Encoded()]; !ok || size != d.Size {
			t.Errorf("List %s: %s listed %v with size %d, want size %d", kind, shortDigest(d.Digest), ok, size, d.Size)
		}
	}
}

// TestSegmentRollover references more blobs than fit in two segment
// manifests and checks the layout: segments of at most 500 layers, valid
// OCI artifacts, under a root index; every blob listed once.
func TestSegmentRollover(t *testing.T) {
	reg := newTestRegistry(t)
	loc := reg.newRepo()
	st := openStore(t, loc, nil)
	ctx := t.Context()
	if err := st.Create(ctx, []byte("config")); err != nil {
		t.Fatal(err)
	}
	packs := pushSmallBlobs(t, st, storage.KindPack, 2*maxSegmentLayers+203)
	snaps := pushSmallBlobs(t, st, storage.KindSnapshot, 3)

	// Through flush, as Put leaves them; a duplicate is referenced once.
	st.pendingMu.Lock()
	st.pending = append(slices.Clone(packs), packs[7])
	st.pendingMu.Unlock()
	if err := st.flush(ctx); err != nil {
		t.Fatalf("flush: %v", err)
	}
	// And through updateRoot directly.
	if err := st.updateRoot(ctx, st.rootTag(), func(l []ocispec.Descriptor) []ocispec.Descriptor {
		return append(l, snaps...)
	}); err != nil {
		t.Fatalf("updateRoot: %v", err)
	}

	segs, layers := checkRoot(t, st, "coffer-root-test")
	if len(segs) != 3 {
		t.Errorf("%d layers in %d segments, want 3", len(layers), len(segs))
	}
	if want := append(slices.Clone(packs), snaps...); !sameDigests(layers, want) {
		t.Errorf("the segments hold %d layers, want the %d blobs referenced, in order", len(layers), len(want))
	}
	checkListed(t, st, storage.KindPack, packs)
	checkListed(t, st, storage.KindSnapshot, snaps)
	checkListed(t, st, storage.KindIndex, nil)

	// A store with a cold cache reads the same from the registry.
	cold := openStore(t, loc, func(o *Options) { o.Writer = "cold" })
	checkListed(t, cold, storage.KindPack, packs)

	// Appending keeps the full segments as they are.
	more := pushSmallBlobs(t, st, storage.KindIndex, 5)
	if err := st.updateRoot(ctx, st.rootTag(), func(l []ocispec.Descriptor) []ocispec.Descriptor {
		return append(l, more...)
	}); err != nil {
		t.Fatalf("updateRoot: %v", err)
	}
	segs2, _ := checkRoot(t, st, "coffer-root-test")
	if len(segs2) != 3 || segs2[0].Digest != segs[0].Digest || segs2[1].Digest != segs[1].Digest {
		t.Errorf("appending 5 blobs rewrote full segments: %v -> %v", shortDigests(segs), shortDigests(segs2))
	}
	checkListed(t, st, storage.KindIndex, more)

	// Deleting from the first segment rewrites the root, still in
	// segments of at most 500.
	gone := packs[3]
	if err := st.Delete(ctx, storage.KindPack, gone.Digest.Encoded()); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	_, layers = checkRoot(t, st, "coffer-root-test")
	if slices.ContainsFunc(layers, func(l ocispec.Descriptor) bool { return l.Digest == gone.Digest }) {
		t.Error("the deleted pack is still referenced")
	}
	left := slices.Delete(slices.Clone(packs), 3, 4)
	checkListed(t, st, storage.KindPack, left)
	// Another store sees the change once its roots are read again (it
	// keeps them up to rootsTTL).
	cold.forgetRoots()
	checkListed(t, cold, storage.KindPack, left)
	checkListed(t, openStore(t, loc, func(o *Options) { o.Writer = "other" }), storage.KindPack, left)
}

func shortDigests(ds []ocispec.Descriptor) []string {
	var out []string
	for _, d := range ds {
		out = append(out, shortDigest(d.Digest))
	}
	return out
}

// TestTwoWriters has two stores with different writer identities share a
// repository: each keeps its own root tag, and either lists the union.
func TestTwoWriters(t *testing.T) {
	reg := newTestRegistry(t)
	loc := reg.newRepo()
	ctx := t.Context()
	alice := openStore(t, loc, func(o *Options) { o.Writer = "alice" })
	bob := openStore(t, loc, func(o *Options) { o.Writer = "bob" })
	if err := alice.Create(ctx, []byte("config")); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.Open(ctx); err != nil {
		t.Fatalf("Open by the second writer: %v", err)
	}
	put := func(st *Store, kind storage.Kind, data []byte) ocispec.Descriptor {
		t.Helper()
		d := digest.FromBytes(data)
		if err := st.Put(ctx, kind, d.Encoded(), bytes.NewReader(data), int64(len(data))); err != nil {
			t.Fatalf("Put: %v", err)
		}
		return ocispec.Descriptor{Digest: d, Size: int64(len(data))}
	}
	a1 := put(alice, storage.KindPack, []byte("alice pack 1"))
	a2 := put(alice, storage.KindPack, []byte("alice pack 2, longer"))
	shared := put(alice, storage.KindPack, []byte("a pack both write"))
	b1 := put(bob, storage.KindPack, []byte("bob pack"))
	put(bob, storage.KindPack, []byte("a pack both write"))
	ai := put(alice, storage.KindIndex, []byte("alice index")) // flushes alice's packs
	bi := put(bob, storage.KindIndex, []byte("bob index"))     // and bob's

	for _, tag := range []string{"coffer-root-alice", "coffer-root-bob"} {
		checkRoot(t, alice, tag)
	}
	_, aLayers := checkRoot(t, alice, "coffer-root-alice")
	_, bLayers := checkRoot(t, alice, "coffer-root-bob")
	if len(aLayers) != 4 || len(bLayers) != 3 {
		t.Errorf("alice's root holds %d layers, bob's %d; want 4 and 3", len(aLayers), len(bLayers))
	}
	for name, st := range map[string]*Store{"alice": alice, "bob": bob} {
		t.Run(name, func(t *testing.T) {
			checkListed(t, st, storage.KindPack, []ocispec.Descriptor{a1, a2, shared, b1})
			checkListed(t, st, storage.KindIndex, []ocispec.Descriptor{ai, bi})
		})
	}

	// Deleting (as prune does, under its exclusive lock) removes the
	// object from every root that references it.
	if err := bob.Delete(ctx, storage.KindPack, shared.Digest.Encoded()); err != nil {
		t.Fatalf("Delete of a pack in both roots: %v", err)
	}
	if err := bob.Delete(ctx, storage.KindPack, a1.Digest.Encoded()); err != nil {
		t.Fatalf("Delete of a pack in the other writer's root: %v", err)
	}
	// Alice keeps the roots she read for up to rootsTTL; read afresh,
	// and by a new store, they show both deletes.
	alice.forgetRoots()
	carol := openStore(t, loc, func(o *Options) { o.Writer = "carol" })
	for name, st := range map[string]*Store{"alice": alice, "bob": bob, "carol": carol} {
		t.Run(name+" after delete", func(t *testing.T) {
			checkListed(t, st, storage.KindPack, []ocispec.Descriptor{a2, b1})
		})
	}
}
