package oci

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
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

// checkRefs checks that every refs tag in the repository points at a
// valid coffer refs artifact and returns their layers by tag.
func checkRefs(t *testing.T, st *Store) map[string][]ocispec.Descriptor {
	t.Helper()
	tags, err := st.listTags(t.Context())
	if err != nil {
		t.Fatalf("listing tags: %v", err)
	}
	out := map[string][]ocispec.Descriptor{}
	for _, tag := range tags {
		if !strings.HasPrefix(tag, tagRefsPrefix) {
			continue
		}
		var m ocispec.Manifest
		desc := fetchJSON(t, st, tag, &m)
		if m.ArtifactType == artifactTombstone {
			continue
		}
		if desc.MediaType != ocispec.MediaTypeImageManifest || m.MediaType != ocispec.MediaTypeImageManifest {
			t.Errorf("%s is served as %q with mediaType %q, want an OCI image manifest", tag, desc.MediaType, m.MediaType)
		}
		if m.SchemaVersion != 2 || m.ArtifactType != artifactRefs {
			t.Errorf("%s: schemaVersion %d artifactType %q, want 2 and %q", tag, m.SchemaVersion, m.ArtifactType, artifactRefs)
		}
		if c := m.Config; c.MediaType != ocispec.MediaTypeEmptyJSON || c.Digest != ocispec.DescriptorEmptyJSON.Digest || c.Size != 2 {
			t.Errorf("%s config = %+v, want the empty descriptor", tag, c)
		}
		if n := len(m.Layers); n == 0 || n > maxSegmentLayers {
			t.Errorf("%s has %d layers, want 1 to %d", tag, n, maxSegmentLayers)
		}
		if m.Annotations[annotationRef] != tag || m.Annotations[annotationObject] != "refs" {
			t.Errorf("%s annotations %v do not say it is the refs manifest of that tag", tag, m.Annotations)
		}
		out[tag] = objectLayers(m.Layers)
	}
	// The empty config every manifest names must be in the registry, or
	// registries that check references refuse the manifests.
	if ok, err := st.repo.Blobs().Exists(t.Context(), ocispec.DescriptorEmptyJSON); err != nil || !ok {
		t.Errorf("the empty config blob is not in the repository (%v, %v)", ok, err)
	}
	return out
}

