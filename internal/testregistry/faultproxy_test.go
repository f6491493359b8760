package testregistry

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"slices"
	"syscall"
	"testing"
	"time"
)

// faultBlob is a blob behind a proxy, and a client that reads it without
// any retries of its own.
type faultBlob struct {
	r      *Registry
	p      *FaultProxy
	data   []byte
	digest string
	hc     *http.Client
}

func newFaultBlob(t *testing.T, opt FaultOptions) *faultBlob {
	r := StartRegistry(t, RegistryOptions{Kind: Distribution})
	data := make([]byte, 4000)
	for i := range data {
		data[i] = byte(i * 7)
	}
	d := newRegClient(t, r, r.URL).pushBlob("fault/repo", data)
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.DisableKeepAlives = true // no silent retries on reused connections
	return &faultBlob{
		r:      r,
		p:      StartFaultProxy(t, r.URL, opt),
		data:   data,
		digest: d,
		hc:     &http.Client{Transport: tr, Timeout: 30 * time.Second},
	}
}

// get reads the blob, or the range from..to of it, through the proxy,
// and classifies what it saw as a fault kind ("" for a correct answer).
func (fb *faultBlob) get(t *testing.T, method string, from, to int) FaultKind {
	t.Helper()
	req, err := http.NewRequest(method, fb.p.URL+"/v2/fault/repo/blobs/"+fb.digest, nil)
	if err != nil {
		t.Fatal(err)
	}
	if from >= 0 {
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-%d", from, to))
	}
	start := time.Now()
	resp, err := fb.hc.Do(req)
	var body []byte
	if err == nil {
		body, err = io.ReadAll(resp.Body)
		resp.Body.Close()
	}
	took := time.Since(start)
	if err != nil {
		if !errors.Is(err, io.ErrUnexpectedEOF) && !isConnReset(err) && !errors.Is(err, io.EOF) {
			t.Errorf("%s: unexpected error %v", method, err)
		}
		return FaultReset
	}
	switch resp.StatusCode {
	case http.StatusTooManyRequests:
		if ra := resp.Header.Get("Retry-After"); ra != "1" {
			t.Errorf("429 with Retry-After %q", ra)
		}
		return FaultTooManyRequests
	case http.StatusInternalServerError:
		return FaultInternalError
	case http.StatusServiceUnavailable:
		return FaultUnavailable
	case http.StatusOK:
		if method == http.MethodGet && !bytes.Equal(body, fb.data) {
			t.Errorf("200 with %d bytes, not the blob", len(body))
		}
		if from >= 0 {
			return FaultRangeLie
		}
	case http.StatusPartialContent:
		if from < 0 || !bytes.Equal(body, fb.data[from:to+1]) {
			t.Errorf("206 with the wrong bytes (%d)", len(body))
		}
	default:
		t.Errorf("%s: unexpected %s", method, resp.Status)
	}
	if took >= 200*time.Millisecond {
		return FaultSlow
	}
	return ""
}

func isConnReset(err error) bool {
	for e := err; e != nil; e = errors.Unwrap(e) {
		if s := e.Error(); bytes.Contains([]byte(s), []byte("connection reset")) {
			return true
		}
	}
	return false
}

