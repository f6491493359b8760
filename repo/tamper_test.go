package repo

import (
	"context"
	"crypto/sha256"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/cofferhq/coffer/storage"
	"github.com/cofferhq/coffer/storage/mem"
)

// tamperFixture is a repository with blobs in several packs, reopened with
// its index loaded.
type tamperFixture struct {
	r     *Repository
	st    *mem.Store
	blobs map[ID]testBlob
	packs map[ID][]ID // blobs by pack
	sizes map[ID]int64
}

func newTamperFixture(t *testing.T) *tamperFixture {
	t.Helper()
	r, st := newTestRepo(t)
	blobs := mixedBlobs(3, 60, 128<<10)
	ids, _ := saveBlobs(t, r, blobs)
	f := &tamperFixture{r: reopen(t, st, OpenOptions{}), st: st, blobs: map[ID]testBlob{}}
	for i, id := range ids {
		f.blobs[id] = blobs[i]
	}
	f.packs, f.sizes = packsOf(f.r.Index()), packSizes(f.r.Index())
	if len(f.packs) < 2 {
		t.Fatalf("blobs landed in %d packs, want at least 2", len(f.packs))
	}
	return f
}

// lastBlob returns the blob at the highest offset of a pack.
func (f *tamperFixture) lastBlob(pack ID) (ID, Location) {
	var last ID
	var lastLoc Location
	for _, id := range f.packs[pack] {
		if loc, _ := f.r.Index().Lookup(id); loc.Offset >= lastLoc.Offset {
			last, lastLoc = id, loc
		}
	}
	return last, lastLoc
}

func (f *tamperFixture) somePack() ID {
	packs := make([]ID, 0, len(f.packs))
	for p := range f.packs {
		packs = append(packs, p)
	}
	slices.SortFunc(packs, func(a, b ID) int { return strings.Compare(a.String(), b.String()) })
	return packs[0]
}

// collect returns a problem func and the problems it was given.
func collect() (func(error), *[]error) {
	var problems []error
	return func(err error) { problems = append(problems, err) }, &problems
}

func TestIntactPacksVerify(t *testing.T) {
	ctx := context.Background()
	f := newTamperFixture(t)
	for pack, size := range f.sizes {
		problem, problems := collect()
		if err := f.r.VerifyPack(ctx, pack, size, problem); err != nil || len(*problems) != 0 {
			t.Errorf("VerifyPack of intact pack %s: %v, problems %v", pack.Short(), err, *problems)
		}
		entries, err := f.r.ReadPackTrailer(ctx, pack, size)
		if err != nil {
			t.Fatalf("ReadPackTrailer of intact pack %s: %v", pack.Short(), err)
		}
		if len(entries) != len(f.packs[pack]) {
			t.Errorf("pack %s: trailer lists %d blobs, the index %d", pack.Short(), len(entries), len(f.packs[pack]))
		}
		for _, e := range entries {
			loc, ok := f.r.Index().Lookup(e.ID)
			if !ok || loc != (Location{Pack: pack, Type: e.Type, Offset: e.Offset, Length: e.Length, RawLength: e.RawLength}) {
				t.Errorf("pack %s: trailer entry %+v, index %+v", pack.Short(), e, loc)
			}
		}
	}
	problem, problems := collect()
	listing, err := f.r.CheckPacks(ctx, problem)
	if err != nil || len(*problems) != 0 || len(listing.Unindexed) != 0 || len(listing.Stored) != len(f.sizes) {
		t.Errorf("CheckPacks of an intact repository: %+v, %v, problems %v", listing, err, *problems)
	}
}

