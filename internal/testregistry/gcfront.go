package testregistry

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// GCFrontOptions configures StartGCFront.
type GCFrontOptions struct {
	// Grace is how long an uploaded blob may stay unreferenced by any
	// tagged manifest before it is deleted (zot's gcDelay, Harbor's GC
	// time window).
	Grace time.Duration
	// Every is how often the front sweeps (1 s when zero).
	Every time.Duration
	// UploadRate, when not zero, limits every request body to this many
	// bytes per second: a slow link, on which uploads take long.
	UploadRate int64
}

// GCFront is a reverse proxy in front of a registry (one without auth,
// with deletes enabled) that emulates online garbage collection, as zot
// and Harbor run it: a blob uploaded through it that no tagged manifest
// of its repository references Grace after its upload finished is
// deleted. It serves plain HTTP on 127.0.0.1.
type GCFront struct {
	// Host is "127.0.0.1:PORT".
	Host string

	reg    *Registry
	repo   string
	opt    GCFrontOptions
	srv    *http.Server
	client *http.Client

	mu       sync.Mutex
	uploaded map[string]time.Time // digest -> when its upload finished, until referenced
	uploads  int
	reaped   []string
	maxLag   time.Duration // the longest an upload waited for a reference
	sweeps   int
	errs     []error
}

// StartGCFront starts a GC front for repo of reg and stops it at the end
// of the test.
func StartGCFront(t testing.TB, reg *Registry, repo string, opt GCFrontOptions) *GCFront {
	t.Helper()
	if reg.Options.Auth != AuthNone || !reg.Options.Delete {
		t.Fatalf("testutil: StartGCFront needs a registry without auth and with deletes enabled")
	}
	if opt.Every == 0 {
		opt.Every = time.Second
	}
	target, _ := url.Parse(reg.URL)
	f := &GCFront{reg: reg, repo: repo, opt: opt, client: reg.Client(), uploaded: map[string]time.Time{}}
	quiet := log.New(io.Discard, "", 0)
	proxy := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Host = pr.In.Host
			setForwarded(pr.Out.Header, pr.In.Host)
			if opt.UploadRate > 0 && pr.Out.Body != nil && pr.Out.Body != http.NoBody {
				pr.Out.Body = &throttled{r: pr.Out.Body, rate: opt.UploadRate, start: time.Now()}
			}
		},
		ModifyResponse: f.noteUpload,
		ErrorLog:       quiet,
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("testutil: StartGCFront: %v", err)
	}
	f.srv = &http.Server{Handler: proxy, ErrorLog: quiet}
	go f.srv.Serve(ln)
	f.Host = ln.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(opt.Every)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				f.sweep(ctx)
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		f.srv.Close()
	})
	return f
}

// Location returns the coffer location of the front's repository.
func (f *GCFront) Location() string { return "oci://" + f.Host + "/" + f.repo }

// Uploads returns how many blob uploads completed through the front.
func (f *GCFront) Uploads() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.uploads
}

// Reaped returns the digests of the blobs the front deleted.
func (f *GCFront) Reaped() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.reaped...)
}

// MaxLag returns the longest a blob uploaded through the front waited to
// be referenced by a tagged manifest, as sweeps saw it (up to Every
// more than the truth).
func (f *GCFront) MaxLag() time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.maxLag
}

// Sweeps returns how many sweeps completed, and the errors of those that
// did not.
func (f *GCFront) Sweeps() (int, []error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.sweeps, append([]error(nil), f.errs...)
}

// noteUpload records a blob upload that completed (a PUT with ?digest=
// answered 201).
func (f *GCFront) noteUpload(resp *http.Response) error {
	req := resp.Request
	if req.Method != http.MethodPut || !strings.Contains(req.URL.Path, "/blobs/uploads/") || resp.StatusCode != http.StatusCreated {
		return nil
	}
	if d := req.URL.Query().Get("digest"); d != "" {
		f.mu.Lock()
		f.uploaded[d] = time.Now()
		f.uploads++
		f.mu.Unlock()
	}
	return nil
}

// sweep deletes the blobs uploaded more than Grace before it started that
// no tagged manifest references.
func (f *GCFront) sweep(ctx context.Context) {
	start := time.Now()
	refs, err := f.referenced(ctx)
	f.mu.Lock()
	defer f.mu.Unlock()
	if err != nil {
		if ctx.Err() == nil {
			f.errs = append(f.errs, err)
		}
		return
	}
	for d, at := range f.uploaded {
		switch {
		case refs[d]:
			f.maxLag = max(f.maxLag, start.Sub(at))
			delete(f.uploaded, d)
		case at.Before(start.Add(-f.opt.Grace)):
			req, _ := http.NewRequestWithContext(ctx, http.MethodDelete, f.url("blobs/"+d), nil)
			resp, err := f.client.Do(req)
			if err != nil {
				f.errs = append(f.errs, err)
				continue
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusAccepted {
				f.errs = append(f.errs, fmt.Errorf("DELETE blob %s: %s", d, resp.Status))
				continue
			}
			delete(f.uploaded, d)
			f.reaped = append(f.reaped, d)
		}
	}
	f.sweeps++
}

func (f *GCFront) url(path string) string {
	return f.reg.URL + "/v2/" + f.repo + "/" + path
}

// referenced returns every digest that a tagged manifest of the
// repository reaches: manifests, their configs and layers, and what
// indexes list.
func (f *GCFront) referenced(ctx context.Context) (map[string]bool, error) {
	var tags struct {
		Tags []string `json:"tags"`
	}
	if err := f.getJSON(ctx, "tags/list?n=100000", &tags); err != nil && !strings.Contains(err.Error(), "404") {
		return nil, err // 404: the repository does not exist yet
	}
	refs := map[string]bool{}
	var walk func(ref string) error
	walk = func(ref string) error {
		var m struct {
			Config    struct{ Digest string } `json:"config"`
			Layers    []struct{ Digest string }
			Manifests []struct{ Digest string }
		}
		if err := f.getJSON(ctx, "manifests/"+ref, &m); err != nil {
			return err
		}
		refs[m.Config.Digest] = true
		for _, l := range m.Layers {
			refs[l.Digest] = true
		}
		for _, c := range m.Manifests {
			if !refs[c.Digest] {
				refs[c.Digest] = true
				if err := walk(c.Digest); err != nil {
					return err
				}
			}
		}
		return nil
	}
	for _, tag := range tags.Tags {
		if err := walk(tag); err != nil && !strings.Contains(err.Error(), "404") {
			return nil, err // a tag deleted since the listing is not an error
		}
	}
	return refs, nil
}

func (f *GCFront) getJSON(ctx context.Context, path string, v any) error {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, f.url(path), nil)
	req.Header.Set("Accept", "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json")
	resp, err := f.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// throttled reads at most rate bytes per second since start.
type throttled struct {
	r     io.ReadCloser
	rate  int64
	start time.Time
	n     int64
}

func (t *throttled) Read(p []byte) (int, error) {
	if len(p) > 64<<10 {
		p = p[:64<<10]
	}
	n, err := t.r.Read(p)
	t.n += int64(n)
	if due := t.start.Add(time.Duration(float64(t.n) / float64(t.rate) * float64(time.Second))); time.Until(due) > 0 {
		time.Sleep(time.Until(due))
	}
	return n, err
}

func (t *throttled) Close() error { return t.r.Close() }
