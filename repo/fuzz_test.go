package repo

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"testing"

	"github.com/cofferhq/coffer/internal/testutil"
	"github.com/cofferhq/coffer/storage"
)

// fuzzPack is a real pack built by packBuilder, for seeds.
type fuzzPack struct {
	data        []byte
	entries     []PackEntry
	trailer     []byte // plaintext trailer
	trailerFrom int    // offset of the sealed trailer, the end of the blob data
}

func newFuzzPack(tb testing.TB) (*Repository, fuzzPack) {
	r, _ := newTestRepo(tb)
	p := newTestPackBuilder(tb)
	for _, b := range mixedBlobs(77, 6, 3000) {
		id := r.codec.blobID(b.typ, b.data)
		sealed := r.codec.sealBlob(nil, b.typ, id, b.data, CompressionAuto)
		mustAdd(tb, p, b.typ, id, sealed, len(b.data))
	}
	entries := append([]PackEntry(nil), p.entries...)
	trailer := encodeTrailer(entries)
	data, _ := finishPack(tb, p, r.codec)
	n, err := parsePackTail(data[len(data)-packTailSize:], int64(len(data)))
	if err != nil {
		tb.Fatal(err)
	}
	return r, fuzzPack{data: data, entries: entries, trailer: trailer, trailerFrom: len(data) - packTailSize - n}
}

// maxFuzzDataEnd bounds the data size FuzzDecodeTrailer passes: offsets and
// lengths are uint32, and packs are at most 1 GiB plus a blob, so real
// callers never pass more than 4 GiB.
const maxFuzzDataEnd = math.MaxUint32

func FuzzDecodeTrailer(f *testing.F) {
	_, p := newFuzzPack(f)
	end := int64(p.trailerFrom)
	if got, err := decodeTrailer(p.trailer, end); err != nil || !reflect.DeepEqual(got, p.entries) {
		f.Fatalf("a real trailer decodes to %v, %v; want %v", got, err, p.entries)
	}
	f.Add(p.trailer, end)
	f.Add(encodeTrailer(nil), int64(0))
	f.Add(encodeTrailer(p.entries[:1]), end)
	last := p.entries[len(p.entries)-1]
	f.Add(p.trailer, int64(last.Offset)+int64(last.Length)-1)          // last blob outside the data
	f.Add(p.trailer[:len(p.trailer)-1], end)                           // truncated
	f.Add(append(bytes.Clone(p.trailer), 0), end)                      // trailing byte
	f.Add(append([]byte{2}, p.trailer[1:]...), end)                    // unknown version
	f.Add([]byte{packVersion, 0xff, 0xff, 0xff, 0xff, 0x0f}, end)      // huge count
	f.Add(encodeTrailer([]PackEntry{p.entries[1], p.entries[0]}), end) // out of order
	f.Add(encodeTrailer([]PackEntry{p.entries[0], p.entries[0]}), end) // duplicate
	bad := p.entries[0]
	bad.Type = 9
	f.Add(encodeTrailer([]PackEntry{bad}), end)
	f.Add([]byte{}, int64(-1))

	f.Fuzz(func(t *testing.T, b []byte, dataEnd int64) {
		if dataEnd > maxFuzzDataEnd {
			dataEnd %= maxFuzzDataEnd + 1
		}
		entries, err := decodeTrailer(b, dataEnd)
		if err != nil {
			if entries != nil {
				t.Fatalf("decodeTrailer returned entries with error %v", err)
			}
			return
		}
		prevEnd := int64(0)
		for i, e := range entries {
			start, stop := int64(e.Offset), int64(e.Offset)+int64(e.Length)
			switch {
			case e.Type != BlobData && e.Type != BlobTree:
				t.Fatalf("entry %d: type %d accepted", i, e.Type)
			case e.Length <= sealOverhead || e.RawLength > MaxBlobSize:
				t.Fatalf("entry %d: length %d, raw length %d accepted", i, e.Length, e.RawLength)
			case stop > dataEnd:
				t.Fatalf("entry %d at %d+%d lies outside %d data bytes", i, e.Offset, e.Length, dataEnd)
			case start < prevEnd:
				t.Fatalf("entry %d at %d overlaps or precedes the previous one, ending at %d", i, start, prevEnd)
			}
			prevEnd = stop
		}
		again := encodeTrailer(entries)
		decoded, err := decodeTrailer(again, dataEnd)
		if err != nil || !reflect.DeepEqual(decoded, entries) {
			t.Fatalf("re-encoded trailer decodes to %v, %v; want %v", decoded, err, entries)
		}
		// Varints may be written longer than needed; otherwise the
		// encoding is the canonical one.
		if len(again) > len(b) || len(again) == len(b) && !bytes.Equal(again, b) {
			t.Fatalf("re-encoding %x gave %x", b, again)
		}
	})
}

