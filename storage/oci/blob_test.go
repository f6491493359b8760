package oci

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/cofferhq/coffer/storage"
)

func TestParseContentRange(t *testing.T) {
	tests := []struct {
		in                string
		start, end, total int64
		ok                bool
	}{
		{"bytes 0-0/1", 0, 0, 1, true},
		{"bytes 10-19/100", 10, 19, 100, true},
		{"bytes 0-999/1000", 0, 999, 1000, true},
		{"bytes 10-19/*", 10, 19, -1, true},
		{"bytes 8589934592-8589934599/9000000000", 8589934592, 8589934599, 9000000000, true},
		{"", 0, 0, 0, false},
		{"bytes", 0, 0, 0, false},
		{"bytes */100", 0, 0, 0, false},
		{"bytes 10-19", 0, 0, 0, false},
		{"bytes 10/100", 0, 0, 0, false},
		{"bytes=10-19/100", 0, 0, 0, false},
		{"Bytes 10-19/100", 0, 0, 0, false},
		{"items 10-19/100", 0, 0, 0, false},
		{"bytes a-19/100", 0, 0, 0, false},
		{"bytes 10-b/100", 0, 0, 0, false},
		{"bytes 10-19/c", 0, 0, 0, false},
		{"bytes -10-19/100", 0, 0, 0, false},
		{"bytes  10-19/100", 0, 0, 0, false},
		{"bytes 10-19/100 ", 0, 0, 0, false},
		{"bytes 99999999999999999999-1/2", 0, 0, 0, false},
	}
	for _, tt := range tests {
		start, end, total, ok := parseContentRange(tt.in)
		if ok != tt.ok || (ok && (start != tt.start || end != tt.end || total != tt.total)) {
			t.Errorf("parseContentRange(%q) = %d, %d, %d, %v; want %d, %d, %d, %v",
				tt.in, start, end, total, ok, tt.start, tt.end, tt.total, tt.ok)
		}
	}
}

// blobHook lets a test answer blob GETs in place of the registry.
type blobHook struct {
	fn atomic.Pointer[func(w http.ResponseWriter, r *http.Request, next http.Handler)]
}

func (b *blobHook) set(f func(w http.ResponseWriter, r *http.Request, next http.Handler)) {
	if f == nil {
		b.fn.Store(nil)
		return
	}
	b.fn.Store(&f)
}

func (b *blobHook) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if f := b.fn.Load(); f != nil && r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/blobs/sha256:") {
			(*f)(w, r, next)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// take hands f the blob GETs that match; other requests go to the
// registry.
func (b *blobHook) take(match func(r *http.Request) bool, f func(w http.ResponseWriter, r *http.Request)) {
	b.set(func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		if !match(r) {
			next.ServeHTTP(w, r)
			return
		}
		f(w, r)
	})
}

// takeBlob hands f every GET of blob d.
func (b *blobHook) takeBlob(d digest.Digest, f func(w http.ResponseWriter, r *http.Request)) {
	b.take(func(r *http.Request) bool { return requestsBlob(r, d) }, f)
}

// takeRanges hands f the ranged GETs of blob d.
func (b *blobHook) takeRanges(d digest.Digest, f func(w http.ResponseWriter, r *http.Request)) {
	b.take(func(r *http.Request) bool { return requestsBlob(r, d) && r.Header.Get("Range") != "" }, f)
}

// requestsBlob reports whether r asks for the blob of digest d.
func requestsBlob(r *http.Request, d digest.Digest) bool {
	return strings.HasSuffix(r.URL.Path, "/blobs/"+d.String())
}

// hookedStore returns a created store on a registry whose blob GETs hook
// can take over (after Create, so the capability probe sees a plain
// registry), with what the store logs.
func hookedStore(t *testing.T, wrap ...func(http.Handler) http.Handler) (*Store, *blobHook, *logRecorder) {
	t.Helper()
	hook := &blobHook{}
	reg := newTestRegistry(t, append(wrap, hook.wrap)...)
	log := &logRecorder{}
	st := openStore(t, reg.newRepo(), func(o *Options) { o.Logf = log.logf })
	if err := st.Create(t.Context(), []byte("config")); err != nil {
		t.Fatalf("Create: %v", err)
	}
	return st, hook, log
}

// putPack stores data as a pack and returns its digest.
func putPack(t *testing.T, st *Store, data []byte) digest.Digest {
	t.Helper()
	d := digest.FromBytes(data)
	if err := st.Put(t.Context(), storage.KindPack, d.Encoded(), storage.BytesBody(data)); err != nil {
		t.Fatalf("Put pack: %v", err)
	}
	return d
}

