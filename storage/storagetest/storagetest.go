// Package storagetest is the conformance suite that every storage.Store
// implementation must pass.
//
// The suite uses only the storage API, so it states the contract that the
// rest of coffer relies on; a backend quirk that the suite does not catch is
// a hole in the suite, to be fixed here rather than in a backend's own tests.
//
// As coffer does, the suite names every object of a kind other than
// storage.KindLock by the lowercase hex SHA-256 of its bytes (see nameOf),
// since a backend may rely on that; only locks get arbitrary names. Where
// a test needs one name in two kinds it stores the same bytes in both.
package storagetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/cofferhq/coffer/storage"
)

// Run runs the conformance suite against the stores that newStore makes.
//
// newStore must return a fresh store on which Create has not been called
// and which shares nothing with stores returned earlier; it is called once
// per subtest, with that subtest's t, so it can use t.TempDir or
// t.Cleanup. Run closes every store it gets.
func Run(t *testing.T, newStore func(t *testing.T) storage.Store) {
	t.Helper()
	s := suite{newStore: newStore}
	tests := []struct {
		name string
		fn   func(*testing.T)
	}{
		{"OpenFresh", s.testOpenFresh},
		{"CreateOpen", s.testCreateOpen},
		{"CreateTwice", s.testCreateTwice},
		{"RoundTrip", s.testRoundTrip},
		{"StreamLarge", s.testStreamLarge},
		{"ShortLockNames", s.testShortLockNames},
		{"Range", s.testRange},
		{"RangeEmptyObject", s.testRangeEmptyObject},
		{"Missing", s.testMissing},
		{"KindsApart", s.testKindsApart},
		{"List", s.testList},
		{"ListStops", s.testListStops},
		{"Delete", s.testDelete},
		{"PutTwice", s.testPutTwice},
		{"LockOverwrite", s.testLockOverwrite},
		{"InvalidNames", s.testInvalidNames},
		{"MismatchedName", s.testMismatchedName},
		{"FailingBody", s.testFailingBody},
		{"ShortBody", s.testShortBody},
		{"BodyIsItsSize", s.testBodyIsItsSize},
		{"BodyMidFile", s.testBodyMidFile},
		{"FailedPutKeepsLock", s.testFailedPutKeepsLock},
		{"Concurrent", s.testConcurrent},
		{"CancelledContext", s.testCancelledContext},
		{"CancelMidway", s.testCancelMidway},
	}
	if _, ok := s.fresh(t).(storage.FilePutter); ok {
		tests = append(tests, struct {
			name string
			fn   func(*testing.T)
		}{"PutFile", s.testPutFile})
	}
	for _, tt := range tests {
		t.Run(tt.name, tt.fn)
	}
}

type suite struct {
	newStore func(t *testing.T) storage.Store
}

