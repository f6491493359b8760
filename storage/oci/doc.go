// Package oci stores a coffer repository in an OCI registry, one OCI
// repository per coffer repository, through the Distribution API that
// Docker Hub, GHCR, ECR, GAR, ACR, Harbor, Quay, GitLab and CNCF
// Distribution implement.
//
// # Layout
//
// Packs, index objects and snapshots are blobs named by their SHA-256,
// so reading one is a single GET /v2/<name>/blobs/sha256:<hex>. They stay
// reachable (and so survive registry garbage collection) through refs
// tags, "coffer-refs-<session>-<n>": artifact manifests listing at most
// 500 of those blobs as layers. Each Store picks a random session, so no
// two processes ever write the same tag, and a tag is never changed after
// it is written (but to a tombstone when retired): any number of processes on any number of hosts may add
// objects at once, with no lock and no compare-and-swap, and a reader
// takes the union of all refs. Deleting rewrites: new refs tags with what
// is kept, then the old ones are retired: moved to a tombstone, their
// manifests deleted, and the tags deleted where the registry deletes tags
// (retireTag says why in that order). Rewrites must not run two at a
// time; repo's exclusive lock sees to that. See refs.go.
//
// Small mutable objects are tagged manifests of one layer each: the
// config ("coffer-config"), keys ("coffer-key-<name>") and locks
// ("coffer-lock-<name>"). Where a registry refuses DELETE, removing one
// re-tags it to a tombstone manifest.
//
// docs/oci-layout.md describes the layout with a picture.
//
// # Protocol
//
// Registry protocol and authentication come from oras.land/oras-go/v2
// (token, basic and anonymous flows; docker config.json credentials with
// credsStore and credHelpers). This package adds what it lacks: closed
// ranged GETs that insist on 206 and a matching Content-Range (falling
// back to a full GET and a digest check when a registry ignores Range),
// SHA-256 verification of every full read, retries of reads cut off
// mid-body, waits that honour long Retry-After values and say so, and a
// capability probe.
//
// References:
//   - https://github.com/opencontainers/distribution-spec/blob/v1.1.1/spec.md
//   - https://github.com/opencontainers/image-spec/blob/v1.1.1/manifest.md#guidelines-for-artifact-usage
package oci
