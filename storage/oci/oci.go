package oci

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2/errdef"
	"oras.land/oras-go/v2/registry"
	"oras.land/oras-go/v2/registry/remote"
	"oras.land/oras-go/v2/registry/remote/auth"
	"oras.land/oras-go/v2/registry/remote/errcode"

	"github.com/cofferhq/coffer/storage"
	"github.com/cofferhq/coffer/storage/internal/retry"
)

// Store is a coffer repository in an OCI registry. Its methods are safe
// for concurrent use.
type Store struct {
	loc    location
	opt    Options
	repo   *remote.Repository
	client *auth.Client
	creds  credentialSource
	plain  bool
	writer string
	cache  *diskCache

	capsMu sync.Mutex
	caps   *capabilities

	// session names the refs tags this Store writes (refs.go); seq
	// counts them, under flushMu.
	session string
	seq     int

	// Objects pushed but not yet referenced from a refs tag (packs and
	// index objects wait for a batch; other kinds are referenced before
	// Put returns), and objects deleted but still in the refs.
	pendingMu    sync.Mutex
	pending      []ocispec.Descriptor
	pendingSince time.Time
	removing     map[layerKey]ocispec.Descriptor
	refTimer     *time.Timer // references pending objects in time
	closed       bool
	held         map[digest.Digest]heldBlob // the bytes of pending objects (held.go)
	heldBytes    int64
	temps        sync.Map // *os.File: the files CreateTemp made that PutFile has not taken yet

	flushMu sync.Mutex // one flush at a time

	viewMu sync.Mutex // every ref, as last read
	view   *refView
	viewAt time.Time
	// settle is how long a listing waits for listed tags that cannot be
	// read to be retired (refsSettle; tests shorten it).
	settle time.Duration

	refusedOnce   sync.Once // the notice that DELETE is refused
	immutableOnce sync.Once // the notice that tags cannot be moved
	// tagDeleteRefused is set once the registry refused to delete a tag,
	// or the credential may not; the next process tries again
	// (capabilities.TagDelete is for info).
	tagDeleteRefused atomic.Bool

	budget retry.Budget // since when operations have failed in a row, and the notices of retries
	// backoff is the wait before a retry (tests shorten it).
	backoff func(attempt int) time.Duration

	emptyMu   sync.Mutex // the empty config blob every manifest names
	emptyDone bool

	fullMu   sync.Mutex // the last whole blob read for a registry that ignores Range
	fullDgst digest.Digest
	fullData []byte
}

var _ storage.Store = (*Store)(nil)

// Flush limits for packs and index objects: a batch is referenced once it
// holds flushBatch objects, or by a timer DefaultReferenceWithin after its
// first object was stored, whichever comes first. Registries with online
// garbage collection delete blobs no tag reaches after a grace time, so
// the timer must not wait for anything else (uploads in flight, the next
// Put).
const (
	flushBatch = 64
	// DefaultReferenceWithin is Options.ReferenceWithin's default.
	DefaultReferenceWithin = 30 * time.Second
)

// Opener returns a storage.Opener for oci:// locations with opt.
func Opener(opt Options) storage.Opener {
	return func(ctx context.Context, location string) (storage.Store, error) {
		return Open(ctx, location, opt)
	}
}

