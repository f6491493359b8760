package repo

import (
	"bufio"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/cofferhq/coffer/storage"
)

// PackListing compares the packs in the store with those in the index.
type PackListing struct {
	Stored    map[ID]int64 // every pack in the store, with its size
	Unindexed []ID         // stored packs no index lists (left by an interrupted backup)
}

// CheckPacks lists the store's packs and reports, through problem, every
// index entry whose pack is missing or has a different size. Unindexed
// packs are not problems: the next backup adopts them.
func (r *Repository) CheckPacks(ctx context.Context, problem func(error)) (PackListing, error) {
	l := PackListing{Stored: map[ID]int64{}}
	err := r.store.List(ctx, storage.KindPack, func(name string, size int64) error {
		id, err := ParseID(name)
		if err != nil {
			problem(fmt.Errorf("pack %q: name is not a SHA-256 id", name))
			return nil
		}
		l.Stored[id] = size
		return nil
	})
	if err != nil {
		return l, fmt.Errorf("listing packs: %w", err)
	}
	indexed := map[ID]bool{}
	r.index.Packs(func(id ID, size int64) {
		indexed[id] = true
		stored, ok := l.Stored[id]
		switch {
		case !ok:
			problem(corrupt(storage.KindPack, id.String(), "listed in the index but missing from the store"))
		case stored != size:
			problem(corrupt(storage.KindPack, id.String(), "stored size %d, the index says %d", stored, size))
		}
	})
	for id := range l.Stored {
		if !indexed[id] {
			l.Unindexed = append(l.Unindexed, id)
		}
	}
	return l, nil
}

// VerifyPack downloads a whole pack and verifies it: its SHA-256 matches its
// name, its trailer authenticates, every blob decrypts to plaintext with
// the blob's id, and the index agrees with the trailer. Each problem is
// reported; the returned error is only for failures to read at all.
//
// The trailer is read first (one or two ranged reads) to learn where the
// blobs are; the pack is then streamed and hashed, holding one blob at a
// time, so memory does not grow with the pack size.
func (r *Repository) VerifyPack(ctx context.Context, id ID, size int64, problem func(error)) error {
	entries, trailerErr := r.ReadPackTrailer(ctx, id, size)
	var integrity *IntegrityError
	if trailerErr != nil && !errors.As(trailerErr, &integrity) && !errors.Is(trailerErr, ErrNewerFormat) {
		return trailerErr // not a finding about the pack: it could not be read
	}
	rc, err := r.store.Get(ctx, storage.KindPack, id.String(), nil)
	if cerr := storeCorrupt(storage.KindPack, id.String(), err); cerr != nil {
		problem(cerr)
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading pack %s: %w", id.Short(), err)
	}
	defer rc.Close()
	h := sha256.New()
	// One byte past the listed size is read to notice a longer pack, which
	// then fails its digest check, as a shorter one does.
	limited := &io.LimitedReader{R: rc, N: size + 1}
	body := bufio.NewReaderSize(io.TeeReader(limited, h), 1<<20)
	var blobProblems []error
	var sealed, scratch []byte
	var pos int64
	for _, e := range entries {
		sealed = slices.Grow(sealed[:0], int(e.Length))[:e.Length]
		if err := skipAndRead(body, int64(e.Offset)-pos, sealed); err != nil {
			break // a short pack: its digest check reports it
		}
		pos = int64(e.Offset) + int64(e.Length)
		if err := r.checkPackedBlob(id, e, sealed, &scratch); err != nil {
			blobProblems = append(blobProblems, err)
		}
	}
	if _, err := io.Copy(io.Discard, body); err != nil {
		if cerr := storeCorrupt(storage.KindPack, id.String(), err); cerr != nil {
			problem(cerr) // a finding about the pack, as from Get
			return nil
		}
		return fmt.Errorf("reading pack %s: %w", id.Short(), err)
	}
	switch {
	case ID(h.Sum(nil)) != id:
		// Every other finding would follow from this one.
		problem(corrupt(storage.KindPack, id.String(), "content does not match its name (%d bytes read)", size+1-limited.N))
	case trailerErr != nil:
		problem(trailerErr)
	default:
		for _, p := range blobProblems {
			problem(p)
		}
	}
	return nil
}

// checkPackedBlob verifies one sealed blob of a pack, which it decrypts
// in place, against its trailer entry and the index; scratch is a reusable
// buffer.
func (r *Repository) checkPackedBlob(pack ID, e PackEntry, sealed []byte, scratch *[]byte) error {
	out, s, err := r.codec.openBlobInPlace(e.Type, e.ID, sealed, *scratch)
	*scratch = s
	if err != nil {
		return &IntegrityError{Kind: "blob", Name: e.ID.String(), Pack: pack.String(), Err: err}
	}
	if uint32(len(out)) != e.RawLength {
		return &IntegrityError{Kind: "blob", Name: e.ID.String(), Pack: pack.String(), Err: fmt.Errorf("plaintext is %d bytes, the trailer says %d", len(out), e.RawLength)}
	}
	if loc, ok := r.index.Lookup(e.ID); ok && loc.Pack == pack &&
		(loc.Offset != e.Offset || loc.Length != e.Length || loc.Type != e.Type) {
		return &IntegrityError{Kind: "blob", Name: e.ID.String(), Pack: pack.String(), Err: fmt.Errorf("the index and the pack trailer disagree on its place")}
	}
	return nil
}
