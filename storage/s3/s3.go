package s3

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/minio/minio-go/v7/pkg/s3utils"

	"github.com/cofferhq/coffer/storage"
	"github.com/cofferhq/coffer/storage/internal/retry"
	"github.com/cofferhq/coffer/storage/internal/transport"
)

// kindDirs names the folder of each kind, as in a local repository.
var kindDirs = map[storage.Kind]string{
	storage.KindPack:      "packs",
	storage.KindIndex:     "index",
	storage.KindSnapshot:  "snapshots",
	storage.KindKey:       "keys",
	storage.KindLock:      "locks",
	storage.KindPlan:      "plans",
	storage.KindForgotten: "forgotten",
}

// configName is the key of the repository config below the prefix.
const configName = "config"

// maxConfigSize bounds what Open reads as a config: a config is a few
// hundred bytes, and a huge object under that name is not one.
const maxConfigSize = 1 << 20

// Store is a coffer repository under a prefix of an S3 bucket. Its
// methods are safe for concurrent use.
type Store struct {
	loc    location
	opt    Options
	client *minio.Client
	core   minio.Core
	creds  *sourcedChain
	plain  bool   // plain HTTP
	region string // as given or from the environment; empty: detected
	retry  retryState

	transport http.RoundTripper
	// md5 makes single PUTs carry Content-MD5, not CRC32C: minio-go
	// refuses checksum headers for Google Cloud Storage's endpoint.
	md5 bool
	// unconditional is set once the endpoint answered a conditional
	// write (If-None-Match) with 501: it has none.
	unconditional atomic.Bool
	// objectLock is the retention in days of what Put writes (lock.go),
	// from Options at Create or from the store at Open; 0 for none.
	objectLock atomic.Int64
	// versioning caches whether the bucket keeps versions, asked at the
	// first Delete that needs to know (lock.go, bucketVersioned).
	versioning struct {
		sync.Mutex
		known, on bool
	}
}

var (
	_ storage.Store       = (*Store)(nil)
	_ storage.Describer   = (*Store)(nil)
	_ storage.Concurrency = (*Store)(nil)
)

// Opener returns a storage.Opener for s3 locations with opt.
func Opener(opt Options) storage.Opener {
	return func(ctx context.Context, location string) (storage.Store, error) {
		return Open(ctx, location, opt)
	}
}

// Open connects to the endpoint of an S3 location. It decides between
// HTTPS and plain HTTP (plain only with -insecure-http, or for a
// loopback endpoint that does not speak TLS at all) but sends nothing
// to the bucket: Store.Open and Store.Create do.
func Open(ctx context.Context, loc string, opt Options) (*Store, error) {
	l, err := parseLocation(loc)
	if err != nil {
		return nil, err
	}
	if opt.RetryFor <= 0 {
		opt.RetryFor = DefaultRetryFor
	}
	if opt.MultipartAbove <= 0 {
		opt.MultipartAbove = DefaultMultipartAbove
	}
	if opt.PartSize == 0 {
		opt.PartSize = DefaultPartSize
	}
	if opt.PartSize < MinPartSize {
		return nil, fmt.Errorf("S3 part size of %d bytes: give at least %d (5 MiB, S3's minimum)", opt.PartSize, MinPartSize)
	}
	getenv := opt.getenv()
	base, err := newTransport(opt)
	if err != nil {
		return nil, err
	}
	s := &Store{loc: l, opt: opt, creds: newCredentials(getenv), retry: retryState{backoff: retry.Backoff}, transport: base}
	s.region = cmpOr(l.region, cmpOr(getenv("AWS_REGION"), getenv("AWS_DEFAULT_REGION")))
	if s.region == "" && !l.aws {
		// S3-compatible servers sign for the region they are told and
		// mostly call it us-east-1; asking (GetBucketLocation) would
		// need one more permission than a backup does.
		s.region = "us-east-1"
	}
	insecure := l.insecure || opt.InsecureHTTP
	if !insecure && isLoopback(l.endpoint) {
		// A server on this machine without TLS, as a test or a local
		// MinIO usually is, is spoken to in plain HTTP.
		err = s.retrying(ctx, func(ctx context.Context) error {
			var err error
			insecure, err = speaksPlainHTTP(ctx, l.endpoint, base)
			return err
		})
		if err != nil {
			return nil, s.connectError("connecting", err)
		}
	}
	s.plain = insecure
	lookup := minio.BucketLookupAuto
	switch l.lookup {
	case "path":
		lookup = minio.BucketLookupPath
	case "dns":
		lookup = minio.BucketLookupDNS
	}
	s.client, err = minio.New(l.endpoint, &minio.Options{
		Creds:        credentials.New(s.creds),
		Secure:       !s.plain,
		Transport:    base,
		Region:       s.region,
		BucketLookup: lookup,
		// Every operation is retried as a whole by retrying, with the
		// registry store's policy; minio-go's own retries would
		// multiply with it.
		MaxRetries: 1,
		// Lets Put send x-amz-checksum-crc32c (minio-go refuses
		// checksum headers without it); it also adds CRC32C to the
		// parts of multipart uploads.
		TrailingHeaders: true,
	})
	if err != nil {
		return nil, storage.BadLocation(fmt.Errorf("S3 location %s: %w", l, err))
	}
	s.client.SetAppInfo("coffer", "")
	s.md5 = s3utils.IsGoogleEndpoint(*s.client.EndpointURL())
	s.core = minio.Core{Client: s.client}
	return s, nil
}

