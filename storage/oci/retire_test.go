package oci

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2/registry/remote/errcode"

	"github.com/cofferhq/coffer/internal/testregistry"
	"github.com/cofferhq/coffer/storage"
)

// killer stands for a client killed with kill -9 at its n-th manifest
// PUT or DELETE: from that request on, every request is cut off, until
// revive. A DELETE by digest it cuts off is first half done, as a
// Distribution registry does it when the client goes away mid-request:
// the manifest's revision is gone, and tags naming it are not untagged.
type killer struct {
	dataDir string // the registry's storage root

	mu     sync.Mutex
	left   int // manifest writes to let through; -1 when not armed
	dead   bool
	writes int // manifest writes seen while armed
}

var digestDelete = regexp.MustCompile(`^/v2/(.+)/manifests/sha256:([0-9a-f]{64})$`)

func (k *killer) arm(n int) {
	k.mu.Lock()
	k.left, k.dead, k.writes = n-1, false, 0
	k.mu.Unlock()
}

// revive lets requests through again and returns how many manifest
// writes were seen since arm.
func (k *killer) revive() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.left, k.dead = -1, false
	return k.writes
}

func (k *killer) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		write := strings.Contains(r.URL.Path, "/manifests/") && (r.Method == http.MethodPut || r.Method == http.MethodDelete)
		k.mu.Lock()
		dead := k.dead
		if !dead && write && k.left >= 0 {
			k.writes++
			if k.left == 0 {
				k.dead, dead = true, true
				if m := digestDelete.FindStringSubmatch(r.URL.Path); m != nil && r.Method == http.MethodDelete {
					os.RemoveAll(filepath.Join(k.dataDir, "docker/registry/v2/repositories", m[1], "_manifests/revisions/sha256", m[2]))
				}
			}
			k.left--
		}
		k.mu.Unlock()
		if dead {
			panic(http.ErrAbortHandler) // the connection is cut
		}
		next.ServeHTTP(w, r)
	})
}

// refsTags returns the live refs tags of a repository and those naming
// tombstones.
func refsTags(t *testing.T, st *Store) (live, tombstones []string) {
	t.Helper()
	tags, err := st.listTags(t.Context())
	if err != nil {
		t.Fatalf("listing tags: %v", err)
	}
	for _, tag := range tags {
		if !strings.HasPrefix(tag, tagRefsPrefix) {
			continue
		}
		var m ocispec.Manifest
		fetchJSON(t, st, tag, &m) // fails the test on a tag without a manifest
		if m.ArtifactType == artifactTombstone {
			tombstones = append(tombstones, tag)
		} else {
			live = append(live, tag)
		}
	}
	return live, tombstones
}

