package oci

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2/registry"

	"github.com/cofferhq/coffer/storage"
)

// errMountDeclined is what the mount's content callback returns when the
// registry answers a mount request by opening an upload instead (it
// cannot or will not mount): the caller then copies the bytes itself,
// through Put's retries and held uploads rather than oras-go's plain
// stream.
var errMountDeclined = errors.New("the registry declined to mount the blob")

// Mount implements storage.Mounter: when src is another repository on the
// same registry, the object's blob is mounted from it (POST
// /v2/<repo>/blobs/uploads/?mount=<digest>&from=<src>, no bytes
// uploaded) and referenced as Put references an upload. It returns false
// when src is another store or registry, or when the registry declines
// (Distribution declines a blob the source repository does not link, some
// registries never mount, or the credentials cannot read the source).
// A mounted blob is not held: the source repository still references it,
// so a garbage collection cannot take it before the next refs tag does.
func (s *Store) Mount(ctx context.Context, kind storage.Kind, name string, size int64, src storage.Store) (bool, error) {
	if err := storage.CheckArgs(kind, name); err != nil {
		return false, err
	}
	from, ok := src.(*Store)
	if !ok || from.loc.host != s.loc.host || from.loc.repo == s.loc.repo || kind == storage.KindLock {
		return false, nil
	}
	mounter, ok := s.repo.Blobs().(registry.Mounter)
	if !ok {
		return false, nil
	}
	desc := ocispec.Descriptor{MediaType: layerMediaType[kind], Size: size,
		Digest: digest.NewDigestFromEncoded(digest.SHA256, name)}
	if desc.Digest.Validate() != nil {
		return false, fmt.Errorf("%s %q: the OCI store keeps objects under the SHA-256 of their bytes: %w", kind, name, storage.ErrInvalidName)
	}
	declined := false
	err := s.retrying(ctx, func(ctx context.Context) error {
		if ok, err := s.repo.Blobs().Exists(ctx, desc); err == nil && ok {
			return nil
		}
		err := mounter.Mount(ctx, desc, from.loc.repo, func() (io.ReadCloser, error) {
			declined = true
			return nil, errMountDeclined
		})
		if errors.Is(err, errMountDeclined) {
			return nil
		}
		if err != nil && classify(err) == permanent {
			// A refusal (no pull access to the source, an unknown
			// blob there, a registry without mounts): the bytes are
			// copied instead, and their upload says what is wrong if
			// the registry refuses that too.
			declined = true
			return nil
		}
		return err
	})
	if err != nil {
		return false, s.wrap("mounting blob "+shortDigest(desc.Digest), err)
	}
	if declined {
		return false, nil
	}
	return true, s.reference(ctx, kind, name, desc, func() (heldBlob, bool) { return heldBlob{}, false })
}

var _ storage.Mounter = (*Store)(nil)