// Open connects to the registry of an oci:// location. It decides between
// HTTPS and plain HTTP (see detectScheme) but does not check that the
// repository exists; Store.Open does.
func Open(ctx context.Context, loc string, opt Options) (*Store, error) {
	l, err := parseLocation(loc)
	if err != nil {
		return nil, err
	}
	if opt.Writer == "" {
		opt.Writer = defaultWriter()
	}
	if opt.ReferenceWithin <= 0 {
		opt.ReferenceWithin = DefaultReferenceWithin
	}
	if opt.RetryFor <= 0 {
		opt.RetryFor = DefaultRetryFor
	}
	if opt.UploadChunk < 0 || (opt.UploadChunk > 0 && opt.UploadChunk < MinUploadChunk) {
		return nil, fmt.Errorf("upload chunk of %d bytes: give at least %d (64 KiB)", opt.UploadChunk, MinUploadChunk)
	}
	if !validWriter(opt.Writer) {
		return nil, fmt.Errorf("writer identity %q: use 1-64 characters from a-z, 0-9 and -", opt.Writer)
	}
	base, err := newTransport(opt)
	if err != nil {
		return nil, err
	}
	if opt.LimitUpload > 0 || opt.LimitDownload > 0 {
		base = limitTransport{base, newLimiter(opt.LimitUpload), newLimiter(opt.LimitDownload)}
	}
	creds, err := newCredentials(l.host, opt)
	if err != nil {
		return nil, err
	}
	client := newAuthClient(l.host, base, creds)
	s := &Store{loc: l, opt: opt, client: client, creds: creds,
		writer: opt.Writer, cache: newDiskCache(opt.CacheDir, l.String()),
		session: newSessionID(), removing: make(map[layerKey]ocispec.Descriptor), backoff: retry.Backoff, settle: refsSettle}
	// A registry restarting as a cron job starts is waited for, as it is
	// later on.
	err = s.retrying(ctx, func(ctx context.Context) error {
		var err error
		s.plain, err = detectScheme(ctx, l.host, base, l.insecure || opt.InsecureHTTP)
		return err
	})
	if err != nil {
		return nil, connectError(l.host, err)
	}
	s.repo = &remote.Repository{
		Client:          client,
		Reference:       registry.Reference{Registry: l.host, Repository: l.repo},
		PlainHTTP:       s.plain,
		SkipReferrersGC: true,
		// Pages of 1000 are what ECR allows; others cap lower and say so
		// with their Link header, which oras-go follows.
		TagListPageSize: 1000,
	}
	return s, nil
}

// Concurrency is how many packs to upload at once: enough to keep a
// registry busy while coffer prepares the next ones (measured against
// oras push, bench/oci-push.sh).
func (s *Store) Concurrency() int { return 4 }

// Location returns the oci:// location, without credentials.
func (s *Store) Location() string { return s.loc.String() }

func (s *Store) scheme() string {
	if s.plain {
		return "http"
	}
	return "https"
}

// Create writes the config into an empty OCI repository.
func (s *Store) Create(ctx context.Context, config []byte) error {
	existing, err := s.listTags(ctx)
	if err != nil && !isNotFound(err) {
		return s.wrap("listing tags", err)
	}
	if len(existing) > 0 {
		return fmt.Errorf("%s is not empty (it has %d tags, e.g. %q): choose a new repository: %w",
			s.Location(), len(existing), existing[0], storage.ErrExists)
	}
	desc := ocispec.Descriptor{MediaType: artifactConfig, Digest: digest.FromBytes(config), Size: int64(len(config))}
	if err := s.pushBlob(ctx, desc, bytes.NewReader(config)); err != nil {
		return err
	}
	if err := s.pushTagged(ctx, tagConfig, artifactConfig, desc, map[string]string{annotationObject: "config"}); err != nil {
		return err
	}
	s.probe(ctx, desc, true)
	return nil
}

// Open returns the config written by Create.
func (s *Store) Open(ctx context.Context) ([]byte, error) {
	m, _, err := s.fetchTagged(ctx, tagConfig)
	if err != nil {
		if !errors.Is(err, storage.ErrNotFound) {
			return nil, err
		}
		tags, lerr := s.listTags(ctx)
		if isNotFound(lerr) {
			return nil, fmt.Errorf("repository %s does not exist on %s: %w", s.loc.repo, s.loc.host, storage.ErrNotFound)
		}
		if lerr == nil && len(tags) > 0 {
			// Create refuses a repository with tags, so it is no advice.
			return nil, storage.NotCreatable(fmt.Errorf("%s is not a coffer repository (no %s tag; it holds other tags, e.g. %q): give a repository path of coffer's own: %w",
				s.Location(), tagConfig, tags[0], storage.ErrNotFound))
		}
		return nil, fmt.Errorf("%s is not a coffer repository (no %s tag): %w", s.Location(), tagConfig, storage.ErrNotFound)
	}
	if len(m.Layers) != 1 {
		return nil, fmt.Errorf("%s: the %s manifest has %d layers, want 1", s.Location(), tagConfig, len(m.Layers))
	}
	rc, err := s.getBlob(ctx, m.Layers[0].Digest, nil)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		return nil, err
	}
	s.probe(ctx, m.Layers[0], false)
	return b, nil
}

