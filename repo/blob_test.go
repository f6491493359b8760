package repo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"

	"github.com/cofferhq/coffer/internal/testutil"
	"github.com/cofferhq/coffer/storage"
	"github.com/cofferhq/coffer/storage/mem"
)

// TestBlobsRoundTrip saves random and compressible blobs into several
// 1 MiB packs and reads every one back from a freshly opened repository.
func TestBlobsRoundTrip(t *testing.T) {
	ctx := context.Background()
	r, st := newTestRepo(t)
	blobs := mixedBlobs(1, 120, 128<<10)
	blobs = append(blobs,
		testBlob{BlobData, make([]byte, 600<<10)},                  // zeros: compresses to almost nothing
		testBlob{BlobData, testutil.RandomBytes(99, testPackSize)}, // a blob as large as a pack
		testBlob{BlobTree, []byte("t")},                            // tiny
		testBlob{BlobData, nil},                                    // empty
	)
	var raw int64
	for _, b := range blobs {
		raw += int64(len(b.data))
	}
	ids, stats := saveBlobs(t, r, blobs)

	if stats.Blobs != int64(len(blobs)) || stats.NewBlobs != int64(len(blobs)) || stats.NewRawBytes != raw {
		t.Errorf("stats %+v: want %d blobs, all new, %d raw bytes", stats, len(blobs), raw)
	}
	packs := objectNames(t, st, storage.KindPack)
	if len(packs) < 4 || stats.Packs != len(packs) {
		t.Errorf("%d packs stored, stats say %d; want at least 4", len(packs), stats.Packs)
	}
	if stats.NewStored >= raw {
		t.Errorf("compressible blobs did not shrink: %d stored for %d raw bytes", stats.NewStored, raw)
	}
	if stats.IndexObjects != 1 || len(objectNames(t, st, storage.KindIndex)) != 1 {
		t.Errorf("stats say %d index objects, the store has %v; want 1", stats.IndexObjects, objectNames(t, st, storage.KindIndex))
	}
	var packBytes int64
	for _, p := range packs {
		packBytes += int64(len(getObject(t, st, storage.KindPack, p)))
	}
	if stats.PackBytes != packBytes {
		t.Errorf("stats.PackBytes = %d, the packs hold %d", stats.PackBytes, packBytes)
	}

	r2 := reopen(t, st, OpenOptions{})
	if r2.Index().Len() != len(blobs) {
		t.Errorf("the loaded index has %d blobs, want %d", r2.Index().Len(), len(blobs))
	}
	for i, b := range blobs {
		got, err := r2.LoadBlob(ctx, b.typ, ids[i])
		if err != nil {
			t.Fatalf("blob %d (%s, %d bytes): %v", i, b.typ, len(b.data), err)
		}
		if !bytes.Equal(got, b.data) {
			t.Fatalf("blob %d (%s, %d bytes) reads back as %d other bytes", i, b.typ, len(b.data), len(got))
		}
		loc, _ := r2.Index().Lookup(ids[i])
		if loc.Type != b.typ || loc.RawLength != uint32(len(b.data)) {
			t.Errorf("blob %d indexed as %+v, want type %s and raw length %d", i, loc, b.typ, len(b.data))
		}
		if ids[i] != r2.BlobID(b.typ, b.data) {
			t.Errorf("blob %d: Save returned an id that is not BlobID of its plaintext", i)
		}
	}
	if _, err := r2.LoadBlob(ctx, BlobData, r2.BlobID(BlobData, []byte("never saved"))); !errors.Is(err, ErrBlobNotFound) {
		t.Errorf("LoadBlob of an unknown blob: %v, want ErrBlobNotFound", err)
	}
}

