package repo

import (
	"context"
	"math/bits"
	"testing"

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
