package oci

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2/registry/remote/auth"
)

// Chunked uploads (OCI distribution spec v1.1, "Pushing a blob in
// chunks"). A reverse proxy in front of a registry often limits request
// bodies (nginx's client_max_body_size is 1 MiB by default) and answers a
// monolithic upload of a pack with 413. With Options.UploadChunk, blobs
// larger than a chunk are sent as a POST that opens an upload session, a
// PATCH per chunk, and a PUT ?digest= without a body that closes it; no
// request carries more than one chunk. oras-go has no chunked push, so
// the flow is here, on the same authenticating client.

// MinUploadChunk is the smallest Options.UploadChunk: smaller chunks cost
// a request per few KiB and help no proxy in practice.
const MinUploadChunk = 64 << 10

// blobBody is what an upload reads: seekable for a monolithic push,
// readable at an offset for the chunks of a chunked one.
type blobBody interface {
	io.ReadSeeker
	io.ReaderAt
}

// upload sends one blob: monolithically through oras-go, or in chunks
// when it is larger than Options.UploadChunk.
func (s *Store) upload(ctx context.Context, desc ocispec.Descriptor, body blobBody) error {
	if s.opt.UploadChunk <= 0 || desc.Size <= s.opt.UploadChunk {
		if _, err := body.Seek(0, io.SeekStart); err != nil {
			return err
		}
		return s.repo.Blobs().Push(ctx, desc, body)
	}
	return s.pushChunked(ctx, desc, body)
}

// largestRequest returns the most bytes one request of an upload of size
// bytes carries.
func (s *Store) largestRequest(size int64) int64 {
	if s.opt.UploadChunk > 0 {
		return min(size, s.opt.UploadChunk)
	}
	return size
}

// pushChunked uploads body in chunks within one upload session. Errors
// are the registry's answers (*errcode.ErrorResponse) or the transport's,
// for pushBlob and the retry policy to judge: a session the registry lost
// (404, 416) makes pushBlob start a new one.
func (s *Store) pushChunked(ctx context.Context, desc ocispec.Descriptor, body io.ReaderAt) error {
	// Pushing needs pull and push rights, as for oras-go's own pushes.
	ctx = auth.AppendRepositoryScope(ctx, s.repo.Reference, auth.ActionPull, auth.ActionPush)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost,
		fmt.Sprintf("%s://%s/v2/%s/blobs/uploads/", s.scheme(), s.loc.host, s.loc.repo), nil)
	if err != nil {
		return err
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return err
	}
	if err := expectStatus(resp, http.StatusAccepted); err != nil {
		return err
	}
	chunk := s.opt.UploadChunk
	// A registry may ask for chunks of at least some size (all but the
	// last); smaller ones it would refuse.
	if n, err := strconv.ParseInt(resp.Header.Get("OCI-Chunk-Min-Length"), 10, 64); err == nil && n > chunk {
		chunk = n
	}
	next, err := uploadLocation(req.URL, resp)
	if err != nil {
		return err
	}
	for off := int64(0); off < desc.Size; {
		n := min(chunk, desc.Size-off)
		req, err := http.NewRequestWithContext(ctx, http.MethodPatch, next.String(),
			uploadBody{io.NewSectionReader(body, off, n)})
		if err != nil {
			return err
		}
		req.ContentLength = n
		req.Header.Set("Content-Type", "application/octet-stream")
		// Distribution wants "start-end", inclusive, without "bytes=".
		req.Header.Set("Content-Range", fmt.Sprintf("%d-%d", off, off+n-1))
		resp, err := s.client.Do(req)
		if err != nil {
			return err
		}
		if err := expectStatus(resp, http.StatusAccepted); err != nil {
			return err
		}
		if got, ok := uploadedEnd(resp.Header.Get("Range")); ok && got != off+n {
			// The registry holds other bytes than sent: a session mixed up
			// behind a proxy. Only a new session can be trusted.
			return errRetryRead{fmt.Errorf("the registry acknowledged %d bytes of an upload after %d were sent", got, off+n)}
		}
		if next, err = uploadLocation(req.URL, resp); err != nil {
			return err
		}
		off += n
	}
	q := next.Query()
	q.Set("digest", desc.Digest.String())
	next.RawQuery = q.Encode()
	req, err = http.NewRequestWithContext(ctx, http.MethodPut, next.String(), http.NoBody)
	if err != nil {
		return err
	}
	req.ContentLength = 0
	resp, err = s.client.Do(req)
	if err != nil {
		return err
	}
	return expectStatus(resp, http.StatusCreated)
}

// expectStatus closes resp's body and returns the registry's error unless
// it answered with want.
func expectStatus(resp *http.Response, want int) error {
	defer resp.Body.Close()
	if resp.StatusCode != want {
		return parseErrorResponse(resp)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10)) // lets the connection be reused
	return nil
}

// uploadLocation returns where an upload session continues: the Location
// of the registry's answer, relative to the request. Like oras-go, it
// refuses a Location on another host or one that drops TLS, which would
// send the credentials and the data elsewhere.
func uploadLocation(reqURL *url.URL, resp *http.Response) (*url.URL, error) {
	loc, err := resp.Location()
	if err != nil {
		return nil, fmt.Errorf("upload session: %w", err)
	}
	if loc.Hostname() != reqURL.Hostname() || defaultPort(loc) != defaultPort(reqURL) {
		return nil, fmt.Errorf("upload session Location %q is on another host than the registry %q", loc.Host, reqURL.Host)
	}
	if reqURL.Scheme == "https" && loc.Scheme != "https" {
		return nil, fmt.Errorf("upload session Location %q drops HTTPS", loc.Host)
	}
	// A registry that leaves the port out of the Location (as some do
	// behind port 443) means the one it was asked on.
	loc.Host = reqURL.Host
	return loc, nil
}

// defaultPort returns u's port, or the scheme's default.
func defaultPort(u *url.URL) string {
	if p := u.Port(); p != "" {
		return p
	}
	if u.Scheme == "https" {
		return "443"
	}
	return "80"
}

// uploadedEnd parses the Range header of an upload session ("0-end",
// inclusive; some registries write "bytes=0-end") into how many bytes
// the registry holds.
func uploadedEnd(h string) (int64, bool) {
	h = strings.TrimPrefix(strings.TrimSpace(h), "bytes=")
	first, last, ok := strings.Cut(h, "-")
	if !ok || first != "0" {
		return 0, false
	}
	end, err := strconv.ParseInt(last, 10, 64)
	if err != nil || end < 0 {
		return 0, false
	}
	return end + 1, true
}
