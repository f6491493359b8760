package testregistry

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log"
	"maps"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// FaultKind names a fault that a FaultProxy injects.
type FaultKind string

// The faults of a FaultProxy.
const (
	// FaultTooManyRequests answers 429 with "Retry-After: 1", without
	// forwarding the request.
	FaultTooManyRequests FaultKind = "429"
	// FaultInternalError answers 500 without forwarding the request.
	FaultInternalError FaultKind = "500"
	// FaultUnavailable answers 503 without forwarding the request.
	FaultUnavailable FaultKind = "503"
	// FaultReset forwards the request, so that the registry does what
	// it asks, then sends the status line, the headers and half of the
	// body of the answer (nothing at all for an answer without a body)
	// and resets the TCP connection (SO_LINGER 0, an RST).
	FaultReset FaultKind = "reset"
	// FaultSlow waits 200 to 500 ms, then forwards the request as is.
	FaultSlow FaultKind = "slow"
	// FaultRangeLie, only for a GET with a Range header, forwards the
	// request without its Range (and If-Range) header, so that the
	// answer is 200 with the whole body: a server that ignores Range,
	// which HTTP allows and a client must notice.
	FaultRangeLie FaultKind = "range-lie"
)

// FaultKinds lists every FaultKind.
var FaultKinds = []FaultKind{FaultTooManyRequests, FaultInternalError, FaultUnavailable, FaultReset, FaultSlow, FaultRangeLie}

// FaultOptions configures StartFaultProxy.
type FaultOptions struct {
	// Rate is the fraction of requests faulted, from 0 (none) to 1
	// (all).
	Rate float64
	// Seed seeds the choice of the requests faulted and of their
	// faults.
	Seed int64
	// Kinds restricts the faults injected; all of FaultKinds when
	// empty. A request to fault for which no kind applies (only
	// FaultRangeLie allowed, and no Range header) is forwarded as is.
	Kinds []FaultKind
	// TargetCAFile is a PEM file of the CA to trust when the target is
	// https (Registry.CAFile).
	TargetCAFile string
}

// FaultProxy is a reverse proxy in front of a registry that injects
// faults into a random fraction of the requests. It serves plain HTTP on
// 127.0.0.1, also in front of an https registry, and keeps the Host
// header of requests (adding X-Forwarded-Proto: http), so that the
// registry's upload locations point back through it. Token requests do
// not pass through it: the registry's challenge sends clients to its
// token server directly.
type FaultProxy struct {
	// Host is "127.0.0.1:PORT".
	Host string
	// URL is "http://"+Host.
	URL string

	target *url.URL
	srv    *http.Server
	tr     *http.Transport
	proxy  *httputil.ReverseProxy // forwards as is
	noRng  *httputil.ReverseProxy // forwards without Range headers
	kinds  []FaultKind

	mu       sync.Mutex
	rng      *rand.Rand
	rate     float64
	requests map[string]int
	sent     map[string]int64 // request body bytes, by class
	served   map[string]int64 // response body bytes, by class
	faults   map[FaultKind]int
	total    int
	ln       net.Listener // nil while refusing connections
	conns    map[net.Conn]struct{}
	badUntil time.Time // answer 502 until then
	triggers []trigger
	outages  sync.WaitGroup
	stopped  bool
}

// StartFaultProxy starts a fault-injecting proxy to target (a registry's
// URL, such as "http://127.0.0.1:5000") and stops it at the end of the
// test.
func StartFaultProxy(t testing.TB, target string, opt FaultOptions) *FaultProxy {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		t.Fatalf("testutil: StartFaultProxy: bad target %q (%v)", target, err)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.DisableCompression = true
	if opt.TargetCAFile != "" {
		pem, err := os.ReadFile(opt.TargetCAFile)
		if err != nil {
			t.Fatalf("testutil: StartFaultProxy: %v", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			t.Fatalf("testutil: StartFaultProxy: no certificate in %s", opt.TargetCAFile)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	kinds := opt.Kinds
	if len(kinds) == 0 {
		kinds = FaultKinds
	}
	p := &FaultProxy{
		target:   u,
		tr:       tr,
		kinds:    kinds,
		rng:      rand.New(rand.NewPCG(uint64(opt.Seed), 0x636f66666572)),
		requests: map[string]int{},
		sent:     map[string]int64{},
		served:   map[string]int64{},
		faults:   map[FaultKind]int{},
	}
	p.SetRate(opt.Rate)
	quiet := log.New(io.Discard, "", 0) // a registry down is what tests want
	p.proxy = &httputil.ReverseProxy{
		Rewrite:   p.rewrite,
		Transport: tr,
		ErrorLog:  quiet,
	}
	p.noRng = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			p.rewrite(pr)
			pr.Out.Header.Del("Range")
			pr.Out.Header.Del("If-Range")
		},
		Transport: tr,
		ErrorLog:  quiet,
	}
	p.conns = map[net.Conn]struct{}{}
	p.srv = &http.Server{Handler: http.HandlerFunc(p.serve), ConnState: p.track, ErrorLog: quiet}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("testutil: StartFaultProxy: %v", err)
	}
	p.ln = ln
	go p.srv.Serve(ln)
	t.Cleanup(func() {
		p.mu.Lock()
		p.stopped = true
		p.mu.Unlock()
		p.outages.Wait()
		p.srv.Close()
		tr.CloseIdleConnections()
	})
	p.Host = ln.Addr().String()
	p.URL = "http://" + p.Host
	return p
}