// repositoryExists tells a missing repository from one without coffer's
// config: only the first answers a tag listing with 404.
func (s *Store) repositoryExists(ctx context.Context) bool {
	_, err := s.listTags(ctx)
	return err == nil || !isNotFound(err)
}

// Put stores an object. Packs, index objects, snapshots and keys must be
// named by the SHA-256 of their bytes (as coffer names them): they are
// stored as blobs under that digest, which the registry verifies.
// The body is read again for every attempt of its upload; small bodies
// are copied to be held until referenced (held.go), since the caller may
// reuse their bytes once Put returns.
func (s *Store) Put(ctx context.Context, kind storage.Kind, name string, body storage.Body) error {
	if err := storage.CheckArgs(kind, name); err != nil {
		return err
	}
	return s.put(ctx, kind, name, body, func() (heldBlob, bool) { return heldCopy(body) })
}

// put uploads body as kind/name and, for objects that refs tags
// reference, adds it to what the next refs tag references, holding the
// bytes hold returns until then (held.go).
func (s *Store) put(ctx context.Context, kind storage.Kind, name string, body storage.Body, hold func() (heldBlob, bool)) error {
	up := uploadBody{io.NewSectionReader(callerBody{body.Reader()}, 0, body.Size())}
	desc := ocispec.Descriptor{MediaType: layerMediaType[kind], Size: body.Size()}
	if kind == storage.KindLock {
		h := sha256.New()
		if _, err := io.Copy(h, up); err != nil {
			return fmt.Errorf("%s %s: %w", kind, name, err)
		}
		desc.Digest = digest.NewDigest(digest.SHA256, h)
	} else {
		// Named by their SHA-256: the registry recomputes it and refuses
		// the upload (DIGEST_INVALID, so ErrInvalidName) if they are not.
		desc.Digest = digest.NewDigestFromEncoded(digest.SHA256, name)
		if desc.Digest.Validate() != nil {
			return fmt.Errorf("%s %q: the OCI store keeps objects under the SHA-256 of their bytes: %w", kind, name, storage.ErrInvalidName)
		}
	}
	if err := s.pushBlob(ctx, desc, up); err != nil {
		return err // it names the blob; the caller names the object
	}
	return s.reference(ctx, kind, name, desc, hold)
}

// reference makes a blob now in the repository the object kind/name: a
// tag of its own for keys and locks, the next refs tag for the others,
// holding the bytes hold returns until then (held.go).
func (s *Store) reference(ctx context.Context, kind storage.Kind, name string, desc ocispec.Descriptor, hold func() (heldBlob, bool)) error {
	if !referencedKind(kind) {
		s.cache.dropTombstone(tagOf(kind, name)) // a name used again
		ann := map[string]string{annotationObject: string(kind), annotationName: name}
		art := artifactKey
		if kind == storage.KindLock {
			art = artifactLock
		}
		return s.pushTagged(ctx, tagOf(kind, name), art, desc, ann)
	}
	s.pendingMu.Lock()
	if len(s.pending) == 0 {
		s.pendingSince = time.Now()
	}
	// Putting an object deleted since the last flush keeps it.
	delete(s.removing, keyOf(desc))
	s.pending = append(s.pending, desc)
	if h, ok := hold(); ok {
		s.hold(desc.Digest, h)
	}
	s.armReferenceTimer()
	// Packs and index objects wait for a batch: a backup's last batch
	// goes with its snapshot, so one backup usually writes one refs tag.
	batched := kind == storage.KindPack || kind == storage.KindIndex
	due := !batched || len(s.pending) >= flushBatch || s.heldBytes > maxHeldBytes
	s.pendingMu.Unlock()
	if due {
		return s.flush(ctx, false)
	}
	return nil
}