// fresh returns a new, not yet created store that is closed when t ends.
func (s suite) fresh(t *testing.T) storage.Store {
	t.Helper()
	st := s.newStore(t)
	if st == nil {
		t.Fatal("newStore returned nil")
	}
	t.Cleanup(func() {
		if err := st.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return st
}

// created returns a new store on which Create has succeeded.
func (s suite) created(t *testing.T) storage.Store {
	t.Helper()
	st := s.fresh(t)
	if err := st.Create(t.Context(), []byte("coffer test config\n")); err != nil {
		t.Fatalf("Create on a fresh store: %v", err)
	}
	return st
}

func (s suite) testOpenFresh(t *testing.T) {
	st := s.fresh(t)
	config, err := st.Open(t.Context())
	if !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("Open on a fresh store = %q, %v; want an error wrapping ErrNotFound", config, err)
	}
}

func (s suite) testCreateOpen(t *testing.T) {
	st := s.fresh(t)
	config := randomData(4096)
	if err := st.Create(t.Context(), config); err != nil {
		t.Fatalf("Create: %v", err)
	}
	got, err := st.Open(t.Context())
	if err != nil {
		t.Fatalf("Open after Create: %v", err)
	}
	if !bytes.Equal(got, config) {
		t.Fatalf("Open returned %d bytes that differ from the %d given to Create", len(got), len(config))
	}
}

func (s suite) testCreateTwice(t *testing.T) {
	st := s.fresh(t)
	first := []byte("first config")
	if err := st.Create(t.Context(), first); err != nil {
		t.Fatalf("Create: %v", err)
	}
	err := st.Create(t.Context(), []byte("second config"))
	if !errors.Is(err, storage.ErrExists) {
		t.Fatalf("second Create = %v, want an error wrapping ErrExists", err)
	}
	got, err := st.Open(t.Context())
	if err != nil || !bytes.Equal(got, first) {
		t.Fatalf("Open after a refused Create = %q, %v; want the first config %q", got, err, first)
	}
}

func (s suite) testRoundTrip(t *testing.T) {
	st := s.created(t)
	for _, kind := range storage.Kinds {
		for _, size := range []int{0, 1, 1 << 20} {
			t.Run(fmt.Sprintf("%s/%d", kind, size), func(t *testing.T) {
				data := randomData(size)
				name := nameOf(kind, data)
				put(t, st, kind, name, data)
				if got := get(t, st, kind, name, nil); !bytes.Equal(got, data) {
					t.Fatalf("Get %s %s returned %d bytes that differ from the %d put", kind, name, len(got), size)
				}
				if got := stat(t, st, kind, name); got != int64(size) {
					t.Fatalf("Stat %s %s = %d, want %d", kind, name, got, size)
				}
			})
		}
	}
}

// testStreamLarge puts an object generated on the fly, so that the suite
// never holds it in memory: a backend must read a body where it is, not
// copy it whole.
func (s suite) testStreamLarge(t *testing.T) {
	const size = 40 << 20
	st := s.created(t)
	gen := generator{seed: [32]byte{1, 2, 3}}
	want := hashOf(io.NewSectionReader(gen, 0, size))
	name := hex.EncodeToString(want)

	if err := st.Put(t.Context(), storage.KindPack, name, storage.NewBody(gen, size)); err != nil {
		t.Fatalf("Put of a %d-byte streamed object: %v", size, err)
	}

	if got := stat(t, st, storage.KindPack, name); got != size {
		t.Fatalf("Stat = %d, want %d", got, size)
	}

	rc, err := st.Get(t.Context(), storage.KindPack, name, nil)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	h := sha256.New()
	n, err := io.Copy(h, rc)
	if cerr := rc.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatalf("reading the object back after %d bytes: %v", n, err)
	}
	if n != size || !bytes.Equal(h.Sum(nil), want) {
		t.Fatalf("Get returned %d bytes with a different hash from the %d put", n, size)
	}

	// A range deep inside the object, checked against the regenerated
	// bytes, catches backends that ignore the offset for large objects.
	rng := storage.Range{Offset: 23<<20 + 7, Length: 70000}
	wantPart := make([]byte, rng.Length)
	if _, err := gen.ReadAt(wantPart, rng.Offset); err != nil {
		t.Fatal(err)
	}
	if got := get(t, st, storage.KindPack, name, &rng); !bytes.Equal(got, wantPart) {
		t.Fatalf("Get %v of the large object returned wrong bytes", rng)
	}
}

// testShortLockNames uses the shortest valid names, which a backend that
// derives paths, tags or shards from a name prefix must still handle. Only
// locks can have them: other names are SHA-256 hex.
func (s suite) testShortLockNames(t *testing.T) {
	st := s.created(t)
	names := []string{"a", "0", "ab", "abc", "a-b", "z9"}
	want := make(map[string]int64)
	for i, name := range names {
		data := randomData(i + 1)
		put(t, st, storage.KindLock, name, data)
		want[name] = int64(len(data))
	}
	for name, size := range want {
		if got := get(t, st, storage.KindLock, name, nil); int64(len(got)) != size {
			t.Errorf("Get lock %s returned %d bytes, want %d", name, len(got), size)
		}
	}
	checkList(t, st, storage.KindLock, want)
}

func (s suite) testRange(t *testing.T) {
	st := s.created(t)
	const size = 1000
	for _, kind := range storage.Kinds {
		data := randomData(size)
		name := nameOf(kind, data)
		put(t, st, kind, name, data)

		valid := []storage.Range{
			{Offset: 0, Length: 1},          // first byte
			{Offset: 300, Length: 400},      // middle
			{Offset: size - 1, Length: 1},   // last byte
			{Offset: 0, Length: size},       // whole object
			{Offset: 1, Length: size - 1},   // all but the first byte
			{Offset: 0, Length: size - 1},   // all but the last byte
			{Offset: size / 2, Length: 123}, // arbitrary
		}
		for _, rng := range valid {
			got := get(t, st, kind, name, &rng)
			if want := data[rng.Offset : rng.Offset+rng.Length]; !bytes.Equal(got, want) {
				t.Errorf("Get %s %v returned %d bytes that differ from the %d expected", kind, rng, len(got), len(want))
			}
		}

		invalid := []storage.Range{
			{Offset: 0, Length: size + 1},          // longer than the object
			{Offset: size - 1, Length: 2},          // runs past the end
			{Offset: size, Length: 1},              // starts at the end
			{Offset: size + 10, Length: 1},         // starts past the end
			{Offset: 0, Length: 0},                 // zero length
			{Offset: 10, Length: -1},               // negative length
			{Offset: -1, Length: 1},                // negative offset
			{Offset: 1, Length: 1<<63 - 1},         // overflows Offset+Length
			{Offset: 1<<63 - 1, Length: 1<<63 - 1}, // overflows badly
		}
		for _, rng := range invalid {
			checkBadRange(t, st, kind, name, rng)
		}
	}
}

