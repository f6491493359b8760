package oci

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"
	"oras.land/oras-go/v2/registry/remote/errcode"

	"github.com/cofferhq/coffer/storage"
)

// An object uploaded but not yet referenced by a refs tag is at the
// registry's mercy: online garbage collection (zot, Harbor) deletes blobs
// no tag reaches once their grace time is over, and a registry restored
// from an older copy of its storage has lost them. So the Store holds the
// bytes of what it uploaded until a tag references it, and when a refs
// manifest is refused for a missing layer it uploads the layers that are
// gone again and pushes the manifest once more.
//
// Packs arrive as files (the Store is a storage.FilePutter), which are
// held open, unlinked, at no cost but their disk space; smaller objects
// (index objects, snapshots) are copied. The bytes held are bounded: past
// maxHeldBytes, what is pending is referenced at once rather than after
// a batch or -reference-within.

const (
	// maxHeldCopy is the largest object given to Put whose bytes are
	// copied to be held; larger ones (packs put without PutFile) are not.
	maxHeldCopy = 4 << 20
	// maxHeldBytes bounds the bytes held for pending objects.
	maxHeldBytes = 512 << 20
	// reuploadRounds bounds how often one refs manifest is pushed again
	// after its missing layers were uploaded again.
	reuploadRounds = 3
)

// heldBlob is the bytes of an uploaded object kept until it is referenced.
type heldBlob struct {
	data io.ReaderAt
	size int64
	file *os.File // closed on release, when data is a file
}

func (h heldBlob) release() {
	if h.file != nil {
		h.file.Close()
	}
}

// hold keeps h as the bytes of d until release. Called with pendingMu held.
func (s *Store) hold(d digest.Digest, h heldBlob) {
	if s.held == nil {
		s.held = make(map[digest.Digest]heldBlob)
	}
	if _, ok := s.held[d]; ok {
		h.release() // the same bytes, held already
		return
	}
	s.held[d] = h
	s.heldBytes += h.size
}

// releaseHeld drops the bytes of the objects in ds that are no longer
// pending. Called with pendingMu held.
func (s *Store) releaseHeld(ds []ocispec.Descriptor) {
	still := make(map[digest.Digest]bool, len(s.pending))
	for _, p := range s.pending {
		still[p.Digest] = true
	}
	for _, d := range ds {
		if h, ok := s.held[d.Digest]; ok && !still[d.Digest] {
			h.release()
			s.heldBytes -= h.size
			delete(s.held, d.Digest)
		}
	}
}

// releaseAllHeld drops every held object, when the Store closes.
func (s *Store) releaseAllHeld() {
	s.pendingMu.Lock()
	defer s.pendingMu.Unlock()
	for _, h := range s.held {
		h.release()
	}
	s.held, s.heldBytes = nil, 0
}

// heldCopy returns a copy of body's bytes to hold, or false when the
// object is too large to copy. A copy, because Put's caller may change
// the bytes once Put returns.
func heldCopy(body storage.Body) (heldBlob, bool) {
	size := body.Size()
	if size > maxHeldCopy {
		return heldBlob{}, false
	}
	b := make([]byte, size)
	if _, err := body.Reader().ReadAt(b, 0); err != nil && !(errors.Is(err, io.EOF) && size == 0) {
		return heldBlob{}, false
	}
	return heldBlob{data: bytes.NewReader(b), size: size}, true
}

// CreateTemp returns a new, empty, already unlinked file in the temporary
// directory (Options.TempDir) for a pack: PutFile uploads it and holds it
// until a refs tag references it. Unlinked at once, it is freed however
// the process ends.
func (s *Store) CreateTemp() (*os.File, error) {
	dir := s.opt.TempDir
	if dir == "" {
		dir = os.TempDir()
	}
	f, err := os.CreateTemp(dir, "coffer-pack-*")
	if err != nil {
		return nil, err
	}
	if err := os.Remove(f.Name()); err != nil {
		f.Close()
		return nil, err
	}
	s.temps.Store(f, true)
	return f, nil
}

// PutFile stores f, which CreateTemp returned and which holds exactly
// size bytes, as kind/name, like Put. It takes f: the Store closes it
// once the object is referenced (or at once when the upload fails).
func (s *Store) PutFile(ctx context.Context, kind storage.Kind, name string, f *os.File, size int64) error {
	if _, ours := s.temps.LoadAndDelete(f); !ours {
		f.Close() // not ours to remove
		return fmt.Errorf("%s %s: file %s was not made by this store's CreateTemp", kind, name, f.Name())
	}
	held := false
	defer func() {
		if !held {
			f.Close()
		}
	}()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("%s %s: %w", kind, name, err)
	}
	if fi.Size() != size {
		return fmt.Errorf("%s %s: the file holds %d bytes, not %d", kind, name, fi.Size(), size)
	}
	err = s.put(ctx, kind, name, storage.NewBody(f, size), func() (heldBlob, bool) {
		held = true
		return heldBlob{data: f, size: size, file: f}, true
	})
	return err
}