// getPack reads a pack, or part of it.
func getPack(t *testing.T, st *Store, d digest.Digest, rng *storage.Range) ([]byte, error) {
	t.Helper()
	rc, err := st.Get(t.Context(), storage.KindPack, d.Encoded(), rng)
	if err != nil {
		if rc != nil {
			t.Errorf("Get returned a reader with error %v", err)
			rc.Close()
		}
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

// fastBackoff makes retries wait a millisecond instead of seconds and
// counts the waits.
func fastBackoff(st *Store) *atomic.Int64 {
	var n atomic.Int64
	st.backoff = func(int) time.Duration { n.Add(1); return time.Millisecond }
	return &n
}

func patternData(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i/251)
	}
	return b
}

// TestRangeIgnored has the registry answer ranged GETs with 200 and the
// whole blob: the store must notice, read whole blobs, check their
// digests, and return exactly the bytes asked for.
func TestRangeIgnored(t *testing.T) {
	st, hook, log := hookedStore(t)
	if got := st.Describe(t.Context())["range requests"]; got != "honoured" {
		t.Fatalf(`after Create, Describe()["range requests"] = %q, want "honoured"`, got)
	}
	data := patternData(1000)
	d := putPack(t, st, data)
	other := patternData(1500)[500:]
	od := putPack(t, st, other)

	var ranged, whole atomic.Int64
	corrupt := atomic.Bool{}
	hook.set(func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		if r.Header.Get("Range") != "" {
			ranged.Add(1)
			r.Header.Del("Range")
		} else {
			whole.Add(1)
		}
		if corrupt.Load() && requestsBlob(r, od) {
			bad := bytes.Clone(other)
			bad[10] ^= 1
			w.Header().Set("Content-Length", fmt.Sprint(len(bad)))
			w.WriteHeader(http.StatusOK)
			w.Write(bad)
			return
		}
		next.ServeHTTP(w, r)
	})

	rng := storage.Range{Offset: 300, Length: 400}
	got, err := getPack(t, st, d, &rng)
	if err != nil || !bytes.Equal(got, data[300:700]) {
		t.Fatalf("Get %v from a registry that ignores Range = %d bytes, %v; want the 400 bytes asked for", rng, len(got), err)
	}
	if ranged.Load() != 1 || whole.Load() != 1 {
		t.Errorf("first ranged Get made %d ranged and %d whole GETs, want 1 and 1", ranged.Load(), whole.Load())
	}
	if got := st.Describe(t.Context())["range requests"]; got != "ignored" {
		t.Errorf(`Describe()["range requests"] = %q, want "ignored"`, got)
	}
	if !strings.Contains(log.String(), "ignores Range") || !strings.Contains(log.String(), st.loc.host) {
		t.Errorf("log = %q, want a notice naming %s that it ignores Range", log.String(), st.loc.host)
	}

	// Later ranges of the same blob come from the whole blob already read.
	for _, rng := range []storage.Range{{Offset: 0, Length: 1}, {Offset: 999, Length: 1}, {Offset: 0, Length: 1000}} {
		got, err := getPack(t, st, d, &rng)
		if err != nil || !bytes.Equal(got, data[rng.Offset:rng.Offset+rng.Length]) {
			t.Errorf("Get %v = %d bytes, %v; want the %d bytes asked for", rng, len(got), err, rng.Length)
		}
	}
	if ranged.Load() != 1 || whole.Load() != 1 {
		t.Errorf("later ranges of the same blob made %d ranged and %d whole GETs in all, want still 1 and 1", ranged.Load(), whole.Load())
	}
	if _, err := getPack(t, st, d, &storage.Range{Offset: 999, Length: 2}); !errors.Is(err, storage.ErrInvalidRange) {
		t.Errorf("Get of a range past the end from a whole blob = %v, want ErrInvalidRange", err)
	}

	// The whole blob read in place of a range is checked against its digest.
	fastBackoff(st)
	corrupt.Store(true)
	rng = storage.Range{Offset: 0, Length: 100}
	if got, err := getPack(t, st, od, &rng); err == nil {
		t.Fatalf("Get %v of a blob the registry serves damaged returned %d bytes and no error", rng, len(got))
	} else if !strings.Contains(err.Error(), "digest") {
		t.Errorf("Get of a damaged blob = %v, want an error about its digest", err)
	}
	corrupt.Store(false)
	if got, err := getPack(t, st, od, &rng); err != nil || !bytes.Equal(got, other[:100]) {
		t.Errorf("Get %v once the registry serves the blob whole = %d bytes, %v", rng, len(got), err)
	}
}

