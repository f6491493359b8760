package oci

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"

	"github.com/opencontainers/go-digest"
	"oras.land/oras-go/v2/registry/remote/auth"
	"oras.land/oras-go/v2/registry/remote/errcode"

	"github.com/cofferhq/coffer/storage"
)

// maxBlobRead bounds a whole-blob read; coffer's largest objects (packs)
// are far smaller.
const maxBlobRead = 2 << 30

// errRangeIgnored reports a 200 answer to a Range request.
var errRangeIgnored = errors.New("registry ignored the Range header")

// getBlob reads a blob by digest with one GET (no manifest lookup). A
// whole read is checked against the digest before any byte is returned; a
// ranged read must come back as 206 with a matching Content-Range and is
// streamed, resuming from where it stopped if the body is cut off. Reads
// cut off mid-body are retried.
func (s *Store) getBlob(ctx context.Context, dgst digest.Digest, rng *storage.Range) (io.ReadCloser, error) {
	if rng != nil && (rng.Offset < 0 || rng.Length <= 0 || rng.Offset > maxBlobRead || rng.Length > maxBlobRead-rng.Offset) {
		return nil, fmt.Errorf("blob %s range %s: %w", shortDigest(dgst), rng, storage.ErrInvalidRange)
	}
	if rng != nil && !s.rangeIgnored() {
		body, err := retryRead(ctx, s, func(ctx context.Context) (io.ReadCloser, error) { return s.openRange(ctx, dgst, *rng) })
		if err == nil {
			return &rangeReader{ctx: ctx, s: s, dgst: dgst, rest: *rng, body: body}, nil
		}
		if !errors.Is(err, errRangeIgnored) {
			return nil, err
		}
		s.recordRangeIgnored()
	}
	if rng == nil {
		return retryRead(ctx, s, func(ctx context.Context) (io.ReadCloser, error) { return s.readWholeSpooled(ctx, dgst) })
	}
	b, err := s.wholeBlob(ctx, dgst)
	if err != nil {
		return nil, err
	}
	if rng.Offset+rng.Length > int64(len(b)) {
		return nil, fmt.Errorf("blob %s range %s beyond its %d bytes: %w", shortDigest(dgst), rng, len(b), storage.ErrInvalidRange)
	}
	return io.NopCloser(bytes.NewReader(b[rng.Offset : rng.Offset+rng.Length])), nil
}

// wholeBlob reads and verifies a whole blob. When ranges are being served
// from whole reads, the last blob read is kept, so that restoring many
// blobs of one pack costs one download.
func (s *Store) wholeBlob(ctx context.Context, dgst digest.Digest) ([]byte, error) {
	s.fullMu.Lock()
	if s.fullDgst == dgst {
		b := s.fullData
		s.fullMu.Unlock()
		return b, nil
	}
	s.fullMu.Unlock()
	b, err := retryRead(ctx, s, func(ctx context.Context) ([]byte, error) { return s.readWhole(ctx, dgst) })
	if err != nil {
		return nil, err
	}
	if s.rangeIgnored() {
		s.fullMu.Lock()
		s.fullDgst, s.fullData = dgst, b
		s.fullMu.Unlock()
	}
	return b, nil
}

// retryRead is retrying for an operation that returns a value.
func retryRead[T any](ctx context.Context, s *Store, read func(context.Context) (T, error)) (T, error) {
	var v T
	err := s.retrying(ctx, func(ctx context.Context) error {
		var err error
		v, err = read(ctx)
		return err
	})
	return v, err
}

// blobRequest sends a GET for a blob through the authenticating client.
func (s *Store) blobRequest(ctx context.Context, dgst digest.Digest, rangeHeader string) (*http.Response, error) {
	ctx = auth.AppendRepositoryScope(ctx, s.repo.Reference, auth.ActionPull)
	url := fmt.Sprintf("%s://%s/v2/%s/blobs/%s", s.scheme(), s.loc.host, s.loc.repo, dgst)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	if rangeHeader != "" {
		req.Header.Set("Range", rangeHeader)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, errRetryRead{s.wrap("reading blob "+shortDigest(dgst), err)}
	}
	return resp, nil
}

// statusError turns an unexpected answer into an error; 404 wraps
// storage.ErrNotFound.
func (s *Store) statusError(resp *http.Response, dgst digest.Digest) error {
	return s.wrap("reading blob "+shortDigest(dgst), parseErrorResponse(resp))
}