// newTransport returns the base transport: opt.Transport, or one that
// verifies TLS against the system pool plus opt.CAFile.
func newTransport(opt Options) (http.RoundTripper, error) {
	if opt.Transport != nil {
		return opt.Transport, nil
	}
	return transport.New(opt.CAFile)
}

// speaksPlainHTTP reports whether the server at host answers a TLS
// handshake with plain HTTP. A certificate that fails verification is
// an error, never a reason to go plain.
func speaksPlainHTTP(ctx context.Context, host string, base http.RoundTripper) (bool, error) {
	attempt, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(attempt, http.MethodHead, "https://"+host+"/", nil)
	resp, err := base.RoundTrip(req)
	if err == nil {
		resp.Body.Close()
		return false, nil
	}
	var recordErr tls.RecordHeaderError
	if errors.As(err, &recordErr) {
		return true, nil
	}
	if attempt.Err() != nil && ctx.Err() == nil {
		return false, fmt.Errorf("no answer within 30s: %w", os.ErrDeadlineExceeded)
	}
	return false, err
}

// Concurrency is how many packs to upload at once, the registry
// store's: enough to keep an endpoint busy while coffer prepares the
// next ones.
func (s *Store) Concurrency() int { return 4 }

// Location returns the location as the user wrote it, without options.
func (s *Store) Location() string { return s.loc.String() }

// Describe reports the endpoint, bucket, prefix, region, addressing and
// credential source for `coffer info`.
func (s *Store) Describe(ctx context.Context) map[string]string {
	scheme := "https"
	if s.plain {
		scheme = "http"
	}
	region := s.region
	if region == "" {
		region = "detected by the client (set AWS_REGION to skip)"
	}
	d := map[string]string{
		"type":        "S3 bucket",
		"endpoint":    scheme + "://" + s.loc.endpoint,
		"bucket":      s.loc.bucket,
		"prefix":      s.loc.prefix,
		"region":      region,
		"addressing":  s.loc.lookup + ": " + lookupStyles[s.loc.lookup],
		"credentials": s.creds.source(),
		"object lock": "off",
		"uploads":     fmt.Sprintf("one PUT with Content-MD5 up to %s, else parts of %s", sizeText(s.opt.MultipartAbove), sizeText(s.opt.PartSize)),
	}
	if days := s.lockDays(); days > 0 {
		d["object lock"] = fmt.Sprintf("COMPLIANCE retention of %d days on every object but locks and plans", days)
	}
	if d["prefix"] == "" {
		d["prefix"] = "(the whole bucket)"
	}
	d["conditional writes"] = "If-None-Match: * on every object but locks and plans"
	if s.unconditional.Load() {
		d["conditional writes"] = "none: the endpoint answered 501, so a Put may replace an object"
	}
	// What the bucket says of itself, asked once here, briefly: info
	// must not wait out a retry budget for it, and a credential may
	// lack these permissions, which backups do not need.
	probe, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if s.region == "" {
		if r, err := s.client.GetBucketLocation(probe, s.loc.bucket); err == nil {
			d["region"] = cmpOr(r, "us-east-1") + " (detected)"
		}
	}
	if v, err := s.client.GetBucketVersioning(probe, s.loc.bucket); err != nil {
		d["versioning"] = "unknown (" + shortError(err) + ")"
	} else {
		d["versioning"] = strings.ToLower(cmpOr(v.Status, "off"))
	}
	return d
}