// track keeps the set of open connections, for Refuse to drop.
func (p *FaultProxy) track(c net.Conn, state http.ConnState) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch state {
	case http.StateNew:
		p.conns[c] = struct{}{}
	case http.StateClosed, http.StateHijacked:
		delete(p.conns, c)
	}
}

// Refuse makes the proxy behave as a registry host that is down for d:
// it stops listening, so that connections are refused, and resets every
// open connection, requests in flight included; after d it listens on
// the same port again. It returns at once. Refuse(0) is a restart.
func (p *FaultProxy) Refuse(d time.Duration) {
	p.mu.Lock()
	ln := p.ln
	p.ln = nil
	conns := p.conns
	p.conns = map[net.Conn]struct{}{}
	p.outages.Add(1)
	p.mu.Unlock()
	if ln != nil {
		ln.Close()
	}
	for c := range conns {
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetLinger(0) // an RST, as from a host that went away
		}
		c.Close()
	}
	go func() {
		defer p.outages.Done()
		time.Sleep(d)
		for {
			p.mu.Lock()
			if p.stopped {
				p.mu.Unlock()
				return
			}
			p.mu.Unlock()
			ln, err := net.Listen("tcp", p.Host)
			if err != nil {
				time.Sleep(50 * time.Millisecond) // the port is still held by the old socket
				continue
			}
			p.mu.Lock()
			p.ln = ln
			p.mu.Unlock()
			go p.srv.Serve(ln)
			return
		}
	}()
}

// trigger is a function to call when a request class reaches a count.
type trigger struct {
	class string
	n     int
	f     func()
}

// At calls f (once, in its own goroutine) when the n-th request of class
// (see Requests) since the last Reset arrives, before that request is
// served: p.At("PUT upload", 3, func() { p.Refuse(15 * time.Second) })
// starts an outage in the middle of a backup, whatever its speed.
func (p *FaultProxy) At(class string, n int, f func()) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.triggers = append(p.triggers, trigger{class, n, f})
}

// Restart drops every connection and listens again at once, as a proxy
// or registry restarting quickly does.
func (p *FaultProxy) Restart() { p.Refuse(0) }

// Up reports whether the proxy is accepting connections.
func (p *FaultProxy) Up() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.ln != nil
}

// BadGateway makes the proxy answer every request with 502 for d, as a
// reverse proxy whose registry is down does. It returns at once.
func (p *FaultProxy) BadGateway(d time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.badUntil = time.Now().Add(d)
}

// Location returns the coffer location of repo through the proxy,
// "oci://HOST/REPO".
func (p *FaultProxy) Location(repo string) string {
	return "oci://" + p.Host + "/" + repo
}

// SetRate changes the fraction of requests faulted, clamped to [0, 1].
func (p *FaultProxy) SetRate(rate float64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rate = min(max(rate, 0), 1)
}

// Requests returns how many requests of each class the proxy has seen
// since it started or was Reset, faulted or not. A class is the method
// and what the path names: "GET manifest", "HEAD manifest", "PUT
// manifest", "DELETE manifest", "GET blob", "HEAD blob", "GET blob
// range" (a GET with a Range header), "DELETE blob", "POST upload",
// "PATCH upload", "PUT upload", "GET upload", "DELETE upload", "GET
// tags", "GET referrers", "GET catalog", or "other" (such as GET /v2/).
func (p *FaultProxy) Requests() map[string]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return maps.Clone(p.requests)
}