func (s suite) testRangeEmptyObject(t *testing.T) {
	st := s.created(t)
	name := nameOf(storage.KindIndex, nil)
	put(t, st, storage.KindIndex, name, nil)
	for _, rng := range []storage.Range{{Offset: 0, Length: 1}, {Offset: 0, Length: 0}} {
		checkBadRange(t, st, storage.KindIndex, name, rng)
	}
}

func (s suite) testMissing(t *testing.T) {
	st := s.created(t)
	// The same bytes, and so the same name, in every other kind must not
	// make the missing one appear: kinds are separate namespaces.
	data := randomData(100)
	shared := hashName(data)
	for _, kind := range storage.Kinds {
		for _, other := range storage.Kinds {
			if other != kind {
				put(t, st, other, shared, data)
			}
		}
		for _, name := range []string{randomName(), shared} {
			checkAbsent(t, st, kind, name)
			rng := storage.Range{Offset: 0, Length: 1}
			if rc, err := st.Get(t.Context(), kind, name, &rng); !errors.Is(err, storage.ErrNotFound) {
				closeIfNotNil(rc)
				t.Errorf("ranged Get of missing %s %s = %v, want an error wrapping ErrNotFound", kind, name, err)
			}
			if err := st.Delete(t.Context(), kind, name); !errors.Is(err, storage.ErrNotFound) {
				t.Errorf("Delete of missing %s %s = %v, want an error wrapping ErrNotFound", kind, name, err)
			}
		}
		for _, other := range storage.Kinds {
			if other != kind {
				if err := st.Delete(t.Context(), other, shared); err != nil {
					t.Fatalf("Delete %s %s: %v", other, shared, err)
				}
			}
		}
	}
}

// testKindsApart stores the same bytes, and so the same name, as every
// kind, then deletes them one kind at a time: a delete in one kind must
// leave the object whole in every other.
func (s suite) testKindsApart(t *testing.T) {
	st := s.created(t)
	data := randomData(3000)
	name := hashName(data)
	for _, kind := range storage.Kinds {
		put(t, st, kind, name, data)
	}
	for i, kind := range storage.Kinds {
		if err := st.Delete(t.Context(), kind, name); err != nil {
			t.Fatalf("Delete %s %s: %v", kind, name, err)
		}
		checkAbsent(t, st, kind, name)
		for _, other := range storage.Kinds[i+1:] {
			if got := get(t, st, other, name, nil); !bytes.Equal(got, data) {
				t.Errorf("Get %s %s after deleting the %s of that name returned %d bytes that differ from the %d put",
					other, name, kind, len(got), len(data))
			}
			if got := stat(t, st, other, name); got != int64(len(data)) {
				t.Errorf("Stat %s %s after deleting the %s of that name = %d, want %d", other, name, kind, got, len(data))
			}
			checkList(t, st, other, map[string]int64{name: int64(len(data))})
		}
	}
}

func (s suite) testList(t *testing.T) {
	st := s.created(t)
	for _, kind := range storage.Kinds {
		checkList(t, st, kind, map[string]int64{})
	}

	counts := map[storage.Kind]int{
		storage.KindPack:     300, // enough to spread over many shards
		storage.KindIndex:    20,
		storage.KindSnapshot: 7,
		storage.KindKey:      2,
		storage.KindLock:     3,
	}
	want := make(map[storage.Kind]map[string]int64)
	sharedData := randomData(1500)
	shared := hashName(sharedData)
	for _, kind := range storage.Kinds {
		want[kind] = make(map[string]int64)
		// The same name in every kind shows that List keeps kinds apart.
		// A lock, which is not named by its bytes, has other bytes under
		// it, so that a size from the wrong kind shows too.
		data := sharedData
		if kind == storage.KindLock {
			data = randomData(77)
		}
		put(t, st, kind, shared, data)
		want[kind][shared] = int64(len(data))
		for range counts[kind] - 1 {
			data := randomData(1 + rand.IntN(2000))
			name := nameOf(kind, data)
			put(t, st, kind, name, data)
			want[kind][name] = int64(len(data))
		}
	}
	for _, kind := range storage.Kinds {
		checkList(t, st, kind, want[kind])
	}
}

