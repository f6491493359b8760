package oci

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cofferhq/coffer/storage"
)

// lostManifest makes the registry behave as one whose garbage collection
// deleted the manifest a tag names while the tag stayed: GET and HEAD of
// the tag answer 404, the tag is still listed, until a PUT under it.
type lostManifest struct {
	mu   sync.Mutex
	path string // /v2/<repo>/manifests/<tag>; "" while nothing is lost
}

func (l *lostManifest) lose(repo, tag string) {
	l.mu.Lock()
	l.path = "/v2/" + repo + "/manifests/" + tag
	l.mu.Unlock()
}

func (l *lostManifest) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		l.mu.Lock()
		lost := l.path != "" && r.URL.Path == l.path
		if lost && r.Method == http.MethodPut {
			l.path = ""
		}
		l.mu.Unlock()
		if lost && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
			http.Error(w, `{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}`, http.StatusNotFound)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// A refs tag whose manifest the registry lost while it still lists the
// tag is reported as damage (storage.ErrCorrupt, naming the tag and the
// repair), not waited for as a merge in progress; RepairRefs then
// re-publishes what a cache that read the tag knows it held, and a
// listing reads whole again. A client that never read the tag can only
// retire it.
func TestDanglingRefsRepaired(t *testing.T) {
	for _, cacheKnowsTag := range []bool{true, false} {
		name := "cache knows the tag"
		if !cacheKnowsTag {
			name = "cache never read the tag"
		}
		t.Run(name, func(t *testing.T) {
			lost := &lostManifest{}
			reg := newTestRegistry(t, lost.wrap)
			loc := reg.newRepo()
			ctx := t.Context()
			writer := openStore(t, loc, nil)
			if err := writer.Create(ctx, []byte("config")); err != nil {
				t.Fatal(err)
			}
			snaps := pushSmallBlobs(t, writer, storage.KindSnapshot, 3)
			addPending(writer, snaps)
			if err := writer.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			writer.forgetView()
			checkListed(t, writer, storage.KindSnapshot, snaps) // the writer's cache reads the tag
			refs := checkRefs(t, writer)
			if len(refs) != 1 {
				t.Fatalf("%d refs tags, want 1", len(refs))
			}
			var tag string
			for tag = range refs {
			}
			lost.lose(strings.TrimPrefix(loc[strings.Index(loc, "//")+2:], reg.host+"/"), tag)

			reader := openStore(t, loc, func(o *Options) { o.Writer = "reader" })
			reader.settle = 300 * time.Millisecond
			start := time.Now()
			err := reader.List(ctx, storage.KindSnapshot, func(string, int64) error { return nil })
			var dangling *DanglingRefsError
			if !errors.As(err, &dangling) || !errors.Is(err, storage.ErrLostReferences) || errors.Is(err, storage.ErrCorrupt) || !slices.Equal(dangling.Tags, []string{tag}) ||
				!strings.Contains(err.Error(), "coffer repair refs") {
				t.Fatalf("List with a lost refs manifest: %v; want a DanglingRefsError naming %s and the repair", err, tag)
			}
			if d := time.Since(start); d > 10*time.Second {
				t.Errorf("the damage was reported after %s, not after the settle time", d)
			}

			repairer := writer
			if !cacheKnowsTag {
				repairer = reader
			}
			repairer.settle = 300 * time.Millisecond
			// Its own listing fails too, and keeps what it read of the tag.
			repairer.forgetView()
			if err := repairer.List(ctx, storage.KindSnapshot, func(string, int64) error { return nil }); !errors.As(err, &dangling) {
				t.Fatalf("the repairer's List: %v, want a DanglingRefsError", err)
			}
			var reports []string
			report := func(ref string, kept, lost int, retired bool) {
				reports = append(reports, fmt.Sprintf("%s:%d/%d/%v", ref, kept, lost, retired))
			}
			if !cacheKnowsTag {
				// Without -force a tag no one here read is left for a
				// client that did.
				n, err := repairer.RepairRefs(ctx, false, report)
				if err != nil || n != 0 || !slices.Equal(reports, []string{tag + ":-1/-1/false"}) {
					t.Fatalf("RepairRefs without force: %d retired, reports %v, %v; want none retired", n, reports, err)
				}
				if err := reader.List(ctx, storage.KindSnapshot, func(string, int64) error { return nil }); !errors.As(err, &dangling) {
					t.Fatalf("List after a repair that retired nothing: %v, want the DanglingRefsError still", err)
				}
				reports = nil
			}
			n, err := repairer.RepairRefs(ctx, !cacheKnowsTag, report)
			want := tag + ":3/0/true"
			if !cacheKnowsTag {
				want = tag + ":-1/-1/true"
			}
			if err != nil || n != 1 || !slices.Equal(reports, []string{want}) {
				t.Fatalf("RepairRefs: %d retired, reports %v, %v; want 1 and %s", n, reports, err, want)
			}
			after := openStore(t, loc, func(o *Options) { o.Writer = "after" })
			after.settle = 300 * time.Millisecond
			if cacheKnowsTag {
				checkListed(t, after, storage.KindSnapshot, snaps)
			} else {
				checkListed(t, after, storage.KindSnapshot, nil)
			}
			if n, err := repairer.RepairRefs(ctx, false, func(string, int, int, bool) {}); n != 0 || err != nil {
				t.Errorf("RepairRefs of a repaired repository: %d retired, %v", n, err)
			}
		})
	}
}