// Sent returns how many bytes of request bodies the proxy has received,
// by RequestClass, since it started or was Reset: what clients uploaded
// through it.
func (p *FaultProxy) Sent() map[string]int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return maps.Clone(p.sent)
}

// Served returns how many bytes of response bodies the proxy has sent,
// by RequestClass, since it started or was Reset: what clients
// downloaded through it.
func (p *FaultProxy) Served() map[string]int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return maps.Clone(p.served)
}

// countingWriter counts the bytes of a response's body.
type countingWriter struct {
	http.ResponseWriter
	p     *FaultProxy
	class string
}

func (w *countingWriter) Write(b []byte) (int, error) {
	n, err := w.ResponseWriter.Write(b)
	w.p.mu.Lock()
	w.p.served[w.class] += int64(n)
	w.p.mu.Unlock()
	return n, err
}

// Flush passes flushes on, so that streamed answers stay streamed.
func (w *countingWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Hijack hands the connection over, for the faults that cut it; what is
// written to it then is not counted.
func (w *countingWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return http.NewResponseController(w.ResponseWriter).Hijack()
}

// Unwrap is for http.ResponseController.
func (w *countingWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// countingBody counts the bytes read of a request's body.
type countingBody struct {
	io.ReadCloser
	p     *FaultProxy
	class string
}

func (b *countingBody) Read(buf []byte) (int, error) {
	n, err := b.ReadCloser.Read(buf)
	if n > 0 {
		b.p.mu.Lock()
		b.p.sent[b.class] += int64(n)
		b.p.mu.Unlock()
	}
	return n, err
}

// Faults returns how many faults of each kind the proxy has injected
// since it started or was Reset.
func (p *FaultProxy) Faults() map[FaultKind]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return maps.Clone(p.faults)
}

// Total returns how many requests the proxy has seen since it started or
// was Reset.
func (p *FaultProxy) Total() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.total
}

// Reset zeroes the counters of Requests, Faults and Total.
func (p *FaultProxy) Reset() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.requests = map[string]int{}
	p.sent = map[string]int64{}
	p.served = map[string]int64{}
	p.faults = map[FaultKind]int{}
	p.total = 0
}

// RequestClass returns the class under which FaultProxy.Requests counts
// a request.
func RequestClass(r *http.Request) string {
	path := r.URL.Path
	rest, ok := strings.CutPrefix(path, "/v2/")
	if !ok || rest == "" {
		return "other"
	}
	if rest == "_catalog" {
		return r.Method + " catalog"
	}
	var what string
	switch {
	case strings.Contains(rest, "/blobs/uploads/") || strings.HasSuffix(rest, "/blobs/uploads"):
		what = "upload"
	case strings.Contains(rest, "/blobs/"):
		what = "blob"
		if r.Method == http.MethodGet && r.Header.Get("Range") != "" {
			what = "blob range"
		}
	case strings.Contains(rest, "/manifests/"):
		what = "manifest"
	case strings.HasSuffix(rest, "/tags/list"):
		what = "tags"
	case strings.Contains(rest, "/referrers/"):
		what = "referrers"
	default:
		return "other"
	}
	return r.Method + " " + what
}

// rewrite points a request at the target, keeping its Host header and
// telling the registry, which builds the absolute URLs of its answers
// (upload locations) from them, that the client speaks plain HTTP to
// that host.
func (p *FaultProxy) rewrite(pr *httputil.ProxyRequest) {
	pr.SetURL(p.target)
	pr.Out.Host = pr.In.Host
	setForwarded(pr.Out.Header, pr.In.Host)
}

func setForwarded(h http.Header, host string) {
	h.Del("Forwarded")
	h.Set("X-Forwarded-Proto", "http")
	h.Set("X-Forwarded-Host", host)
}

// pick counts the request and decides its fault, "" for none.
func (p *FaultProxy) pick(r *http.Request) (FaultKind, time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.total++
	class := RequestClass(r)
	p.requests[class]++
	p.triggers = slices.DeleteFunc(p.triggers, func(tr trigger) bool {
		if tr.class != class || p.requests[class] < tr.n {
			return false
		}
		go tr.f()
		return true
	})
	if p.rate <= 0 || p.rng.Float64() >= p.rate {
		return "", 0
	}
	var applicable []FaultKind
	for _, k := range p.kinds {
		if k == FaultRangeLie && (r.Method != http.MethodGet || r.Header.Get("Range") == "") {
			continue
		}
		applicable = append(applicable, k)
	}
	if len(applicable) == 0 {
		return "", 0
	}
	// The kind injected least so far: every kind occurs as soon as a few
	// requests are faulted, where a random choice sometimes left one out
	// and made the tests that count on each kind flaky.
	k := applicable[0]
	for _, c := range applicable[1:] {
		if p.faults[c] < p.faults[k] {
			k = c
		}
	}
	p.faults[k]++
	var delay time.Duration
	if k == FaultSlow {
		delay = 200*time.Millisecond + time.Duration(p.rng.IntN(301))*time.Millisecond
	}
	return k, delay
}