// TestRangeIgnoredFromProbe: a registry that ignores Range from the start
// is found out at Create, and ranged reads never send Range.
func TestRangeIgnoredFromProbe(t *testing.T) {
	var ranged atomic.Int64
	ignore := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Range") != "" {
				ranged.Add(1)
				r.Header.Del("Range")
			}
			next.ServeHTTP(w, r)
		})
	}
	st, _, _ := hookedStore(t, ignore)
	if got := st.Describe(t.Context())["range requests"]; got != "ignored" {
		t.Fatalf(`Describe()["range requests"] = %q, want "ignored"`, got)
	}
	probes := ranged.Load()
	data := patternData(3000)
	d := putPack(t, st, data)
	rng := storage.Range{Offset: 1234, Length: 567}
	if got, err := getPack(t, st, d, &rng); err != nil || !bytes.Equal(got, data[1234:1234+567]) {
		t.Fatalf("Get %v = %d bytes, %v", rng, len(got), err)
	}
	if n := ranged.Load() - probes; n != 0 {
		t.Errorf("%d ranged GETs after the probe found Range ignored, want 0", n)
	}
}

// TestRangeWrongContentRange has the registry answer 206 with a
// Content-Range other than the one asked for: an error, never data.
func TestRangeWrongContentRange(t *testing.T) {
	st, hook, _ := hookedStore(t)
	data := patternData(1000)
	d := putPack(t, st, data)
	rng := storage.Range{Offset: 300, Length: 400} // bytes=300-699

	for _, cr := range []string{
		"bytes 301-700/1000", // shifted
		"bytes 0-399/1000",   // from the start
		"bytes 300-600/1000", // short, not at the end
		"bytes 300-699",      // malformed
		"bytes */1000",       // unsatisfied form on a 206
		"",                   // missing
	} {
		t.Run(cr, func(t *testing.T) {
			var asked atomic.Int64
			hook.takeRanges(d, func(w http.ResponseWriter, r *http.Request) {
				asked.Add(1)
				if cr != "" {
					w.Header().Set("Content-Range", cr)
				}
				w.Header().Set("Content-Length", "400")
				w.WriteHeader(http.StatusPartialContent)
				w.Write(data[301:701]) // plausible bytes, from the wrong place
			})
			got, err := getPack(t, st, d, &rng)
			if err == nil {
				t.Fatalf("Get %v answered with Content-Range %q returned %d bytes and no error", rng, cr, len(got))
			}
			if errors.Is(err, storage.ErrNotFound) {
				t.Errorf("Get %v answered with Content-Range %q = %v; it must not claim the blob is missing", rng, cr, err)
			}
			if asked.Load() != 1 {
				t.Errorf("Get made %d ranged requests, want 1 (a wrong answer is not retried as a cut-off one)", asked.Load())
			}
		})
	}

	// The blob ends before the range: the registry truncates the range,
	// which is ErrInvalidRange, not a short read.
	hook.set(nil)
	if _, err := getPack(t, st, d, &storage.Range{Offset: 900, Length: 200}); !errors.Is(err, storage.ErrInvalidRange) {
		t.Errorf("Get of a range past the end = %v, want ErrInvalidRange", err)
	}
}

// cutShort starts an answer with the given status and headers, sends half
// of body and drops the connection.
func cutShort(w http.ResponseWriter, status int, body []byte) {
	w.Header().Set("Content-Length", fmt.Sprint(len(body)))
	w.WriteHeader(status)
	w.Write(body[:len(body)/2])
	w.(http.Flusher).Flush()
	panic(http.ErrAbortHandler)
}