var _ storage.FilePutter = (*Store)(nil)

// missingLayer reports whether err is a manifest push refused in a way a
// layer the registry lost explains: Distribution says MANIFEST_BLOB_UNKNOWN,
// zot MANIFEST_INVALID, others only 400 or 404.
func missingLayer(err error) bool {
	var resp *errcode.ErrorResponse
	if !errors.As(err, &resp) {
		return false
	}
	switch resp.StatusCode {
	case http.StatusBadRequest, http.StatusNotFound:
		return true
	}
	for _, e := range resp.Errors {
		if strings.Contains(e.Code, "BLOB_UNKNOWN") {
			return true
		}
	}
	return false
}

// pushRefRecovering references layers from a new refs tag. When the
// registry refuses it for a missing layer, the packs it still has are
// referenced at once from a tag of their own, before the garbage
// collection that took the others reaches them too; the layers it lost
// are uploaded again from the bytes held for them; and what is left
// (those, and the index objects and snapshots, which name packs and so
// are never referenced before them) is pushed again.
func (s *Store) pushRefRecovering(ctx context.Context, layers []ocispec.Descriptor) ([]*ref, error) {
	var refs []*ref
	for round := 0; ; round++ {
		r, err := s.pushRef(ctx, layers)
		if err == nil {
			return append(refs, r), nil
		}
		if !missingLayer(err) || round == reuploadRounds {
			return refs, err
		}
		missing, merr := s.missingLayers(ctx, layers)
		if merr != nil {
			return refs, merr
		}
		if len(missing) == 0 {
			return refs, err // every layer is there: something else is wrong
		}
		var early, rest []ocispec.Descriptor
		for _, l := range layers {
			if l.MediaType == layerMediaType[storage.KindPack] && !missing[l.Digest] {
				early = append(early, l)
			} else {
				rest = append(rest, l)
			}
		}
		if len(early) > 0 {
			r, err := s.pushRef(ctx, early)
			if err != nil && !missingLayer(err) {
				return refs, err
			}
			if err == nil {
				refs, layers = append(refs, r), rest
			}
		}
		if err := s.reupload(ctx, layers, missing); err != nil {
			return refs, err
		}
		if s.opt.Logf != nil {
			s.opt.Logf("registry %s: %d uploaded objects were gone before a tag referenced them (deleted by its garbage collection?); uploaded them again", s.loc.host, len(missing))
		}
	}
}

// errLayersGone is layers a refs manifest lists that the registry no
// longer has and whose bytes this process does not hold.
type errLayersGone struct {
	n     int
	first digest.Digest
}

func (e errLayersGone) Error() string {
	return fmt.Sprintf("%d objects to be referenced (%s first) are gone from the registry and no longer at hand to upload again: "+
		"its garbage collection deleted them before a tag reached them; give unreferenced uploads more time "+
		"(zot gcDelay, Harbor's GC time window) or set a shorter -reference-within, run the backup again, and see what coffer check says",
		e.n, shortDigest(e.first))
}

// Unwrap makes the error match storage.ErrCorrupt: the store lost
// objects (exit 15), not the repository (storage.ErrNotFound, exit 10).
func (e errLayersGone) Unwrap() error { return storage.ErrCorrupt }

// missingLayers returns the layers the registry does not have.
func (s *Store) missingLayers(ctx context.Context, layers []ocispec.Descriptor) (map[digest.Digest]bool, error) {
	var mu sync.Mutex
	missing := make(map[digest.Digest]bool)
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for _, l := range layers {
		g.Go(func() error {
			var ok bool
			err := s.retrying(ctx, func(ctx context.Context) error {
				var err error
				ok, err = s.repo.Blobs().Exists(ctx, l)
				return err
			})
			if err != nil {
				return s.wrap("checking blob "+shortDigest(l.Digest), err)
			}
			if !ok {
				mu.Lock()
				missing[l.Digest] = true
				mu.Unlock()
			}
			return nil
		})
	}
	return missing, g.Wait()
}

// reupload uploads the layers that are missing again, from held bytes,
// as many at once as a backup uploads: the registry's grace time runs
// for the first of them while the last is uploaded.
func (s *Store) reupload(ctx context.Context, layers []ocispec.Descriptor, missing map[digest.Digest]bool) error {
	type upload struct {
		desc ocispec.Descriptor
		held heldBlob
	}
	var again []upload
	var gone errLayersGone
	s.pendingMu.Lock()
	for _, l := range layers {
		if !missing[l.Digest] {
			continue
		}
		if h, ok := s.held[l.Digest]; ok {
			again = append(again, upload{l, h})
		} else if gone.n++; gone.n == 1 {
			gone.first = l.Digest
		}
	}
	s.pendingMu.Unlock()
	if gone.n > 0 {
		return gone
	}
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(s.Concurrency())
	for _, u := range again {
		g.Go(func() error { return s.pushBlob(ctx, u.desc, io.NewSectionReader(u.held.data, 0, u.held.size)) })
	}
	return g.Wait()
}