// TestFlippedBlobByte alters one byte of a sealed blob in its pack.
func TestFlippedBlobByte(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name  string
		where func(loc Location) int // the byte to flip, from the blob's start
	}{
		{"nonce", func(Location) int { return 0 }},
		{"ciphertext", func(loc Location) int { return int(loc.Length) / 2 }},
		{"tag", func(loc Location) int { return int(loc.Length) - 1 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newTamperFixture(t)
			pack := f.somePack()
			victim := f.packs[pack][len(f.packs[pack])/2]
			loc, _ := f.r.Index().Lookup(victim)
			data := getObject(t, f.st, storage.KindPack, pack.String())
			bad := flipped(data, int(loc.Offset)+tt.where(loc))
			putObject(t, f.st, storage.KindPack, pack.String(), bad)

			_, err := f.r.LoadBlob(ctx, f.blobs[victim].typ, victim)
			ie := asIntegrity(t, err)
			if ie.Kind != "blob" || ie.Name != victim.String() || ie.Pack != pack.String() {
				t.Errorf("LoadBlob error names %s %s in %q, want blob %s in %s", ie.Kind, ie.Name, ie.Pack, victim, pack)
			}
			if !strings.Contains(err.Error(), victim.String()) {
				t.Errorf("error %q does not name the blob", err)
			}
			// LoadBlobs stops at the bad blob and names it.
			err = f.r.LoadBlobs(ctx, pack, refsOf(f.packs[pack], f.blobs), func(BlobRef, []byte) error { return nil })
			if ie := asIntegrity(t, err); ie.Name != victim.String() {
				t.Errorf("LoadBlobs error names %s, want %s", ie.Name, victim)
			}
			// The other blobs of the pack are unharmed.
			for _, id := range f.packs[pack] {
				if id == victim {
					continue
				}
				if _, err := f.r.LoadBlob(ctx, f.blobs[id].typ, id); err != nil {
					t.Errorf("neighbour %s of the damaged blob: %v", id.Short(), err)
				}
			}

			// VerifyPack sees the pack no longer matches its name.
			problem, problems := collect()
			if err := f.r.VerifyPack(ctx, pack, f.sizes[pack], problem); err != nil {
				t.Fatal(err)
			}
			if len(*problems) != 1 {
				t.Fatalf("VerifyPack reported %v, want one problem", *problems)
			}
			if ie := asIntegrity(t, (*problems)[0]); ie.Kind != storage.KindPack || ie.Name != pack.String() || !strings.Contains(ie.Err.Error(), "name") {
				t.Errorf("VerifyPack problem %v: want pack %s not matching its name", (*problems)[0], pack)
			}

			// Stored under its new name, the pack's trailer is intact but
			// the blob fails authentication.
			renamed := ID(sha256.Sum256(bad))
			putObject(t, f.st, storage.KindPack, renamed.String(), bad)
			problem, problems = collect()
			if err := f.r.VerifyPack(ctx, renamed, int64(len(bad)), problem); err != nil {
				t.Fatal(err)
			}
			if len(*problems) != 1 {
				t.Fatalf("VerifyPack of the renamed pack reported %v, want one problem", *problems)
			}
			if ie := asIntegrity(t, (*problems)[0]); ie.Kind != "blob" || ie.Name != victim.String() || ie.Pack != renamed.String() {
				t.Errorf("VerifyPack problem %v: want blob %s in pack %s", (*problems)[0], victim, renamed)
			}
		})
	}
}

// TestFlippedTrailerByte alters the trailer or tail of a pack stored under
// its new name, so only the trailer's own checks can catch it.
func TestFlippedTrailerByte(t *testing.T) {
	ctx := context.Background()
	f := newTamperFixture(t)
	pack := f.somePack()
	data := getObject(t, f.st, storage.KindPack, pack.String())
	tests := []struct {
		name  string
		at    int
		newer bool
	}{
		{"trailer tag", len(data) - packTailSize - 1, false},
		{"trailer length", len(data) - packTailSize, false},
		{"trailer length high byte", len(data) - packTailSize + 3, false},
		{"magic", len(data) - 3, false},
		{"format version", len(data) - 1, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bad := flipped(data, tt.at)
			name := ID(sha256.Sum256(bad))
			putObject(t, f.st, storage.KindPack, name.String(), bad)
			_, err := f.r.ReadPackTrailer(ctx, name, int64(len(bad)))
			if tt.newer != errors.Is(err, ErrNewerFormat) {
				t.Fatalf("ReadPackTrailer: %v; want ErrNewerFormat: %v", err, tt.newer)
			}
			if tt.newer {
				if !strings.Contains(err.Error(), name.Short()) {
					t.Errorf("ReadPackTrailer: %v does not name the pack", err)
				}
			} else if ie := asIntegrity(t, err); ie.Kind != storage.KindPack || ie.Name != name.String() {
				t.Errorf("ReadPackTrailer error names %s %s, want pack %s", ie.Kind, ie.Name, name)
			}
			problem, problems := collect()
			if err := f.r.VerifyPack(ctx, name, int64(len(bad)), problem); err != nil {
				t.Fatal(err)
			}
			if len(*problems) != 1 {
				t.Fatalf("VerifyPack reported %v, want one problem", *problems)
			}
			if p := (*problems)[0]; tt.newer != errors.Is(p, ErrNewerFormat) || !tt.newer && asIntegrity(t, p).Name != name.String() {
				t.Errorf("VerifyPack problem %v: want pack %s (newer format: %v)", p, name, tt.newer)
			}
		})
	}
}