func (s suite) testListStops(t *testing.T) {
	st := s.created(t)
	for range 5 {
		data := randomData(8)
		put(t, st, storage.KindPack, hashName(data), data)
	}
	errStop := errors.New("stop listing")
	calls := 0
	err := st.List(t.Context(), storage.KindPack, func(string, int64) error {
		calls++
		return errStop
	})
	if !errors.Is(err, errStop) {
		t.Errorf("List with a failing callback = %v, want the callback's error", err)
	}
	if calls != 1 {
		t.Errorf("List called the callback %d times after it failed, want 1", calls)
	}
}

func (s suite) testDelete(t *testing.T) {
	st := s.created(t)
	for _, kind := range storage.Kinds {
		keepData, goneData := randomData(40), randomData(50)
		keep, gone := nameOf(kind, keepData), nameOf(kind, goneData)
		put(t, st, kind, keep, keepData)
		put(t, st, kind, gone, goneData)
		if err := st.Delete(t.Context(), kind, gone); err != nil {
			t.Fatalf("Delete %s %s: %v", kind, gone, err)
		}
		checkAbsent(t, st, kind, gone)
		if err := st.Delete(t.Context(), kind, gone); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("second Delete %s %s = %v, want an error wrapping ErrNotFound", kind, gone, err)
		}
		if got := get(t, st, kind, keep, nil); !bytes.Equal(got, keepData) {
			t.Errorf("Get %s %s after deleting another object returned %d bytes that differ from the %d put", kind, keep, len(got), len(keepData))
		}
		checkList(t, st, kind, map[string]int64{keep: int64(len(keepData))})
		// A deleted name can be used again: by the same bytes, or for a
		// lock by any.
		back := goneData
		if kind == storage.KindLock {
			back = randomData(60)
		}
		put(t, st, kind, gone, back)
		if got := get(t, st, kind, gone, nil); !bytes.Equal(got, back) {
			t.Errorf("Get %s %s after re-Put returned %d bytes that differ from the %d put", kind, gone, len(got), len(back))
		}
		checkList(t, st, kind, map[string]int64{keep: int64(len(keepData)), gone: int64(len(back))})
	}
}

func (s suite) testPutTwice(t *testing.T) {
	st := s.created(t)
	for _, kind := range storage.Kinds {
		data := randomData(5000)
		name := nameOf(kind, data)
		put(t, st, kind, name, data)
		put(t, st, kind, name, data)
		if got := get(t, st, kind, name, nil); !bytes.Equal(got, data) {
			t.Errorf("Get %s %s after putting it twice returned different bytes", kind, name)
		}
		checkList(t, st, kind, map[string]int64{name: int64(len(data))})
	}
}

func (s suite) testLockOverwrite(t *testing.T) {
	st := s.created(t)
	name := randomName()
	put(t, st, storage.KindLock, name, []byte("first lock content"))
	second := []byte("second, longer lock content")
	put(t, st, storage.KindLock, name, second)
	if got := get(t, st, storage.KindLock, name, nil); !bytes.Equal(got, second) {
		t.Fatalf("Get lock after overwrite = %q, want %q", got, second)
	}
	checkList(t, st, storage.KindLock, map[string]int64{name: int64(len(second))})
}

func (s suite) testInvalidNames(t *testing.T) {
	st := s.created(t)
	ctx := t.Context()
	badNames := []string{"", "../x", "..", "A", "a/b", `a\b`, "a.b", "a b", "-a", "ab\x00", strings.Repeat("a", 129)}
	for _, kind := range storage.Kinds {
		for _, name := range badNames {
			checkInvalid(t, kind, name, st.Put(ctx, kind, name, storage.BytesBody([]byte("x"))), "Put")
			rc, err := st.Get(ctx, kind, name, nil)
			closeIfNotNil(rc)
			checkInvalid(t, kind, name, err, "Get")
			_, err = st.Stat(ctx, kind, name)
			checkInvalid(t, kind, name, err, "Stat")
			checkInvalid(t, kind, name, st.Delete(ctx, kind, name), "Delete")
		}
	}
	// The longest valid name must work, to show the limit is 128. Only a
	// lock can have it: other names are SHA-256 hex.
	long := strings.Repeat("f", 128)
	put(t, st, storage.KindLock, long, []byte("x"))

	for _, kind := range []storage.Kind{"", "bogus", "Pack", "packs", "../pack"} {
		data := []byte("x")
		name := hashName(data)
		checkInvalid(t, kind, name, st.Put(ctx, kind, name, storage.BytesBody(data)), "Put")
		rc, err := st.Get(ctx, kind, name, nil)
		closeIfNotNil(rc)
		checkInvalid(t, kind, name, err, "Get")
		_, err = st.Stat(ctx, kind, name)
		checkInvalid(t, kind, name, err, "Stat")
		checkInvalid(t, kind, name, st.Delete(ctx, kind, name), "Delete")
		err = st.List(ctx, kind, func(string, int64) error { return nil })
		checkInvalid(t, kind, "", err, "List")
	}

	for _, kind := range storage.Kinds {
		want := map[string]int64{}
		if kind == storage.KindLock {
			want[long] = 1
		}
		checkList(t, st, kind, want)
	}
}

