package oci

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"syscall"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2/errdef"
)

// The registry operations coffer makes, each retried as a whole when the
// connection dies after the transport handed over a response (a reset
// mid-body), which the retrying transport cannot see. Every operation is
// idempotent: reads, pushes of content-addressed data, moving a tag to
// the same manifest.

// transient reports errors worth repeating a whole operation for.
func transient(err error) bool {
	var retryable errRetryRead
	var netErr net.Error
	// A bare EOF is a keep-alive connection the server closed as the
	// request went out (seen from registry 2.8 under load): Go's client
	// resends only GET and HEAD by itself.
	return errors.As(err, &retryable) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) ||
		(errors.As(err, &netErr) && netErr.Timeout())
}

// retrying runs op until it succeeds, fails for good, or readAttempts
// transient failures have happened.
func (s *Store) retrying(ctx context.Context, op func() error) error {
	var err error
	for attempt := 0; attempt < readAttempts; attempt++ {
		if err = op(); err == nil || !transient(err) || ctx.Err() != nil || attempt == readAttempts-1 {
			return err
		}
		wait := backoff(attempt, nil)
		if s.opt.Logf != nil && attempt > 0 {
			s.opt.Logf("registry %s: %v; retrying in %s", s.loc.host, err, wait.Round(10*time.Millisecond))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
	}
	return err
}

// listTags returns every tag, following Link pagination.
func (s *Store) listTags(ctx context.Context) ([]string, error) {
	var tags []string
	err := s.retrying(ctx, func() error {
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
	err := s.retrying(ctx, func() error {
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
// has desc. oras-go uploads monolithically (POST, then PUT ?digest=), the
// most portable flow; the registry recomputes the digest and refuses a
// mismatch, so a damaged upload is never stored under coffer's name.
func (s *Store) pushBlob(ctx context.Context, desc ocispec.Descriptor, body io.ReadSeeker) error {
	exists := func() bool {
		ok, err := s.repo.Blobs().Exists(ctx, desc)
		return err == nil && ok
	}
	err := s.retrying(ctx, func() error {
		if exists() {
			return nil
		}
		if _, err := body.Seek(0, io.SeekStart); err != nil {
			return err
		}
		err := s.repo.Blobs().Push(ctx, desc, body)
		switch {
		case err == nil, errors.Is(err, errdef.ErrAlreadyExists):
			return nil
		case exists():
			// The upload landed, but its answer was lost on the way back.
			return nil
		case isNotFound(err):
			// The upload session is gone (a retried PUT after the first
			// one completed it, or an expired session): start another.
			return errRetryRead{err}
		}
		return err
	})
	if err != nil {
		return s.wrap("uploading blob "+shortDigest(desc.Digest), err)
	}
	return nil
}

// pushManifest pushes a manifest, by digest or under a tag.
func (s *Store) pushManifest(ctx context.Context, desc ocispec.Descriptor, b []byte, tag string) error {
	if err := s.ensureEmptyConfig(ctx); err != nil {
		return err
	}
	return s.retrying(ctx, func() error {
		if tag == "" {
			return s.repo.Manifests().Push(ctx, desc, bytes.NewReader(b))
		}
		return s.repo.Manifests().PushReference(ctx, desc, bytes.NewReader(b), tag)
	})
}

// deleteManifest deletes a manifest by digest. A retry after a reset may
// find it gone already, which is success.
func (s *Store) deleteManifest(ctx context.Context, desc ocispec.Descriptor) error {
	first := true
	return s.retrying(ctx, func() error {
		err := s.repo.Manifests().Delete(ctx, desc)
		if !first && isNotFound(err) {
			return nil
		}
		first = false
		return err
	})
}