func sizeText(n int64) string {
	if n%(1<<20) == 0 {
		return strconv.FormatInt(n>>20, 10) + " MiB"
	}
	return strconv.FormatInt(n, 10) + " bytes"
}

// key returns the object key of kind/name.
func (s *Store) key(kind storage.Kind, name string) string {
	if kind == storage.KindPack {
		return s.loc.key(kindDirs[kind] + "/" + name[:min(2, len(name))] + "/" + name)
	}
	return s.loc.key(kindDirs[kind] + "/" + name)
}

// Create writes the config under an empty prefix. A prefix holding
// anything is refused, so that a typo cannot mix a repository into
// other data. The bucket must exist: creating it is the user's (its
// region, versioning and Object Lock are decisions coffer does not
// take).
func (s *Store) Create(ctx context.Context, config []byte) error {
	var found string
	err := s.retrying(ctx, func(ctx context.Context) error {
		for obj := range s.client.ListObjectsIter(ctx, s.loc.bucket, minio.ListObjectsOptions{Prefix: s.loc.key(""), MaxKeys: 1}) {
			if obj.Err != nil {
				return obj.Err
			}
			found = obj.Key
			break
		}
		return nil
	})
	if err != nil {
		return s.wrap("checking that the prefix is empty", err)
	}
	if found != "" {
		return fmt.Errorf("%s is not empty (it holds %s): choose a new prefix: %w", s.loc, found, storage.ErrExists)
	}
	if days := s.opt.ObjectLockDays; days > 0 {
		if err := s.checkBucketLock(ctx); err != nil {
			return err
		}
		s.objectLock.Store(int64(days))
		if err := s.put(ctx, "writing the Object Lock setting", "", s.loc.key(objectLockName), storage.BytesBody([]byte(lockSetting(days)))); err != nil {
			return err
		}
	}
	return s.put(ctx, "writing the config", "", s.loc.key(configName), storage.BytesBody(config))
}

// Open returns the config written by Create.
func (s *Store) Open(ctx context.Context) ([]byte, error) {
	var config []byte
	err := s.retrying(ctx, func(ctx context.Context) error {
		rc, err := s.getRange(ctx, s.loc.key(configName), nil, "")
		if err != nil {
			return err
		}
		defer rc.Close()
		config, err = io.ReadAll(io.LimitReader(rc, maxConfigSize+1))
		if err == nil && len(config) > maxConfigSize {
			return fmt.Errorf("the config object is larger than %d bytes: not a coffer repository", maxConfigSize)
		}
		return err
	})
	if err != nil {
		var resp minio.ErrorResponse
		if errors.As(err, &resp) && resp.Code == "NoSuchKey" {
			return nil, fmt.Errorf("%s: no coffer repository here (no %s object): %w", s.loc, configName, storage.ErrNotFound)
		}
		return nil, s.wrap("reading the config", err)
	}
	if err := s.readLockSetting(ctx); err != nil {
		return nil, err
	}
	return config, nil
}