// TestReadCutShort drops the connection in the middle of a ranged and of
// a whole read: both are retried and return the right bytes; the ranged
// read resumes where it was cut off rather than starting over.
func TestReadCutShort(t *testing.T) {
	st, hook, _ := hookedStore(t)
	waits := fastBackoff(st)
	data := patternData(100_000)
	d := putPack(t, st, data)

	var ranged, whole atomic.Int64
	var resumed atomic.Value
	hook.set(func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		if !requestsBlob(r, d) {
			next.ServeHTTP(w, r)
			return
		}
		if r.Header.Get("Range") != "" {
			if ranged.Add(1) == 2 {
				resumed.Store(r.Header.Get("Range"))
			}
			if ranged.Load() == 1 {
				w.Header().Set("Content-Range", "bytes 1000-50999/100000")
				cutShort(w, http.StatusPartialContent, data[1000:51000])
			}
		} else if whole.Add(1) <= 2 {
			cutShort(w, http.StatusOK, data)
		}
		next.ServeHTTP(w, r)
	})

	rng := storage.Range{Offset: 1000, Length: 50_000}
	got, err := getPack(t, st, d, &rng)
	if err != nil || !bytes.Equal(got, data[1000:51000]) {
		t.Fatalf("Get %v cut short once = %d bytes, %v; want the %d asked for", rng, len(got), err, rng.Length)
	}
	if ranged.Load() != 2 {
		t.Errorf("Get %v made %d ranged requests, want 2 (one cut short, one retry)", rng, ranged.Load())
	}
	// cutShort sends half of the 50,000 bytes: the retry asks for the rest.
	if got, want := resumed.Load(), "bytes=26000-50999"; got != want {
		t.Errorf("the retried ranged request asked for %v, want %q (the part not yet received)", got, want)
	}
	got, err = getPack(t, st, d, nil)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("Get cut short twice = %d bytes, %v; want the %d stored", len(got), err, len(data))
	}
	if whole.Load() != 3 {
		t.Errorf("Get made %d whole requests, want 3 (two cut short, one retry)", whole.Load())
	}
	if waits.Load() == 0 {
		t.Error("retries did not back off")
	}
}

// TestWholeReadDigestMismatch has the registry serve damaged bytes for a
// whole read, small (held in memory) and large (held in a temporary
// file): the store retries, then fails, never returns them, and leaves no
// temporary file behind.
func TestWholeReadDigestMismatch(t *testing.T) {
	for _, size := range []int{5000, spoolThreshold + 12345} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			st, hook, _ := hookedStore(t)
			fastBackoff(st)
			tmp := t.TempDir()
			t.Setenv("TMPDIR", tmp)
			data := patternData(size)
			d := putPack(t, st, data)
			var gets atomic.Int64
			hook.takeBlob(d, func(w http.ResponseWriter, r *http.Request) {
				gets.Add(1)
				bad := bytes.Clone(data)
				bad[len(bad)-7] ^= 0x80
				w.Header().Set("Content-Length", fmt.Sprint(len(bad)))
				w.WriteHeader(http.StatusOK)
				w.Write(bad)
			})
			got, err := getPack(t, st, d, nil)
			if err == nil {
				t.Fatalf("Get of a blob served damaged returned %d bytes and no error", len(got))
			}
			if !strings.Contains(err.Error(), "digest") || !strings.Contains(err.Error(), st.loc.host) {
				t.Errorf("Get of a blob served damaged = %q, want an error naming %s and the digest check", err, st.loc.host)
			}
			if errors.Is(err, storage.ErrNotFound) {
				t.Errorf("Get of a blob served damaged = %v, which claims it is missing", err)
			}
			if gets.Load() != corruptAttempts {
				t.Errorf("Get made %d requests, want %d (every attempt)", gets.Load(), corruptAttempts)
			}
			if left, _ := os.ReadDir(tmp); len(left) != 0 {
				t.Errorf("temporary files left behind: %v", left)
			}
		})
	}
}

// TestRangeOverflow asks for {Offset: 1, Length: MaxInt64}, whose end
// overflows int64, from a registry that clamps the range (Distribution),
// one that echoes the requested range in its Content-Range (as
// go-containerregistry's in-memory registry did) and one that ignores
// Range: ErrInvalidRange, not a panic.
func TestRangeOverflow(t *testing.T) {
	for _, answer := range []string{"clamp", "echo", "ignore"} {
		t.Run(answer, func(t *testing.T) {
			st, hook, _ := hookedStore(t)
			data := patternData(1000)
			d := putPack(t, st, data)
			switch answer {
			case "echo":
				hook.takeRanges(d, func(w http.ResponseWriter, r *http.Request) {
					var first, last int64
					if _, err := fmt.Sscanf(r.Header.Get("Range"), "bytes=%d-%d", &first, &last); err != nil || first >= int64(len(data)) {
						w.WriteHeader(http.StatusRequestedRangeNotSatisfiable)
						return
					}
					w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", first, last, len(data)))
					w.WriteHeader(http.StatusPartialContent)
					w.Write(data[first:])
				})
			case "ignore":
				hook.set(func(w http.ResponseWriter, r *http.Request, next http.Handler) {
					r.Header.Del("Range")
					next.ServeHTTP(w, r)
				})
			}
			for _, rng := range []storage.Range{
				{Offset: 1, Length: math.MaxInt64},
				{Offset: 999, Length: math.MaxInt64 - 998},
			} {
				func() {
					defer func() {
						if p := recover(); p != nil {
							t.Errorf("Get %v panicked: %v", rng, p)
						}
					}()
					got, err := getPack(t, st, d, &rng)
					if !errors.Is(err, storage.ErrInvalidRange) {
						t.Errorf("Get %v = %d bytes, %v; want ErrInvalidRange", rng, len(got), err)
					}
				}()
			}
		})
	}
}

