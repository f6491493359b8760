package repo

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
)

const indexVersion = 1

// Location says where a blob is stored.
type Location struct {
	Pack      ID
	Type      BlobType
	Offset    uint32 // of the sealed blob within the pack
	Length    uint32 // of the sealed blob
	RawLength uint32 // of the plaintext
}

// indexEntry is the in-memory form of a Location: the pack is an index into
// Index.packs, which keeps an entry at 20 bytes instead of 48.
type indexEntry struct {
	pack           uint32
	offset, length uint32
	rawLength      uint32
	typ            BlobType
}

// PackInfo describes one pack the index knows.
type PackInfo struct {
	ID      ID
	Size    int64
	Entries []PackEntry
}

// Index maps blob ids to their locations. It is safe for concurrent use.
type Index struct {
	mu        sync.RWMutex
	blobs     map[ID]indexEntry
	packs     []ID
	packSizes []int64
	packNum   map[ID]uint32
	// condemned holds packs a prune plan will delete (by pack number, and
	// by id for packs not indexed). Their blobs can still be read, but a
	// writer must not reuse them (docs/design.md, "Writers and deleters").
	condemned   map[uint32]bool
	condemnedID map[ID]bool
}

// NewIndex returns an empty index.
func NewIndex() *Index {
	return &Index{blobs: make(map[ID]indexEntry), packNum: make(map[ID]uint32),
		condemned: make(map[uint32]bool), condemnedID: make(map[ID]bool)}
}

// Has reports whether the blob is indexed in a pack that no prune plan
// condemns: whether a writer may reuse it instead of storing it again.
func (x *Index) Has(id ID) bool {
	x.mu.RLock()
	e, ok := x.blobs[id]
	ok = ok && !x.condemned[e.pack]
	x.mu.RUnlock()
	return ok
}

// Condemn records packs that a prune plan will delete: Has no longer
// reports their blobs (unless another pack has them too), Lookup still
// finds them.
func (x *Index) Condemn(packs []ID) {
	x.mu.Lock()
	defer x.mu.Unlock()
	for _, p := range packs {
		x.condemnedID[p] = true
		if num, ok := x.packNum[p]; ok {
			x.condemned[num] = true
		}
	}
}

// Condemned reports whether a prune plan will delete the pack.
func (x *Index) Condemned(pack ID) bool {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return x.condemnedID[pack]
}

// Lookup returns where a blob is stored.
func (x *Index) Lookup(id ID) (Location, bool) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	e, ok := x.blobs[id]
	if !ok {
		return Location{}, false
	}
	return Location{Pack: x.packs[e.pack], Type: e.typ, Offset: e.offset, Length: e.length, RawLength: e.rawLength}, true
}

// HasPack reports whether the index lists a pack.
func (x *Index) HasPack(id ID) bool {
	x.mu.RLock()
	_, ok := x.packNum[id]
	x.mu.RUnlock()
	return ok
}

// Add records the blobs of one pack. A blob already indexed keeps its
// first location; duplicates are harmless.
func (x *Index) Add(p PackInfo) {
	x.mu.Lock()
	defer x.mu.Unlock()
	num, ok := x.packNum[p.ID]
	if !ok {
		num = uint32(len(x.packs))
		x.packs = append(x.packs, p.ID)
		x.packSizes = append(x.packSizes, p.Size)
		x.packNum[p.ID] = num
		if x.condemnedID[p.ID] {
			x.condemned[num] = true
		}
	}
	for _, e := range p.Entries {
		// A copy in a pack that stays is preferred to one in a pack a
		// prune will delete.
		if old, dup := x.blobs[e.ID]; dup && (!x.condemned[old.pack] || x.condemned[num]) {
			continue
		}
		x.blobs[e.ID] = indexEntry{pack: num, offset: e.Offset, length: e.Length, rawLength: e.RawLength, typ: e.Type}
	}
}

// Len returns the number of blobs indexed.
func (x *Index) Len() int {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return len(x.blobs)
}