// A merge killed at any of its manifest writes leaves every refs tag
// readable (a tag naming a manifest the registry dropped would fail every
// later listing as lost references), and no object unreferenced; a later
// merge finishes the job. Where the registry deletes tags (Distribution
// v3), the retired tags and the tombstones a killed merge left end up
// deleted; registry 2.8 cannot delete a tag, so there they stay as
// tombstones, which readers skip.
func TestRetireKilledAtEveryStep(t *testing.T) {
	for _, kind := range testregistry.RegistryKinds {
		t.Run(kind.String(), func(t *testing.T) {
			k := &killer{left: -1}
			reg := newTestRegistryWith(t, testregistry.RegistryOptions{Kind: kind, Delete: true}, k.wrap)
			k.dataDir = reg.proc.DataDir
			// Two refs tags to merge: the merged tag, then per retired tag
			// its tombstone, a delete by digest, a delete of the tag and
			// one of the tombstone. The last two are best effort: cut off,
			// they leave a tombstone, and the merge goes on. Registry 2.8
			// refuses the first delete of a tag, which is not tried again
			// (nor the tombstone deleted, as a tag names it).
			writes, lastFailing := 1+2*4, 1+4+2
			if kind == testregistry.Registry28 {
				writes, lastFailing = 1+3+2, 1+3+2
			}
			for n := 1; n <= writes+1; n++ {
				t.Run(fmt.Sprintf("killed at write %d", n), func(t *testing.T) {
					loc := reg.newRepo()
					ctx := t.Context()
					st := openStore(t, loc, func(o *Options) { o.RetryFor = 300 * time.Millisecond })
					st.backoff = func(int) time.Duration { return time.Millisecond }
					if err := st.Create(ctx, []byte("config")); err != nil {
						t.Fatal(err)
					}
					want := twoRefsTags(t, st)

					k.arm(n)
					err := st.Compact(ctx)
					seen := k.revive()
					if n <= lastFailing && err == nil {
						t.Fatalf("Compact killed at manifest write %d of %d returned no error", n, writes)
					}
					if n > writes && (err != nil || seen != writes) {
						t.Fatalf("Compact: %v after %d manifest writes, want none after %d", err, seen, writes)
					}

					// A client that never read the repository lists it whole,
					// without waiting for a lost tag: it does not wait at all
					// (a first pass that finds tombstones is read again).
					reader := openStore(t, loc, func(o *Options) { o.Writer = "reader" })
					reader.settle = time.Nanosecond
					for _, kind := range []storage.Kind{storage.KindPack, storage.KindSnapshot} {
						checkListed(t, reader, kind, kindOf(want, kind))
					}
					refsTags(t, reader)

					// The next merge (a backup added a tag) completes the job.
					next := openStore(t, loc, func(o *Options) { o.Writer = "next" })
					idx := pushSmallBlobs(t, next, storage.KindIndex, 1)
					addPending(next, idx)
					if err := next.Compact(ctx); err != nil {
						t.Fatalf("the next Compact: %v", err)
					}
					cold := openStore(t, loc, func(o *Options) { o.Writer = "cold" })
					for _, kind := range []storage.Kind{storage.KindPack, storage.KindSnapshot, storage.KindIndex} {
						checkListed(t, cold, kind, kindOf(append(want, idx...), kind))
					}
					live, tombstones := refsTags(t, cold)
					if len(live) != 1 {
						t.Errorf("after the next merge, %d live refs tags %v, want 1", len(live), live)
					}
					tagDelete := next.Describe(ctx)["tag delete"]
					switch kind {
					case testregistry.Distribution:
						if len(tombstones) != 0 || tagDelete != "allowed" {
							t.Errorf("after the next merge on a registry that deletes tags (%q), tombstones %v are left", tagDelete, tombstones)
						}
					case testregistry.Registry28:
						if tagDelete != "refused" {
							t.Errorf(`registry 2.8: Describe()["tag delete"] = %q, want "refused"`, tagDelete)
						}
					}
				})
			}
		})
	}
}

// twoRefsTags puts three packs, then three snapshots, each batch in a
// refs tag of its own (two tags a Compact merges), and returns them.
func twoRefsTags(t *testing.T, st *Store) []ocispec.Descriptor {
	t.Helper()
	var all []ocispec.Descriptor
	for _, kind := range []storage.Kind{storage.KindPack, storage.KindSnapshot} {
		objs := pushSmallBlobs(t, st, kind, 3)
		addPending(st, objs)
		if err := st.Flush(t.Context()); err != nil {
			t.Fatal(err)
		}
		all = append(all, objs...)
	}
	return all
}

// addPending makes objects pushed as blobs pending, as Put leaves them,
// for the next flush to reference.
func addPending(st *Store, objs []ocispec.Descriptor) {
	st.pendingMu.Lock()
	st.pending = append(st.pending, objs...)
	st.pendingMu.Unlock()
}

func kindOf(descs []ocispec.Descriptor, kind storage.Kind) []ocispec.Descriptor {
	var out []ocispec.Descriptor
	for _, d := range descs {
		if d.MediaType == layerMediaType[kind] {
			out = append(out, d)
		}
	}
	return out
}

// immutableTags refuses, as ECR's IMMUTABLE setting and Harbor's
// immutability rules do, to move a tag that exists to another manifest.
type immutableTags struct {
	mu   sync.Mutex
	seen map[string]bool // the paths of tags pushed
}