// TestLoadBlobsOwned keeps every plaintext LoadBlobsOwned hands out, of
// compressed and incompressible blobs alike, and checks them only once
// the whole pack is read: none may share a buffer that a later blob
// overwrote.
func TestLoadBlobsOwned(t *testing.T) {
	ctx := context.Background()
	r, st := newTestRepo(t)
	blobs := mixedBlobs(3, 60, 96<<10)
	ids, _ := saveBlobs(t, r, blobs)
	want := map[ID]testBlob{}
	for i, id := range ids {
		want[id] = blobs[i]
	}
	r2 := reopen(t, st, OpenOptions{})
	kept := map[ID][]byte{}
	for pack, packIDs := range packsOf(r2.Index()) {
		refs := make([]BlobRef, len(packIDs))
		for i, id := range packIDs {
			refs[i] = BlobRef{ID: id, Type: want[id].typ}
		}
		err := r2.LoadBlobsOwned(ctx, pack, refs, func(ref BlobRef, plain []byte) error {
			kept[ref.ID] = plain
			return nil
		})
		if err != nil {
			t.Fatalf("LoadBlobsOwned of pack %s: %v", pack.Short(), err)
		}
	}
	if len(kept) != len(blobs) {
		t.Fatalf("kept %d blobs, want %d", len(kept), len(blobs))
	}
	for id, plain := range kept {
		if !bytes.Equal(plain, want[id].data) {
			t.Errorf("kept blob %s (%d bytes) changed after later blobs were loaded", id.Short(), len(want[id].data))
		}
	}
}

// TestLoadBlobs reads every pack's blobs, asked for in shuffled order, and
// checks they come back in offset order, each once, with the right bytes.
func TestLoadBlobs(t *testing.T) {
	ctx := context.Background()
	r, st := newTestRepo(t)
	blobs := mixedBlobs(2, 100, 96<<10)
	ids, _ := saveBlobs(t, r, blobs)
	want := map[ID]testBlob{}
	for i, id := range ids {
		want[id] = blobs[i]
	}
	r2 := reopen(t, st, OpenOptions{})
	byPack := packsOf(r2.Index())
	if len(byPack) < 3 {
		t.Fatalf("blobs landed in %d packs, want at least 3", len(byPack))
	}
	rng := rand.New(rand.NewPCG(7, 7))
	seen := map[ID]int{}
	for pack, packIDs := range byPack {
		refs := make([]BlobRef, len(packIDs))
		for i, id := range packIDs {
			refs[i] = BlobRef{ID: id, Type: want[id].typ}
		}
		rng.Shuffle(len(refs), func(i, j int) { refs[i], refs[j] = refs[j], refs[i] })
		var lastOff int64 = -1
		calls := 0
		err := r2.LoadBlobs(ctx, pack, refs, func(ref BlobRef, plain []byte) error {
			calls++
			seen[ref.ID]++
			loc, ok := r2.Index().Lookup(ref.ID)
			if !ok || loc.Pack != pack {
				t.Errorf("fn got blob %s, which is not in pack %s", ref.ID.Short(), pack.Short())
			}
			if int64(loc.Offset) <= lastOff {
				t.Errorf("blob at offset %d came after offset %d", loc.Offset, lastOff)
			}
			lastOff = int64(loc.Offset)
			if ref.Type != want[ref.ID].typ || !bytes.Equal(plain, want[ref.ID].data) {
				t.Errorf("blob %s: got %s with %d bytes, want %s with %d", ref.ID.Short(), ref.Type, len(plain), want[ref.ID].typ, len(want[ref.ID].data))
			}
			return nil
		})
		if err != nil {
			t.Fatalf("LoadBlobs of pack %s: %v", pack.Short(), err)
		}
		if calls != len(refs) {
			t.Errorf("pack %s: fn called %d times for %d blobs", pack.Short(), calls, len(refs))
		}
	}
	if len(seen) != len(blobs) {
		t.Errorf("LoadBlobs returned %d distinct blobs, want %d", len(seen), len(blobs))
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("blob %s returned %d times", id.Short(), n)
		}
	}

	// Errors: the callback's error stops the walk; a blob of another pack,
	// an unknown blob and a wrong type are refused.
	var pack, otherPack ID
	for p := range byPack {
		if pack.IsZero() {
			pack = p
		} else if otherPack.IsZero() {
			otherPack = p
		}
	}
	first, stranger := byPack[pack][0], byPack[otherPack][0]
	stop := errors.New("stop")
	calls := 0
	err := r2.LoadBlobs(ctx, pack, refsOf(byPack[pack], want), func(BlobRef, []byte) error { calls++; return stop })
	if !errors.Is(err, stop) || calls != 1 {
		t.Errorf("LoadBlobs with a failing fn: %v after %d calls, want stop after 1", err, calls)
	}
	noop := func(BlobRef, []byte) error { return nil }
	if err := r2.LoadBlobs(ctx, pack, []BlobRef{{stranger, want[stranger].typ}}, noop); err == nil {
		t.Error("LoadBlobs accepted a blob of another pack")
	}
	if err := r2.LoadBlobs(ctx, pack, []BlobRef{{r2.BlobID(BlobData, []byte("unknown")), BlobData}}, noop); !errors.Is(err, ErrBlobNotFound) {
		t.Errorf("LoadBlobs of an unknown blob: %v, want ErrBlobNotFound", err)
	}
	wrong := BlobRef{first, 1 - want[first].typ}
	err = r2.LoadBlobs(ctx, pack, []BlobRef{wrong}, noop)
	if ie := asIntegrity(t, err); ie.Name != first.String() || ie.Pack != pack.String() {
		t.Errorf("LoadBlobs with the wrong type names %s in %s, want %s in %s", ie.Name, ie.Pack, first, pack)
	}
	if err := r2.LoadBlobs(ctx, pack, nil, noop); err != nil {
		t.Errorf("LoadBlobs of no blobs: %v", err)
	}

	// A blob asked for twice is given twice, whole both times: blobs are
	// decrypted in place, so the second must not be opened from the
	// buffer the first was decrypted in.
	second := byPack[pack][1]
	twice := []BlobRef{{first, want[first].typ}, {second, want[second].typ}, {first, want[first].typ}}
	got := map[ID]int{}
	err = r2.LoadBlobs(ctx, pack, twice, func(ref BlobRef, plain []byte) error {
		got[ref.ID]++
		if !bytes.Equal(plain, want[ref.ID].data) {
			t.Errorf("blob %s asked for twice: got %d bytes that differ from the %d saved", ref.ID.Short(), len(plain), len(want[ref.ID].data))
		}
		return nil
	})
	if err != nil || got[first] != 2 || got[second] != 1 {
		t.Errorf("LoadBlobs with a blob asked for twice: %v, calls %v", err, got)
	}
}