func TestTruncatedPack(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name     string
		keep     func(size int) int
		blobGone bool // the truncation cuts into the pack's last blob
	}{
		{"one byte short", func(n int) int { return n - 1 }, false},
		{"tail missing", func(n int) int { return n - packTailSize }, false},
		{"half", func(n int) int { return n / 2 }, true},
		{"shorter than a tail", func(int) int { return packTailSize - 1 }, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newTamperFixture(t)
			pack := f.somePack()
			size := f.sizes[pack]
			data := getObject(t, f.st, storage.KindPack, pack.String())
			short := data[:tt.keep(len(data))]
			putObject(t, f.st, storage.KindPack, pack.String(), short)

			last, loc := f.lastBlob(pack)
			_, err := f.r.LoadBlob(ctx, f.blobs[last].typ, last)
			if gone := int64(loc.Offset)+int64(loc.Length) > int64(len(short)); gone != tt.blobGone {
				t.Fatalf("the truncation to %d bytes cuts into the last blob (%+v): %v, want %v", len(short), loc, gone, tt.blobGone)
			}
			if tt.blobGone {
				if ie := asIntegrity(t, err); ie.Name != pack.String() && ie.Name != last.String() {
					t.Errorf("LoadBlob error names %s, want the pack or the blob", ie.Name)
				}
			} else if err != nil {
				t.Errorf("LoadBlob of a blob the truncation spared: %v", err)
			}

			// With the size the index records, and with the size stored.
			for _, sz := range []int64{size, int64(len(short))} {
				_, err := f.r.ReadPackTrailer(ctx, pack, sz)
				if ie := asIntegrity(t, err); ie.Kind != storage.KindPack || ie.Name != pack.String() {
					t.Errorf("ReadPackTrailer(size %d): error names %s %s, want pack %s", sz, ie.Kind, ie.Name, pack)
				}
			}

			problem, problems := collect()
			if err := f.r.VerifyPack(ctx, pack, size, problem); err != nil {
				t.Fatal(err)
			}
			if len(*problems) != 1 {
				t.Fatalf("VerifyPack reported %v, want one problem", *problems)
			}
			asIntegrity(t, (*problems)[0])

			problem, problems = collect()
			if _, err := f.r.CheckPacks(ctx, problem); err != nil {
				t.Fatal(err)
			}
			if len(*problems) != 1 || asIntegrity(t, (*problems)[0]).Name != pack.String() {
				t.Errorf("CheckPacks reported %v, want the size of pack %s", *problems, pack)
			}
		})
	}
}

