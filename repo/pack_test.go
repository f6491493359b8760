package repo

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"math/bits"
	"testing"

	"github.com/cofferhq/coffer/internal/testutil"
	"github.com/cofferhq/coffer/storage"
	"github.com/cofferhq/coffer/storage/mem"
)

// padStep is the granularity paddingFor documents for a pack of n bytes
// (docs/format.md §10.5): 2^(floor(log2 n)-9), at least 4 KiB.
func padStep(n int) int {
	return max(4096, 1<<max(0, bits.Len(uint(n))-1-9))
}

func TestPaddingFor(t *testing.T) {
	sizes := []int{1, 2, 100, 4095, 4096, 4097, 8191, 8192, 1 << 20, 1<<20 + 1, 2<<20 - 1,
		2 << 20, 2<<20 + 1, 4<<20 - 1, 4 << 20, 4<<20 + 1, 5<<20 + 12345, 8<<20 - 1, 32 << 20,
		32<<20 + 1, 33<<20 + 777, 64<<20 - 1, 1<<30 + 3, 1<<31 - 1}
	for n := 1; n < 1<<16; n += 97 {
		sizes = append(sizes, n)
	}
	for n := 4 << 20; n < 40<<20; n += 1<<20 + 4093 {
		sizes = append(sizes, n)
	}
	for _, n := range sizes {
		pad := paddingFor(n)
		step := padStep(n)
		if pad < 0 || pad >= step {
			t.Errorf("paddingFor(%d) = %d, want 0 <= pad < %d", n, pad, step)
		}
		if (n+pad)%step != 0 {
			t.Errorf("paddingFor(%d) = %d: %d is not a multiple of %d", n, pad, n+pad, step)
		}
		// The padded size is a multiple of the step for its own size too, so
		// a reader can check a stored size without knowing the unpadded one.
		if total := n + pad; total%padStep(total) != 0 {
			t.Errorf("padded size %d is not a multiple of %d", total, padStep(total))
		}
		// docs/format.md §10.5: pad < step <= n/512 from 2 MiB on, which is
		// under 0.2%.
		if n >= 2<<20 && pad*512 >= n {
			t.Errorf("paddingFor(%d) = %d, %.3f%% overhead, want < 1/512", n, pad, 100*float64(pad)/float64(n))
		}
	}
	for _, n := range []int{0, -1, -4096} {
		if pad := paddingFor(n); pad != 0 {
			t.Errorf("paddingFor(%d) = %d, want 0", n, pad)
		}
	}
}

// TestStoredPackSizes checks packs as the saver writes them: their sizes
// are multiples of the documented step, with little padding.
func TestStoredPackSizes(t *testing.T) {
	ctx := context.Background()
	for _, packSize := range []int{1 << 20, 5 << 20} {
		st := mem.New()
		r, err := Create(ctx, st, []byte("pw"), CreateOptions{KDF: TestKDF, PackSize: packSize})
		if err != nil {
			t.Fatal(err)
		}
		_, stats := saveBlobs(t, r, mixedBlobs(uint64(packSize), 300, 160<<10))
		if stats.Packs < 2 {
			t.Fatalf("pack size %d: %d packs, want several", packSize, stats.Packs)
		}
		big := 0
		for _, name := range objectNames(t, st, storage.KindPack) {
			b := getObject(t, st, storage.KindPack, name)
			n := len(b)
			if n >= 4<<20 {
				big++
			}
			if n%padStep(n) != 0 {
				t.Errorf("pack %s: %d bytes is not a multiple of %d", name[:8], n, padStep(n))
			}
			id, _ := ParseID(name)
			entries, err := r.ReadPackTrailer(ctx, id, int64(n))
			if err != nil {
				t.Fatal(err)
			}
			used := 0
			for _, e := range entries {
				used += int(e.Length)
			}
			trailer, _ := parsePackTail(b[n-packTailSize:], int64(n))
			pad := n - used - trailer - packTailSize
			if pad < 0 || pad >= padStep(n) {
				t.Errorf("pack %s: %d bytes of padding, want under %d", name[:8], pad, padStep(n))
			}
			if n >= 4<<20 && float64(pad) >= 0.002*float64(n) {
				t.Errorf("pack %s of %d bytes: %d bytes of padding is 0.2%% or more", name[:8], n, pad)
			}
		}
		if packSize >= 4<<20 && big == 0 {
			t.Errorf("pack size %d: no pack of 4 MiB or more to check", packSize)
		}
	}
}

