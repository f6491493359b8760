package repo

import (
	"slices"
	"sort"
)

// BlobNumbers numbers the blobs an index held at one moment, 0 to Len()-1
// in id order, so that what a walk over a million blobs remembers of each
// can be a bit or a small integer in a slice instead of an entry in a map
// keyed by its 32-byte id, which costs 50 to 100 bytes.
//
// The numbering shares the index's arrays of ids and never changes: the
// index's later additions go into arrays of their own (Index.Numbers
// leaves no room to merge into), and the blobs they add have no number.
type BlobNumbers struct {
	shards [1 << indexShardBits]indexShard // ids only
	first  [1 << indexShardBits]int        // the number of each shard's first blob
	n      int
}

// Numbers returns a numbering of the blobs x holds now.
func (x *Index) Numbers() *BlobNumbers {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.mergeRecent()
	b := &BlobNumbers{}
	for i := range x.shards {
		s := &x.shards[i]
		// indexShard.merge moves ids within their array when it has
		// room; without room, it copies them to a new one and leaves
		// these as they are.
		s.ids = slices.Clip(s.ids)
		b.shards[i].ids = s.ids
		b.first[i] = b.n
		b.n += len(s.ids)
	}
	return b
}

// Len returns how many blobs are numbered.
func (b *BlobNumbers) Len() int { return b.n }

// Number returns the blob's number, if it has one.
func (b *BlobNumbers) Number(id ID) (int, bool) {
	k := shardOf(&id)
	i, ok := b.shards[k].search(&id)
	return b.first[k] + i, ok
}

// ID returns the id of blob number n.
func (b *BlobNumbers) ID(n int) ID {
	k := sort.Search(len(b.first), func(k int) bool { return b.first[k] > n }) - 1
	return b.shards[k].ids[n-b.first[k]]
}

// BlobSet is a set of blob ids: a bit for each blob a BlobNumbers
// numbers, and a map for the others. It is not safe for concurrent use.
type BlobSet struct {
	nums  *BlobNumbers
	bits  []uint64
	other map[ID]struct{}
	n     int
}

// NewBlobSet returns an empty set of blobs, compact for those nums
// numbers.
func NewBlobSet(nums *BlobNumbers) *BlobSet {
	return &BlobSet{nums: nums, bits: make([]uint64, (nums.Len()+63)/64), other: map[ID]struct{}{}}
}

// Add adds id to the set and reports whether it was not in it before.
func (s *BlobSet) Add(id ID) bool {
	if n, ok := s.nums.Number(id); ok {
		w, bit := n/64, uint64(1)<<(n%64)
		if s.bits[w]&bit != 0 {
			return false
		}
		s.bits[w] |= bit
		s.n++
		return true
	}
	if _, ok := s.other[id]; ok {
		return false
	}
	s.other[id] = struct{}{}
	s.n++
	return true
}

// Has reports whether id is in the set.
func (s *BlobSet) Has(id ID) bool {
	if n, ok := s.nums.Number(id); ok {
		return s.bits[n/64]&(1<<(n%64)) != 0
	}
	_, ok := s.other[id]
	return ok
}

// Len returns the number of blobs in the set.
func (s *BlobSet) Len() int { return s.n }

// hasNumber reports whether the blob that the set's numbering numbers n
// is in the set.
func (s *BlobSet) hasNumber(n int) bool { return s.bits[n/64]&(1<<(n%64)) != 0 }