// TestFlippedIndexByte alters an index object, under its old name (the
// name check fails) or under its new one (authentication fails).
func TestFlippedIndexByte(t *testing.T) {
	ctx := context.Background()
	r, st := newTestRepo(t)
	saveBlobs(t, r, mixedBlobs(4, 20, 64<<10))
	saveBlobs(t, r, mixedBlobs(5, 20, 64<<10))
	names := objectNames(t, st, storage.KindIndex)
	if len(names) != 2 {
		t.Fatalf("%d index objects, want 2", len(names))
	}
	orig := getObject(t, st, storage.KindIndex, names[0])
	tests := []struct {
		name   string
		b      []byte
		rename bool
		newer  bool
	}{
		{"first byte, old name", flipped(orig, 0), false, false},
		{"middle byte, old name", flipped(orig, len(orig)/2), false, false},
		{"last byte, old name", flipped(orig, len(orig)-1), false, false},
		{"truncated, old name", orig[:len(orig)-1], false, false},
		{"middle byte, renamed", flipped(orig, len(orig)/2), true, false},
		{"last byte, renamed", flipped(orig, len(orig)-1), true, false},
		{"version 0, renamed", append([]byte{0}, orig[1:]...), true, false},
		{"version 2, renamed", append([]byte{2}, orig[1:]...), true, true},
		{"empty, renamed", []byte{}, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			name := names[0]
			if tt.rename {
				name = sha256Name(tt.b)
				if err := st.Delete(ctx, storage.KindIndex, names[0]); err != nil {
					t.Fatal(err)
				}
			}
			putObject(t, st, storage.KindIndex, name, tt.b)
			defer func() {
				if tt.rename {
					if err := st.Delete(ctx, storage.KindIndex, name); err != nil {
						t.Fatal(err)
					}
				}
				putObject(t, st, storage.KindIndex, names[0], orig)
			}()

			r2 := openTestRepo(t, st, testPassphrase, OpenOptions{})
			err := r2.LoadIndex(ctx)
			if tt.newer {
				if !errors.Is(err, ErrNewerFormat) {
					t.Fatalf("LoadIndex: %v, want ErrNewerFormat", err)
				}
				return
			}
			ie := asIntegrity(t, err)
			if ie.Kind != storage.KindIndex || ie.Name != name {
				t.Errorf("LoadIndex error names %s %s, want index %s", ie.Kind, ie.Name, name)
			}
		})
	}
	// Restored, it loads again.
	reopen(t, st, OpenOptions{})
}

func TestCheckPacksReportsMissingPack(t *testing.T) {
	ctx := context.Background()
	f := newTamperFixture(t)
	gone := f.somePack()
	if err := f.st.Delete(ctx, storage.KindPack, gone.String()); err != nil {
		t.Fatal(err)
	}
	// An unindexed pack, left by an interrupted backup, is not a problem.
	orphan, orphanData := orphanPack(t, f.r, []byte("orphaned blob"))
	putObject(t, f.st, storage.KindPack, orphan.String(), orphanData)

	problem, problems := collect()
	listing, err := f.r.CheckPacks(ctx, problem)
	if err != nil {
		t.Fatal(err)
	}
	if len(*problems) != 1 {
		t.Fatalf("CheckPacks reported %v, want one problem", *problems)
	}
	if ie := asIntegrity(t, (*problems)[0]); ie.Kind != storage.KindPack || ie.Name != gone.String() || !strings.Contains(ie.Err.Error(), "missing") {
		t.Errorf("problem %v: want pack %s reported missing", (*problems)[0], gone)
	}
	if _, ok := listing.Stored[gone]; ok || len(listing.Stored) != len(f.sizes) {
		t.Errorf("listing.Stored = %v: want the %d packs left plus the orphan", listing.Stored, len(f.sizes)-1)
	}
	if !slices.Equal(listing.Unindexed, []ID{orphan}) {
		t.Errorf("listing.Unindexed = %v, want [%s]", listing.Unindexed, orphan.Short())
	}
	// Reading a blob of the missing pack is reported as corruption.
	id := f.packs[gone][0]
	if _, err := f.r.LoadBlob(ctx, f.blobs[id].typ, id); !errors.Is(err, ErrCorrupt) {
		t.Errorf("LoadBlob from a missing pack: %v, want ErrCorrupt", err)
	}

	// A foreign object among the packs is a problem too.
	putObject(t, f.st, storage.KindPack, "not-a-pack", []byte("x"))
	problem, problems = collect()
	if _, err := f.r.CheckPacks(ctx, problem); err != nil {
		t.Fatal(err)
	}
	if len(*problems) != 2 {
		t.Errorf("CheckPacks with a foreign name reported %v, want 2 problems", *problems)
	}
}

// orphanPack builds a valid pack of r holding one data blob, which no
// index lists, and returns its name and bytes.
func orphanPack(tb testing.TB, r *Repository, data []byte) (ID, []byte) {
	p := newTestPackBuilder(tb)
	id := r.codec.blobID(BlobData, data)
	sealed := r.codec.sealBlob(nil, BlobData, id, data, CompressionAuto)
	mustAdd(tb, p, BlobData, id, sealed, len(data))
	b, name := finishPack(tb, p, r.codec)
	return name, b
}