func refsOf(ids []ID, blobs map[ID]testBlob) []BlobRef {
	refs := make([]BlobRef, len(ids))
	for i, id := range ids {
		refs[i] = BlobRef{ID: id, Type: blobs[id].typ}
	}
	return refs
}

func TestSaveDeduplicates(t *testing.T) {
	ctx := context.Background()
	r, st := newTestRepo(t)
	a, b := testutil.RandomBytes(1, 5000), testutil.CompressibleBytes(2, 5000)
	var first, again []bool
	stats, err := r.WithBlobSaver(ctx, func(ctx context.Context, s *BlobSaver) error {
		for _, data := range [][]byte{a, b, a, a, b} {
			_, added, err := s.Save(ctx, BlobData, data)
			if err != nil {
				return err
			}
			first = append(first, added)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := []bool{true, true, false, false, false}; !slices.Equal(first, want) {
		t.Errorf("Save reported new = %v, want %v", first, want)
	}
	if stats.Blobs != 5 || stats.NewBlobs != 2 || stats.NewRawBytes != 10000 || stats.Packs != 1 {
		t.Errorf("stats %+v: want 5 blobs, 2 new, 10000 raw bytes, 1 pack", stats)
	}

	// A later run, in this session and in a new one, finds them indexed.
	for _, rr := range []*Repository{r, reopen(t, st, OpenOptions{})} {
		stats, err = rr.WithBlobSaver(ctx, func(ctx context.Context, s *BlobSaver) error {
			for _, data := range [][]byte{a, b} {
				_, added, err := s.Save(ctx, BlobData, data)
				if err != nil {
					return err
				}
				again = append(again, added)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if stats.NewBlobs != 0 || stats.Packs != 0 || stats.IndexObjects != 0 {
			t.Errorf("saving known blobs again: %+v, want nothing new", stats)
		}
	}
	for _, added := range again {
		if added {
			t.Error("Save reported a known blob as new")
		}
	}
	if n := len(objectNames(t, st, storage.KindPack)); n != 1 {
		t.Errorf("%d packs, want 1", n)
	}
}

// TestDedupStoreGrowth saves 20 MiB, then the same 20 MiB again from a new
// session: the store must grow by less than 1%.
func TestDedupStoreGrowth(t *testing.T) {
	r, st := newTestRepo(t)
	const total, chunk = 20 << 20, 256 << 10
	var blobs []testBlob
	for i := range total / chunk {
		if i%2 == 0 {
			blobs = append(blobs, testBlob{BlobData, testutil.RandomBytes(int64(1000+i), chunk)})
		} else {
			blobs = append(blobs, testBlob{BlobData, testutil.CompressibleBytes(int64(1000+i), chunk)})
		}
	}
	saveBlobs(t, r, blobs)
	before := storeSize(t, st)
	if before < total/2 {
		t.Fatalf("the store holds %d bytes after saving %d", before, total)
	}
	_, stats := saveBlobs(t, reopen(t, st, OpenOptions{}), blobs)
	after := storeSize(t, st)
	if grown := after - before; grown*100 >= before {
		t.Errorf("saving the same 20 MiB again grew the store by %d of %d bytes (>= 1%%)", grown, before)
	}
	if stats.NewBlobs != 0 || stats.Packs != 0 {
		t.Errorf("second save: %+v, want no new blobs or packs", stats)
	}
}

// TestLoadBlobWrongType asks for blobs with the other type.
func TestLoadBlobWrongType(t *testing.T) {
	ctx := context.Background()
	r, st := newTestRepo(t)
	ids, _ := saveBlobs(t, r, []testBlob{{BlobData, []byte("file content")}, {BlobTree, []byte(`{"version":1,"x":2}`)}})
	r2 := reopen(t, st, OpenOptions{})
	tests := []struct {
		id  ID
		typ BlobType
	}{
		{ids[0], BlobTree},
		{ids[1], BlobData},
		{ids[0], BlobType(7)},
	}
	for _, tt := range tests {
		_, err := r2.LoadBlob(ctx, tt.typ, tt.id)
		ie := asIntegrity(t, err)
		loc, _ := r2.Index().Lookup(tt.id)
		if ie.Kind != "blob" || ie.Name != tt.id.String() || ie.Pack != loc.Pack.String() {
			t.Errorf("LoadBlob(%s, %s): error names %s %s in %s", tt.typ, tt.id.Short(), ie.Kind, ie.Name, ie.Pack)
		}
	}

	// With the index also claiming the wrong type, the sealed blob's
	// associated data still refuses it.
	loc, _ := r2.Index().Lookup(ids[0])
	x := NewIndex()
	x.Add(PackInfo{ID: loc.Pack, Size: 1 << 20, Entries: []PackEntry{{ID: ids[0], Type: BlobTree, Offset: loc.Offset, Length: loc.Length, RawLength: loc.RawLength}}})
	r2.index = x
	_, err := r2.LoadBlob(ctx, BlobTree, ids[0])
	if ie := asIntegrity(t, err); ie.Name != ids[0].String() {
		t.Errorf("error names %s, want %s", ie.Name, ids[0])
	}
}

// TestSameBytesAsDataAndTree saves equal plaintext as a file chunk and as a
// tree. They must be two blobs, each loadable with its own type: an empty
// directory's tree is `{"version":1}`, and so may be a user's file.
func TestSameBytesAsDataAndTree(t *testing.T) {
	ctx := context.Background()
	for _, order := range [][]BlobType{{BlobData, BlobTree}, {BlobTree, BlobData}} {
		r, st := newTestRepo(t)
		data := []byte(`{"version":1}`)
		ids := map[BlobType]ID{}
		_, err := r.WithBlobSaver(ctx, func(ctx context.Context, s *BlobSaver) error {
			for _, typ := range order {
				id, added, err := s.Save(ctx, typ, data)
				if err != nil {
					return err
				}
				if !added {
					t.Errorf("order %v: the %s blob was taken for a known one", order, typ)
				}
				ids[typ] = id
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if ids[BlobData] == ids[BlobTree] {
			t.Fatalf("order %v: data and tree blobs share id %s", order, ids[BlobData].Short())
		}
		r2 := reopen(t, st, OpenOptions{})
		for typ, id := range ids {
			if got, err := r2.LoadBlob(ctx, typ, id); err != nil || !bytes.Equal(got, data) {
				t.Errorf("order %v: LoadBlob(%s): %q, %v", order, typ, got, err)
			}
		}
	}
}

// TestSealBlobInPlace checks sealBlob, which frames and encrypts in the
// caller's buffer, against every way framing can land: stored as is after
// the sample test, compressed, and compressed then found larger and stored
// as is (a small random payload skips the sample test).
func TestSealBlobInPlace(t *testing.T) {
	r, _ := newTestRepo(t)
	random := benchData(1<<20, false)
	prefix := []byte("bytes already in the buffer")
	for _, tc := range []struct {
		name    string
		payload []byte
		room    int // spare capacity of the buffer before sealing
	}{
		{"empty", nil, 0},
		{"small text", []byte("hello, hello, hello, hello"), 0},
		{"random", random, 0},
		{"random, roomy buffer", random, 2 << 20},
		{"text", bytes.Repeat([]byte("log line 42\n"), 100_000), 0},
		{"small random, zstd tried", random[:2*sampleSize], 0},
		{"small random, zstd tried, roomy buffer", random[:2*sampleSize], 1 << 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := r.codec.blobID(BlobData, tc.payload)
			dst := append(make([]byte, 0, len(prefix)+tc.room), prefix...)
			out := r.codec.sealBlob(dst, BlobData, id, tc.payload, CompressionAuto)
			if !bytes.Equal(out[:len(prefix)], prefix) {
				t.Fatal("sealBlob changed the bytes before its output")
			}
			got, err := r.codec.openBlob(nil, BlobData, id, out[len(prefix):])
			if err != nil {
				t.Fatalf("opening the sealed blob: %v", err)
			}
			if !bytes.Equal(got, tc.payload) {
				t.Fatalf("sealed blob opens to %d bytes that differ from the %d sealed", len(got), len(tc.payload))
			}
		})
	}
}

// TestCompressionChoices saves the same text with each compression choice
// into one repository and checks what each stores and that a reader
// without any setting gets every blob back.
func TestCompressionChoices(t *testing.T) {
	ctx := context.Background()
	r, st := newTestRepo(t)
	stored := map[Compression]int64{}
	ids := map[Compression]ID{}
	for c := range numCompressions {
		// A prefix per choice makes each text a blob of its own.
		text := append([]byte(c.String()), benchData(1<<20, true)...)
		stats, err := r.WithBlobSaver(ctx, func(ctx context.Context, s *BlobSaver) error {
			if err := s.SetCompression(c); err != nil {
				return err
			}
			id, _, err := s.Save(ctx, BlobData, text)
			ids[c] = id
			return err
		})
		if err != nil {
			t.Fatalf("%s: %v", c, err)
		}
		stored[c] = stats.NewStored
		if c == CompressionOff && stats.NewStored <= stats.NewRawBytes {
			t.Errorf("off: stored %d bytes of %d, want them as they are", stats.NewStored, stats.NewRawBytes)
		}
		if c != CompressionOff && stats.NewStored > stats.NewRawBytes/2 {
			t.Errorf("%s: stored %d bytes of %d text, want it compressed", c, stats.NewStored, stats.NewRawBytes)
		}
	}
	if stored[CompressionMax] > stored[CompressionAuto] || stored[CompressionAuto] > stored[CompressionFastest] {
		t.Errorf("stored bytes: max %d, auto %d, fastest %d: want max <= auto <= fastest",
			stored[CompressionMax], stored[CompressionAuto], stored[CompressionFastest])
	}
	r2 := reopen(t, st, OpenOptions{})
	for c, id := range ids {
		got, err := r2.LoadBlob(ctx, BlobData, id)
		if err != nil || !bytes.HasPrefix(got, []byte(c.String())) || len(got) != len(c.String())+1<<20 {
			t.Errorf("%s: LoadBlob: %d bytes, %v", c, len(got), err)
		}
	}
	var s BlobSaver
	if err := s.SetCompression(numCompressions); err == nil {
		t.Error("SetCompression accepted an unknown choice")
	}
}

func TestParseCompression(t *testing.T) {
	for c := range numCompressions {
		got, err := ParseCompression(c.String())
		if err != nil || got != c {
			t.Errorf("ParseCompression(%q) = %v, %v; want %v", c.String(), got, err, c)
		}
	}
	for _, bad := range []string{"", "none", "Auto", "zstd"} {
		_, err := ParseCompression(bad)
		if err == nil || !strings.Contains(err.Error(), "use auto, off, fastest, better, max") {
			t.Errorf("ParseCompression(%q): %v; want an error naming the choices", bad, err)
		}
	}
}

// TestFrameWithoutChecksum checks that compressed payloads are zstd frames
// without a content checksum (the AEAD and the blob id already check the
// bytes), and that frames with one, as writers made them before, still
// decode.
func TestFrameWithoutChecksum(t *testing.T) {
	r, _ := newTestRepo(t)
	text := bytes.Repeat([]byte("log line 42\n"), 200)
	framed := r.codec.frame(nil, text, CompressionAuto)
	// A zstd frame: the magic number, then the frame header descriptor,
	// whose bit 2 is the content checksum flag (RFC 8878, 3.1.1.1.1).
	if len(framed) < 6 || framed[0] != compressionZstd || !bytes.Equal(framed[1:5], []byte{0x28, 0xb5, 0x2f, 0xfd}) {
		t.Fatalf("framed text does not start with the zstd marker and magic: % x", framed[:min(len(framed), 6)])
	}
	if framed[5]&0x04 != 0 {
		t.Errorf("frame header descriptor %#02x has the content checksum flag", framed[5])
	}

	old, err := zstd.NewWriter(nil, zstd.WithEncoderCRC(true))
	if err != nil {
		t.Fatal(err)
	}
	withSum := old.EncodeAll(text, []byte{compressionZstd})
	if withSum[5]&0x04 == 0 {
		t.Fatal("the frame written with a checksum has no checksum flag")
	}
	got, err := r.codec.unframe(nil, withSum, MaxBlobSize)
	if err != nil || !bytes.Equal(got, text) {
		t.Errorf("a frame with a checksum decodes to %d bytes, %v; want the %d bytes of text", len(got), err, len(text))
	}
	withSum[len(withSum)-1] ^= 1 // the checksum's last byte
	if _, err := r.codec.unframe(nil, withSum, MaxBlobSize); err == nil {
		t.Error("a frame whose checksum does not match decodes without an error")
	}
}

// TestFrameConcurrently frames payloads from many goroutines at once, at
// every level, and checks that each frame is the one framing it alone
// gives: an encoder from the pool, whichever goroutine used it before and
// for whatever, leaves nothing in the next frame, so what is stored does
// not depend on scheduling.
func TestFrameConcurrently(t *testing.T) {
	r, _ := newTestRepo(t)
	rng := rand.New(rand.NewPCG(7, 7))
	var payloads [][]byte
	for _, size := range []int{1, 100, 1500, 64 << 10, 300 << 10} {
		text := make([]byte, 0, size)
		for len(text) < size {
			text = append(text, []byte(strings.Repeat("x", rng.IntN(9))+" line "+strings.Repeat("y", rng.IntN(5))+"\n")...)
		}
		random := make([]byte, size)
		for i := range random {
			random[i] = byte(rng.Uint32())
		}
		payloads = append(payloads, text[:size], random)
	}
	type job struct {
		comp Compression
		i    int
	}
	want := map[job][]byte{}
	for comp := range numCompressions {
		for i, p := range payloads {
			want[job{comp, i}] = r.codec.frame(nil, p, comp)
		}
	}

	const workers = 8
	errs := make(chan error, workers)
	for w := range workers {
		go func() {
			var scratch []byte
			for round := range 4 {
				n := int(numCompressions) * len(payloads)
				for k := range n {
					// Each worker takes the jobs in its own order (7 is
					// prime to n), so the encoders pass between goroutines
					// and the levels interleave.
					idx := (k*7 + w*5 + round*3) % n
					j := job{Compression(idx / len(payloads)), idx % len(payloads)}
					scratch = r.codec.frame(scratch, payloads[j.i], j.comp)
					if !bytes.Equal(scratch, want[j]) {
						errs <- fmt.Errorf("%s frame of payload %d (%d bytes) made concurrently differs from the one made alone", j.comp, j.i, len(payloads[j.i]))
						return
					}
					got, err := r.codec.unframe(nil, scratch, MaxBlobSize)
					if err != nil || !bytes.Equal(got, payloads[j.i]) {
						errs <- fmt.Errorf("%s frame of payload %d does not decode to it: %v", j.comp, j.i, err)
						return
					}
				}
			}
			errs <- nil
		}()
	}
	for range workers {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

// TestIndexObjectsMatchTrailers checks that the index objects a run
// writes list each pack's blobs as its trailer does, also for a pack
// stored after a copied pack brought one of its blobs: the saver's
// pending index keeps only the copied location, so that pack's list is
// read back from its trailer.
func TestIndexObjectsMatchTrailers(t *testing.T) {
	ctx := context.Background()
	src, _ := newTestRepo(t)
	a, b := testutil.RandomBytes(1, 5000), testutil.RandomBytes(2, 5000)
	srcIDs, _ := saveBlobs(t, src, []testBlob{{BlobData, a}, {BlobData, b}})
	var srcPack ID
	var srcSize int64
	src.index.Packs(func(id ID, size int64) { srcPack, srcSize = id, size })
	entries := src.index.PackEntries(map[ID]bool{srcPack: true})[srcPack]

	st := mem.New()
	dst, err := Create(ctx, st, []byte(testPassphrase), CreateOptions{KDF: TestKDF, PackSize: testPackSize, ShareKeysWith: src})
	if err != nil {
		t.Fatal(err)
	}
	blobs := mixedBlobs(3, 800, 16<<10) // several packs
	stats, err := dst.WithBlobSaver(ctx, func(ctx context.Context, s *BlobSaver) error {
		// a waits in the pack being filled while the copy brings it too.
		if _, _, err := s.Save(ctx, BlobData, a); err != nil {
			return err
		}
		if _, err := s.CopyPack(ctx, src, srcPack, srcSize, entries); err != nil {
			return err
		}
		for _, bl := range blobs {
			if _, _, err := s.Save(ctx, bl.typ, bl.data); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if stats.Packs < 4 {
		t.Fatalf("%d packs stored, want several", stats.Packs)
	}

	r := reopen(t, st, OpenOptions{})
	ids, err := r.ListObjects(ctx, storage.KindIndex)
	if err != nil {
		t.Fatal(err)
	}
	listed := map[ID]map[ID]PackEntry{}
	sizes := map[ID]int64{}
	for _, id := range ids {
		packs, err := r.loadIndexObject(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range packs {
			if listed[p.ID] == nil {
				listed[p.ID] = map[ID]PackEntry{}
			}
			for _, e := range p.Entries {
				listed[p.ID][e.ID] = e
			}
			sizes[p.ID] = p.Size
		}
	}
	if len(listed) != stats.Packs {
		t.Errorf("index objects list %d packs, the run stored %d", len(listed), stats.Packs)
	}
	withA := 0
	for pack, es := range listed {
		trailer, err := r.ReadPackTrailer(ctx, pack, sizes[pack])
		if err != nil {
			t.Fatal(err)
		}
		if len(trailer) != len(es) {
			t.Errorf("pack %s: the index lists %d blobs, its trailer %d", pack.Short(), len(es), len(trailer))
		}
		for _, e := range trailer {
			if es[e.ID] != e {
				t.Errorf("pack %s: blob %s at %d in the trailer, the index has %+v", pack.Short(), e.ID.Short(), e.Offset, es[e.ID])
			}
		}
		if _, ok := es[srcIDs[0]]; ok {
			withA++
		}
	}
	if withA != 2 {
		t.Errorf("a is listed in %d packs, want 2 (the copied one and the one it was saved to)", withA)
	}
	for _, bl := range append(blobs, testBlob{BlobData, a}, testBlob{BlobData, b}) {
		got, err := r.LoadBlob(ctx, bl.typ, r.codec.blobID(bl.typ, bl.data))
		if err != nil || !bytes.Equal(got, bl.data) {
			t.Fatalf("loading a blob back: %v", err)
		}
	}
}