// Put stores body under kind/name: in one PUT up to
// Options.MultipartAbove, else as a multipart upload (aborted if it
// fails). A single PUT carries the body's CRC32C (x-amz-checksum-crc32c),
// the parts of a multipart upload Content-MD5 and CRC32C; the endpoint
// checks them before it stores anything.
// An object becomes visible only when the PUT, or the completion of the
// upload, succeeds: never a prefix of it.
func (s *Store) Put(ctx context.Context, kind storage.Kind, name string, body storage.Body) error {
	if err := storage.CheckArgs(kind, name); err != nil {
		return fmt.Errorf("put: %w", err)
	}
	return s.put(ctx, "storing "+string(kind)+" "+name, kind, s.key(kind, name), body)
}

// put stores body under key; kind is the object's kind, empty for the
// config and the Object Lock setting, which are retained like data.
func (s *Store) put(ctx context.Context, op string, kind storage.Kind, key string, body storage.Body) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s: %s: %w", s.loc, op, err)
	}
	size := body.Size()
	err := s.retrying(ctx, func(ctx context.Context) error {
		rec := &recordingReaderAt{r: body.Reader(), size: size}
		opts := minio.PutObjectOptions{
			ContentType:      "application/octet-stream",
			DisableMultipart: size <= s.opt.MultipartAbove,
			PartSize:         uint64(s.opt.PartSize),
		}
		var crc string
		if opts.DisableMultipart && !s.md5 {
			var err error
			if crc, err = crc32c(io.NewSectionReader(rec, 0, size)); err != nil {
				return bodyError{err}
			}
			setChecksum(&opts, crc)
		} else {
			// Parts are buffered by minio-go, which sends each with
			// Content-MD5 (and CRC32C but to Google's endpoint).
			opts.SendContentMd5 = true
		}
		s.retention(kind, &opts)
		// Objects named by their bytes, and the config, are written
		// only where nothing is (If-None-Match: *), so that no write
		// replaces a stored object, and a bucket policy can require it
		// (docs/s3.md). Only single PUTs: AWS wants the condition on
		// the completion of a multipart upload, which minio-go does
		// not send it with.
		conditional := kind != storage.KindLock && kind != storage.KindPlan && opts.DisableMultipart && !s.unconditional.Load()
		if conditional {
			opts.SetMatchETagExcept("*")
		}
		info, err := s.client.PutObject(ctx, s.loc.bucket, key, io.NewSectionReader(rec, 0, size), size, opts)
		if berr := rec.failure(); berr != nil {
			return bodyError{berr}
		}
		var resp minio.ErrorResponse
		switch {
		case err == nil:
		case conditional && errors.As(err, &resp) && (resp.StatusCode == http.StatusNotImplemented || resp.Code == "NotImplemented"):
			// A server without conditional writes: write as S3
			// always did, from now on.
			s.unconditional.Store(true)
			return fmt.Errorf("conditional writes not implemented: %w", errRetryNow)
		case conditional && errors.As(err, &resp) && resp.StatusCode == http.StatusPreconditionFailed,
			opts.Mode != "" && isRefused(err):
			// Something is stored under the name already (or, with
			// Object Lock, is retained and cannot be replaced).
			return s.alreadyStored(ctx, kind, key, body, err)
		default:
			return err
		}
		if info.Size != size {
			return fmt.Errorf("the endpoint took %d bytes of %d: %w", info.Size, size, errMismatch)
		}
		if crc != "" && info.ChecksumCRC32C != "" && info.ChecksumCRC32C != crc {
			return fmt.Errorf("the endpoint stored CRC32C %s, not the body's %s: %w", info.ChecksumCRC32C, crc, errMismatch)
		}
		return nil
	})
	return s.wrap(op, err)
}

// setChecksum makes a single PUT carry crc, the body's CRC32C, in
// x-amz-checksum-crc32c, which the endpoint checks the body against
// before it stores it, in place of Content-MD5: CRC32C costs a fraction
// of MD5's CPU (the CPU computes it), and AWS takes either on uploads
// with Object Lock retention ("Content-MD5 OR x-amz-checksum- HTTP
// header is required"). The checksum is a header, not a trailer of an
// aws-chunked body, so that servers without aws-chunked trailers take
// it, and the payload goes as UNSIGNED-PAYLOAD: over plain HTTP minio-go
// would otherwise SHA-256 it for a streaming signature as well, a second
// hash of every byte. The CRC32C still covers the body end to end, and
// what coffer stores is authenticated by its encryption.
func setChecksum(opts *minio.PutObjectOptions, crc string) {
	opts.UserMetadata = map[string]string{"x-amz-checksum-crc32c": crc}
	opts.DisableContentSha256 = true
}