// testMismatchedName puts, in every kind named by its bytes, bytes under
// a valid name that is not their SHA-256. A backend may store them as
// asked (fs and mem do not look), after which they read back like any
// object, or refuse with an error wrapping ErrInvalidName and leave
// nothing visible. Nothing else is allowed, and in neither case may the
// bytes appear under their real name.
func (s suite) testMismatchedName(t *testing.T) {
	st := s.created(t)
	ctx := t.Context()
	for _, kind := range storage.Kinds {
		if kind == storage.KindLock {
			continue
		}
		data := randomData(1000)
		real := hashName(data)
		flipped := "0" + real[1:] // one hex digit off
		if real[0] == '0' {
			flipped = "1" + real[1:]
		}
		names := []string{flipped, hashName(randomData(1000)), "ab", strings.Repeat("f", 128)}
		for _, name := range names {
			err := st.Put(ctx, kind, name, storage.BytesBody(data))
			switch {
			case err == nil:
				if got := get(t, st, kind, name, nil); !bytes.Equal(got, data) {
					t.Errorf("Get %s %s after a successful Put of mismatching bytes returned %d bytes that differ from the %d put",
						kind, name, len(got), len(data))
				}
				if got := stat(t, st, kind, name); got != int64(len(data)) {
					t.Errorf("Stat %s %s after a successful Put of mismatching bytes = %d, want %d", kind, name, got, len(data))
				}
				if size, ok := list(t, st, kind)[name]; !ok || size != int64(len(data)) {
					t.Errorf("List %s after a successful Put of mismatching bytes reports %s: %v with size %d; want it with size %d",
						kind, name, ok, size, len(data))
				}
				if err := st.Delete(ctx, kind, name); err != nil {
					t.Errorf("Delete %s %s: %v", kind, name, err)
				}
			case errors.Is(err, storage.ErrInvalidName):
				checkAbsent(t, st, kind, name)
			default:
				t.Errorf("Put %s under %s, which its bytes do not hash to, = %v; want success or an error wrapping ErrInvalidName",
					kind, name, err)
			}
			checkAbsent(t, st, kind, real)
		}
		checkList(t, st, kind, map[string]int64{})
	}
}

// testFailingBody puts bodies whose reads fail partway: the Put fails
// with the read's error and stores nothing.
func (s suite) testFailingBody(t *testing.T) {
	st := s.created(t)
	errBoom := errors.New("boom: disk on fire")
	for _, kind := range storage.Kinds {
		data := randomData(200_000)
		name := nameOf(kind, data)
		body := storage.NewBody(failingAt{data: data, at: 100_000, err: errBoom}, int64(len(data)))
		err := st.Put(t.Context(), kind, name, body)
		if err == nil {
			t.Fatalf("Put %s with a body that fails midway succeeded", kind)
		}
		if !errors.Is(err, errBoom) {
			t.Errorf("Put %s with a failing body = %v, want it to wrap the body's error", kind, err)
		}
		checkAbsent(t, st, kind, name)
	}
}

// testShortBody puts bodies whose bytes end before their size, naming
// each object by the bytes it should have had.
func (s suite) testShortBody(t *testing.T) {
	st := s.created(t)
	for _, kind := range storage.Kinds {
		for _, have := range []int{0, 1, 99_999} {
			data := randomData(100_000)
			name := nameOf(kind, data)
			err := st.Put(t.Context(), kind, name, storage.NewBody(bytes.NewReader(data[:have]), int64(len(data))))
			if err == nil {
				t.Fatalf("Put %s of 100000 bytes from a body of %d succeeded", kind, have)
			}
			checkAbsent(t, st, kind, name)
		}
	}
}

// testBodyIsItsSize puts bodies over more bytes than their size: the
// object is the first size bytes, nothing after them.
func (s suite) testBodyIsItsSize(t *testing.T) {
	st := s.created(t)
	for _, kind := range storage.Kinds {
		for _, size := range []int64{0, 1, 99_999} {
			data := randomData(100_000)
			want := data[:size]
			name := nameOf(kind, want)
			if err := st.Put(t.Context(), kind, name, storage.NewBody(bytes.NewReader(data), size)); err != nil {
				t.Fatalf("Put %s of the first %d of 100000 bytes: %v", kind, size, err)
			}
			if got := get(t, st, kind, name, nil); !bytes.Equal(got, want) {
				t.Errorf("Get %s after a Put of the first %d of 100000 bytes returned %d bytes, not those", kind, size, len(got))
			}
		}
	}
}