func FuzzParsePackTail(f *testing.F) {
	_, p := newFuzzPack(f)
	size := int64(len(p.data))
	tail := p.data[len(p.data)-packTailSize:]
	if n, err := parsePackTail(tail, size); err != nil || n != len(p.data)-packTailSize-p.trailerFrom {
		f.Fatalf("a real tail parses to %d, %v", n, err)
	}
	f.Add(bytes.Clone(tail), size)
	f.Add(bytes.Clone(tail), int64(packTailSize)+sealOverhead)
	f.Add(bytes.Clone(tail), int64(packTailSize))
	f.Add(bytes.Clone(tail), int64(0))
	f.Add(bytes.Clone(tail), int64(-1))
	f.Add(tail[1:], size)
	f.Add(append([]byte{0xff, 0xff, 0xff, 0xff}, packMagic[:]...), int64(math.MaxInt64))
	f.Add(append([]byte{0, 0, 0, 0}, packMagic[:]...), size)
	f.Add(append(bytes.Clone(tail[:4]), 'C', 'P', 'K', packVersion+1), size)
	f.Add(append(bytes.Clone(tail[:4]), 'C', 'P', 'K', 0), size)
	f.Add(append(bytes.Clone(tail[:4]), 'C', 'P', 'X', packVersion), size)

	f.Fuzz(func(t *testing.T, tail []byte, size int64) {
		n, err := parsePackTail(tail, size)
		if err != nil {
			if n != 0 {
				t.Fatalf("parsePackTail returned %d with error %v", n, err)
			}
			if errors.Is(err, ErrNewerFormat) && (len(tail) != packTailSize || tail[7] <= packVersion) {
				t.Fatalf("ErrNewerFormat for tail %x", tail)
			}
			return
		}
		if len(tail) != packTailSize || !bytes.Equal(tail[4:], packMagic[:]) {
			t.Fatalf("accepted tail %x", tail)
		}
		if n < sealOverhead || n > maxTrailerSize || int64(n) > size-packTailSize || uint32(n) != binary.LittleEndian.Uint32(tail) {
			t.Fatalf("tail %x of a %d-byte pack: trailer length %d accepted", tail, size, n)
		}
	})
}