func (p *FaultProxy) serve(w http.ResponseWriter, r *http.Request) {
	if r.Body != nil && r.Body != http.NoBody {
		r.Body = &countingBody{ReadCloser: r.Body, p: p, class: RequestClass(r)}
	}
	w = &countingWriter{ResponseWriter: w, p: p, class: RequestClass(r)}
	kind, delay := p.pick(r)
	p.mu.Lock()
	bad := time.Now().Before(p.badUntil)
	p.mu.Unlock()
	if bad {
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusBadGateway)
		io.WriteString(w, "<html><body><h1>502 Bad Gateway</h1></body></html>\n")
		return
	}
	switch kind {
	case "":
		p.proxy.ServeHTTP(w, r)
	case FaultTooManyRequests:
		w.Header().Set("Retry-After", "1")
		registryError(w, http.StatusTooManyRequests, "TOOMANYREQUESTS")
	case FaultInternalError:
		registryError(w, http.StatusInternalServerError, "UNKNOWN")
	case FaultUnavailable:
		registryError(w, http.StatusServiceUnavailable, "UNAVAILABLE")
	case FaultSlow:
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return
		}
		p.proxy.ServeHTTP(w, r)
	case FaultRangeLie:
		p.noRng.ServeHTTP(w, r)
	case FaultReset:
		p.reset(w, r)
	}
}

// registryError answers like a registry, with a fault-injection note.
func registryError(w http.ResponseWriter, code int, errCode string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	fmt.Fprintf(w, `{"errors":[{"code":%q,"message":"fault injected by the test proxy"}]}`+"\n", errCode)
}

// reset forwards the request, then sends part of the answer and resets
// the connection.
func (p *FaultProxy) reset(w http.ResponseWriter, r *http.Request) {
	out := r.Clone(r.Context())
	out.RequestURI = ""
	out.URL.Scheme = p.target.Scheme
	out.URL.Host = p.target.Host
	out.Host = r.Host
	for _, h := range []string{"Connection", "Proxy-Connection", "Keep-Alive", "Te", "Trailer", "Transfer-Encoding", "Upgrade"} {
		out.Header.Del(h)
	}
	setForwarded(out.Header, r.Host)
	if r.ContentLength == 0 {
		out.Body = nil
	}
	resp, err := p.tr.RoundTrip(out)
	if err != nil {
		http.Error(w, "fault proxy: "+err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()

	hj, ok := w.(http.Hijacker)
	if !ok {
		http.Error(w, "fault proxy: cannot hijack", http.StatusInternalServerError)
		return
	}
	conn, buf, err := hj.Hijack()
	if err != nil {
		return
	}
	defer func() {
		if tc, ok := conn.(*net.TCPConn); ok {
			_ = tc.SetLinger(0) // close sends an RST
		}
		_ = conn.Close()
	}()
	if r.Method == http.MethodHead || resp.ContentLength == 0 {
		return // nothing to cut in half: no answer at all
	}
	body := io.Reader(resp.Body)
	n := resp.ContentLength
	if n < 0 {
		b, err := io.ReadAll(resp.Body)
		if err != nil || len(b) == 0 {
			return
		}
		body, n = bytes.NewReader(b), int64(len(b))
	}
	writePartial(buf.Writer, resp, body, n)
}

// writePartial writes the status line and headers of resp, announcing a
// body of n bytes, and the first half of body.
func writePartial(w *bufio.Writer, resp *http.Response, body io.Reader, n int64) {
	fmt.Fprintf(w, "HTTP/1.1 %d %s\r\n", resp.StatusCode, http.StatusText(resp.StatusCode))
	h := resp.Header.Clone()
	for _, k := range []string{"Connection", "Keep-Alive", "Transfer-Encoding", "Trailer"} {
		h.Del(k)
	}
	h.Set("Content-Length", strconv.FormatInt(n, 10))
	_ = h.Write(w)
	_, _ = w.WriteString("\r\n")
	_, _ = io.CopyN(w, body, n/2)
	_ = w.Flush()
}