// Packs calls fn for each pack with its recorded size.
func (x *Index) Packs(fn func(id ID, size int64)) {
	x.mu.RLock()
	packs, sizes := append([]ID(nil), x.packs...), append([]int64(nil), x.packSizes...)
	x.mu.RUnlock()
	for i, id := range packs {
		fn(id, sizes[i])
	}
}

// Each calls fn for every indexed blob, in no given order. fn must not
// call back into the index.
func (x *Index) Each(fn func(id ID, loc Location)) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	for id, e := range x.blobs {
		fn(id, Location{Pack: x.packs[e.pack], Type: e.typ, Offset: e.offset, Length: e.length, RawLength: e.rawLength})
	}
}

// encodeIndex serialises packs for an index object (before framing):
//
//	version u8 | npacks uvarint | per pack: id [32] size uvarint n uvarint
//	  | per blob: type u8 id [32] offset uvarint length uvarint raw uvarint
func encodeIndex(packs []PackInfo) []byte {
	size := 1 + binary.MaxVarintLen64
	for _, p := range packs {
		size += len(ID{}) + 2*binary.MaxVarintLen64 + len(p.Entries)*trailerEntryMax
	}
	out := make([]byte, 0, size)
	out = append(out, indexVersion)
	out = binary.AppendUvarint(out, uint64(len(packs)))
	for _, p := range packs {
		out = append(out, p.ID[:]...)
		out = binary.AppendUvarint(out, uint64(p.Size))
		out = binary.AppendUvarint(out, uint64(len(p.Entries)))
		for _, e := range p.Entries {
			out = appendPackEntry(out, e)
		}
	}
	return out
}

// decodeIndex parses what encodeIndex produced, validating every field.
func decodeIndex(b []byte) ([]PackInfo, error) {
	if len(b) == 0 {
		return nil, errors.New("empty index")
	}
	if b[0] > indexVersion {
		return nil, fmt.Errorf("index version %d: %w", b[0], ErrNewerFormat)
	}
	if b[0] != indexVersion {
		return nil, fmt.Errorf("unknown index version %d", b[0])
	}
	r := byteReader{b: b[1:]}
	npacks := r.uvarint()
	if npacks > uint64(len(r.b)/(len(ID{})+2)) {
		return nil, fmt.Errorf("pack count %d exceeds the index size", npacks)
	}
	packs := make([]PackInfo, 0, npacks)
	for i := uint64(0); i < npacks && r.err == nil; i++ {
		p := PackInfo{ID: r.id(), Size: int64(r.uvarint())}
		n := r.uvarint()
		if n > uint64(len(r.b)/minEntrySize) || p.Size < 0 {
			return nil, fmt.Errorf("pack %d: blob count %d exceeds the index size", i, n)
		}
		p.Entries = make([]PackEntry, 0, n)
		for j := uint64(0); j < n && r.err == nil; j++ {
			p.Entries = append(p.Entries, r.packEntry(p.Size))
		}
		packs = append(packs, p)
	}
	if r.err != nil {
		return nil, r.err
	}
	if len(r.b) != 0 {
		return nil, fmt.Errorf("%d trailing bytes", len(r.b))
	}
	return packs, nil
}

// byteReader decodes the binary formats; the first error sticks.
type byteReader struct {
	b   []byte
	err error
}

func (r *byteReader) fail() { r.err, r.b = errors.New("truncated"), nil }

func (r *byteReader) byte() byte {
	if len(r.b) < 1 {
		r.fail()
		return 0
	}
	v := r.b[0]
	r.b = r.b[1:]
	return v
}

func (r *byteReader) id() ID {
	var id ID
	if len(r.b) < len(id) {
		r.fail()
		return id
	}
	copy(id[:], r.b)
	r.b = r.b[len(id):]
	return id
}

func (r *byteReader) uvarint() uint64 {
	v, k := binary.Uvarint(r.b)
	if k <= 0 {
		r.fail()
		return 0
	}
	r.b = r.b[k:]
	return v
}
