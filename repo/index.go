package repo

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"slices"
	"sort"
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

// indexEntry is the in-memory form of a Location: the pack is a number
// (an index into Index.packs) shifted left by one with the blob type in
// the low bit, which keeps an entry at 16 bytes instead of 48.
type indexEntry struct {
	packType       uint32
	offset, length uint32
	rawLength      uint32
}

func (e indexEntry) pack() uint32 { return e.packType >> 1 }

func (x *Index) location(e indexEntry) Location {
	return Location{Pack: x.packs[e.pack()], Type: BlobType(e.packType & 1), Offset: e.offset, Length: e.length, RawLength: e.rawLength}
}

// PackInfo describes one pack the index knows.
type PackInfo struct {
	ID      ID
	Size    int64
	Entries []PackEntry
}

// indexShardBits is how many leading bits of a blob id choose its shard.
// Ids are uniform, so a million blobs make shards of about a thousand,
// searched in ten steps, and merging new blobs into one reallocates only
// that shard, never the whole index at once.
const indexShardBits = 10

// Index maps blob ids to their locations. It is safe for concurrent use.
//
// Blobs are kept in sorted arrays (48 bytes a blob, where a map took
// about 100), split into shards by the leading bits of their ids, plus a
// map of the blobs added since the last merge into the arrays, which is
// kept small (mergeAt).
type Index struct {
	mu        sync.RWMutex
	shards    [1 << indexShardBits]indexShard
	sorted    int               // blobs in the shards
	recent    map[ID]indexEntry // blobs added since the last merge, in no shard
	packs     []ID
	packSizes []int64
	packNum   map[ID]uint32
	// condemned holds packs a prune plan will delete (by pack number, and
	// by id for packs not indexed). Their blobs can still be read, but a
	// writer must not reuse them (docs/design.md, "Writers and deleters").
	condemned   map[uint32]bool
	condemnedID map[ID]bool
}

// indexShard holds blob ids in ascending order and their entries.
type indexShard struct {
	ids  []ID
	ents []indexEntry
}

func shardOf(id *ID) int { return int(binary.BigEndian.Uint16(id[:2]) >> (16 - indexShardBits)) }

func compareIDs(a, b *ID) int {
	if c := cmp.Compare(binary.BigEndian.Uint64(a[:8]), binary.BigEndian.Uint64(b[:8])); c != 0 {
		return c
	}
	return bytes.Compare(a[8:], b[8:])
}