// parseErrorResponse reads a registry's error body, as oras-go does for
// the requests it makes itself.
func parseErrorResponse(resp *http.Response) error {
	e := &errcode.ErrorResponse{Method: resp.Request.Method, URL: resp.Request.URL, StatusCode: resp.StatusCode}
	var body struct {
		Errors errcode.Errors `json:"errors"`
	}
	if json.NewDecoder(io.LimitReader(resp.Body, 8<<10)).Decode(&body) == nil {
		e.Errors = body.Errors
	}
	return e
}

func (s *Store) readWhole(ctx context.Context, dgst digest.Digest) ([]byte, error) {
	resp, err := s.openWhole(ctx, dgst)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	return readWholeBody(resp, dgst)
}

// openWhole sends a GET for a whole blob and checks the status.
func (s *Store) openWhole(ctx context.Context, dgst digest.Digest) (*http.Response, error) {
	resp, err := s.blobRequest(ctx, dgst, "")
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		return nil, s.statusError(resp, dgst)
	}
	return resp, nil
}

// readWholeBody reads a whole blob's body into memory and checks it.
func readWholeBody(resp *http.Response, dgst digest.Digest) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxBlobRead+1))
	if err != nil {
		return nil, errRetryRead{fmt.Errorf("reading blob %s: %w", shortDigest(dgst), err)}
	}
	if resp.ContentLength >= 0 && int64(len(b)) != resp.ContentLength {
		return nil, errRetryRead{fmt.Errorf("blob %s: got %d of %d bytes", shortDigest(dgst), len(b), resp.ContentLength)}
	}
	if digest.FromBytes(b) != dgst {
		// A damaged transfer, or damaged storage: retrying tells which.
		return nil, errRetryRead{fmt.Errorf("blob %s: the %d bytes received do not match its digest: %w", shortDigest(dgst), len(b), storage.ErrCorrupt)}
	}
	return b, nil
}

// spoolThreshold is the size above which a whole read waits for its
// digest check in an unlinked temporary file (in $TMPDIR) rather than in
// memory: packs, which check -read-data reads four at a time.
const spoolThreshold = 4 << 20

// readWholeSpooled reads and checks a whole blob, returning its bytes
// only once they match the digest, as readWhole does, but holding a
// large blob on disk.
func (s *Store) readWholeSpooled(ctx context.Context, dgst digest.Digest) (io.ReadCloser, error) {
	resp, err := s.openWhole(ctx, dgst)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.ContentLength >= 0 && resp.ContentLength <= spoolThreshold {
		b, err := readWholeBody(resp, dgst)
		if err != nil {
			return nil, err
		}
		return io.NopCloser(bytes.NewReader(b)), nil
	}
	f, err := os.CreateTemp("", "coffer-read-")
	if err != nil {
		return nil, fmt.Errorf("reading blob %s: a temporary file for it: %w", shortDigest(dgst), err)
	}
	os.Remove(f.Name()) // unlinked: nothing is left behind, whatever happens
	fail := func(err error) (io.ReadCloser, error) {
		f.Close()
		return nil, err
	}
	verifier := dgst.Verifier()
	n, err := io.Copy(io.MultiWriter(f, verifier), io.LimitReader(resp.Body, maxBlobRead+1))
	if err != nil {
		var pathErr *os.PathError
		if errors.As(err, &pathErr) {
			return fail(fmt.Errorf("reading blob %s into a temporary file: %w", shortDigest(dgst), err))
		}
		return fail(errRetryRead{fmt.Errorf("reading blob %s: %w", shortDigest(dgst), err)})
	}
	if resp.ContentLength >= 0 && n != resp.ContentLength {
		return fail(errRetryRead{fmt.Errorf("blob %s: got %d of %d bytes", shortDigest(dgst), n, resp.ContentLength)})
	}
	if !verifier.Verified() {
		return fail(errRetryRead{fmt.Errorf("blob %s: the %d bytes received do not match its digest: %w", shortDigest(dgst), n, storage.ErrCorrupt)})
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return fail(err)
	}
	return f, nil
}

// readRange reads exactly rng of a blob with a closed Range request.
func (s *Store) readRange(ctx context.Context, dgst digest.Digest, rng storage.Range) ([]byte, error) {
	body, err := s.openRange(ctx, dgst, rng)
	if err != nil {
		return nil, err
	}
	defer body.Close()
	b := make([]byte, rng.Length)
	if _, err := io.ReadFull(body, b); err != nil {
		return nil, errRetryRead{fmt.Errorf("reading blob %s range %s: %w", shortDigest(dgst), rng, err)}
	}
	return b, nil
}

