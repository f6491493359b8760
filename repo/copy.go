package repo

import (
	"cmp"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"

	"github.com/cofferhq/coffer/storage"
)

// ErrKeysDiffer means two repositories do not share master keys, so that
// what one sealed cannot be copied into the other as it is.
var ErrKeysDiffer = errors.New("the repositories do not share master keys")

// SameKeys reports whether a and b share master keys (one was created
// from the other, `create -from`): blob ids are then the same in both,
// and packs and sealed objects are valid in either as they are.
func SameKeys(a, b *Repository) bool {
	ka, kb := a.keys, b.keys
	return subtle.ConstantTimeCompare(ka.Encrypt, kb.Encrypt) == 1 &&
		subtle.ConstantTimeCompare(ka.MAC, kb.MAC) == 1 &&
		subtle.ConstantTimeCompare(ka.Chunker, kb.Chunker) == 1
}

// CopyObject copies the sealed object kind/id of src into r as it is, so
// that it keeps its name. It authenticates the object with src's keys
// first; r and src must share them (ErrKeysDiffer).
func (r *Repository) CopyObject(ctx context.Context, src *Repository, kind storage.Kind, id ID) error {
	if !SameKeys(r, src) {
		return ErrKeysDiffer
	}
	sealed, err := readAll(ctx, src.store, kind, id.String(), maxObjectSize)
	if err != nil {
		return err
	}
	if ID(sha256.Sum256(sealed)) != id {
		return corrupt(kind, id.String(), "content does not match its name (truncated or altered)")
	}
	if _, err := src.openObject(kind, id.String(), sealed); err != nil {
		return err
	}
	if err := r.store.Put(ctx, kind, id.String(), storage.BytesBody(sealed)); err != nil {
		return fmt.Errorf("storing %s %s: %w", kind, id.Short(), err)
	}
	return nil
}

// PackCopy says how CopyPack stored a pack.
type PackCopy int

// How a pack was copied.
const (
	PackUploaded PackCopy = iota // its bytes were read from the source and stored
	PackMounted                  // the store took it from the source's store (storage.Mounter)
)

// CopyPack stores src's pack as it is, with the blobs entries lists
// (src's index entries for it), and indexes it with this run's packs. r
// and src must share master keys (ErrKeysDiffer), which makes the pack's
// sealed blobs and trailer valid here. A store that can take the pack from
// src's store without its bytes passing through here (storage.Mounter,
// a registry's cross-repository mount) does so; otherwise the pack is
// read whole, checked against its name (its SHA-256), and stored. The
// caller decides which packs to copy whole: a blob CopyPack brings that
// the repository already has is a harmless duplicate.
func (s *BlobSaver) CopyPack(ctx context.Context, src *Repository, pack ID, size int64, entries []PackEntry) (PackCopy, error) {
	if !SameKeys(s.r, src) {
		return 0, ErrKeysDiffer
	}
	s.mu.Lock()
	for _, e := range entries {
		s.storing[e.ID] = struct{}{}
	}
	s.mu.Unlock()

	how := PackUploaded
	mounted := false
	if m, ok := s.r.store.(storage.Mounter); ok {
		var err error
		if mounted, err = m.Mount(ctx, storage.KindPack, pack.String(), size, src.store); err != nil {
			return 0, fmt.Errorf("mounting pack %s: %w", pack.Short(), err)
		}
	}
	if mounted {
		how = PackMounted
	} else if err := s.copyPackBytes(ctx, src, pack, size, entries); err != nil {
		return 0, err
	}

	var raw, stored int64
	for _, e := range entries {
		raw += int64(e.RawLength)
		stored += int64(e.Length)
	}
	s.pending.Add(PackInfo{ID: pack, Size: size, Entries: entries})
	s.mu.Lock()
	for _, e := range entries {
		delete(s.storing, e.ID)
	}
	s.written = append(s.written, PackInfo{ID: pack, Size: size, Entries: entries})
	s.stats.Blobs += int64(len(entries))
	s.stats.NewBlobs += int64(len(entries))
	s.stats.NewRawBytes += raw
	s.stats.NewStored += stored
	s.stats.Packs++
	s.stats.PackBytes += size
	s.mu.Unlock()
	return how, nil
}