// testBodyMidFile puts a body over a section of a file that does not
// start at its offset 0, as coffer's packs may be: only the section's
// bytes are the object.
func (s suite) testBodyMidFile(t *testing.T) {
	st := s.created(t)
	data := randomData(300_000)
	f, err := os.CreateTemp(t.TempDir(), "src-*")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(data); err != nil {
		t.Fatal(err)
	}
	want := data[1000:250_000]
	name := nameOf(storage.KindPack, want)
	section := io.NewSectionReader(f, 1000, int64(len(want)))
	if err := st.Put(t.Context(), storage.KindPack, name, storage.NewBody(section, section.Size())); err != nil {
		t.Fatalf("Put from a file section: %v", err)
	}
	if got := get(t, st, storage.KindPack, name, nil); !bytes.Equal(got, want) {
		t.Fatalf("Get after Put from a file section returned %d bytes, not the section's %d", len(got), len(want))
	}
}

// testPutFile checks the FilePutter of stores that have one: a file
// handed over is stored whole and leaves its temporary path; a wrong size
// or a file from elsewhere is refused, stores nothing and still leaves
// nothing behind.
func (s suite) testPutFile(t *testing.T) {
	st := s.created(t)
	fp := st.(storage.FilePutter)
	temp := func(data []byte) *os.File {
		t.Helper()
		f, err := fp.CreateTemp()
		if err != nil {
			t.Fatalf("CreateTemp: %v", err)
		}
		if _, err := f.Write(data); err != nil {
			t.Fatal(err)
		}
		return f
	}
	gone := func(f *os.File) {
		t.Helper()
		if _, err := os.Stat(f.Name()); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("temporary file %s still there after PutFile: %v", f.Name(), err)
		}
	}
	data := randomData(300_000)
	name := nameOf(storage.KindPack, data)
	f := temp(data)
	if err := fp.PutFile(t.Context(), storage.KindPack, name, f, int64(len(data))); err != nil {
		t.Fatalf("PutFile: %v", err)
	}
	gone(f)
	if got := get(t, st, storage.KindPack, name, nil); !bytes.Equal(got, data) {
		t.Fatalf("Get after PutFile returned %d bytes, not the %d put", len(got), len(data))
	}
	// The same object again succeeds and still takes the file.
	f = temp(data)
	if err := fp.PutFile(t.Context(), storage.KindPack, name, f, int64(len(data))); err != nil {
		t.Errorf("PutFile of an object already stored: %v", err)
	}
	gone(f)

	other := randomData(1000)
	otherName := nameOf(storage.KindPack, other)
	f = temp(other)
	if err := fp.PutFile(t.Context(), storage.KindPack, otherName, f, 999); err == nil {
		t.Error("PutFile with a wrong size succeeded")
	}
	gone(f)
	checkAbsent(t, st, storage.KindPack, otherName)

	foreign, err := os.CreateTemp(t.TempDir(), "foreign-*")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := foreign.Write(other); err != nil {
		t.Fatal(err)
	}
	if err := fp.PutFile(t.Context(), storage.KindPack, otherName, foreign, int64(len(other))); err == nil {
		t.Error("PutFile of a file CreateTemp did not make succeeded")
	}
	checkAbsent(t, st, storage.KindPack, otherName)
	if _, err := os.Stat(foreign.Name()); err != nil {
		t.Errorf("PutFile removed a file CreateTemp did not make: %v", err)
	}
}

// testFailedPutKeepsLock checks that a failed overwrite of a lock leaves
// the old lock whole: a prefix of the new one would be unreadable and an
// absent one would let another process in.
func (s suite) testFailedPutKeepsLock(t *testing.T) {
	st := s.created(t)
	name := randomName()
	old := []byte("the old lock")
	put(t, st, storage.KindLock, name, old)
	err := st.Put(t.Context(), storage.KindLock, name, storage.NewBody(strings.NewReader("short"), 100))
	if err == nil {
		t.Fatal("Put of a lock from a short body succeeded")
	}
	if got := get(t, st, storage.KindLock, name, nil); !bytes.Equal(got, old) {
		t.Fatalf("Get lock after a failed overwrite = %q, want %q", got, old)
	}
}