func (m *immutableTags) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut && strings.Contains(r.URL.Path, "/manifests/") && !strings.Contains(r.URL.Path, "/manifests/sha256:") {
			m.mu.Lock()
			exists := m.seen[r.URL.Path]
			m.seen[r.URL.Path] = true
			m.mu.Unlock()
			if exists {
				http.Error(w, `{"errors":[{"code":"DENIED","message":"the tag is immutable"}]}`, http.StatusConflict)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// Where tags are immutable, a tag cannot be moved to a tombstone: a merge
// retires what it merged by deleting the manifests by digest instead,
// and everything stays listed.
func TestRetireImmutableTags(t *testing.T) {
	m := &immutableTags{seen: map[string]bool{}}
	reg := newTestRegistry(t, m.wrap)
	loc := reg.newRepo()
	ctx := t.Context()
	st := openStore(t, loc, nil)
	if err := st.Create(ctx, []byte("config")); err != nil {
		t.Fatal(err)
	}
	want := twoRefsTags(t, st)
	if err := st.Compact(ctx); err != nil {
		t.Fatalf("Compact where tags are immutable: %v", err)
	}
	cold := openStore(t, loc, func(o *Options) { o.Writer = "cold" })
	for _, kind := range []storage.Kind{storage.KindPack, storage.KindSnapshot} {
		checkListed(t, cold, kind, kindOf(want, kind))
	}
	if live, tombstones := refsTags(t, cold); len(live) != 1 || len(tombstones) != 0 {
		t.Errorf("after the merge: live refs tags %v, tombstones %v; want one live tag", live, tombstones)
	}
}

// Which answers to a tombstone PUT mean immutable tags, and which to a
// DELETE of a tag mean that the registry does not delete tags.
func TestRefusalClassification(t *testing.T) {
	answer := func(status int, code, msg string) error {
		e := &errcode.ErrorResponse{StatusCode: status}
		if code != "" {
			e.Errors = errcode.Errors{{Code: code, Message: msg}}
		}
		return fmt.Errorf("wrapped: %w", e)
	}
	tests := []struct {
		name                 string
		err                  error
		overwrite, tagDelete bool
	}{
		{"Harbor immutable", answer(http.StatusPreconditionFailed, "PRECONDITION", "immutable"), true, false},
		{"409", answer(http.StatusConflict, "", ""), true, false},
		{"ECR immutable", answer(http.StatusBadRequest, "TAG_INVALID", "The image tag 'x' already exists and cannot be overwritten because the repository is immutable."), true, true},
		{"denied", answer(http.StatusForbidden, errcode.ErrorCodeDenied, "requested access to the resource is denied"), true, false},
		{"config blob gone", answer(http.StatusBadRequest, "MANIFEST_BLOB_UNKNOWN", "blob unknown to registry"), false, true},
		{"manifest invalid", answer(http.StatusBadRequest, "MANIFEST_INVALID", "manifest invalid"), false, true},
		{"registry 2.8 tag delete", answer(http.StatusBadRequest, "DIGEST_INVALID", "provided digest did not match uploaded content"), false, true},
		{"delete disabled", answer(http.StatusMethodNotAllowed, errcode.ErrorCodeUnsupported, "The operation is unsupported."), false, true},
		{"403 without a code", answer(http.StatusForbidden, "", ""), false, false},
		{"404", answer(http.StatusNotFound, "MANIFEST_UNKNOWN", "manifest unknown"), false, false},
		{"503", answer(http.StatusServiceUnavailable, "", ""), false, false},
		{"not an answer", errors.New("connection reset"), false, false},
	}
	for _, tt := range tests {
		if got := isOverwriteRefused(tt.err); got != tt.overwrite {
			t.Errorf("%s: isOverwriteRefused = %v, want %v", tt.name, got, tt.overwrite)
		}
		if got := isTagDeleteRefused(tt.err); got != tt.tagDelete {
			t.Errorf("%s: isTagDeleteRefused = %v, want %v", tt.name, got, tt.tagDelete)
		}
	}
}

// Create finds out whether the registry deletes tags; where it does, a
// lock (or key) is removed by deleting its tag first, so that a process
// killed at either of the two deletes leaves the lock whole or gone,
// never a tag listed without a manifest. Registry 2.8 cannot delete
// tags, and locks are deleted by digest there.
func TestLockDeleteKilled(t *testing.T) {
	for _, kind := range testregistry.RegistryKinds {
		t.Run(kind.String(), func(t *testing.T) {
			k := &killer{left: -1}
			reg := newTestRegistryWith(t, testregistry.RegistryOptions{Kind: kind, Delete: true}, k.wrap)
			k.dataDir = reg.proc.DataDir
			loc := reg.newRepo()
			ctx := t.Context()
			st := openStore(t, loc, func(o *Options) { o.RetryFor = 300 * time.Millisecond })
			st.backoff = func(int) time.Duration { return time.Millisecond }
			if err := st.Create(ctx, []byte("config")); err != nil {
				t.Fatal(err)
			}
			want := map[testregistry.RegistryKind]string{testregistry.Distribution: "allowed", testregistry.Registry28: "refused"}[kind]
			if got := st.Describe(ctx)["tag delete"]; got != want {
				t.Fatalf(`after Create, Describe()["tag delete"] = %q, want %q`, got, want)
			}
			if kind != testregistry.Distribution {
				return // a delete by digest, as before: nothing to kill safely
			}
			for n := 1; n <= 2; n++ {
				name := fmt.Sprintf("00000%d", n)
				if err := st.Put(ctx, storage.KindLock, name, storage.BytesBody([]byte("lock"))); err != nil {
					t.Fatal(err)
				}
				k.arm(n)
				err := st.Delete(ctx, storage.KindLock, name)
				k.revive()
				if n == 1 && err == nil {
					t.Fatalf("Delete killed at its first write returned no error")
				}
				// Whatever was cut, every lock tag listed has its manifest.
				tags, err := st.listTags(ctx)
				if err != nil {
					t.Fatal(err)
				}
				for _, tag := range tags {
					if strings.HasPrefix(tag, tagPrefix(storage.KindLock)) {
						var m ocispec.Manifest
						fetchJSON(t, st, tag, &m)
					}
				}
				listed := listNames(t, st, storage.KindLock)
				if _, ok := listed[name]; ok != (n == 1) {
					t.Errorf("killed at write %d: the lock is listed: %v, want %v", n, ok, n == 1)
				}
			}
		})
	}
}

// denyDeletes answers every DELETE with 403 DENIED while on, as a
// registry does for a credential that may push but not delete (what a
// backup needs).
type denyDeletes struct{ on atomic.Bool }

func (d *denyDeletes) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodDelete && d.on.Load() {
			http.Error(w, `{"errors":[{"code":"DENIED","message":"requested access to the resource is denied"}]}`, http.StatusForbidden)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// A backup with a credential that may not delete removes its lock by
// moving the tag to a tombstone, also on a registry that deletes tags.
func TestLockDeleteWithoutDeleteRight(t *testing.T) {
	d := &denyDeletes{}
	reg := newTestRegistry(t, d.wrap)
	loc := reg.newRepo()
	ctx := t.Context()
	cache := t.TempDir()
	st := openStore(t, loc, func(o *Options) { o.CacheDir = cache })
	if err := st.Create(ctx, []byte("config")); err != nil {
		t.Fatal(err)
	}
	if got := st.Describe(ctx)["tag delete"]; got != "allowed" {
		t.Fatalf(`after Create, Describe()["tag delete"] = %q, want "allowed"`, got)
	}
	d.on.Store(true)
	backup := openStore(t, loc, func(o *Options) { o.CacheDir = cache; o.Writer = "backup" })
	if err := backup.Put(ctx, storage.KindLock, "0123abcd", storage.BytesBody([]byte("lock"))); err != nil {
		t.Fatal(err)
	}
	if err := backup.Delete(ctx, storage.KindLock, "0123abcd"); err != nil {
		t.Fatalf("Delete of a lock without the right to delete: %v", err)
	}
	if _, ok := listNames(t, openStore(t, loc, func(o *Options) { o.Writer = "cold" }), storage.KindLock)["0123abcd"]; ok {
		t.Error("the lock is still listed")
	}
}