// armReferenceTimer makes sure pending objects get referenced within
// ReferenceWithin of the oldest one's upload. Called with pendingMu held.
func (s *Store) armReferenceTimer() {
	if s.refTimer != nil || s.closed {
		return
	}
	wait := s.opt.ReferenceWithin - time.Since(s.pendingSince)
	s.refTimer = time.AfterFunc(max(wait, 0), s.referenceByTimer)
}

// referenceByTimer flushes pending objects (deletes stay for Flush). A
// failure leaves them pending: the timer tries again, as do the next
// batch and Close.
func (s *Store) referenceByTimer() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	err := s.flush(ctx, false)
	s.pendingMu.Lock()
	defer s.pendingMu.Unlock()
	s.refTimer = nil
	if err != nil && s.opt.Logf != nil && !s.closed {
		s.opt.Logf("registry %s: referencing uploaded packs: %v; trying again", s.loc.host, err)
	}
	if len(s.pending) > 0 {
		if err != nil {
			s.pendingSince = time.Now() // a retry after a full window, not at once
		}
		s.armReferenceTimer()
	}
}

// callerBody reads the body a caller passed to Put. A failed read is the
// caller's, not the network's: its error is a bodyError, which the retry
// policy does not retry, and a body that ends before its size fails with
// one too, where net/http would only say that the lengths differ.
type callerBody struct{ r *io.SectionReader }

func (b callerBody) ReadAt(p []byte, off int64) (int, error) {
	n, err := b.r.ReadAt(p, off)
	switch {
	case err == nil:
		return n, nil
	case err == io.EOF && off+int64(n) < b.r.Size():
		return n, bodyError{fmt.Errorf("the body to store ended after %d of its %d bytes: %w", off+int64(n), b.r.Size(), io.ErrUnexpectedEOF)}
	case err == io.EOF:
		return n, err
	default:
		return n, bodyError{fmt.Errorf("reading the body to store: %w", err)}
	}
}

// bodyError is a failure to read the body of a Put.
type bodyError struct{ err error }

func (e bodyError) Error() string { return e.err.Error() }
func (e bodyError) Unwrap() error { return e.err }

// ensureEmptyConfig uploads the empty JSON blob that every artifact
// manifest names as its config; registries refuse a manifest whose blobs
// they do not have.
func (s *Store) ensureEmptyConfig(ctx context.Context) error {
	s.emptyMu.Lock()
	defer s.emptyMu.Unlock()
	if s.emptyDone {
		return nil
	}
	// Only success is remembered: a failure is tried again next time.
	err := s.pushBlob(ctx, emptyConfig, bytes.NewReader(emptyConfig.Data))
	s.emptyDone = err == nil
	return err
}

// pushTagged pushes a one-layer artifact manifest under tag.
func (s *Store) pushTagged(ctx context.Context, tag, artifactType string, layer ocispec.Descriptor, ann map[string]string) error {
	desc, b, err := newManifest(artifactType, []ocispec.Descriptor{layer}, ann)
	if err != nil {
		return err
	}
	if err := s.pushManifest(ctx, desc, b, tag); err != nil {
		return s.wrap("pushing manifest "+tag, err)
	}
	return nil
}

// fetchTagged fetches the manifest a tag points at.
func (s *Store) fetchTagged(ctx context.Context, tag string) (*ocispec.Manifest, ocispec.Descriptor, error) {
	desc, b, err := s.fetchManifest(ctx, tag)
	if err != nil {
		return nil, desc, s.wrap("fetching "+tag, err)
	}
	m, err := decodeManifest(b)
	if err != nil {
		return nil, desc, fmt.Errorf("%s on %s: %w", tag, s.loc.host, err)
	}
	return m, desc, nil
}

// errDigestMismatch reports manifest bytes that do not match their digest.
var errDigestMismatch = errors.New("manifest content does not match its digest")