// crc32c returns the base64 CRC32C of what r holds, as
// x-amz-checksum-crc32c carries it.
func crc32c(r io.Reader) (string, error) {
	h := crc32.New(crc32.MakeTable(crc32.Castagnoli))
	if _, err := io.Copy(h, r); err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(h.Sum(nil)), nil
}

// alreadyStored decides a Put that found its key taken: an object
// named by its bytes with the same size is the same object (its name
// says so); the config, named by nothing, must hold the same bytes (an
// earlier attempt of this Put stored it) or it is another repository's.
func (s *Store) alreadyStored(ctx context.Context, kind storage.Kind, key string, body storage.Body, putErr error) error {
	if kind != "" {
		info, err := s.client.StatObject(ctx, s.loc.bucket, key, minio.StatObjectOptions{})
		if err != nil {
			return takenError(putErr, err)
		}
		if info.Size != body.Size() {
			return fmt.Errorf("an object of %d bytes, not %d, is stored under that name: %w", info.Size, body.Size(), storage.ErrExists)
		}
		return nil
	}
	rc, err := s.getRange(ctx, key, nil, "")
	if err != nil {
		return takenError(putErr, err)
	}
	defer rc.Close()
	stored, err := io.ReadAll(io.LimitReader(rc, maxConfigSize+1))
	if err != nil {
		return err
	}
	want, err := io.ReadAll(body.Reader())
	if err != nil {
		return bodyError{err}
	}
	if !bytes.Equal(stored, want) {
		return fmt.Errorf("another client wrote %s first: %w", key, storage.ErrExists)
	}
	return nil
}

// takenError is what a Put whose key was taken returns when reading
// what is stored there failed with err: a failure to reach the endpoint
// (a dropped connection, a 5xx, a 429), for the retry loop to try the
// Put again, which finds the key taken again and looks once more; or,
// when nothing is there (it was deleted meanwhile), the Put's own error.
func takenError(putErr, err error) error {
	var resp minio.ErrorResponse
	if errors.As(err, &resp) && (resp.Code == "NoSuchKey" || resp.StatusCode == http.StatusNotFound) {
		return putErr
	}
	return fmt.Errorf("reading what is stored under the name: %w", err)
}

// recordingReaderAt remembers the first failure to read a Put's body
// (an error, or an end before its size), which minio-go may report as
// something else or not at all.
type recordingReaderAt struct {
	r    io.ReaderAt
	size int64

	mu  sync.Mutex
	err error
}

// ReadAt reads as r.r does, except that an end before the body's size
// is io.ErrUnexpectedEOF, not io.EOF: given an EOF, minio-go would hash
// and send the short body as if it were whole, with a Content-MD5 that
// matches it, and a server that takes what arrived before the connection
// broke would store it.
func (r *recordingReaderAt) ReadAt(p []byte, off int64) (int, error) {
	n, err := r.r.ReadAt(p, off)
	switch {
	case err == nil:
	case err == io.EOF && off+int64(n) >= r.size:
	case err == io.EOF:
		err = fmt.Errorf("the body ended after %d of its %d bytes: %w", off+int64(n), r.size, io.ErrUnexpectedEOF)
		r.note(err)
	default:
		r.note(err)
	}
	return n, err
}

func (r *recordingReaderAt) note(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err == nil {
		r.err = err
	}
}

func (r *recordingReaderAt) failure() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}

