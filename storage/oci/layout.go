package oci

import (
	"encoding/json"
	"fmt"

	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/cofferhq/coffer/storage"
)

// Media and artifact types of coffer's own, so that `oras manifest fetch`
// and registry UIs show what each manifest and layer is.
const (
	artifactConfig    = "application/vnd.cofferhq.config.v1"
	artifactKey       = "application/vnd.cofferhq.key.v1"
	artifactLock      = "application/vnd.cofferhq.lock.v1"
	artifactRefs      = "application/vnd.cofferhq.refs.v1"
	artifactRoot      = "application/vnd.cofferhq.root.v1" // legacy: read, migrated, never written
	artifactSegment   = "application/vnd.cofferhq.segment.v1"
	artifactTombstone = "application/vnd.cofferhq.deleted.v1"

	annotationObject = "org.cofferhq.object" // what a manifest is: config, key, lock, refs, deleted (legacy: root, segment)
	annotationWriter = "org.cofferhq.writer"
	annotationRef    = "org.cofferhq.ref"  // the tag a refs manifest (or a refs tag's tombstone) was written for
	annotationName   = "org.cofferhq.name" // the object name of a key or lock
)

// Tags.
const (
	tagConfig     = "coffer-config"
	tagKeyPrefix  = "coffer-key-"
	tagLockPrefix = "coffer-lock-"
	// tagRefsPrefix starts the tags that reference packs, index objects
	// and snapshots: coffer-refs-<session>-<sequence>.
	tagRefsPrefix = "coffer-refs-"
	// tagRootPrefix and tagSegmentPrefix start the tags of the layout
	// before refs tags (a root index per writer, and its segments, tagged
	// too because registry 2.8's garbage collector ignores index
	// references). They are read, and migrated to refs tags by the first
	// rewrite.
	tagRootPrefix    = "coffer-root-"
	tagSegmentPrefix = "coffer-seg-"
)

// maxSegmentLayers keeps every refs manifest within the layer count all
// registries accept (ECR: 500).
const maxSegmentLayers = 500

// layerMediaType is the media type of an object of a kind in a segment.
var layerMediaType = map[storage.Kind]string{
	storage.KindPack:      "application/vnd.cofferhq.pack.v1",
	storage.KindIndex:     "application/vnd.cofferhq.index.v1",
	storage.KindSnapshot:  "application/vnd.cofferhq.snapshot.v1",
	storage.KindKey:       "application/vnd.cofferhq.key.v1",
	storage.KindLock:      "application/vnd.cofferhq.lock.v1",
	storage.KindPlan:      "application/vnd.cofferhq.plan.v1",
	storage.KindForgotten: "application/vnd.cofferhq.forgotten.v1",
}

// referencedKind reports the kinds reached through refs tags.
func referencedKind(k storage.Kind) bool {
	return k == storage.KindPack || k == storage.KindIndex || k == storage.KindSnapshot || k == storage.KindPlan ||
		k == storage.KindForgotten
}

// tagOf returns the tag of a key or lock. A tag holds at most 128
// characters; a longer one is replaced by "_" and the SHA-256 of the name
// ("_" cannot start a name), which the manifest's annotation maps back.
func tagOf(k storage.Kind, name string) string {
	if t := tagPrefix(k) + name; len(t) <= 128 {
		return t
	}
	return tagPrefix(k) + "_" + digest.FromString(name).Encoded()
}

// tagPrefix returns the tag prefix of a kind stored as tagged manifests.
func tagPrefix(k storage.Kind) string {
	if k == storage.KindKey {
		return tagKeyPrefix
	}
	return tagLockPrefix
}

// emptyConfig is the OCI empty descriptor, the config of every artifact.
var emptyConfig = ocispec.DescriptorEmptyJSON

// newManifest encodes an artifact manifest.
func newManifest(artifactType string, layers []ocispec.Descriptor, annotations map[string]string) (ocispec.Descriptor, []byte, error) {
	if len(layers) == 0 {
		// The image spec asks for at least one layer: the empty descriptor.
		layers = []ocispec.Descriptor{ocispec.DescriptorEmptyJSON}
	}
	m := ocispec.Manifest{
		Versioned:    specs.Versioned{SchemaVersion: 2},
		MediaType:    ocispec.MediaTypeImageManifest,
		ArtifactType: artifactType,
		Config:       emptyConfig,
		Layers:       layers,
		Annotations:  annotations,
	}
	return encode(ocispec.MediaTypeImageManifest, artifactType, m)
}

func encode(mediaType, artifactType string, v any) (ocispec.Descriptor, []byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return ocispec.Descriptor{}, nil, err
	}
	if len(b) > maxManifestSize {
		return ocispec.Descriptor{}, nil, fmt.Errorf("manifest of %d bytes exceeds %d", len(b), maxManifestSize)
	}
	return ocispec.Descriptor{MediaType: mediaType, ArtifactType: artifactType, Digest: digest.FromBytes(b), Size: int64(len(b))}, b, nil
}

// maxManifestSize keeps manifests under the 4 MiB most registries accept,
// with room to spare.
const maxManifestSize = 1 << 20

// decodeManifest parses an image manifest.
func decodeManifest(b []byte) (*ocispec.Manifest, error) {
	var m ocispec.Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("decoding manifest: %w", err)
	}
	if m.MediaType != ocispec.MediaTypeImageManifest {
		return nil, fmt.Errorf("manifest has media type %q, not an OCI image manifest", m.MediaType)
	}
	return &m, nil
}

// decodeIndex parses a root index.
func decodeIndex(b []byte) (*ocispec.Index, error) {
	var idx ocispec.Index
	if err := json.Unmarshal(b, &idx); err != nil {
		return nil, fmt.Errorf("decoding root index: %w", err)
	}
	if idx.MediaType != ocispec.MediaTypeImageIndex || idx.ArtifactType != artifactRoot {
		return nil, fmt.Errorf("root tag points at %q/%q, not a coffer root index", idx.MediaType, idx.ArtifactType)
	}
	return &idx, nil
}