// readVerified reads a manifest body and checks its digest.
func readVerified(r io.Reader, desc ocispec.Descriptor) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, 4<<20+1))
	if err != nil {
		return nil, err
	}
	if digest.FromBytes(b) != desc.Digest {
		return nil, fmt.Errorf("%w %s", errDigestMismatch, desc.Digest)
	}
	return b, nil
}

// Get returns an object's bytes, or a range of them.
func (s *Store) Get(ctx context.Context, kind storage.Kind, name string, rng *storage.Range) (io.ReadCloser, error) {
	if err := storage.CheckArgs(kind, name); err != nil {
		return nil, err
	}
	if referencedKind(kind) {
		desc, err := s.referenced(ctx, kind, name)
		if err != nil {
			return nil, err
		}
		return s.getBlob(ctx, desc.Digest, rng)
	}
	m, err := s.taggedObject(ctx, kind, name)
	if err != nil {
		return nil, err
	}
	return s.getBlob(ctx, m.Layers[0].Digest, rng)
}

// taggedObject returns the manifest of a key or lock, or ErrNotFound if
// it is missing or a tombstone.
func (s *Store) taggedObject(ctx context.Context, kind storage.Kind, name string) (*ocispec.Manifest, error) {
	m, _, err := s.fetchTagged(ctx, tagOf(kind, name))
	if err != nil {
		return nil, err
	}
	if m.ArtifactType == artifactTombstone {
		return nil, fmt.Errorf("%s %s was deleted: %w", kind, name, errTombstone)
	}
	if len(m.Layers) != 1 {
		return nil, fmt.Errorf("%s %s: manifest has %d layers, want 1", kind, name, len(m.Layers))
	}
	return m, nil
}

// errTombstone marks a tag moved to a tombstone: the object is gone.
var errTombstone = fmt.Errorf("deleted (tombstone): %w", storage.ErrNotFound)

// Stat returns an object's size.
func (s *Store) Stat(ctx context.Context, kind storage.Kind, name string) (int64, error) {
	if err := storage.CheckArgs(kind, name); err != nil {
		return 0, err
	}
	if !referencedKind(kind) {
		m, err := s.taggedObject(ctx, kind, name)
		if err != nil {
			return 0, err
		}
		return m.Layers[0].Size, nil
	}
	desc, err := s.referenced(ctx, kind, name)
	if err != nil {
		return 0, err
	}
	return desc.Size, nil
}

// referenced returns the layer that makes name an object of kind: one a
// refs tag (or this store's pending batch) lists, and this store has not
// deleted. A blob the registry merely still holds (deleted, or stored as
// another kind) is not one. The refs are usually in memory already, so a
// read stays a single blob GET; a miss reads them again once, for objects
// other writers added since.
func (s *Store) referenced(ctx context.Context, kind storage.Kind, name string) (ocispec.Descriptor, error) {
	if len(name) == 64 {
		key := layerKey{layerMediaType[kind], digest.NewDigestFromEncoded(digest.SHA256, name)}
		s.pendingMu.Lock()
		_, removed := s.removing[key]
		i := slices.IndexFunc(s.pending, func(l ocispec.Descriptor) bool { return keyOf(l) == key })
		var p ocispec.Descriptor
		if i >= 0 {
			p = s.pending[i]
		}
		s.pendingMu.Unlock()
		switch {
		case removed:
		case i >= 0:
			return p, nil
		default:
			d, ok, err := s.inView(ctx, key)
			if err != nil {
				return ocispec.Descriptor{}, err
			}
			if ok {
				return d, nil
			}
		}
	}
	return ocispec.Descriptor{}, fmt.Errorf("%s %s: %w", kind, name, storage.ErrNotFound)
}

