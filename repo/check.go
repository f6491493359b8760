package repo

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"

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

// ReadPack downloads a whole pack and verifies it: its SHA-256 matches its
// name, its trailer authenticates, every blob decrypts to plaintext with
// the blob's id, and the index agrees with the trailer. Each problem is
// reported; the returned error is only for failures to read at all.
func (r *Repository) ReadPack(ctx context.Context, id ID, size int64, problem func(error)) error {
	rc, err := r.store.Get(ctx, storage.KindPack, id.String(), nil)
	if err != nil {
		return fmt.Errorf("reading pack %s: %w", id.Short(), err)
	}
	defer rc.Close()
	// Read into a buffer of the listed size, plus one byte to notice a
	// longer pack; a shorter or longer one fails its digest check below.
	data := make([]byte, 0, max(0, min(size, 1<<31))+1)
	for {
		n, err := rc.Read(data[len(data):cap(data)])
		data = data[:len(data)+n]
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("reading pack %s: %w", id.Short(), err)
		}
		if len(data) == cap(data) {
			data = append(data, 0)[:len(data)]
		}
	}
	if ID(sha256.Sum256(data)) != id {
		problem(corrupt(storage.KindPack, id.String(), "content does not match its name (%d bytes read)", len(data)))
		return nil
	}
	n, err := parsePackTail(data[max(0, len(data)-packTailSize):], int64(len(data)))
	if err != nil {
		problem(&IntegrityError{Kind: storage.KindPack, Name: id.String(), Err: err})
		return nil
	}
	trailerStart := len(data) - packTailSize - n
	plain, err := r.codec.open(nil, data[trailerStart:len(data)-packTailSize], objectAD("pack trailer", packVersion))
	if err != nil {
		problem(&IntegrityError{Kind: storage.KindPack, Name: id.String(), Err: fmt.Errorf("trailer: %w", err)})
		return nil
	}
	entries, err := decodeTrailer(plain, int64(trailerStart))
	if err != nil {
		problem(&IntegrityError{Kind: storage.KindPack, Name: id.String(), Err: fmt.Errorf("trailer: %w", err)})
		return nil
	}
	var buf []byte
	for _, e := range entries {
		sealed := data[e.Offset : e.Offset+e.Length]
		buf, err = r.codec.openBlob(buf[:0], e.Type, e.ID, sealed)
		if err != nil {
			problem(&IntegrityError{Kind: "blob", Name: e.ID.String(), Pack: id.String(), Err: err})
			continue
		}
		if uint32(len(buf)) != e.RawLength {
			problem(&IntegrityError{Kind: "blob", Name: e.ID.String(), Pack: id.String(), Err: fmt.Errorf("plaintext is %d bytes, the trailer says %d", len(buf), e.RawLength)})
		}
		if loc, ok := r.index.Lookup(e.ID); ok && loc.Pack == id &&
			(loc.Offset != e.Offset || loc.Length != e.Length || loc.Type != e.Type) {
			problem(&IntegrityError{Kind: "blob", Name: e.ID.String(), Pack: id.String(), Err: fmt.Errorf("the index and the pack trailer disagree on its place")})
		}
	}
	return nil
}