// search returns where id is or would be in the shard. Ids are uniform,
// so the search starts where the id's leading bits say it should be and
// widens from there: a few probes, close together, instead of a
// bisection's jumps across the shard.
func (s *indexShard) search(id *ID) (int, bool) {
	n := len(s.ids)
	if n == 0 {
		return 0, false
	}
	guess, _ := bits.Mul64(binary.BigEndian.Uint64(id[:8])<<indexShardBits, uint64(n))
	lo, hi := 0, n
	if g := int(guess); compareIDs(&s.ids[g], id) < 0 {
		lo = g + 1
		for step := 1; lo+step-1 < n; step *= 2 {
			if compareIDs(&s.ids[lo+step-1], id) >= 0 {
				hi = lo + step - 1
				break
			}
			lo += step
		}
	} else {
		hi = g
		for step := 1; hi-step >= 0; step *= 2 {
			if compareIDs(&s.ids[hi-step], id) < 0 {
				lo = hi - step + 1
				break
			}
			hi -= step
		}
	}
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if compareIDs(&s.ids[m], id) < 0 {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo, lo < n && s.ids[lo] == *id
}

// merge adds ids, ascending and none of them in the shard yet, with their
// entries from ents. It merges from the back, in place when the arrays
// have room, so that each old entry moves once. A shard that Numbers
// shares has no room (it is clipped): merge copies it.
func (s *indexShard) merge(ids []ID, ents map[ID]indexEntry) {
	n, m := len(s.ids), len(ids)
	s.ids = slices.Grow(s.ids, m)[:n+m]
	s.ents = slices.Grow(s.ents, m)[:n+m]
	i, j := n-1, m-1
	for k := n + m - 1; j >= 0; k-- {
		if i >= 0 && compareIDs(&s.ids[i], &ids[j]) > 0 {
			s.ids[k], s.ents[k] = s.ids[i], s.ents[i]
			i--
		} else {
			s.ids[k], s.ents[k] = ids[j], ents[ids[j]]
			j--
		}
	}
}

// NewIndex returns an empty index.
func NewIndex() *Index {
	return &Index{recent: make(map[ID]indexEntry), packNum: make(map[ID]uint32),
		condemned: make(map[uint32]bool), condemnedID: make(map[ID]bool)}
}

// get finds a blob's entry; the caller holds x.mu.
func (x *Index) get(id *ID) (indexEntry, bool) {
	s := &x.shards[shardOf(id)]
	if i, ok := s.search(id); ok {
		return s.ents[i], true
	}
	e, ok := x.recent[*id]
	return e, ok
}

// mergeAt is the size of the map of recent blobs at which Add merges it
// into the shards: an eighth of the index, so that merges cost a
// constant share of the adds, but at least 64 Ki blobs, so that a small
// index is not rewritten every few packs.
func (x *Index) mergeAt() int { return max(1<<16, x.sorted/8) }

// mergeRecent moves the recent blobs into the shards; the caller holds
// x.mu for writing.
func (x *Index) mergeRecent() {
	ids := make([]ID, 0, len(x.recent))
	for id := range x.recent {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(a, b ID) int { return compareIDs(&a, &b) })
	for len(ids) > 0 {
		s := shardOf(&ids[0])
		n := 1
		for n < len(ids) && shardOf(&ids[n]) == s {
			n++
		}
		x.shards[s].merge(ids[:n], x.recent)
		ids = ids[n:]
	}
	x.sorted += len(x.recent)
	clear(x.recent)
}

// indexBuilder collects the packs of index objects as they are decoded,
// appended to unsorted shards, for Index.addBuilt: loading a large index
// then needs neither a map nor a second copy of the entries.
type indexBuilder struct {
	packs  []ID
	sizes  []int64
	shards [1 << indexShardBits]indexShard
}

// shardCounts counts entries by shard.
type shardCounts [1 << indexShardBits]int

// count adds p's entries to c.
func (c *shardCounts) count(p PackInfo) {
	for i := range p.Entries {
		c[shardOf(&p.Entries[i].ID)]++
	}
}

// reserve makes room for c[i] more entries in shard i, exactly: append's
// growth would leave a fifth of a large index unused on average.
func (b *indexBuilder) reserve(c *shardCounts) {
	for i, n := range c {
		s := &b.shards[i]
		if need := len(s.ids) + n; need > cap(s.ids) {
			s.ids = append(make([]ID, 0, need), s.ids...)
			s.ents = append(make([]indexEntry, 0, need), s.ents...)
		}
	}
}

func (b *indexBuilder) add(p PackInfo) {
	num := uint32(len(b.packs))
	b.packs = append(b.packs, p.ID)
	b.sizes = append(b.sizes, p.Size)
	for i := range p.Entries {
		e := &p.Entries[i]
		s := &b.shards[shardOf(&e.ID)]
		s.ids = append(s.ids, e.ID)
		s.ents = append(s.ents, indexEntry{packType: num<<1 | uint32(e.Type&1), offset: e.Offset, length: e.Length, rawLength: e.RawLength})
	}
}

// byIDThenOrder sorts a builder's shard by id, copies of one blob in the
// order they were added: by pack, then by offset within the pack.
type byIDThenOrder indexShard

func (s byIDThenOrder) Len() int { return len(s.ids) }
func (s byIDThenOrder) Less(i, j int) bool {
	if c := compareIDs(&s.ids[i], &s.ids[j]); c != 0 {
		return c < 0
	}
	if a, b := s.ents[i].pack(), s.ents[j].pack(); a != b {
		return a < b
	}
	return s.ents[i].offset < s.ents[j].offset
}
func (s byIDThenOrder) Swap(i, j int) {
	s.ids[i], s.ids[j] = s.ids[j], s.ids[i]
	s.ents[i], s.ents[j] = s.ents[j], s.ents[i]
}

// intoBuilder hands x's blobs and packs over as an indexBuilder, for
// another index's addBuilt, and leaves x empty. addBuilt sorts and
// dedupes the arrays in place: x must be an index nothing has numbered
// (a BlobSaver's own).
func (x *Index) intoBuilder() *indexBuilder {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.mergeRecent()
	b := &indexBuilder{packs: x.packs, sizes: x.packSizes, shards: x.shards}
	x.shards = [1 << indexShardBits]indexShard{}
	x.sorted, x.packs, x.packSizes = 0, nil, nil
	clear(x.packNum)
	return b
}

// addBuilt adds what b collected, as Add would have pack by pack: of the
// copies of a blob, the first (in the index, then in the order b's packs
// were added) in a pack no prune plan condemns is kept, or the first if
// every one is condemned. b's arrays become the index's shards where
// those were empty; elsewhere both are merged into new arrays, or only
// the entries of the index's change when b brings no new id.
func (x *Index) addBuilt(b *indexBuilder) {
	x.mu.Lock()
	defer x.mu.Unlock()
	nums := make([]uint32, len(b.packs))
	same := len(x.packs) == 0
	for i, id := range b.packs {
		nums[i] = x.addPack(id, b.sizes[i])
		same = same && nums[i] == uint32(i)
	}
	// Copies in the recent map must be weighed too.
	x.mergeRecent()
	for i := range b.shards {
		bs := &b.shards[i]
		if len(bs.ids) == 0 {
			continue
		}
		// Sorted while the pack numbers are still b's, which follow
		// the order of addition, then renumbered as the index's.
		sort.Sort(byIDThenOrder(*bs))
		if !same {
			for k := range bs.ents {
				e := &bs.ents[k]
				e.packType = nums[e.pack()]<<1 | e.packType&1
			}
		}
		s := &x.shards[i]
		n := len(s.ids)
		if n > 0 {
			*s = x.mergeDeduped(s, bs)
		} else {
			x.dedupe(bs)
			*s = *bs
		}
		x.sorted += len(s.ids) - n
		*bs = indexShard{}
	}
}

// mergeDeduped returns the union of old, an index shard, and add, a
// builder's shard sorted by id and then by order of addition, with one
// entry per id: the first of old's copy, then add's copies in order,
// whose pack is not condemned, else the first. A prune's repacking adds
// a new copy of most blobs: arrays sized for both would double the
// index, so it fills arrays of exactly the size needed, or old's own
// (only its entries change) when add brings no new id. The caller holds
// x.mu for writing.
func (x *Index) mergeDeduped(old, add *indexShard) indexShard {
	// next returns the smaller id at old[i] and add[j].
	next := func(i, j int) ID {
		if j == len(add.ids) || i < len(old.ids) && compareIDs(&old.ids[i], &add.ids[j]) <= 0 {
			return old.ids[i]
		}
		return add.ids[j]
	}
	n := 0
	for i, j := 0, 0; i < len(old.ids) || j < len(add.ids); n++ {
		id := next(i, j)
		for i < len(old.ids) && old.ids[i] == id {
			i++
		}
		for j < len(add.ids) && add.ids[j] == id {
			j++
		}
	}
	if n == len(old.ids) {
		// Only the entries change, in place: the ids stay as they are,
		// as BlobNumbers expects.
		for i, j := 0, 0; j < len(add.ids); j++ {
			for old.ids[i] != add.ids[j] {
				i++
			}
			if x.condemned[old.ents[i].pack()] && !x.condemned[add.ents[j].pack()] {
				old.ents[i] = add.ents[j]
			}
		}
		return *old
	}
	out := indexShard{ids: make([]ID, 0, n), ents: make([]indexEntry, 0, n)}
	for i, j := 0, 0; i < len(old.ids) || j < len(add.ids); {
		id := next(i, j)
		var pick indexEntry
		have := false
		consider := func(e indexEntry) {
			if !have || x.condemned[pick.pack()] && !x.condemned[e.pack()] {
				pick, have = e, true
			}
		}
		for ; i < len(old.ids) && old.ids[i] == id; i++ {
			consider(old.ents[i])
		}
		for ; j < len(add.ids) && add.ids[j] == id; j++ {
			consider(add.ents[j])
		}
		out.ids, out.ents = append(out.ids, id), append(out.ents, pick)
	}
	return out
}

// dedupe keeps one entry per id in a sorted shard, the first not
// condemned, moving entries within the shard's arrays: only a builder's
// shard, never one that Numbers may share. The caller holds x.mu.
func (x *Index) dedupe(s *indexShard) {
	out := 0
	for i := 0; i < len(s.ids); {
		j, pick := i+1, i
		for ; j < len(s.ids) && s.ids[j] == s.ids[i]; j++ {
			if x.condemned[s.ents[pick].pack()] && !x.condemned[s.ents[j].pack()] {
				pick = j
			}
		}
		s.ids[out], s.ents[out] = s.ids[i], s.ents[pick]
		out++
		i = j
	}
	s.ids, s.ents = s.ids[:out], s.ents[:out]
}

// Has reports whether the blob is indexed in a pack that no prune plan
// condemns: whether a writer may reuse it instead of storing it again.
func (x *Index) Has(id ID) bool {
	x.mu.RLock()
	e, ok := x.get(&id)
	ok = ok && !x.condemned[e.pack()]
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
	e, ok := x.get(&id)
	if !ok {
		return Location{}, false
	}
	return x.location(e), true
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
	num := x.addPack(p.ID, p.Size)
	for _, e := range p.Entries {
		ne := indexEntry{packType: num<<1 | uint32(e.Type&1), offset: e.Offset, length: e.Length, rawLength: e.RawLength}
		// A copy in a pack that stays is preferred to one in a pack a
		// prune will delete.
		s := &x.shards[shardOf(&e.ID)]
		if i, dup := s.search(&e.ID); dup {
			if x.condemned[s.ents[i].pack()] && !x.condemned[num] {
				s.ents[i] = ne
			}
			continue
		}
		if old, dup := x.recent[e.ID]; dup && (!x.condemned[old.pack()] || x.condemned[num]) {
			continue
		}
		x.recent[e.ID] = ne
	}
	if len(x.recent) >= x.mergeAt() {
		x.mergeRecent()
	}
}

// addPack returns the pack's number, numbering it if it is new; the
// caller holds x.mu for writing.
func (x *Index) addPack(id ID, size int64) uint32 {
	num, ok := x.packNum[id]
	if !ok {
		num = uint32(len(x.packs))
		x.packs = append(x.packs, id)
		x.packSizes = append(x.packSizes, size)
		x.packNum[id] = num
		if x.condemnedID[id] {
			x.condemned[num] = true
		}
	}
	return num
}

// Len returns the number of blobs indexed.
func (x *Index) Len() int {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return x.sorted + len(x.recent)
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
	x.each(func(id *ID, e indexEntry) { fn(*id, x.location(e)) })
}

// each calls fn for every indexed blob; the caller holds x.mu.
func (x *Index) each(fn func(id *ID, e indexEntry)) {
	for s := range x.shards {
		sh := &x.shards[s]
		for i := range sh.ids {
			fn(&sh.ids[i], sh.ents[i])
		}
	}
	for id, e := range x.recent {
		fn(&id, e)
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
	var packs []PackInfo
	err := decodeIndexFunc(b, func(p PackInfo) {
		p.Entries = slices.Clone(p.Entries)
		packs = append(packs, p)
	})
	if err != nil {
		return nil, err
	}
	return packs, nil
}

// decodeIndexFunc parses what encodeIndex produced, validating every
// field, and calls fn for each pack as it is decoded: loading an index
// object then needs no copy of it in decoded form. p.Entries is reused
// for the next pack. On an error, fn may have seen some of the packs.
func decodeIndexFunc(b []byte, fn func(p PackInfo)) error {
	if len(b) == 0 {
		return errors.New("empty index")
	}
	if b[0] > indexVersion {
		return fmt.Errorf("index version %d: %w", b[0], ErrNewerFormat)
	}
	if b[0] != indexVersion {
		return fmt.Errorf("unknown index version %d", b[0])
	}
	r := byteReader{b: b[1:]}
	npacks := r.uvarint()
	if npacks > uint64(len(r.b)/(len(ID{})+2)) {
		return fmt.Errorf("pack count %d exceeds the index size", npacks)
	}
	var entries []PackEntry
	for i := uint64(0); i < npacks && r.err == nil; i++ {
		p := PackInfo{ID: r.id(), Size: int64(r.uvarint())}
		n := r.uvarint()
		if n > uint64(len(r.b)/minEntrySize) || p.Size < 0 {
			return fmt.Errorf("pack %d: blob count %d exceeds the index size", i, n)
		}
		entries = entries[:0]
		for j := uint64(0); j < n && r.err == nil; j++ {
			entries = append(entries, r.packEntry(p.Size))
		}
		if r.err == nil {
			p.Entries = entries
			fn(p)
		}
	}
	if r.err != nil {
		return r.err
	}
	if len(r.b) != 0 {
		return fmt.Errorf("%d trailing bytes", len(r.b))
	}
	return nil
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