func TestFaultProxyInjectsEveryFault(t *testing.T) {
	fb := newFaultBlob(t, FaultOptions{Rate: 1, Seed: 7})
	seen := map[FaultKind]int{}
	n := 0
	for ; n < 100 && (n < 24 || len(seen) < len(FaultKinds)); n++ {
		k := fb.get(t, http.MethodGet, 100, 1099)
		if k == "" {
			t.Fatalf("request %d was not faulted at rate 1", n)
		}
		seen[k]++
	}
	if got := slices.Sorted(maps.Keys(seen)); len(got) != len(FaultKinds) {
		t.Errorf("after %d requests saw only %q", n, got)
	}
	if !maps.Equal(seen, fb.p.Faults()) {
		t.Errorf("client saw %v, proxy counted %v", seen, fb.p.Faults())
	}
	if got := fb.p.Requests(); fb.p.Total() != n || got["GET blob range"] != n || len(got) != 1 {
		t.Errorf("after %d requests: Total %d, Requests %v", n, fb.p.Total(), got)
	}

	// At rate 0, nothing is faulted.
	fb.p.SetRate(0)
	fb.p.Reset()
	if fb.p.Total() != 0 || len(fb.p.Requests()) != 0 || len(fb.p.Faults()) != 0 {
		t.Fatal("Reset did not zero the counters")
	}
	for i := range 20 {
		if k := fb.get(t, http.MethodGet, i, i+500); k != "" {
			t.Fatalf("faulted (%s) at rate 0", k)
		}
	}
	if k := fb.get(t, http.MethodHead, -1, 0); k != "" {
		t.Fatalf("HEAD faulted (%s) at rate 0", k)
	}
	if len(fb.p.Faults()) != 0 || fb.p.Total() != 21 || fb.p.Requests()["GET blob range"] != 20 || fb.p.Requests()["HEAD blob"] != 1 {
		t.Errorf("at rate 0: faults %v, total %d, requests %v", fb.p.Faults(), fb.p.Total(), fb.p.Requests())
	}
}

func TestFaultProxyRangeLie(t *testing.T) {
	fb := newFaultBlob(t, FaultOptions{Rate: 1, Kinds: []FaultKind{FaultRangeLie}})
	for range 3 {
		if k := fb.get(t, http.MethodGet, 10, 19); k != FaultRangeLie {
			t.Fatalf("GET with Range: %q, want the range lie", k)
		}
	}
	// Nothing else to lie to.
	if k := fb.get(t, http.MethodGet, -1, 0); k != "" {
		t.Errorf("GET without Range: %q", k)
	}
	if k := fb.get(t, http.MethodHead, -1, 0); k != "" {
		t.Errorf("HEAD: %q", k)
	}
	if f := fb.p.Faults(); f[FaultRangeLie] != 3 || len(f) != 1 {
		t.Errorf("faults %v", f)
	}
}

// TestFaultProxyResetAfterApplying checks that a reset request was
// carried out by the registry, even though the client heard no answer.
func TestFaultProxyResetAfterApplying(t *testing.T) {
	fb := newFaultBlob(t, FaultOptions{Rate: 1, Kinds: []FaultKind{FaultReset}})
	if k := fb.get(t, http.MethodHead, -1, 0); k != FaultReset {
		t.Errorf("HEAD: %q, want a reset", k)
	}
	c := newRegClient(t, fb.r, fb.r.URL)
	c.pushBlob("fault/repo", emptyJSON)
	m := makeManifest(fb.data)
	req, err := http.NewRequest(http.MethodPut, fb.p.URL+"/v2/fault/repo/manifests/v1", bytes.NewReader(m))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", ociManifest)
	if resp, err := fb.hc.Do(req); err == nil {
		resp.Body.Close()
		t.Fatalf("PUT manifest through a reset: %s, want an error", resp.Status)
	}
	if code, body := c.manifest("fault/repo", "v1"); code != http.StatusOK || !bytes.Equal(body, m) {
		t.Errorf("the reset PUT was not applied: %d %s", code, body)
	}
}

// TestFaultProxyClasses pushes and reads through a proxy that faults
// nothing, and checks the classes counted. Upload locations must lead
// back through the proxy.
func TestFaultProxyClasses(t *testing.T) {
	r := StartRegistry(t, RegistryOptions{Kind: Distribution, Delete: true})
	p := StartFaultProxy(t, r.URL, FaultOptions{})
	c := newRegClient(t, r, p.URL)
	if got, want := p.Location("a/b"), "oci://"+p.Host+"/a/b"; got != want {
		t.Errorf("Location %q, want %q", got, want)
	}
	_, d := c.pushArtifact("cls/repo", "v1", []byte("layer"))
	c.tags("cls/repo")
	c.manifest("cls/repo", "v1")
	c.do(http.MethodHead, "/v2/cls/repo/manifests/v1", nil, nil)
	c.blobStatus("cls/repo", digestOf(emptyJSON))
	c.do(http.MethodGet, "/v2/cls/repo/blobs/"+digestOf(emptyJSON), nil, nil)
	c.do(http.MethodGet, "/v2/cls/repo/blobs/"+digestOf(emptyJSON), http.Header{"Range": {"bytes=0-0"}}, nil)
	c.do(http.MethodDelete, "/v2/cls/repo/manifests/"+d, nil, nil)
	c.do(http.MethodGet, "/v2/", nil, nil)
	want := map[string]int{
		"POST upload": 2, "PUT upload": 2, "PUT manifest": 1, "GET tags": 1,
		"GET manifest": 1, "HEAD manifest": 1, "HEAD blob": 1, "GET blob": 1,
		"GET blob range": 1, "DELETE manifest": 1, "other": 1,
	}
	if got := p.Requests(); !maps.Equal(got, want) {
		t.Errorf("Requests() = %v\nwant %v", got, want)
	}
	if p.Total() != 13 {
		t.Errorf("Total() = %d, want 13", p.Total())
	}
}

