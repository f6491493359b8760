package repo

// What prune holds while it plans is one entry for every blob of every
// pack, and a claim for every blob a snapshot needs: with a million
// blobs, kept as PackEntry values and a map keyed by id, those were 150
// MB of a prune's heap, more than the index. So blobs are known by
// their number in the index (BlobNumbers) wherever they have one.

// packUse is what prune knows of one pack.
type packUse struct {
	id     ID
	size   int64 // stored
	ord    int32 // in claims.packs
	used   int64 // sealed bytes of blobs it holds for the snapshots
	unused int64
	// The pack's entries: blobs is those of numbered blobs, 16 bytes
	// each instead of a PackEntry's 48; other the rest (a pack indexed
	// after prune numbered the blobs, or not indexed at all). Both are
	// nil once prune no longer needs them.
	blobs []packedBlob
	other []PackEntry
}

// packedBlob is a PackEntry of a numbered blob.
type packedBlob struct {
	numType        uint32 // number<<1 | type
	offset, length uint32
	rawLength      uint32
}

func (b packedBlob) num() int { return int(b.numType >> 1) }

// entries returns the pack's entries in full, as PackInfo holds them.
func (pu *packUse) entries(nums *BlobNumbers) []PackEntry {
	out := make([]PackEntry, 0, len(pu.blobs)+len(pu.other))
	for _, b := range pu.blobs {
		out = append(out, PackEntry{ID: nums.ID(b.num()), Type: BlobType(b.numType & 1), Offset: b.offset, Length: b.length, RawLength: b.rawLength})
	}
	return append(out, pu.other...)
}

// dropEntries lets the pack's entries go.
func (pu *packUse) dropEntries() { pu.blobs, pu.other = nil, nil }

// Claim states of a blob, in claims.by and claims.other; a claimed blob's
// state is claimedBy plus its pack's ord.
const (
	notNeeded int32 = iota
	needed
	claimedBy
)

// claims says of each blob a snapshot needs which pack's copy of it is
// kept: the first stored pack that holds it, none until one does. One
// table says both what is needed and where, rather than a set of needed
// ids, a set of claimed ids and a list of each pack's claimed entries.
type claims struct {
	nums  *BlobNumbers
	by    []int32      // the state of each numbered blob
	other map[ID]int32 // the state of other blobs needed
	packs []*packUse   // by ord
}

// maxPruneBlobs is how many blobs prune can number: packedBlob keeps a
// number in 31 bits (an index of 2^31 blobs would take 100 GB).
const maxPruneBlobs = 1<<31 - 1

func newClaims(nums *BlobNumbers) *claims {
	return &claims{nums: nums, by: make([]int32, nums.Len()), other: map[ID]int32{}}
}

// addPack makes a packUse for a pack with the given entries, which it
// keeps in compact form.
func (c *claims) addPack(id ID, size int64, entries []PackEntry) *packUse {
	pu := &packUse{id: id, size: size, ord: int32(len(c.packs))}
	c.packs = append(c.packs, pu)
	n := 0
	for _, e := range entries {
		if _, ok := c.nums.Number(e.ID); ok {
			n++
		}
	}
	pu.blobs = make([]packedBlob, 0, n)
	for _, e := range entries {
		if num, ok := c.nums.Number(e.ID); ok {
			pu.blobs = append(pu.blobs, packedBlob{numType: uint32(num)<<1 | uint32(e.Type&1), offset: e.Offset, length: e.Length, rawLength: e.RawLength})
		} else {
			pu.other = append(pu.other, e)
		}
	}
	return pu
}

// need records that a snapshot needs the blob.
func (c *claims) need(id ID) {
	if n, ok := c.nums.Number(id); ok {
		if c.by[n] == notNeeded {
			c.by[n] = needed
		}
		return
	}
	if c.other[id] == notNeeded {
		c.other[id] = needed
	}
}

// claim lets pu claim the needed blobs it holds that no pack claimed
// before it, and adds up its used and unused bytes.
func (c *claims) claim(pu *packUse) {
	mine := claimedBy + pu.ord
	take := func(state *int32, length uint32) {
		if *state == needed {
			*state = mine
			pu.used += int64(length)
		} else {
			pu.unused += int64(length)
		}
	}
	for _, b := range pu.blobs {
		take(&c.by[b.num()], b.length)
	}
	for _, e := range pu.other {
		state, ok := c.other[e.ID]
		if !ok {
			pu.unused += int64(e.Length)
			continue
		}
		take(&state, e.Length)
		c.other[e.ID] = state
	}
}

// claimed reports whether a pack claimed the blob.
func (c *claims) claimed(id ID) bool {
	if n, ok := c.nums.Number(id); ok {
		return c.by[n] >= claimedBy
	}
	return c.other[id] >= claimedBy
}

// unclaimed returns a blob that is needed and that no pack claimed, if
// there is one.
func (c *claims) unclaimed() (ID, bool) {
	for n, state := range c.by {
		if state == needed {
			return c.nums.ID(n), true
		}
	}
	for id, state := range c.other {
		if state == needed {
			return id, true
		}
	}
	return ID{}, false
}

// usedRefs returns the blobs of pu that it claims. A blob pu holds twice
// comes twice; the BlobSaver stores it once.
func (c *claims) usedRefs(pu *packUse) []BlobRef {
	mine := claimedBy + pu.ord
	var out []BlobRef
	for _, b := range pu.blobs {
		if c.by[b.num()] == mine {
			out = append(out, BlobRef{ID: c.nums.ID(b.num()), Type: BlobType(b.numType & 1)})
		}
	}
	for _, e := range pu.other {
		if c.other[e.ID] == mine {
			out = append(out, BlobRef{ID: e.ID, Type: e.Type})
		}
	}
	return out
}

// holdsAny reports whether pu holds a blob of set.
func (c *claims) holdsAny(pu *packUse, set *BlobSet) bool {
	same := set.nums == c.nums // then the set has a bit for each number
	for _, b := range pu.blobs {
		if same && set.hasNumber(b.num()) || !same && set.Has(c.nums.ID(b.num())) {
			return true
		}
	}
	for _, e := range pu.other {
		if set.Has(e.ID) {
			return true
		}
	}
	return false
}