// Get returns the object's bytes, or the range of them. Reads are
// checked for their length: a body that ends early is read on from
// where it stopped (within the retry budget, and only while the object
// keeps its ETag), never returned short.
func (s *Store) Get(ctx context.Context, kind storage.Kind, name string, rng *storage.Range) (io.ReadCloser, error) {
	if err := storage.CheckArgs(kind, name); err != nil {
		return nil, fmt.Errorf("get: %w", err)
	}
	op := "reading " + string(kind) + " " + name
	if rng != nil {
		if rng.Length <= 0 || rng.Offset < 0 || rng.Offset > (1<<63-1)-rng.Length {
			return nil, fmt.Errorf("%s: %s %v: %w", s.loc, op, *rng, storage.ErrInvalidRange)
		}
		op += " " + rng.String()
	}
	key := s.key(kind, name)
	var rc *rangeReader
	err := s.retrying(ctx, func(ctx context.Context) error {
		var err error
		rc, err = s.getRange(ctx, key, rng, "")
		return err
	})
	if err != nil {
		return nil, s.wrap(op, err)
	}
	rc.ctx, rc.store, rc.op = ctx, s, op
	return rc, nil
}

// getRange makes one GET of key, of rng or the whole object, and checks
// the answer's range and length before it returns a reader of exactly
// the bytes asked for. etag, when set, is required (If-Match), so that
// a read resumed after a cut does not splice two versions of a lock.
func (s *Store) getRange(ctx context.Context, key string, rng *storage.Range, etag string) (*rangeReader, error) {
	var opts minio.GetObjectOptions
	if rng != nil {
		if err := opts.SetRange(rng.Offset, rng.Offset+rng.Length-1); err != nil {
			return nil, fmt.Errorf("range %v: %w", *rng, storage.ErrInvalidRange)
		}
	} else {
		// Verify the object's full checksum where the server stored one
		// (AWS adds CRC64NVME to new objects).
		opts.Checksum = true
	}
	if etag != "" {
		if err := opts.SetMatchETag(etag); err != nil {
			return nil, err
		}
	}
	body, info, hdr, err := s.core.GetObject(ctx, s.loc.bucket, key, opts)
	if err != nil {
		return nil, err
	}
	length, err := strconv.ParseInt(hdr.Get("Content-Length"), 10, 64)
	if err != nil || length < 0 {
		body.Close()
		return nil, fmt.Errorf("the answer has no valid Content-Length (%q): %w", hdr.Get("Content-Length"), errMismatch)
	}
	r := &rangeReader{body: body, key: key, etag: info.ETag}
	if rng == nil {
		r.off, r.end = 0, length
		return r, nil
	}
	end := rng.Offset + rng.Length
	cr := hdr.Get("Content-Range")
	if cr == "" {
		// 200 and the whole object: the server ignored Range, as HTTP
		// allows. Skip to the range, if the object holds it.
		if end > length {
			body.Close()
			return nil, fmt.Errorf("range %v of a %d-byte object: %w", *rng, length, storage.ErrInvalidRange)
		}
		if _, err := io.CopyN(io.Discard, body, rng.Offset); err != nil {
			body.Close()
			return nil, fmt.Errorf("skipping to %d of an answer that ignored its Range: %w", rng.Offset, io.ErrUnexpectedEOF)
		}
		r.off, r.end, r.wholeBody = rng.Offset, end, true
		return r, nil
	}
	first, last, total, ok := parseContentRange(cr)
	switch {
	case !ok || first != rng.Offset || last-first+1 != length:
		body.Close()
		return nil, fmt.Errorf("asked for %v, got Content-Range %q and %d bytes: %w", *rng, cr, length, errMismatch)
	case last+1 < end && (total < 0 || last+1 == total):
		// The object ends inside the range: S3 answers what there is.
		body.Close()
		return nil, fmt.Errorf("range %v of a %d-byte object: %w", *rng, last+1, storage.ErrInvalidRange)
	case last+1 != end:
		body.Close()
		return nil, fmt.Errorf("asked for %v, got Content-Range %q: %w", *rng, cr, errMismatch)
	}
	r.off, r.end = rng.Offset, end
	return r, nil
}