func allLayers(refs map[string][]ocispec.Descriptor) []ocispec.Descriptor {
	var out []ocispec.Descriptor
	for _, tag := range slices.Sorted(maps.Keys(refs)) {
		out = append(out, refs[tag]...)
	}
	return out
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

// TestRefsRollover references more objects than fit in two refs
// manifests: manifests of at most 500 layers, valid OCI artifacts, every
// object listed once; a delete rewrites them, still within 500.
func TestRefsRollover(t *testing.T) {
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
	st.pending = append(append(slices.Clone(packs), packs[7]), snaps...)
	st.pendingMu.Unlock()
	if err := st.Flush(ctx); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	refs := checkRefs(t, st)
	if len(refs) != 3 {
		t.Errorf("%d objects in %d refs tags, want 3", len(allLayers(refs)), len(refs))
	}
	if want := append(slices.Clone(packs), snaps...); !sameDigests(allLayers(refs), want) {
		t.Errorf("the refs hold %d layers, want the %d objects referenced, in order", len(allLayers(refs)), len(want))
	}
	checkListed(t, st, storage.KindPack, packs)
	checkListed(t, st, storage.KindSnapshot, snaps)
	checkListed(t, st, storage.KindIndex, nil)

	// A store with a cold cache reads the same from the registry.
	cold := openStore(t, loc, func(o *Options) { o.Writer = "cold" })
	checkListed(t, cold, storage.KindPack, packs)

	// Deleting rewrites the refs that hold the object (and merges the
	// ones that are not full), still in manifests of at most 500.
	gone := packs[3]
	if err := st.Delete(ctx, storage.KindPack, gone.Digest.Encoded()); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	left := slices.Delete(slices.Clone(packs), 3, 4)
	checkListed(t, st, storage.KindPack, left) // at once for this store
	if err := st.Flush(ctx); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	layers := allLayers(checkRefs(t, st))
	if slices.ContainsFunc(layers, func(l ocispec.Descriptor) bool { return l.Digest == gone.Digest }) {
		t.Error("the deleted pack is still referenced")
	}
	if len(layers) != len(left)+len(snaps) {
		t.Errorf("after the rewrite the refs hold %d layers, want %d", len(layers), len(left)+len(snaps))
	}
	checkListed(t, st, storage.KindPack, left)
	// Another store sees the change once it reads the refs again (it
	// keeps them up to refsTTL).
	cold.forgetView()
	checkListed(t, cold, storage.KindPack, left)
	checkListed(t, openStore(t, loc, func(o *Options) { o.Writer = "other" }), storage.KindPack, left)
}

func sameDigests(a, b []ocispec.Descriptor) bool {
	return slices.EqualFunc(a, b, func(x, y ocispec.Descriptor) bool { return x.Digest == y.Digest })
}

// TestSameWriterNeverOverwrites has two stores with the same writer
// identity (two cron runs of one job, a cloned VM) write at once: each
// writes tags of its own, and both lists show everything either wrote.
func TestSameWriterNeverOverwrites(t *testing.T) {
	reg := newTestRegistry(t)
	loc := reg.newRepo()
	ctx := t.Context()
	first := openStore(t, loc, func(o *Options) { o.Writer = "same" })
	second := openStore(t, loc, func(o *Options) { o.Writer = "same" })
	if err := first.Create(ctx, []byte("config")); err != nil {
		t.Fatal(err)
	}
	put := func(st *Store, kind storage.Kind, data []byte) ocispec.Descriptor {
		t.Helper()
		d := digest.FromBytes(data)
		if err := st.Put(ctx, kind, d.Encoded(), storage.BytesBody(data)); err != nil {
			t.Fatalf("Put: %v", err)
		}
		return ocispec.Descriptor{Digest: d, Size: int64(len(data))}
	}
	// Both list the repository before either writes, as two backups
	// starting together do; then they interleave.
	checkListed(t, first, storage.KindPack, nil)
	checkListed(t, second, storage.KindPack, nil)
	a1 := put(first, storage.KindPack, []byte("first pack 1"))
	b1 := put(second, storage.KindPack, []byte("second pack"))
	shared := put(first, storage.KindPack, []byte("a pack both write"))
	put(second, storage.KindPack, []byte("a pack both write"))
	ai := put(first, storage.KindIndex, []byte("first index"))
	bi := put(second, storage.KindIndex, []byte("second index"))
	as := put(first, storage.KindSnapshot, []byte("first snapshot")) // flushes the first's batch
	bs := put(second, storage.KindSnapshot, []byte("second snapshot"))

	refs := checkRefs(t, first)
	if len(refs) != 2 {
		t.Errorf("two stores that each flushed once wrote %d refs tags, want 2", len(refs))
	}
	third := openStore(t, loc, func(o *Options) { o.Writer = "same" })
	for name, st := range map[string]*Store{"first": first, "second": second, "third": third} {
		t.Run(name, func(t *testing.T) {
			st.forgetView()
			checkListed(t, st, storage.KindPack, []ocispec.Descriptor{a1, b1, shared})
			checkListed(t, st, storage.KindIndex, []ocispec.Descriptor{ai, bi})
			checkListed(t, st, storage.KindSnapshot, []ocispec.Descriptor{as, bs})
		})
	}

	// Deleting (as forget and prune do, under their exclusive lock)
	// removes the object from every ref that holds it, whoever wrote it.
	if err := second.Delete(ctx, storage.KindPack, shared.Digest.Encoded()); err != nil {
		t.Fatalf("Delete of a pack in both refs: %v", err)
	}
	if err := second.Delete(ctx, storage.KindSnapshot, as.Digest.Encoded()); err != nil {
		t.Fatalf("Delete of a snapshot the other store wrote: %v", err)
	}
	if err := second.Delete(ctx, storage.KindSnapshot, as.Digest.Encoded()); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("second Delete = %v, want ErrNotFound", err)
	}
	if err := second.Flush(ctx); err != nil {
		t.Fatalf("Flush (which applies the deletes): %v", err)
	}
	for name, st := range map[string]*Store{"first": first, "new": openStore(t, loc, nil)} {
		t.Run(name+" after delete", func(t *testing.T) {
			st.forgetView()
			checkListed(t, st, storage.KindPack, []ocispec.Descriptor{a1, b1})
			checkListed(t, st, storage.KindSnapshot, []ocispec.Descriptor{bs})
		})
	}
	if n := len(checkRefs(t, first)); n != 1 {
		t.Errorf("after the rewrite %d refs tags are left, want the 2 merged into 1", n)
	}
}