// List calls fn for every object of a kind.
func (s *Store) List(ctx context.Context, kind storage.Kind, fn func(string, int64) error) error {
	if !storage.ValidKind(kind) {
		return fmt.Errorf("unknown object kind %q: %w", kind, storage.ErrInvalidName)
	}
	if !referencedKind(kind) {
		return s.listTagged(ctx, kind, fn)
	}
	v, err := s.loadView(ctx)
	if err != nil {
		return err
	}
	// Read-after-write: objects waiting for their batch are stored
	// already; objects deleted since the last flush are gone.
	s.pendingMu.Lock()
	pending := slices.Clone(s.pending)
	removing := maps.Clone(s.removing)
	s.pendingMu.Unlock()
	mediaType := layerMediaType[kind]
	seen := map[digest.Digest]bool{}
	emit := func(l ocispec.Descriptor) error {
		if l.MediaType != mediaType || seen[l.Digest] {
			return nil
		}
		if _, gone := removing[keyOf(l)]; gone {
			return nil
		}
		seen[l.Digest] = true
		return fn(l.Digest.Encoded(), l.Size)
	}
	for _, l := range v.objects {
		if err := emit(l); err != nil {
			return err
		}
	}
	for _, l := range pending {
		if err := emit(l); err != nil {
			return err
		}
	}
	return nil
}

// listTagged lists keys or locks from their tags.
func (s *Store) listTagged(ctx context.Context, kind storage.Kind, fn func(string, int64) error) error {
	prefix := tagPrefix(kind)
	var names []string
	tags, err := s.listTags(ctx)
	if err != nil && !isNotFound(err) {
		return s.wrap("listing tags", err)
	}
	for _, t := range tags {
		// A lock's tombstone stays one: lock names are random, and this
		// store forgets the mark when it writes the name again.
		if kind == storage.KindLock && s.cache.isTombstone(t) {
			continue
		}
		name, ok := strings.CutPrefix(t, prefix)
		switch {
		case ok && storage.ValidName(name):
			names = append(names, name)
		case ok && strings.HasPrefix(name, "_"):
			// A name too long for a tag: its manifest says what it is.
			m, _, err := s.fetchTagged(ctx, t)
			if err != nil && !errors.Is(err, storage.ErrNotFound) {
				return err
			}
			if n := m.Annotations[annotationName]; err == nil && storage.ValidName(n) && tagOf(kind, n) == t {
				names = append(names, n)
			}
		}
	}
	slices.Sort(names)
	for _, name := range slices.Compact(names) {
		m, err := s.taggedObject(ctx, kind, name)
		if errors.Is(err, errTombstone) && kind == storage.KindLock {
			s.cache.putTombstone(tagOf(kind, name))
		}
		if errors.Is(err, storage.ErrNotFound) {
			continue // deleted, or gone since the listing
		}
		if err != nil {
			return err
		}
		if err := fn(name, m.Layers[0].Size); err != nil {
			return err
		}
	}
	return nil
}

// Delete removes an object: a key or lock by deleting its manifest (or,
// where the registry refuses, re-tagging it to a tombstone); a pack,
// index or snapshot by dropping it from the refs that reference it, at
// the next flush (refs.go), after which the registry's garbage collection
// reclaims it. Deleting packs, index objects or snapshots rewrites refs,
// which two processes must not do at the same time: repo's exclusive lock
// sees to that.
func (s *Store) Delete(ctx context.Context, kind storage.Kind, name string) error {
	if err := storage.CheckArgs(kind, name); err != nil {
		return err
	}
	if !referencedKind(kind) {
		return s.deleteTagged(ctx, kind, name)
	}
	return s.unreference(ctx, kind, name)
}

