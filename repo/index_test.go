package repo

import (
	"math/rand/v2"
	"testing"
)

// indexModel is what an Index must answer, kept the plain way: every copy
// of a blob in the order added; the one used is the first in a pack no
// plan condemns, else the first.
type indexModel struct {
	copies    map[ID][]Location
	condemned map[ID]bool
}

func (m *indexModel) lookup(id ID) (Location, bool) {
	cs := m.copies[id]
	for _, c := range cs {
		if !m.condemned[c.Pack] {
			return c, true
		}
	}
	if len(cs) == 0 {
		return Location{}, false
	}
	return cs[0], true
}

// TestIndexAgainstModel adds packs with fresh and repeated blobs, some of
// them in condemned packs, through Add (the recent map, merged into the
// shards past mergeAt) and through the loader's builder (into empty and
// filled shards, and with nothing but copies of indexed blobs, as a
// prune's repacking adds), and checks every answer against the model.
func TestIndexAgainstModel(t *testing.T) {
	const (
		add     = "Add"
		builder = "builder"
		copies  = "builder of copies"
	)
	for _, tc := range []struct {
		name   string
		rounds []string // how each round adds its packs
	}{
		{"Add", []string{add, add, add}},
		{"builder into an empty index, then Add", []string{builder, add, add}},
		{"Add, then builder", []string{add, builder, add}},
		{"builders only", []string{builder, builder, builder}},
		{"copies after Add", []string{add, copies, add}},
		{"copies after builders", []string{builder, builder, copies, copies}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rnd := rand.New(rand.NewPCG(7, uint64(len(tc.name))))
			x := NewIndex()
			m := &indexModel{copies: map[ID][]Location{}, condemned: map[ID]bool{}}
			var known []ID
			newID := func() ID {
				var id ID
				for k := 0; k < len(id); k += 8 {
					v := rnd.Uint64()
					for b := range 8 {
						id[k+b] = byte(v >> (8 * b))
					}
				}
				return id
			}
			// Plans are read before the index objects (LoadIndex), so
			// some packs are condemned before they are added.
			var packs []ID
			for range 3000 {
				packs = append(packs, newID())
			}
			var plan []ID
			for _, p := range packs[:300] {
				plan = append(plan, p)
				m.condemned[p] = true
			}
			x.Condemn(plan)

			next := 0
			for round, how := range tc.rounds {
				b := new(indexBuilder)
				var infos []PackInfo
				// 1000 packs of 40 blobs a round: past mergeAt for Add.
				for range 1000 {
					p := PackInfo{ID: packs[rnd.IntN(len(packs))], Size: 1 << 20}
					if rnd.IntN(4) > 0 { // mostly new packs
						p.ID = packs[next%len(packs)]
						next++
					}
					for k := range 40 {
						id := newID()
						if how == copies {
							id = known[rnd.IntN(len(known))]
						} else if len(known) > 0 && rnd.IntN(10) == 0 {
							id = known[rnd.IntN(len(known))]
						} else {
							known = append(known, id)
						}
						e := PackEntry{ID: id, Type: BlobType(rnd.IntN(2)), Offset: uint32(k * 100), Length: uint32(rnd.IntN(1000)), RawLength: uint32(rnd.IntN(1 << 20))}
						p.Entries = append(p.Entries, e)
						m.copies[id] = append(m.copies[id], Location{Pack: p.ID, Type: e.Type, Offset: e.Offset, Length: e.Length, RawLength: e.RawLength})
					}
					infos = append(infos, p)
				}
				if how != add {
					var c shardCounts
					for _, p := range infos {
						c.count(p)
					}
					b.reserve(&c)
					for _, p := range infos {
						b.add(p)
					}
					x.addBuilt(b)
					if how == copies {
						// No blob is new: the arrays stay as they are,
						// not sized for the copies too.
						var ids, room int
						for i := range x.shards {
							ids += len(x.shards[i].ids)
							room += cap(x.shards[i].ids) - len(x.shards[i].ids)
						}
						if room > ids/10 {
							t.Fatalf("round %d: the shards have room for %d more ids beside their %d", round, room, ids)
						}
					}
				} else {
					for _, p := range infos {
						x.Add(p)
					}
				}
				if x.Len() != len(m.copies) {
					t.Fatalf("round %d: Len %d, want %d", round, x.Len(), len(m.copies))
				}
				for _, id := range known {
					want, _ := m.lookup(id)
					got, ok := x.Lookup(id)
					if !ok || got != want {
						t.Fatalf("round %d: Lookup(%s) = %+v, %v; want %+v", round, id.Short(), got, ok, want)
					}
					if has := x.Has(id); has != !m.condemned[want.Pack] {
						t.Fatalf("round %d: Has(%s) = %v with the copy in pack %s", round, id.Short(), has, want.Pack.Short())
					}
				}
				for range 1000 {
					if _, ok := x.Lookup(newID()); ok {
						t.Fatalf("round %d: Lookup found a blob never added", round)
					}
				}
				seen := 0
				x.Each(func(id ID, loc Location) {
					seen++
					if want, _ := m.lookup(id); loc != want {
						t.Fatalf("round %d: Each gives %s at %+v, want %+v", round, id.Short(), loc, want)
					}
				})
				if seen != len(m.copies) {
					t.Fatalf("round %d: Each saw %d blobs, want %d", round, seen, len(m.copies))
				}
			}

			// Condemned later (a prune's plan in this process): Lookup
			// still finds the blobs, Has no longer offers them.
			id := known[0]
			loc, _ := x.Lookup(id)
			x.Condemn([]ID{loc.Pack})
			if got, ok := x.Lookup(id); !ok || got != loc {
				t.Errorf("after Condemn, Lookup = %+v, %v; want %+v", got, ok, loc)
			}
			if x.Has(id) {
				t.Errorf("after Condemn, Has still offers a blob in the condemned pack")
			}
		})
	}
}