// TestPacksWithinPackSize checks that no stored pack exceeds the pack a
// saver was given, trailer, tail and padding counted, for blobs up to
// MaxBlobInPack of it; and that a blob as large as the pack size gets a
// pack of its own, the one that is larger.
func TestPacksWithinPackSize(t *testing.T) {
	ctx := context.Background()
	for _, packSize := range []int{MinPackSize, 1 << 20, 3<<20 + 12345} {
		t.Run(fmt.Sprint(packSize), func(t *testing.T) {
			r, st := newTestRepo(t)
			maxBlob := MaxBlobInPack(packSize)
			blobs := mixedBlobs(uint64(packSize), 120, 200<<10)
			// Blobs of exactly the largest size, incompressible, and some
			// just under it.
			for i := range 4 {
				blobs = append(blobs, testBlob{BlobData, testutil.RandomBytes(int64(uint64(i)<<40|uint64(packSize)), maxBlob-i*100)})
				blobs = append(blobs, testBlob{BlobTree, testutil.RandomBytes(int64(uint64(i)<<44|uint64(packSize)), maxBlob-i*7)})
			}
			oversize := testutil.RandomBytes(99, packSize)
			blobs = append(blobs, testBlob{BlobData, oversize})
			stats, err := r.WithBlobSaver(ctx, func(ctx context.Context, s *BlobSaver) error {
				if err := s.SetPackSize(packSize); err != nil {
					return err
				}
				if s.MaxBlob() != maxBlob {
					t.Errorf("MaxBlob() = %d, want %d", s.MaxBlob(), maxBlob)
				}
				for _, b := range blobs {
					if _, _, err := s.Save(ctx, b.typ, b.data); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			larger := 0
			for _, name := range objectNames(t, st, storage.KindPack) {
				b := getObject(t, st, storage.KindPack, name)
				if len(b) <= packSize {
					continue
				}
				larger++
				id, _ := ParseID(name)
				entries, err := r.ReadPackTrailer(ctx, id, int64(len(b)))
				if err != nil {
					t.Fatal(err)
				}
				if len(entries) != 1 || int(entries[0].RawLength) != len(oversize) {
					t.Errorf("pack %s of %d bytes is over the pack size %d: %d blobs, the first %d bytes of plaintext",
						name[:8], len(b), packSize, len(entries), entries[0].RawLength)
				}
			}
			if larger != 1 {
				t.Errorf("%d packs over the pack size %d, want 1 (the blob of the pack size)", larger, packSize)
			}
			if stats.Packs < 10 {
				t.Errorf("%d packs, want many", stats.Packs)
			}
			r2 := reopen(t, st, OpenOptions{})
			for _, b := range blobs {
				id := r2.codec.blobID(b.typ, b.data)
				got, err := r2.LoadBlob(ctx, b.typ, id)
				if err != nil || !bytes.Equal(got, b.data) {
					t.Fatalf("blob %s: %d bytes back, %v", id.Short(), len(got), err)
				}
			}
		})
	}
	for _, n := range []int{MinPackSize - 1, MaxPackSize + 1} {
		if CheckPackSize(n) == nil {
			t.Errorf("CheckPackSize(%d) = nil", n)
		}
	}
}

// TestPackBuilderOrdersBufferedAndDirectWrites checks that blobs a pack
// gathers in its buffer and blobs written past it land in the order they
// were added, at the offsets their entries give, and that the pack's
// name is the SHA-256 of what its file holds.
func TestPackBuilderOrdersBufferedAndDirectWrites(t *testing.T) {
	r, _ := newTestRepo(t)
	p := newTestPackBuilder(t)
	sizes := []int{100, 5 << 10, directWriteMin, 10, packWriteBuffer * 2, directWriteMin - 1,
		directWriteMin + 1, 1, 600 << 10, 700 << 10, packWriteBuffer - 3, 3 << 10, packWriteBuffer}
	var blobs [][]byte
	for i, n := range sizes {
		b := testutil.RandomBytes(int64(i+1), n)
		blobs = append(blobs, b)
		mustAdd(t, p, BlobData, ID(sha256.Sum256(b)), b, n)
	}
	data, id := finishPack(t, p, r.codec)
	if int64(len(data)) != p.size {
		t.Fatalf("pack file holds %d bytes, the builder counted %d", len(data), p.size)
	}
	if want := ID(sha256.Sum256(data)); id != want {
		t.Errorf("pack named %s, its bytes hash to %s", id.Short(), want.Short())
	}
	offset := uint32(0)
	for i, e := range p.entries {
		if e.Offset != offset || int(e.Length) != len(blobs[i]) {
			t.Fatalf("blob %d at %d+%d, want %d+%d", i, e.Offset, e.Length, offset, len(blobs[i]))
		}
		if !bytes.Equal(data[e.Offset:e.Offset+e.Length], blobs[i]) {
			t.Errorf("blob %d (%d bytes) differs in the pack", i, len(blobs[i]))
		}
		offset += e.Length
	}
}

// TestPackNameIsHashOfFile checks that a finished pack's name is the
// SHA-256 of its file's bytes, also when the trailer of many small blobs
// is large enough to bypass the write buffer as a large blob does.
func TestPackNameIsHashOfFile(t *testing.T) {
	for _, tc := range []struct {
		name        string
		blobs, size int
		bigTrailer  bool
	}{
		{"one small blob", 1, 100, false},
		{"trailer past the buffer", directWriteMin/trailerEntryMax*2 + 1, 10, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, _ := newTestRepo(t)
			p := newTestPackBuilder(t)
			for i := range tc.blobs {
				b := testutil.RandomBytes(int64(i+1), tc.size)
				mustAdd(t, p, BlobData, ID(sha256.Sum256(b)), b, len(b))
			}
			if got := len(encodeTrailer(p.entries)) >= directWriteMin; got != tc.bigTrailer {
				t.Fatalf("trailer of %d bytes: past directWriteMin %v, want %v", len(encodeTrailer(p.entries)), got, tc.bigTrailer)
			}
			data, id := finishPack(t, p, r.codec)
			if int64(len(data)) != p.size {
				t.Fatalf("pack file holds %d bytes, the builder counted %d", len(data), p.size)
			}
			if want := ID(sha256.Sum256(data)); id != want {
				t.Errorf("pack named %s, its bytes hash to %s", id.Short(), want.Short())
			}
		})
	}
}