func (s *Store) deleteTagged(ctx context.Context, kind storage.Kind, name string) error {
	tag := tagOf(kind, name)
	m, desc, err := s.fetchTagged(ctx, tag)
	if err != nil {
		return err
	}
	if m.ArtifactType == artifactTombstone {
		return fmt.Errorf("%s %s was already deleted: %w", kind, name, storage.ErrNotFound)
	}
	// Where the registry deletes tags, the tag goes first, in one step:
	// a delete by digest is two in Distribution (the manifest, then the
	// tags naming it), and a process killed between them leaves the tag
	// listed without a manifest, which every lock listing then requests
	// and `unlock` cannot remove.
	if c := s.capabilities(); c != nil && c.TagDelete == "allowed" && !s.tagDeleteRefused.Load() {
		switch err := s.deleteTag(ctx, tag); {
		case err == nil:
			s.recordDelete(true)
			_ = s.deleteManifest(ctx, desc) // untagged now: the registry's garbage otherwise
			return nil
		case isNotFound(err):
			return fmt.Errorf("%s %s: %w", kind, name, storage.ErrNotFound) // deleted meanwhile
		case isTagDeleteRefused(err):
			s.tagDeleteRefused.Store(true)
		case isRefused(err):
			// This credential may not delete (a backup's push-only
			// one): the tombstone below.
		default:
			return s.wrap("deleting "+tag, err)
		}
	}
	err = s.deleteManifest(ctx, desc)
	if err == nil {
		s.recordDelete(true)
		return nil
	}
	if !isRefused(err) {
		return s.wrap("deleting "+tag, err)
	}
	s.recordDelete(false)
	// The registry refuses deletes (GHCR, Docker Hub): the tag moves to a
	// tombstone, which every reader treats as absent.
	tomb, b, err := newManifest(artifactTombstone, nil, map[string]string{annotationObject: "deleted", annotationName: name})
	if err != nil {
		return err
	}
	if err := s.pushManifest(ctx, tomb, b, tag); err != nil {
		return s.wrap("marking "+tag+" deleted", err)
	}
	// A lock is coffer's own bookkeeping, removed by every backup: its
	// tombstone is not news. A key is the user's.
	if s.opt.Logf != nil && kind == storage.KindKey {
		s.opt.Logf("registry %s refuses DELETE: %s now points at a tombstone; to reclaim its space, delete the tag with the registry's own UI or API", s.loc.host, tag)
	}
	if kind == storage.KindLock {
		s.cache.putTombstone(tag)
	}
	return nil
}

// noteRefused tells the user, once per store, that the registry keeps
// the bytes of what coffer dropped until its own garbage collection runs.
func (s *Store) noteRefused() {
	s.refusedOnce.Do(func() {
		if s.opt.Logf != nil {
			s.opt.Logf("registry %s refuses DELETE: dropped references now point at tombstones; the space comes back when the registry's garbage collection runs (see README, \"Registries and space\")", s.loc.host)
		}
	})
}

// Close references every pending object. Deletes not flushed are
// dropped (see Flush).
func (s *Store) Close() error {
	s.pendingMu.Lock()
	s.closed = true
	if s.refTimer != nil {
		s.refTimer.Stop()
		s.refTimer = nil
	}
	s.pendingMu.Unlock()
	err := s.flush(context.Background(), false)
	s.releaseAllHeld()
	return err
}

// Describe reports the registry, the repository and the capabilities the
// probe found.
func (s *Store) Describe(ctx context.Context) map[string]string {
	d := map[string]string{
		"type":        "OCI registry",
		"registry":    s.loc.host,
		"repository":  s.loc.repo,
		"protocol":    s.scheme(),
		"writer":      s.writer,
		"credentials": s.creds.describe(ctx, s.loc.host),
	}
	if c := s.capabilities(); c != nil {
		maps.Copy(d, c.describe())
	}
	return d
}

// wrap turns registry errors into messages that name the registry and
// say what to do, wrapping storage sentinels where they apply.
func (s *Store) wrap(op string, err error) error {
	return wrapError(s.loc, s.creds.desc, op, err)
}

func shortDigest(d digest.Digest) string {
	e := d.Encoded()
	return e[:min(8, len(e))]
}

// isNotFound reports a 404 of any kind.
func isNotFound(err error) bool {
	var re *registryError
	var resp *errcode.ErrorResponse
	return errors.Is(err, errdef.ErrNotFound) || errors.Is(err, storage.ErrNotFound) ||
		(errors.As(err, &re) && re.status == http.StatusNotFound) ||
		(errors.As(err, &resp) && resp.StatusCode == http.StatusNotFound)
}