// copyPackBytes reads src's pack whole into a file, checks it against its
// name, and stores it.
func (s *BlobSaver) copyPackBytes(ctx context.Context, src *Repository, pack ID, size int64, entries []PackEntry) error {
	trees := len(entries) > 0
	for _, e := range entries {
		trees = trees && e.Type == BlobTree
	}
	blobs := BlobData
	if trees {
		blobs = BlobTree
	}
	p, err := newPackBuilder(s.r.tempDir, s.fp, blobs)
	if err != nil {
		return err
	}
	defer p.discard()

	rc, err := src.store.Get(ctx, storage.KindPack, pack.String(), nil)
	if cerr := storeCorrupt(storage.KindPack, pack.String(), err); cerr != nil {
		return cerr
	}
	if err != nil {
		return fmt.Errorf("reading pack %s: %w", pack.Short(), err)
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(p.w, h), io.LimitReader(rc, size+1))
	rc.Close()
	if cerr := storeCorrupt(storage.KindPack, pack.String(), err); cerr != nil {
		return cerr
	}
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			return tempFileError("writing a pack file", s.r.tempDir, err, p.inTMPDIR)
		}
		return fmt.Errorf("reading pack %s: %w", pack.Short(), err)
	}
	if err := p.w.Flush(); err != nil {
		return tempFileError("writing a pack file", s.r.tempDir, err, p.inTMPDIR)
	}
	if n != size || ID(h.Sum(nil)) != pack {
		return &IntegrityError{Kind: storage.KindPack, Name: pack.String(), Err: errors.New("content does not match its name (truncated or altered)")}
	}
	p.size = size
	if trees {
		s.r.trees.putPack(pack, p.contents())
	}
	if err := p.store(ctx, s.r.store, pack.String()); err != nil {
		return fmt.Errorf("storing pack %s: %w", pack.Short(), err)
	}
	return nil
}

// Has reports whether the repository has the blob, or this run has
// stored it or adopted a pack holding it.
func (s *BlobSaver) Has(id ID) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.has(id)
}

// has is Has; the caller holds s.mu.
func (s *BlobSaver) has(id ID) bool {
	_, ok := s.storing[id]
	return ok || s.pending.Has(id) || s.r.index.Has(id)
}

// PackEntries returns the blobs the index places in each pack, for the
// packs wanted names: what CopyPack needs to index a copied pack. A blob
// stored twice is listed under the pack the index chose for it.
func (x *Index) PackEntries(wanted map[ID]bool) map[ID][]PackEntry {
	x.mu.RLock()
	defer x.mu.RUnlock()
	// By pack number, which spares a map lookup per blob.
	want := make([]bool, len(x.packs))
	for id := range wanted {
		if num, ok := x.packNum[id]; ok {
			want[num] = true
		}
	}
	out := make(map[ID][]PackEntry, len(wanted))
	x.each(func(id *ID, e indexEntry) {
		if want[e.pack()] {
			loc := x.location(e)
			out[loc.Pack] = append(out[loc.Pack], PackEntry{ID: *id, Type: loc.Type, Offset: loc.Offset, Length: loc.Length, RawLength: loc.RawLength})
		}
	})
	for _, es := range out {
		slices.SortFunc(es, func(a, b PackEntry) int { return cmp.Compare(a.Offset, b.Offset) })
	}
	return out
}

// PackSize returns the size the index records for a pack.
func (x *Index) PackSize(pack ID) (int64, bool) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	num, ok := x.packNum[pack]
	if !ok {
		return 0, false
	}
	return x.packSizes[num], true
}