// TestFaultProxyTLSTarget proxies to a TLS registry with auth: tokens
// come from the token server directly.
func TestFaultProxyTLSTarget(t *testing.T) {
	for _, kind := range RegistryKinds {
		t.Run(kind.String(), func(t *testing.T) {
			t.Parallel()
			r := StartRegistry(t, RegistryOptions{Kind: kind, TLS: true, Auth: AuthToken})
			p := StartFaultProxy(t, r.URL, FaultOptions{TargetCAFile: r.CAFile})
			c := newRegClient(t, r, p.URL)
			c.pushArtifact("tls/repo", "v1", []byte("layer"))
			if tags := c.tags("tls/repo"); !slices.Equal(tags, []string{"v1"}) {
				t.Errorf("tags %q", tags)
			}
			// Each request is made twice: once for the challenge.
			if p.Requests()["PUT upload"] != 4 || r.Token.Issued() == 0 {
				t.Errorf("requests %v, tokens issued %d", p.Requests(), r.Token.Issued())
			}
		})
	}
}

// TestFaultProxyOutages: Refuse refuses connections and resets those
// open, then listens on the same port again; BadGateway answers 502 for
// its duration, then forwards again.
func TestFaultProxyOutages(t *testing.T) {
	r := StartRegistry(t, RegistryOptions{Kind: Distribution})
	p := StartFaultProxy(t, r.URL, FaultOptions{})
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	ping := func() (int, error) {
		resp, err := client.Get(p.URL + "/v2/")
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	if code, err := ping(); err != nil || code != http.StatusOK {
		t.Fatalf("before any outage: %d, %v", code, err)
	}

	// A request in flight when the outage starts is cut off.
	conn, err := net.Dial("tcp", p.Host)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET /v2/ HTTP/1.1\r\nHost: %s\r\n\r\n", p.Host)
	if _, err := http.ReadResponse(bufio.NewReader(conn), nil); err != nil {
		t.Fatalf("first request on a kept connection: %v", err)
	}
	p.Refuse(500 * time.Millisecond)
	if p.Up() {
		t.Error("Up during an outage")
	}
	fmt.Fprintf(conn, "GET /v2/ HTTP/1.1\r\nHost: %s\r\n\r\n", p.Host)
	if _, err := http.ReadResponse(bufio.NewReader(conn), nil); err == nil {
		t.Error("a kept connection still answers during an outage")
	}
	if _, err := ping(); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("a new connection during an outage: %v, want ECONNREFUSED", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !p.Up() && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if code, err := ping(); err != nil || code != http.StatusOK {
		t.Fatalf("after the outage: %d, %v", code, err)
	}

	p.Restart()
	for !p.Up() && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if code, err := ping(); err != nil || code != http.StatusOK {
		t.Fatalf("after a restart: %d, %v", code, err)
	}

	p.BadGateway(300 * time.Millisecond)
	if code, err := ping(); err != nil || code != http.StatusBadGateway {
		t.Errorf("during BadGateway: %d, %v; want 502", code, err)
	}
	time.Sleep(400 * time.Millisecond)
	if code, err := ping(); err != nil || code != http.StatusOK {
		t.Errorf("after BadGateway: %d, %v; want 200", code, err)
	}
}