// parseContentRange parses "bytes FIRST-LAST/TOTAL" (TOTAL may be "*",
// returned as -1).
func parseContentRange(h string) (first, last, total int64, ok bool) {
	rest, found := strings.CutPrefix(h, "bytes ")
	if !found {
		return 0, 0, 0, false
	}
	span, tot, found := strings.Cut(rest, "/")
	if !found {
		return 0, 0, 0, false
	}
	a, b, found := strings.Cut(span, "-")
	if !found {
		return 0, 0, 0, false
	}
	var err1, err2, err3 error
	first, err1 = strconv.ParseInt(a, 10, 64)
	last, err2 = strconv.ParseInt(b, 10, 64)
	total = -1
	if tot != "*" {
		total, err3 = strconv.ParseInt(tot, 10, 64)
	}
	if err1 != nil || err2 != nil || err3 != nil || first < 0 || last < first {
		return 0, 0, 0, false
	}
	return first, last, total, true
}

// rangeReader reads bytes [off, end) of an object, resuming with a
// ranged GET where a body is cut off, and failing rather than ending
// early.
type rangeReader struct {
	body     io.ReadCloser // nil between a cut and the resumed GET
	key      string
	etag     string
	off, end int64
	// wholeBody is set when the server ignored Range: the body goes on
	// past end.
	wholeBody bool

	// Set by Get; resumption needs them.
	ctx   context.Context
	store *Store
	op    string
}

// Read reads on within [off, end), resuming after a cut; the end of
// the range is io.EOF only once the whole range was read.
func (r *rangeReader) Read(p []byte) (int, error) {
	if r.off >= r.end {
		return 0, io.EOF
	}
	attempt := 0
	for {
		if r.body == nil {
			if err := r.resume(); err != nil {
				return 0, err
			}
		}
		if int64(len(p)) > r.end-r.off {
			p = p[:r.end-r.off]
		}
		n, err := r.body.Read(p)
		r.off += int64(n)
		switch {
		case r.off >= r.end && err == nil && r.wholeBody:
			// A whole object answered to a ranged GET goes on.
			return n, nil
		case r.off >= r.end && err == nil:
			// The body must end here: reading its end is what makes
			// minio-go check a whole object's stored checksum.
			if ferr := r.finish(); ferr != nil {
				return n, ferr
			}
			return n, nil
		case r.off >= r.end:
			if err != io.EOF {
				return n, r.fail(err)
			}
			return n, nil
		case err == nil:
			return n, nil
		case err == io.EOF:
			err = fmt.Errorf("the body ended %d bytes early: %w", r.end-r.off, io.ErrUnexpectedEOF)
		}
		if r.store == nil || classify(err) != transient {
			return n, r.fail(err)
		}
		r.body.Close()
		r.body = nil
		if n > 0 {
			// Progress: the next Read resumes.
			r.store.retry.Answered()
			return n, nil
		}
		if werr := r.store.wait(r.ctx, err, attempt); werr != nil {
			return 0, r.fail(werr)
		}
		attempt++
	}
}

// finish reads the body to its end, which must come now.
func (r *rangeReader) finish() error {
	var one [1]byte
	for {
		n, err := r.body.Read(one[:])
		switch {
		case n > 0:
			return r.fail(fmt.Errorf("the answer holds more bytes than its Content-Length: %w", errMismatch))
		case err == io.EOF:
			return nil
		case err != nil && classify(err) == permanent:
			return r.fail(fmt.Errorf("the object's bytes do not match the checksum the endpoint stored with it (%v): %w", err, storage.ErrCorrupt))
		case err != nil:
			return r.fail(err)
		}
	}
}

// resume reopens the object from r.off.
func (r *rangeReader) resume() error {
	rng := &storage.Range{Offset: r.off, Length: r.end - r.off}
	var next *rangeReader
	err := r.store.retrying(r.ctx, func(ctx context.Context) error {
		var err error
		next, err = r.store.getRange(ctx, r.key, rng, r.etag)
		return err
	})
	if err != nil {
		return r.fail(err)
	}
	r.body, r.wholeBody = next.body, next.wholeBody
	return nil
}

