package repo

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// TestBlobNumbersStay numbers an index's blobs, then lets the index grow
// every way it does (Add, merged into the shards by a builder's blobs
// while they have room, then past mergeAt; a builder of new blobs and
// copies, as loading and repacking add): the blobs numbered keep their
// numbers and ids, and the new ones have none.
func TestBlobNumbersStay(t *testing.T) {
	x := NewIndex()
	// 100,000 blobs: merged once at mergeAt, and the rest when numbered,
	// into shards grown by append, with room to spare.
	old := indexOfRandomBlobs(x, 100_000)
	nums := x.Numbers()
	if nums.Len() != len(old) {
		t.Fatalf("Len = %d, want %d", nums.Len(), len(old))
	}
	numberOf := map[ID]int{}
	for _, id := range old {
		n, ok := nums.Number(id)
		if !ok || n < 0 || n >= nums.Len() {
			t.Fatalf("Number(%s) = %d, %v", id.Short(), n, ok)
		}
		numberOf[id] = n
	}
	// In id order, each number once.
	sorted := slices.SortedFunc(slices.Values(old), func(a, b ID) int { return compareIDs(&a, &b) })
	for i, id := range sorted {
		if numberOf[id] != i {
			t.Fatalf("blob %s, the %dth by id, has number %d", id.Short(), i, numberOf[id])
		}
	}

	rnd := rand.New(rand.NewPCG(3, 4))
	var added []ID
	randomPack := func(blobs int, copies bool) PackInfo {
		p := PackInfo{Size: 4096}
		for k := range p.ID {
			p.ID[k] = byte(rnd.Uint32())
		}
		for j := range blobs {
			var id ID
			if copies && j%2 == 0 {
				id = old[rnd.IntN(len(old))]
			} else {
				for k := range id {
					id[k] = byte(rnd.Uint32())
				}
				added = append(added, id)
			}
			p.Entries = append(p.Entries, PackEntry{ID: id, Offset: uint32(j) * 400, Length: 400, RawLength: 344})
		}
		return p
	}
	build := func(p PackInfo) {
		b := new(indexBuilder)
		var c shardCounts
		c.count(p)
		b.reserve(&c)
		b.add(p)
		x.addBuilt(b)
	}
	for range 300 { // a few blobs a shard, merged by the builder's add
		x.Add(randomPack(10, false))
	}
	build(randomPack(2_000, true))
	for range 7000 { // past mergeAt
		x.Add(randomPack(10, false))
	}
	build(randomPack(20_000, true))
	if x.Len() != len(old)+len(added) {
		t.Fatalf("the index holds %d blobs, want %d", x.Len(), len(old)+len(added))
	}

	for _, id := range old {
		if n, ok := nums.Number(id); !ok || n != numberOf[id] {
			t.Fatalf("after the index grew, Number(%s) = %d, %v; want %d", id.Short(), n, ok, numberOf[id])
		}
		if got := nums.ID(numberOf[id]); got != id {
			t.Fatalf("after the index grew, ID(%d) = %s, want %s", numberOf[id], got.Short(), id.Short())
		}
	}
	for _, id := range added {
		if n, ok := nums.Number(id); ok {
			t.Fatalf("blob %s, added after numbering, has number %d", id.Short(), n)
		}
	}
	if later := x.Numbers(); later.Len() != x.Len() {
		t.Errorf("a later numbering has %d blobs, want %d", later.Len(), x.Len())
	}
}

// TestBlobSet adds numbered and unnumbered blobs, some twice, and checks
// every answer against a map.
func TestBlobSet(t *testing.T) {
	x := NewIndex()
	numbered := indexOfRandomBlobs(x, 5000)
	s := NewBlobSet(x.Numbers())
	rnd := rand.New(rand.NewPCG(5, 6))
	var others []ID
	for range 500 {
		var id ID
		for k := range id {
			id[k] = byte(rnd.Uint32())
		}
		others = append(others, id)
	}
	all := append(slices.Clone(numbered), others...)
	want := map[ID]bool{}
	for range 8000 {
		id := all[rnd.IntN(len(all))]
		if got := s.Add(id); got == want[id] {
			t.Fatalf("Add(%s) = %v with the blob in the set: %v", id.Short(), got, want[id])
		}
		want[id] = true
		if s.Len() != len(want) {
			t.Fatalf("Len = %d, want %d", s.Len(), len(want))
		}
	}
	for _, id := range all {
		if s.Has(id) != want[id] {
			t.Fatalf("Has(%s) = %v, want %v", id.Short(), s.Has(id), want[id])
		}
	}
}