func FuzzDecodeIndex(f *testing.F) {
	r, p := newFuzzPack(f)
	info := PackInfo{ID: ID{1, 2, 3}, Size: int64(len(p.data)), Entries: p.entries}
	if got, err := decodeIndex(encodeIndex([]PackInfo{info})); err != nil || !reflect.DeepEqual(got, []PackInfo{info}) {
		f.Fatalf("an encoded index decodes to %v, %v", got, err)
	}
	f.Add(encodeIndex([]PackInfo{info}))
	f.Add(encodeIndex(nil))
	f.Add(encodeIndex([]PackInfo{{ID: ID{9}, Size: 0, Entries: []PackEntry{}}, info}))
	// A real index object written by a backup.
	saveBlobs(f, r, mixedBlobs(78, 20, 100<<10))
	for _, name := range objectNames(f, r.Store(), storage.KindIndex) {
		id, _ := ParseID(name)
		plain, err := r.LoadObject(context.Background(), storage.KindIndex, id)
		if err != nil {
			f.Fatal(err)
		}
		if _, err := decodeIndex(plain); err != nil {
			f.Fatalf("a stored index does not decode: %v", err)
		}
		f.Add(plain)
	}
	valid := encodeIndex([]PackInfo{info})
	f.Add(valid[:len(valid)-1])
	f.Add(append(bytes.Clone(valid), 0))
	f.Add(append([]byte{indexVersion + 1}, valid[1:]...))
	f.Add(append([]byte{0}, valid[1:]...))
	f.Add([]byte{indexVersion, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Add([]byte{})
	small := info
	small.Size = 10
	f.Add(encodeIndex([]PackInfo{small})) // blobs outside the pack

	f.Fuzz(func(t *testing.T, b []byte) {
		packs, err := decodeIndex(b)
		if err != nil {
			if errors.Is(err, ErrNewerFormat) && (len(b) == 0 || b[0] <= indexVersion) {
				t.Fatalf("ErrNewerFormat for index %x", b)
			}
			return
		}
		for _, p := range packs {
			if p.Size < 0 {
				t.Fatalf("pack %s: negative size %d accepted", p.ID.Short(), p.Size)
			}
			for _, e := range p.Entries {
				if e.Type != BlobData && e.Type != BlobTree || e.Length <= sealOverhead ||
					e.RawLength > MaxBlobSize || int64(e.Offset)+int64(e.Length) > p.Size {
					t.Fatalf("pack %s of %d bytes: entry %+v accepted", p.ID.Short(), p.Size, e)
				}
			}
		}
		again := encodeIndex(packs)
		decoded, err := decodeIndex(again)
		if err != nil || !reflect.DeepEqual(decoded, packs) {
			t.Fatalf("re-encoded index decodes to %v, %v; want %v", decoded, err, packs)
		}
		if !bytes.Equal(encodeIndex(decoded), again) {
			t.Fatal("encodeIndex is not stable over a round trip")
		}
		// Varints may be written longer than needed; otherwise the
		// encoding is the canonical one.
		if len(again) > len(b) || len(again) == len(b) && !bytes.Equal(again, b) {
			t.Fatalf("re-encoding %x gave %x", b, again)
		}
	})
}

func FuzzParseKeyFile(f *testing.F) {
	mk, err := newMasterKeys()
	if err != nil {
		f.Fatal(err)
	}
	valid, err := sealKey(mk, []byte("pw"), TestKDF)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(valid)
	var kf keyFile
	if err := json.Unmarshal(valid, &kf); err != nil {
		f.Fatal(err)
	}
	if _, err := parseKeyFile(valid); err != nil {
		f.Fatalf("a real key object does not parse: %v", err)
	}
	variant := func(edit func(k *keyFile)) []byte {
		k := kf
		edit(&k)
		return mustJSON(k)
	}
	if _, err := parseKeyFile(variant(func(k *keyFile) { k.Version = 2 })); !errors.Is(err, ErrNewerFormat) {
		f.Fatalf("key version 2: %v, want ErrNewerFormat", err)
	}
	f.Add(variant(func(k *keyFile) { k.Params = DefaultKDF }))
	f.Add(variant(func(k *keyFile) { k.Version = 2 }))
	f.Add(variant(func(k *keyFile) { k.Version = 0 }))
	f.Add(variant(func(k *keyFile) { k.KDF = "scrypt" }))
	f.Add(variant(func(k *keyFile) { k.Salt = k.Salt[:15] }))
	f.Add(variant(func(k *keyFile) { k.Params.Time = 0 }))
	f.Add(variant(func(k *keyFile) { k.Params.Time = 101 }))
	f.Add(variant(func(k *keyFile) { k.Params.Threads = 0 }))
	f.Add(variant(func(k *keyFile) { k.Params.MemoryKiB = 7 }))
	f.Add(variant(func(k *keyFile) { k.Params.MemoryKiB = 4<<20 + 1 }))
	f.Add(variant(func(k *keyFile) { k.Data = nil }))
	f.Add(bytes.Replace(valid, []byte(`{`), []byte(`{"extra":true,`), 1))
	f.Add(valid[:len(valid)/2])
	f.Add(append(bytes.Clone(valid), `{}`...))
	f.Add([]byte(`null`))
	f.Add([]byte{})

	f.Fuzz(func(t *testing.T, b []byte) {
		kf, err := parseKeyFile(b)
		if err != nil {
			if kf != nil {
				t.Fatalf("parseKeyFile returned a key with error %v", err)
			}
			return
		}
		p := kf.Params
		if kf.Version != keyVersion || kf.KDF != "argon2id" || len(kf.Salt) < 16 ||
			p.Time < 1 || p.Time > 100 || p.Threads < 1 || p.MemoryKiB < 8*uint32(p.Threads) || p.MemoryKiB > 4<<20 {
			t.Fatalf("accepted key %+v", kf)
		}
		// What parses re-encodes to a key with the same authenticated
		// header and sealed data.
		again, err := parseKeyFile(mustJSON(kf))
		if err != nil {
			t.Fatalf("re-encoded key does not parse: %v", err)
		}
		if !bytes.Equal(again.ad(), kf.ad()) || !bytes.Equal(again.Data, kf.Data) {
			t.Fatalf("re-encoded key differs: %+v, want %+v", again, kf)
		}
	})
}

func FuzzOpenObject(f *testing.F) {
	r, _ := newTestRepo(f)
	valid := map[string]bool{}
	kinds := []storage.Kind{storage.KindIndex, storage.KindSnapshot, configKind}
	for i, plain := range [][]byte{
		encodeIndex(nil),
		[]byte(`{"version":1}`),
		bytes.Repeat([]byte("compressible "), 1000),
		testutil.RandomBytes(5, 2000),
		{},
	} {
		sealed, err := r.sealObject(kinds[i%len(kinds)], plain)
		if err != nil {
			f.Fatal(err)
		}
		if got, err := r.openObject(kinds[i%len(kinds)], "seed", sealed); err != nil || !bytes.Equal(got, plain) {
			f.Fatalf("a sealed object opens to %d bytes, %v", len(got), err)
		}
		valid[string(sealed)] = true
		f.Add(sealed)
		f.Add(flipped(sealed, len(sealed)-1))
		f.Add(sealed[:len(sealed)-1])
		f.Add(append([]byte{objectVersion + 1}, sealed[1:]...))
		f.Add(append([]byte{0}, sealed[1:]...))
	}
	f.Add([]byte{})
	f.Add([]byte{objectVersion})
	f.Add(append([]byte{objectVersion}, make([]byte, sealOverhead)...))
	f.Add([]byte{0xff, 1, 2, 3})

	f.Fuzz(func(t *testing.T, b []byte) {
		for _, kind := range kinds {
			plain, err := r.openObject(kind, "fuzzed", b)
			if err == nil {
				if !valid[string(b)] {
					t.Fatalf("openObject accepted %d bytes that were never sealed", len(b))
				}
				continue
			}
			if plain != nil {
				t.Fatalf("openObject returned plaintext with error %v", err)
			}
			if errors.Is(err, ErrNewerFormat) {
				if b[0] <= objectVersion {
					t.Fatalf("ErrNewerFormat for version byte %d", b[0])
				}
				continue
			}
			var ie *IntegrityError
			if !errors.Is(err, ErrCorrupt) || !errors.As(err, &ie) || ie.Kind != kind || ie.Name != "fuzzed" {
				t.Fatalf("openObject(%s): %v; want an IntegrityError naming it", kind, err)
			}
		}
	})
}