func (r *rangeReader) fail(err error) error {
	if r.store == nil {
		return err
	}
	var resp minio.ErrorResponse
	if errors.As(err, &resp) && resp.StatusCode == http.StatusPreconditionFailed {
		return fmt.Errorf("%s: %s: the object changed while it was read: read it again", r.store.loc, r.op)
	}
	return r.store.wrap(r.op+fmt.Sprintf(" at byte %d", r.off), err)
}

// Close releases the answer's connection.
func (r *rangeReader) Close() error {
	if r.body == nil {
		return nil
	}
	err := r.body.Close()
	r.body = nil
	return err
}

// Stat returns the object's size.
func (s *Store) Stat(ctx context.Context, kind storage.Kind, name string) (int64, error) {
	if err := storage.CheckArgs(kind, name); err != nil {
		return 0, fmt.Errorf("stat: %w", err)
	}
	var size int64
	err := s.retrying(ctx, func(ctx context.Context) error {
		info, err := s.client.StatObject(ctx, s.loc.bucket, s.key(kind, name), minio.StatObjectOptions{})
		size = info.Size
		return err
	})
	return size, s.wrap("looking up "+string(kind)+" "+name, err)
}

// List calls fn for every object of kind, as S3 pages them (1000 keys a
// page). A listing that fails is taken up again after the last key
// seen, so no object is reported twice.
func (s *Store) List(ctx context.Context, kind storage.Kind, fn func(name string, size int64) error) error {
	if !storage.ValidKind(kind) {
		return fmt.Errorf("list: unknown object kind %q: %w", kind, storage.ErrInvalidName)
	}
	prefix := s.loc.key(kindDirs[kind]) + "/"
	var after string
	var fnErr error
	err := s.retrying(ctx, func(ctx context.Context) error {
		opts := minio.ListObjectsOptions{Prefix: prefix, Recursive: true, StartAfter: after}
		for obj := range s.client.ListObjectsIter(ctx, s.loc.bucket, opts) {
			if obj.Err != nil {
				return obj.Err
			}
			after = obj.Key
			name := obj.Key[strings.LastIndexByte(obj.Key, '/')+1:]
			if !storage.ValidName(name) || obj.Key != s.key(kind, name) {
				continue // not coffer's (a stray upload, a folder marker)
			}
			if fnErr = fn(name, obj.Size); fnErr != nil {
				return nil
			}
		}
		return ctx.Err()
	})
	if fnErr != nil {
		return fnErr
	}
	return s.wrap("listing "+string(kind), err)
}

// Delete removes an object. S3 answers a DELETE of a missing key with
// success, so Delete looks first: the contract wants ErrNotFound.
// In a repository with Object Lock on a versioned bucket, an object of
// a retained kind is deleted version by version (lock.go,
// deleteVersions), so that a retention refuses the delete instead of a
// delete marker hiding what stays stored.
func (s *Store) Delete(ctx context.Context, kind storage.Kind, name string) error {
	if err := storage.CheckArgs(kind, name); err != nil {
		return fmt.Errorf("delete: %w", err)
	}
	op := "deleting " + string(kind) + " " + name
	key := s.key(kind, name)
	if s.lockDays() > 0 && retainedKinds[kind] {
		versioned, err := s.bucketVersioned(ctx)
		if err != nil {
			return s.wrap(op+": reading the bucket's versioning", err)
		}
		if versioned {
			return s.deleteVersions(ctx, op, key)
		}
	}
	err := s.retrying(ctx, func(ctx context.Context) error {
		_, err := s.client.StatObject(ctx, s.loc.bucket, key, minio.StatObjectOptions{})
		return err
	})
	if err != nil {
		return s.wrap(op, err)
	}
	err = s.retrying(ctx, func(ctx context.Context) error {
		return s.client.RemoveObject(ctx, s.loc.bucket, key, minio.RemoveObjectOptions{})
	})
	if err != nil && s.lockDays() > 0 && isRefused(err) {
		return s.retainedError(ctx, op, key, nil, err)
	}
	return s.wrap(op, err)
}

// Close releases idle connections.
func (s *Store) Close() error {
	if t, ok := s.transport.(interface{ CloseIdleConnections() }); ok {
		t.CloseIdleConnections()
	}
	return nil
}