func (s suite) testConcurrent(t *testing.T) {
	const workers, perWorker = 16, 4
	st := s.created(t)
	ctx := t.Context()
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		want = make(map[string]int64)
	)
	for range workers {
		wg.Go(func() {
			for range perWorker {
				data := randomData(1 + rand.IntN(256<<10))
				name := hashName(data)
				if err := st.Put(ctx, storage.KindPack, name, storage.BytesBody(data)); err != nil {
					t.Errorf("concurrent Put: %v", err)
					return
				}
				rc, err := st.Get(ctx, storage.KindPack, name, nil)
				if err != nil {
					t.Errorf("concurrent Get: %v", err)
					return
				}
				got, err := io.ReadAll(rc)
				rc.Close()
				if err != nil || !bytes.Equal(got, data) {
					t.Errorf("concurrent Get of %s returned %d bytes (error %v), want the %d put", name, len(got), err, len(data))
				}
				if n, err := st.Stat(ctx, storage.KindPack, name); err != nil || n != int64(len(data)) {
					t.Errorf("concurrent Stat of %s = %d, %v; want %d", name, n, err, len(data))
				}
				mu.Lock()
				want[name] = int64(len(data))
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if !t.Failed() {
		checkList(t, st, storage.KindPack, want)
	}
}

func (s suite) testCancelledContext(t *testing.T) {
	st := s.created(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	data := randomData(1000)
	name := hashName(data)
	err := st.Put(ctx, storage.KindPack, name, storage.BytesBody(data))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Put with a cancelled context = %v, want an error wrapping context.Canceled", err)
	}
	checkAbsent(t, st, storage.KindPack, name)
}

// testCancelMidway cancels while the body is being read, which is when a
// slow upload is cancelled in practice.
func (s suite) testCancelMidway(t *testing.T) {
	const size = 8 << 20
	st := s.created(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	gen := generator{seed: [32]byte{9}}
	name := hex.EncodeToString(hashOf(io.NewSectionReader(gen, 0, size)))
	r := cancellingAt{r: gen, after: 1 << 20, cancel: cancel}
	if err := st.Put(ctx, storage.KindPack, name, storage.NewBody(r, size)); err == nil {
		t.Fatal("Put succeeded although its context was cancelled during the upload")
	}
	checkAbsent(t, st, storage.KindPack, name)
}

// put stores data and fails the test on error.
func put(t *testing.T, st storage.Store, kind storage.Kind, name string, data []byte) {
	t.Helper()
	if err := st.Put(t.Context(), kind, name, storage.BytesBody(data)); err != nil {
		t.Fatalf("Put %s %s (%d bytes): %v", kind, name, len(data), err)
	}
}

// get reads an object, or the range of it, and fails the test on error or
// if a range returns other than its length.
func get(t *testing.T, st storage.Store, kind storage.Kind, name string, rng *storage.Range) []byte {
	t.Helper()
	rc, err := st.Get(t.Context(), kind, name, rng)
	if err != nil {
		t.Fatalf("Get %s %s %v: %v", kind, name, rng, err)
	}
	data, err := io.ReadAll(rc)
	if cerr := rc.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatalf("reading %s %s %v: %v", kind, name, rng, err)
	}
	if rng != nil && int64(len(data)) != rng.Length {
		t.Fatalf("Get %s %s %v returned %d bytes, want %d", kind, name, rng, len(data), rng.Length)
	}
	return data
}

func stat(t *testing.T, st storage.Store, kind storage.Kind, name string) int64 {
	t.Helper()
	n, err := st.Stat(t.Context(), kind, name)
	if err != nil {
		t.Fatalf("Stat %s %s: %v", kind, name, err)
	}
	return n
}

// list returns the objects of kind, failing the test if a name repeats.
func list(t *testing.T, st storage.Store, kind storage.Kind) map[string]int64 {
	t.Helper()
	got := make(map[string]int64)
	err := st.List(t.Context(), kind, func(name string, size int64) error {
		if _, dup := got[name]; dup {
			t.Errorf("List %s returned %s more than once", kind, name)
		}
		got[name] = size
		return nil
	})
	if err != nil {
		t.Fatalf("List %s: %v", kind, err)
	}
	return got
}

// checkList compares the listing of kind with want, reporting every
// difference rather than the first so that a broken backend is quick to
// diagnose.
func checkList(t *testing.T, st storage.Store, kind storage.Kind, want map[string]int64) {
	t.Helper()
	got := list(t, st, kind)
	for name, size := range want {
		gotSize, ok := got[name]
		switch {
		case !ok:
			t.Errorf("List %s is missing %s", kind, name)
		case gotSize != size:
			t.Errorf("List %s reports %s with size %d, want %d", kind, name, gotSize, size)
		}
	}
	for name := range got {
		if _, ok := want[name]; !ok {
			t.Errorf("List %s returned unexpected %s", kind, name)
		}
	}
}

// checkAbsent fails the test unless Get, Stat and List all agree that the
// object does not exist.
func checkAbsent(t *testing.T, st storage.Store, kind storage.Kind, name string) {
	t.Helper()
	if rc, err := st.Get(t.Context(), kind, name, nil); !errors.Is(err, storage.ErrNotFound) {
		closeIfNotNil(rc)
		t.Errorf("Get %s %s = %v, want an error wrapping ErrNotFound", kind, name, err)
	}
	if n, err := st.Stat(t.Context(), kind, name); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Stat %s %s = %d, %v; want an error wrapping ErrNotFound", kind, name, n, err)
	}
	if size, ok := list(t, st, kind)[name]; ok {
		t.Errorf("List %s returned %s (size %d), want it absent", kind, name, size)
	}
}

func checkBadRange(t *testing.T, st storage.Store, kind storage.Kind, name string, rng storage.Range) {
	t.Helper()
	rc, err := st.Get(t.Context(), kind, name, &rng)
	if !errors.Is(err, storage.ErrInvalidRange) {
		var n int
		if err == nil {
			data, _ := io.ReadAll(rc)
			n = len(data)
			rc.Close()
		}
		t.Errorf("Get %s %v = %v (%d bytes); want an error wrapping ErrInvalidRange", kind, rng, err, n)
	}
}

func checkInvalid(t *testing.T, kind storage.Kind, name string, err error, op string) {
	t.Helper()
	if !errors.Is(err, storage.ErrInvalidName) {
		t.Errorf("%s kind %q name %q = %v, want an error wrapping ErrInvalidName", op, kind, name, err)
	}
}

func closeIfNotNil(rc io.ReadCloser) {
	if rc != nil {
		rc.Close()
	}
}

// nameOf returns the name coffer gives data stored as kind: the hex
// SHA-256 of the bytes, or for a lock a random id.
func nameOf(kind storage.Kind, data []byte) string {
	if kind == storage.KindLock {
		return randomName()
	}
	return hashName(data)
}

// hashName returns the lowercase hex SHA-256 of data.
func hashName(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// hashOf returns the SHA-256 of everything r yields.
func hashOf(r io.Reader) []byte {
	h := sha256.New()
	if _, err := io.Copy(h, r); err != nil {
		panic(err) // a generator does not fail
	}
	return h.Sum(nil)
}

// randomName returns a name shaped like the SHA-256 names coffer uses,
// which names no bytes a test stores.
func randomName() string {
	var b [32]byte
	for i := range b {
		b[i] = byte(rand.Uint32())
	}
	return hex.EncodeToString(b[:])
}

// randomData returns n bytes that do not compress or repeat, so that a
// backend that mangles offsets cannot return right-looking bytes.
func randomData(n int) []byte {
	b := make([]byte, n)
	var seed [32]byte
	for i := range seed {
		seed[i] = byte(rand.Uint32())
	}
	_, _ = rand.NewChaCha8(seed).Read(b)
	return b
}

// generator is an endless run of deterministic bytes readable at any
// offset, so that a large body can be produced, and read again, without
// keeping it in memory. Each block of genBlock bytes is ChaCha8 keyed by
// the seed and the block's number, which lets a read start anywhere.
type generator struct{ seed [32]byte }

const genBlock = 64 << 10

func (g generator) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errors.New("generator: negative offset")
	}
	var block [genBlock]byte
	n := 0
	for n < len(p) {
		at := off + int64(n)
		key := g.seed
		for i, b := range binary.LittleEndian.AppendUint64(nil, uint64(at/genBlock)) {
			key[24+i] ^= b
		}
		_, _ = rand.NewChaCha8(key).Read(block[:])
		n += copy(p[n:], block[at%genBlock:])
	}
	return n, nil
}

// failingAt reads data, but fails every read that reaches byte at.
type failingAt struct {
	data []byte
	at   int64
	err  error
}

func (f failingAt) ReadAt(p []byte, off int64) (int, error) {
	if off+int64(len(p)) > f.at {
		return 0, f.err
	}
	return bytes.NewReader(f.data).ReadAt(p, off)
}

// cancellingAt cancels a context once a read reaches past after, and
// keeps returning data so that only the context can stop the Put.
type cancellingAt struct {
	r      io.ReaderAt
	after  int64
	cancel context.CancelFunc
}

func (c cancellingAt) ReadAt(p []byte, off int64) (int, error) {
	if off+int64(len(p)) > c.after {
		c.cancel()
	}
	return c.r.ReadAt(p, off)
}