// TestRangeReadStalls has the registry answer every ranged request with
// the right headers and then drop the connection before any byte: the read
// fails after maxStalls requests instead of asking again forever.
func TestRangeReadStalls(t *testing.T) {
	st, hook, _ := hookedStore(t)
	fastBackoff(st)
	data := patternData(10_000)
	d := putPack(t, st, data)
	var ranged atomic.Int64
	hook.takeRanges(d, func(w http.ResponseWriter, r *http.Request) {
		ranged.Add(1)
		w.Header().Set("Content-Range", "bytes 100-4099/10000")
		w.Header().Set("Content-Length", "4000")
		w.WriteHeader(http.StatusPartialContent)
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler)
	})
	rng := storage.Range{Offset: 100, Length: 4000}
	got, err := getPack(t, st, d, &rng)
	if err == nil {
		t.Fatalf("Get %v of a registry that never sends a byte returned %d bytes and no error", rng, len(got))
	}
	if !strings.Contains(err.Error(), st.loc.host) {
		t.Errorf("Get %v = %q, want an error naming the registry %s", rng, err, st.loc.host)
	}
	if n := ranged.Load(); n != maxStalls {
		t.Errorf("Get %v made %d ranged requests, want %d", rng, n, maxStalls)
	}
}

// TestRangeReadCutRepeatedly has the registry cut off every ranged answer
// after a few hundred bytes: each request makes progress, so the read goes
// on to the end however many requests that takes (only requests in a row
// without a byte count against maxStalls).
func TestRangeReadCutRepeatedly(t *testing.T) {
	st, hook, _ := hookedStore(t)
	fastBackoff(st)
	data := patternData(10_000)
	d := putPack(t, st, data)
	var ranged atomic.Int64
	hook.takeRanges(d, func(w http.ResponseWriter, r *http.Request) {
		ranged.Add(1)
		var start, end int
		if _, err := fmt.Sscanf(r.Header.Get("Range"), "bytes=%d-%d", &start, &end); err != nil {
			t.Errorf("Range %q: %v", r.Header.Get("Range"), err)
			return
		}
		w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", start, end, len(data)))
		w.Header().Set("Content-Length", fmt.Sprint(end-start+1))
		w.WriteHeader(http.StatusPartialContent)
		w.Write(data[start:min(start+300, end+1)])
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler)
	})
	rng := storage.Range{Offset: 100, Length: 4000}
	got, err := getPack(t, st, d, &rng)
	if err != nil || !bytes.Equal(got, data[100:4100]) {
		t.Fatalf("Get %v cut after every 300 bytes = %d bytes, %v; want the %d asked for", rng, len(got), err, rng.Length)
	}
	if n := ranged.Load(); n <= maxStalls {
		t.Errorf("Get %v made %d ranged requests: the test needs more than %d to mean anything", rng, n, maxStalls)
	}
}

// TestLargeWholeRead covers whole reads above spoolThreshold, which wait
// for their digest check in a temporary file: the right bytes come back,
// a read cut short is retried, and no temporary file is left behind
// (TestWholeReadDigestMismatch covers damaged bytes for both sizes).
func TestLargeWholeRead(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	st, hook, _ := hookedStore(t)
	fastBackoff(st)
	data := patternData(spoolThreshold + 12345)
	d := putPack(t, st, data)

	rc, err := st.Get(t.Context(), storage.KindPack, d.Encoded(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, inFile := rc.(*os.File); !inFile {
		t.Errorf("a whole read of %d bytes is held in a %T, want a temporary file", len(data), rc)
	}
	rc.Close()
	got, err := getPack(t, st, d, nil)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("Get = %d bytes, %v; want the %d stored", len(got), err, len(data))
	}

	var whole atomic.Int64
	hook.set(func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		if requestsBlob(r, d) && whole.Add(1) == 1 {
			cutShort(w, http.StatusOK, data)
		}
		next.ServeHTTP(w, r)
	})
	got, err = getPack(t, st, d, nil)
	if err != nil || !bytes.Equal(got, data) || whole.Load() != 2 {
		t.Fatalf("Get cut short once = %d bytes, %v after %d requests; want the %d stored after 2", len(got), err, whole.Load(), len(data))
	}

	if left, _ := os.ReadDir(tmp); len(left) != 0 {
		t.Errorf("temporary files left behind: %v", left)
	}
}