// indexOfRandomBlobs adds n random blobs in packs of ten through Add, as
// a backup does, and returns their ids.
func indexOfRandomBlobs(x *Index, n int) []ID {
	rnd := rand.New(rand.NewPCG(1, 2))
	ids := make([]ID, n)
	for i := 0; i < n; i += 10 {
		p := PackInfo{Size: 4096}
		for k := range p.ID {
			p.ID[k] = byte(rnd.Uint32())
		}
		for j := i; j < min(i+10, n); j++ {
			for k := range ids[j] {
				ids[j][k] = byte(rnd.Uint32())
			}
			p.Entries = append(p.Entries, PackEntry{ID: ids[j], Offset: uint32(j-i) * 400, Length: 400, RawLength: 344})
		}
		x.Add(p)
	}
	return ids
}

// BenchmarkIndexAdd adds a million blobs in packs of ten, as a backup of
// a million small files does (ns/op is per blob).
func BenchmarkIndexAdd(b *testing.B) {
	for b.Loop() {
		indexOfRandomBlobs(NewIndex(), 1_000_000)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/1e6, "ns/blob")
}

// BenchmarkIndexLookup looks up blobs of an index of a million, as a
// restore does.
func BenchmarkIndexLookup(b *testing.B) {
	x := NewIndex()
	ids := indexOfRandomBlobs(x, 1_000_000)
	i := 0
	for b.Loop() {
		if _, ok := x.Lookup(ids[i%len(ids)]); !ok {
			b.Fatal("not found")
		}
		i += 7919 // a prime: a spread of ids, not the order they were added
	}
}

// BenchmarkIndexHasMissing asks for blobs an index of a million does not
// have, as a first backup does for each chunk.
func BenchmarkIndexHasMissing(b *testing.B) {
	x := NewIndex()
	indexOfRandomBlobs(x, 1_000_000)
	var id ID
	for b.Loop() {
		id[0]++
		id[9]++
		if x.Has(id) {
			b.Fatal("found")
		}
	}
}
