package oci

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2/errdef"
	"oras.land/oras-go/v2/registry/remote/auth"
	"oras.land/oras-go/v2/registry/remote/errcode"
)

// The registry operations coffer makes, each retried as a whole by
// retrying (retry.go). Every operation is idempotent: reads, pushes of
// content-addressed data, moving a tag to the same manifest.

// listTags returns every tag, following Link pagination.
func (s *Store) listTags(ctx context.Context) ([]string, error) {
	var tags []string
	err := s.retrying(ctx, func(ctx context.Context) error {
		tags = tags[:0]
		return s.repo.Tags(ctx, "", func(page []string) error {
			tags = append(tags, page...)
			return nil
		})
	})
	return tags, err
}

// fetchManifest fetches a manifest by tag or digest and checks its digest.
func (s *Store) fetchManifest(ctx context.Context, ref string) (ocispec.Descriptor, []byte, error) {
	var desc ocispec.Descriptor
	var b []byte
	err := s.retrying(ctx, func(ctx context.Context) error {
		d, rc, err := s.repo.Manifests().FetchReference(ctx, ref)
		if err != nil {
			return err
		}
		defer rc.Close()
		body, err := readVerified(rc, d)
		if err != nil {
			if errors.Is(err, errDigestMismatch) {
				return errRetryRead{err}
			}
			return err
		}
		desc, b = d, body
		return nil
	})
	return desc, b, err
}

// pushBlob uploads body (desc.Size bytes) unless the registry already
// has desc. Uploads are monolithic (POST, then PUT ?digest=, the most
// portable flow) unless Options.UploadChunk asks for chunks (upload.go);
// either way the registry recomputes the digest and refuses a mismatch,
// so a damaged upload is never stored under coffer's name. Each attempt
// starts a new upload session: one that failed may be gone (a registry
// restarted, a proxy answered for it), and resuming it ends in 404 or
// 416.
func (s *Store) pushBlob(ctx context.Context, desc ocispec.Descriptor, body blobBody) error {
	exists := func(ctx context.Context) bool {
		ok, err := s.repo.Blobs().Exists(ctx, desc)
		return err == nil && ok
	}
	err := s.retrying(ctx, func(ctx context.Context) error {
		if exists(ctx) {
			return nil
		}
		err := s.upload(ctx, desc, body)
		switch {
		case err == nil, errors.Is(err, errdef.ErrAlreadyExists):
			return nil
		case classify(err) == transient && exists(ctx):
			// The upload landed, but its answer was lost on the way back.
			return nil
		case isNotFound(err) && s.repositoryExists(ctx), isStatus(err, http.StatusRequestedRangeNotSatisfiable):
			// The upload session is gone (a retried PUT after the first
			// one completed it, an expired session): start another.
			return errRetryRead{errUploadLost{err}}
		}
		return err
	})
	if isStatus(err, http.StatusRequestEntityTooLarge) {
		return &tooLargeError{host: s.loc.host, sent: s.largestRequest(desc.Size), chunked: s.opt.UploadChunk > 0, err: err}
	}
	if err != nil {
		return s.wrap("uploading blob "+shortDigest(desc.Digest), err)
	}
	return nil
}

// errUploadLost is an upload whose session the registry no longer knows.
// It hides the 404 from errors.Is: the blob is not missing from the
// repository, its upload failed.
type errUploadLost struct{ err error }

func (e errUploadLost) Error() string {
	return "the registry lost the upload session (" + e.err.Error() + ")"
}

// isStatus reports whether err is a registry answer with status code.
func isStatus(err error, code int) bool {
	var resp *errcode.ErrorResponse
	return errors.As(err, &resp) && resp.StatusCode == code
}

// pushManifest pushes a manifest, by digest or under a tag.
func (s *Store) pushManifest(ctx context.Context, desc ocispec.Descriptor, b []byte, tag string) error {
	if err := s.ensureEmptyConfig(ctx); err != nil {
		return err
	}
	return s.retrying(ctx, func(ctx context.Context) error {
		if tag == "" {
			return s.repo.Manifests().Push(ctx, desc, bytes.NewReader(b))
		}
		return s.repo.Manifests().PushReference(ctx, desc, bytes.NewReader(b), tag)
	})
}

// deleteTag deletes a tag, not the manifest it names (OCI
// distribution-spec 1.1); oras-go deletes by digest only. A retry after a
// reset may find it gone already, which is success.
func (s *Store) deleteTag(ctx context.Context, tag string) error {
	ctx = auth.AppendRepositoryScope(ctx, s.repo.Reference, auth.ActionDelete)
	url := fmt.Sprintf("%s://%s/v2/%s/manifests/%s", s.scheme(), s.loc.host, s.loc.repo, tag)
	first := true
	return s.retrying(ctx, func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodDelete, url, nil)
		if err != nil {
			return err
		}
		resp, err := s.client.Do(req)
		if err != nil {
			return err
		}
		if resp.StatusCode/100 == 2 {
			resp.StatusCode = http.StatusAccepted // any success will do
		}
		err = expectStatus(resp, http.StatusAccepted)
		if !first && isNotFound(err) {
			return nil
		}
		first = false
		return err
	})
}

// deleteManifest deletes a manifest by digest. A retry after a reset may
// find it gone already, which is success.
func (s *Store) deleteManifest(ctx context.Context, desc ocispec.Descriptor) error {
	first := true
	return s.retrying(ctx, func(ctx context.Context) error {
		err := s.repo.Manifests().Delete(ctx, desc)
		if !first && isNotFound(err) {
			return nil
		}
		first = false
		return err
	})
}