// openRange sends a closed Range request for rng and returns the body once
// the answer is known to hold exactly those bytes.
func (s *Store) openRange(ctx context.Context, dgst digest.Digest, rng storage.Range) (io.ReadCloser, error) {
	last := rng.Offset + rng.Length - 1
	resp, err := s.blobRequest(ctx, dgst, fmt.Sprintf("bytes=%d-%d", rng.Offset, last))
	if err != nil {
		return nil, err
	}
	fail := func(err error) (io.ReadCloser, error) {
		resp.Body.Close()
		return nil, err
	}
	switch resp.StatusCode {
	case http.StatusPartialContent:
	case http.StatusOK:
		return fail(errRangeIgnored)
	case http.StatusRequestedRangeNotSatisfiable:
		return fail(fmt.Errorf("blob %s range %s: %w", shortDigest(dgst), rng, storage.ErrInvalidRange))
	default:
		return fail(s.statusError(resp, dgst))
	}
	start, end, total, ok := parseContentRange(resp.Header.Get("Content-Range"))
	if !ok || start != rng.Offset || (end != last && end != total-1) || end < start || (total >= 0 && end >= total) {
		return fail(fmt.Errorf("registry %s answered range %s of blob %s with Content-Range %q",
			s.loc.host, rng, shortDigest(dgst), resp.Header.Get("Content-Range")))
	}
	if end != last {
		// The blob ends before the range does.
		return fail(fmt.Errorf("blob %s range %s beyond its %d bytes: %w", shortDigest(dgst), rng, total, storage.ErrInvalidRange))
	}
	return resp.Body, nil
}

// rangeReader streams a ranged read. A body cut off before the end of the
// range is resumed with a Range request for what is left, so a caller
// reading a pack blob by blob holds one blob at a time, never the range.
// (A range cannot be checked against the blob's digest; the repository
// authenticates every blob in it.)
type rangeReader struct {
	ctx    context.Context
	s      *Store
	dgst   digest.Digest
	rest   storage.Range // not read yet
	body   io.ReadCloser // nil between a cut-off body and the next request
	stalls int           // requests in a row cut off before their first byte
}

// maxStalls is how many ranged requests in a row may be answered and then
// cut off before their first byte. (A registry that cannot be reached at
// all is waited for by openRange's retries, within the time budget.)
const maxStalls = 5

func (r *rangeReader) Read(p []byte) (int, error) {
	for {
		if r.rest.Length == 0 {
			return 0, io.EOF
		}
		if r.body == nil {
			body, err := retryRead(r.ctx, r.s, func(ctx context.Context) (io.ReadCloser, error) { return r.s.openRange(ctx, r.dgst, r.rest) })
			if err != nil {
				return 0, err
			}
			r.body = body
		}
		if int64(len(p)) > r.rest.Length {
			p = p[:r.rest.Length]
		}
		n, err := r.body.Read(p)
		r.rest.Offset += int64(n)
		r.rest.Length -= int64(n)
		if n > 0 {
			r.stalls = 0
		}
		if err == nil || r.rest.Length == 0 {
			return n, nil
		}
		// Cut off (io.EOF too: the range is not complete): ask for the rest.
		r.body.Close()
		r.body = nil
		if ctxErr := r.ctx.Err(); ctxErr != nil {
			return n, ctxErr
		}
		if n > 0 {
			return n, nil
		}
		if r.stalls++; r.stalls >= maxStalls {
			return 0, fmt.Errorf("registry %s: reading blob %s range %s: %w (after %d attempts)",
				r.s.loc.host, shortDigest(r.dgst), r.rest, err, maxStalls)
		}
	}
}

func (r *rangeReader) Close() error {
	if r.body != nil {
		return r.body.Close()
	}
	return nil
}

// parseContentRange parses "bytes start-end/total" (total may be "*").
func parseContentRange(h string) (start, end, total int64, ok bool) {
	rest, found := strings.CutPrefix(h, "bytes ")
	if !found {
		return 0, 0, 0, false
	}
	span, size, found := strings.Cut(rest, "/")
	if !found {
		return 0, 0, 0, false
	}
	a, b, found := strings.Cut(span, "-")
	if !found {
		return 0, 0, 0, false
	}
	var err1, err2, err3 error
	start, err1 = strconv.ParseInt(a, 10, 64)
	end, err2 = strconv.ParseInt(b, 10, 64)
	total = -1
	if size != "*" {
		total, err3 = strconv.ParseInt(size, 10, 64)
	}
	return start, end, total, err1 == nil && err2 == nil && err3 == nil
}

func rangeOf(off, n int64) storage.Range { return storage.Range{Offset: off, Length: n} }