// TestLegacyRootsMigrate reads a repository in the layout earlier coffer
// versions wrote (a root index per writer, with tagged segments), and
// checks that the first rewrite moves it to refs tags and retires the
// old tags, losing nothing.
func TestLegacyRootsMigrate(t *testing.T) {
	for _, refuse := range []bool{false, true} {
		t.Run(fmt.Sprintf("delete refused %v", refuse), func(t *testing.T) {
			// Distribution untags what it deletes by digest, as the spec
			// says; with deletes disabled it answers 405, as GHCR does.
			reg := newTestRegistry(t)
			if refuse {
				reg = newRefusingRegistry(t)
			}
			loc := reg.newRepo()
			st := openStore(t, loc, nil)
			ctx := t.Context()
			if err := st.Create(ctx, []byte("config")); err != nil {
				t.Fatal(err)
			}
			packs := pushSmallBlobs(t, st, storage.KindPack, maxSegmentLayers+20)
			snaps := pushSmallBlobs(t, st, storage.KindSnapshot, 2)
			all := append(slices.Clone(packs), snaps...)
			var segs []ocispec.Descriptor
			for i, chunk := range [][]ocispec.Descriptor{all[:maxSegmentLayers], all[maxSegmentLayers:]} {
				desc, b, err := newManifest(artifactSegment, chunk, map[string]string{annotationObject: "segment", annotationWriter: "old"})
				if err != nil {
					t.Fatal(err)
				}
				desc.ArtifactType = artifactSegment
				if err := st.pushManifest(ctx, desc, b, segmentTag("old", i)); err != nil {
					t.Fatal(err)
				}
				segs = append(segs, desc)
			}
			idx := ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex,
				ArtifactType: artifactRoot, Manifests: segs, Annotations: map[string]string{annotationObject: "root"}}
			desc, b, err := encode(ocispec.MediaTypeImageIndex, artifactRoot, idx)
			if err != nil {
				t.Fatal(err)
			}
			if err := st.pushManifest(ctx, desc, b, tagRootPrefix+"old"); err != nil {
				t.Fatal(err)
			}

			reader := openStore(t, loc, nil)
			checkListed(t, reader, storage.KindPack, packs)
			checkListed(t, reader, storage.KindSnapshot, snaps)

			if err := reader.Delete(ctx, storage.KindSnapshot, snaps[0].Digest.Encoded()); err != nil {
				t.Fatalf("Delete: %v", err)
			}
			if err := reader.Flush(ctx); err != nil {
				t.Fatalf("Flush: %v", err)
			}
			fresh := openStore(t, loc, nil)
			checkListed(t, fresh, storage.KindPack, packs)
			checkListed(t, fresh, storage.KindSnapshot, snaps[1:])
			if got := allLayers(checkRefs(t, fresh)); len(got) != len(all)-1 {
				t.Errorf("refs tags hold %d objects after the migration, want %d", len(got), len(all)-1)
			}
			tags, err := fresh.listTags(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, tag := range tags {
				if !strings.HasPrefix(tag, tagRootPrefix) && !strings.HasPrefix(tag, tagSegmentPrefix) {
					continue
				}
				if !refuse {
					t.Errorf("legacy tag %s is still there after the migration", tag)
					continue
				}
				var m ocispec.Manifest
				if fetchJSON(t, fresh, tag, &m); m.ArtifactType != artifactTombstone {
					t.Errorf("legacy tag %s points at %q, want a tombstone", tag, m.ArtifactType)
				}
			}
		})
	}
}
