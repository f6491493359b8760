//go:build linux

package ui

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path"
	"regexp"
	"strings"
	"testing"
)

func TestAuthRequiresToken(t *testing.T) {
	s, _ := newTestServer(t)
	for _, target := range []string{"/", "/snapshots", "/static/style.css", "/search?name=*", "/s/latest/browse/"} {
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, target, nil))
		if rec.Code != http.StatusUnauthorized {
			t.Errorf("GET %s without token: %d, want 401", target, rec.Code)
		}
		if strings.Contains(rec.Body.String(), "test-token") {
			t.Errorf("GET %s: the 401 page reveals the token", target)
		}
	}
	// A wrong token, in the query or the cookie.
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/?token=nope", nil))
	if rec.Code != http.StatusUnauthorized {
		t.Errorf("wrong ?token: %d, want 401", rec.Code)
	}
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	req.AddCookie(&http.Cookie{Name: cookieName, Value: "nope"})
	rec = httptest.NewRecorder()
	s.ServeHTTP(rec, req)
	if rec.Code != http.StatusUnauthorized {
		t.Errorf("wrong cookie: %d, want 401", rec.Code)
	}

	// The right token in the URL: a cookie, and a redirect without it.
	rec = httptest.NewRecorder()
	s.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/snapshots?tag=daily&token=test-token", nil))
	if rec.Code != http.StatusSeeOther {
		t.Fatalf("?token=right: %d, want 303", rec.Code)
	}
	if loc := rec.Header().Get("Location"); loc != "/snapshots?tag=daily" {
		t.Errorf("redirect to %q, want /snapshots?tag=daily", loc)
	}
	cookies := rec.Result().Cookies()
	if len(cookies) != 1 || cookies[0].Name != cookieName || cookies[0].Value != "test-token" ||
		!cookies[0].HttpOnly || cookies[0].SameSite != http.SameSiteStrictMode {
		t.Errorf("cookie %+v, want %s HttpOnly SameSite=Strict", cookies, cookieName)
	}
	if sc := rec.Header().Get("Set-Cookie"); !strings.Contains(sc, "HttpOnly") || !strings.Contains(sc, "SameSite=Strict") {
		t.Errorf("Set-Cookie %q", sc)
	}
	getOK(t, s, "/snapshots?tag=daily") // with the cookie

	// A generated token is long and random.
	s2, err := New(getFixture(t).repo, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(s2.Token()) < 32 || s2.Token() == s.Token() {
		t.Errorf("generated token %q", s2.Token())
	}
	// -no-auth serves without a token.
	s3, err := New(getFixture(t).repo, Options{NoAuth: true})
	if err != nil {
		t.Fatal(err)
	}
	rec = httptest.NewRecorder()
	s3.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	if rec.Code != http.StatusOK || s3.Token() != "" {
		t.Errorf("NoAuth: %d, token %q", rec.Code, s3.Token())
	}
}

func TestNonLoopbackWarnsAndStillNeedsToken(t *testing.T) {
	s, _ := newTestServer(t)
	ctx, cancel := context.WithCancel(t.Context())
	var warn bytes.Buffer
	urls := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- s.ListenAndServe(ctx, ListenOptions{Addr: "0.0.0.0:0", Warn: &warn, Ready: func(u string) { urls <- u }})
	}()
	u := <-urls
	if !strings.Contains(u, "?token=test-token") {
		t.Errorf("URL %q does not carry the token", u)
	}
	base := strings.TrimSuffix(u, "?token=test-token")
	resp, err := http.Get(base + "snapshots")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("no token on 0.0.0.0: %d, want 401", resp.StatusCode)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("ListenAndServe: %v", err)
	}
	if !strings.Contains(warn.String(), "warning") || !strings.Contains(warn.String(), "other machines") {
		t.Errorf("no warning for a non-loopback address: %q", warn.String())
	}
	// Loopback: no warning.
	_, _, warns, err := s.Listen("127.0.0.1:0")
	if err != nil || len(warns) != 0 {
		t.Errorf("loopback: warnings %q, err %v", warns, err)
	}
}

// A request whose Host is not the address the server listens on gets 403
// (DNS rebinding), with the token and with -no-auth; the address itself
// and the other names of a loopback address are served.
func TestHostHeader(t *testing.T) {
	f := getFixture(t)
	for _, tc := range []struct {
		name string
		opts Options
		addr string
	}{
		{"token", Options{Token: "test-token"}, "127.0.0.1:0"},
		{"no-auth", Options{NoAuth: true}, "127.0.0.1:0"},
		{"no-auth on all addresses", Options{NoAuth: true}, "0.0.0.0:0"},
		{"no-auth on localhost", Options{NoAuth: true}, "localhost:0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := New(f.repo, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(t.Context())
			urls := make(chan string, 1)
			done := make(chan error, 1)
			go func() {
				done <- s.ListenAndServe(ctx, ListenOptions{Addr: tc.addr, Ready: func(u string) { urls <- u }})
			}()
			defer func() {
				cancel()
				if err := <-done; err != nil {
					t.Errorf("ListenAndServe: %v", err)
				}
			}()
			u, err := url.Parse(<-urls)
			if err != nil {
				t.Fatal(err)
			}
			port := u.Port()
			status := func(host string, token bool) int {
				t.Helper()
				req, err := http.NewRequest(http.MethodGet, "http://"+u.Host+"/snapshots", nil)
				if err != nil {
					t.Fatal(err)
				}
				req.Host = host
				if token {
					req.AddCookie(&http.Cookie{Name: cookieName, Value: "test-token"})
				}
				resp, err := http.DefaultTransport.RoundTrip(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				return resp.StatusCode
			}
			for _, host := range []string{u.Host, "localhost:" + port, "LocalHost:" + port, "[::1]:" + port} {
				if got := status(host, true); got != http.StatusOK {
					t.Errorf("Host %s: %d, want 200", host, got)
				}
			}
			for _, host := range []string{"evil.example", "evil.example:" + port, "localhost", "127.0.0.1:1", "localhost.:" + port, "192.0.2.1:" + port} {
				if got := status(host, true); got != http.StatusForbidden {
					t.Errorf("Host %s: %d, want 403", host, got)
				}
			}
			if !tc.opts.NoAuth {
				if got := status(u.Host, false); got != http.StatusUnauthorized {
					t.Errorf("no token: %d, want 401", got)
				}
				if got := status("evil.example:"+port, false); got != http.StatusForbidden {
					t.Errorf("Host evil.example without a token: %d, want 403", got)
				}
			}
		})
	}
}

func TestSecurityHeaders(t *testing.T) {
	s, f := newTestServer(t)
	scriptTag := regexp.MustCompile(`(?i)<script[^>]*>`)
	for _, target := range []string{"/", "/snapshots", "/diff", "/search?name=*.go",
		"/s/" + f.s2.ID.String() + "/browse" + f.src,
		"/s/" + f.s2.ID.String() + "/file" + f.srcPath("code/hello.go")} {
		resp := get(t, s, target)
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Errorf("GET %s: %d", target, resp.StatusCode)
			continue
		}
		csp := resp.Header.Get("Content-Security-Policy")
		directives := map[string]string{}
		for _, d := range strings.Split(csp, ";") {
			d = strings.TrimSpace(d)
			name, val, _ := strings.Cut(d, " ")
			directives[name] = val
		}
		if directives["default-src"] != "'self'" || directives["script-src"] != "'self'" {
			t.Errorf("GET %s: CSP %q, want default-src 'self' and script-src 'self'", target, csp)
		}
		if strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval") || strings.Contains(csp, "http") || strings.Contains(csp, "*") {
			t.Errorf("GET %s: CSP %q allows inline code or other origins", target, csp)
		}
		if resp.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("GET %s: no nosniff", target)
		}
		for _, tag := range scriptTag.FindAllString(string(body), -1) {
			if !strings.Contains(tag, `src="/static/`) {
				t.Errorf("GET %s: inline or foreign script %s", target, tag)
			}
		}
		if regexp.MustCompile(`(?i)\son[a-z]+=`).Match(body) || bytes.Contains(body, []byte("javascript:")) {
			t.Errorf("GET %s: an inline event handler or javascript: URL", target)
		}
		if bytes.Contains(body, []byte("://")) && regexp.MustCompile(`(src|href)="https?://`).Match(body) {
			t.Errorf("GET %s: refers to another origin", target)
		}
	}
}

func TestReadOnlyMethods(t *testing.T) {
	s, _ := newTestServer(t)
	for _, m := range []string{http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodPatch} {
		req := httptest.NewRequest(m, "/", strings.NewReader("x"))
		req.AddCookie(&http.Cookie{Name: cookieName, Value: "test-token"})
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, req)
		if rec.Code != http.StatusMethodNotAllowed {
			t.Errorf("%s /: %d, want 405", m, rec.Code)
		}
	}
}

func TestPathsStayInsideSnapshot(t *testing.T) {
	s, f := newTestServer(t)
	id := f.s2.ID.String()
	for _, target := range []string{
		"/s/" + id + "/browse" + f.src + "/../../../etc",
		"/s/" + id + "/file" + f.src + "/code/..%2f..%2f..%2fetc/passwd",
		"/s/" + id + "/raw/%2e%2e/%2e%2e/etc/passwd",
		"/s/" + id + "/raw/a/%2E%2E/b",
		"/s/" + id + "/archive/..",
		"/diff/file?a=" + f.s1.ID.String() + "&b=" + id + "&path=" + f.src + "/../../etc/passwd",
	} {
		resp := get(t, s, target)
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("GET %s: %d, want 400", target, resp.StatusCode)
		}
	}
	// A path that is not in the snapshot is 404, not a file of this machine.
	resp := get(t, s, "/s/"+id+"/raw/etc/passwd")
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("/etc/passwd: %d, want 404", resp.StatusCode)
	}
	if p, err := snapPath("a/../b"); err == nil {
		t.Errorf("snapPath accepted a/../b as %q", p)
	}
	if p, _ := snapPath("a//b/./c"); p != "/a/b/c" {
		t.Errorf("snapPath(a//b/./c) = %q", p)
	}
	// Unknown snapshots.
	if resp := get(t, s, "/s/ffffffff/browse/"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("unknown snapshot: %d, want 404", resp.StatusCode)
	}
}

func TestOutputIsEscaped(t *testing.T) {
	s, f := newTestServer(t)
	id := f.s2.ID.String()
	body := getOK(t, s, "/s/"+id+"/browse"+f.srcPath("code"))
	if !strings.Contains(body, "&lt;script&gt;.txt") {
		t.Errorf("the listing does not show <script>.txt escaped")
	}
	if strings.Contains(body, "<script>.txt") {
		t.Errorf("the listing holds a raw <script>.txt")
	}
	if !strings.Contains(body, "/%3Cscript%3E.txt") {
		t.Errorf("the link to <script>.txt is not percent-encoded")
	}
	body = getOK(t, s, "/s/"+id+"/file"+f.srcPath("code")+"/%3Cscript%3E.txt")
	if strings.Contains(body, "<script>alert") || strings.Contains(body, "<script>.txt") {
		t.Errorf("the file page holds raw markup from the file: %.2000s", body)
	}
	if !strings.Contains(body, "&lt;script&gt;") {
		t.Errorf("the file page does not show the name and content escaped")
	}
	body = getOK(t, s, "/search?name="+"%3Cscript%3E*")
	if strings.Contains(body, "<script>.txt") || !strings.Contains(body, "&lt;script&gt;.txt") {
		t.Errorf("search results are not escaped")
	}
	body = getOK(t, s, "/snapshots?q=%3Cscript%3Ealert(1)%3C/script%3E")
	if strings.Contains(body, "<script>alert") {
		t.Errorf("the search box echoes raw markup")
	}
}

func TestOverview(t *testing.T) {
	s, f := newTestServer(t)
	body := getOK(t, s, "/")
	for _, want := range []string{f.repo.Config().ID, "mem", "dedup ratio", "<svg", "<polyline", "<rect", f.s2.ID.Short(), "logical size"} {
		if !strings.Contains(body, want) {
			t.Errorf("overview lacks %q", want)
		}
	}
}

func TestSnapshotsFilters(t *testing.T) {
	s, f := newTestServer(t)
	a, b := f.s1.ID.Short(), f.s2.ID.Short()
	for _, c := range []struct {
		query    string
		want, no []string
	}{
		{"", []string{a, b, "alpha", "beta", "daily", "weekly"}, nil},
		{"?tag=daily", []string{a}, []string{b}},
		{"?tag=weekly", []string{b}, []string{a}},
		{"?host=beta", []string{b}, []string{a}},
		{"?path=" + f.src, []string{a, b}, nil},
		{"?path=/nowhere", nil, []string{a, b}},
		{"?q=" + b, []string{b}, []string{a}},
		{"?q=alpha+daily", []string{a}, []string{b}},
		{"?q=manual", []string{b}, []string{a}},
	} {
		body := getOK(t, s, "/snapshots"+c.query)
		rows := body[strings.Index(body, "<tbody>"):]
		for _, w := range c.want {
			if !strings.Contains(rows, w) {
				t.Errorf("/snapshots%s lacks %s", c.query, w)
			}
		}
		for _, w := range c.no {
			if strings.Contains(rows, ">"+w+"<") {
				t.Errorf("/snapshots%s shows %s", c.query, w)
			}
		}
	}
}

var rowRE = regexp.MustCompile(`(?s)<tr>\s*<td class="mono">[-dlpscb][-rwxsStT]{9}</td>\s*<td class="mono"><a href="[^"]*">([^<]*)</a>`)

func listedNames(body string) []string {
	var names []string
	for _, m := range rowRE.FindAllStringSubmatch(body, -1) {
		names = append(names, m[1])
	}
	return names
}

func TestBrowsePagingAndSorting(t *testing.T) {
	s, f := newTestServer(t)
	base := "/s/" + f.s2.ID.String() + "/browse" + f.srcPath("big")
	body := getOK(t, s, base)
	names := listedNames(body)
	if len(names) != pageSize || names[0] != "f00000.txt" || names[pageSize-1] != "f00499.txt" {
		t.Fatalf("page 1: %d names, %v … ", len(names), names[:min(3, len(names))])
	}
	if !strings.Contains(body, "1–500 of 10000 entries") || !strings.Contains(body, "page 1 of 20") {
		t.Errorf("page 1 does not say where it is")
	}
	if !strings.Contains(body, `rel="next"`) {
		t.Errorf("page 1 has no next link")
	}
	names = listedNames(getOK(t, s, base+"?page=20"))
	if len(names) != pageSize || names[pageSize-1] != "f09999.txt" {
		t.Errorf("page 20: %d names, last %v", len(names), names[len(names)-1])
	}
	names = listedNames(getOK(t, s, base+"?page=999"))
	if len(names) != pageSize || names[pageSize-1] != "f09999.txt" {
		t.Errorf("page 999 is not clamped to the last")
	}
	names = listedNames(getOK(t, s, base+"?order=desc"))
	if names[0] != "f09999.txt" {
		t.Errorf("name desc starts with %s", names[0])
	}
	// Sizes are i%97: the largest (96 bytes) first, then by name.
	names = listedNames(getOK(t, s, base+"?sort=size&order=desc"))
	if names[0] != "f00096.txt" || names[1] != "f00193.txt" {
		t.Errorf("size desc starts with %v", names[:2])
	}
	names = listedNames(getOK(t, s, base+"?sort=size"))
	if names[0] != "f00000.txt" || names[1] != "f00097.txt" {
		t.Errorf("size asc starts with %v", names[:2])
	}
	getOK(t, s, base+"?sort=mtime&page=3")
	getOK(t, s, base+"?sort=mode&order=desc")

	// Breadcrumbs and directory entries.
	body = getOK(t, s, "/s/"+f.s2.ID.String()+"/browse"+f.src)
	for _, want := range []string{`class="crumbs"`, ">code/<", ">media/<", ">big/<", "download .tar.gz", "download .zip"} {
		if !strings.Contains(body, want) {
			t.Errorf("the listing of %s lacks %q", f.src, want)
		}
	}
	// A file path under browse goes to the file page.
	resp := get(t, s, "/s/"+f.s2.ID.String()+"/browse"+f.srcPath("code/hello.go"))
	if resp.StatusCode != http.StatusSeeOther {
		t.Errorf("browse of a file: %d, want 303", resp.StatusCode)
	}
}

func TestFilePreviews(t *testing.T) {
	s, f := newTestServer(t)
	file := func(rel string) string { return "/s/" + f.s2.ID.String() + "/file" + f.srcPath(rel) }
	raw := func(rel string) string { return "/s/" + f.s2.ID.String() + "/raw" + f.srcPath(rel) }

	body := getOK(t, s, file("code/hello.go"))
	for _, want := range []string{`<code data-name="hello.go">`, "&lt;world&gt; &amp; friends", "<pre>1\n2\n3\n",
		`<script src="/static/highlight.min.js" defer>`, "size", "mode", "-rw-r--r--"} {
		if !strings.Contains(body, want) {
			t.Errorf("hello.go page lacks %q", want)
		}
	}
	body = getOK(t, s, file("media/pixel.png"))
	if strings.Contains(body, "highlight.min.js") {
		t.Errorf("pixel.png page loads the highlighter")
	}
	if !strings.Contains(body, `<img src="`+raw("media/pixel.png")+`"`) {
		t.Errorf("pixel.png page has no <img> of the raw endpoint")
	}
	body = getOK(t, s, file("media/report.pdf"))
	if !strings.Contains(body, `<iframe src="`+raw("media/report.pdf")+`"`) {
		t.Errorf("report.pdf page has no embedded raw PDF")
	}
	body = getOK(t, s, file("media/blob.bin"))
	if !strings.Contains(body, "00000000  00 01 02 62 69 6e 61 72  79 00") || !strings.Contains(body, "|...binary.") {
		t.Errorf("blob.bin page has no hex view")
	}
	if strings.Count(body, "\n0000") > 64<<10/16+1 {
		t.Errorf("hex view longer than 64 KiB")
	}
	if !strings.Contains(body, "00000ff0 ") || strings.Contains(body, "00010000 ") {
		t.Errorf("hex view is not the first 64 KiB")
	}
	for rel, ct := range map[string]string{"media/pixel.png": "image/png", "media/report.pdf": "application/pdf",
		"code/hello.go": "text/plain; charset=utf-8", "media/blob.bin": "application/octet-stream"} {
		resp := get(t, s, raw(rel))
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != ct {
			t.Errorf("raw %s: %d %q, want %q", rel, resp.StatusCode, resp.Header.Get("Content-Type"), ct)
		}
		if !bytes.Equal(b, f.files[rel]) {
			t.Errorf("raw %s: %d bytes differ from the source (%d)", rel, len(b), len(f.files[rel]))
		}
		disp := resp.Header.Get("Content-Disposition")
		if (ct == "application/octet-stream") != strings.HasPrefix(disp, "attachment") {
			t.Errorf("raw %s: Content-Disposition %q", rel, disp)
		}
		resp = get(t, s, raw(rel)+"?download=1")
		b, _ = io.ReadAll(resp.Body)
		if !strings.HasPrefix(resp.Header.Get("Content-Disposition"), "attachment") || !strings.Contains(resp.Header.Get("Content-Disposition"), path.Base(rel)) {
			t.Errorf("download %s: Content-Disposition %q", rel, resp.Header.Get("Content-Disposition"))
		}
		if !bytes.Equal(b, f.files[rel]) {
			t.Errorf("download %s: bytes differ", rel)
		}
	}
	// Raw content of a user's file runs in a sandbox.
	if csp := get(t, s, raw("code/hello.go")).Header.Get("Content-Security-Policy"); !strings.Contains(csp, "sandbox") {
		t.Errorf("raw text CSP %q has no sandbox", csp)
	}
	// A directory has no raw content.
	if resp := get(t, s, "/s/"+f.s2.ID.String()+"/raw"+f.src); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("raw of a directory: %d", resp.StatusCode)
	}
}

func TestArchives(t *testing.T) {
	s, f := newTestServer(t)
	url := "/s/" + f.s2.ID.String() + "/archive" + f.srcPath("media")
	resp := get(t, s, url)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/gzip" ||
		!strings.Contains(resp.Header.Get("Content-Disposition"), "media.tar.gz") {
		t.Fatalf("tar.gz: %d %v", resp.StatusCode, resp.Header)
	}
	gz, err := gzip.NewReader(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][]byte{}
	tr := tar.NewReader(gz)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(tr)
		got[h.Name] = b
	}
	if _, ok := got["media/"]; !ok {
		t.Errorf("tar lacks media/: %v", len(got))
	}
	for _, rel := range []string{"media/pixel.png", "media/report.pdf", "media/blob.bin"} {
		if !bytes.Equal(got[rel], f.files[rel]) {
			t.Errorf("tar %s: %d bytes differ from the source", rel, len(got[rel]))
		}
	}

	resp = get(t, s, url+"?format=zip")
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/zip" {
		t.Fatalf("zip: %d %v", resp.StatusCode, resp.Header)
	}
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, zf := range zr.File {
		if want, ok := f.files[zf.Name]; ok {
			rc, _ := zf.Open()
			data, _ := io.ReadAll(rc)
			rc.Close()
			if !bytes.Equal(data, want) {
				t.Errorf("zip %s differs", zf.Name)
			}
			n++
		}
	}
	if n != 3 {
		t.Errorf("zip held %d of the 3 files", n)
	}
	if resp := get(t, s, url+"?format=rar"); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("format=rar: %d", resp.StatusCode)
	}
	// The 10,000-entry directory streams as a whole.
	resp = get(t, s, "/s/"+f.s2.ID.String()+"/archive"+f.srcPath("big")+"?format=zip")
	b, _ = io.ReadAll(resp.Body)
	zr, err = zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil || len(zr.File) != bigDirEntries+1 {
		t.Errorf("zip of big/: %v, %d entries", err, len(zr.File))
	}
}

func TestDiffPages(t *testing.T) {
	s, f := newTestServer(t)
	a, b := f.s1.ID.String(), f.s2.ID.String()
	body := getOK(t, s, "/diff?a="+a+"&b="+b)
	for _, want := range []string{f.srcPath("code/hello.go"), f.srcPath("code/added.txt"), f.srcPath("docs/old-notes.txt"),
		"chg-add", "chg-del", "chg-mod", "text diff"} {
		if !strings.Contains(body, want) {
			t.Errorf("diff lacks %q", want)
		}
	}
	if strings.Contains(body, f.srcPath("media/pixel.png")) {
		t.Errorf("diff lists an unchanged file")
	}
	// Without parameters: the two latest.
	if body := getOK(t, s, "/diff"); !strings.Contains(body, "code/hello.go") {
		t.Errorf("/diff does not compare the two latest")
	}
	body = getOK(t, s, "/diff/file?a="+a+"&b="+b+"&path="+f.srcPath("code/hello.go"))
	for _, want := range []string{`<tr class="add">`, `&#43; 	fmt.Println(&#34;and goodbye&#34;)`, `<tr class="del">`, "- // main greets.", "  import &#34;fmt&#34;"} {
		if !strings.Contains(body, want) {
			t.Errorf("file diff lacks %q in %s", want, body[strings.Index(body, "<table"):])
		}
	}
	if r := get(t, s, "/diff?a="+a+"&b=zzz"); r.StatusCode != http.StatusNotFound {
		t.Errorf("diff with a bad id: %d", r.StatusCode)
	}
}

func TestLineDiff(t *testing.T) {
	var a, b strings.Builder
	for i := range 100 {
		fmt.Fprintf(&a, "line %d\n", i)
		if i == 50 {
			b.WriteString("changed\n")
		} else {
			fmt.Fprintf(&b, "line %d\n", i)
		}
	}
	lines := lineDiff(a.String(), b.String())
	var kinds []string
	for _, l := range lines {
		kinds = append(kinds, l.Class)
	}
	got := strings.Join(kinds, " ")
	if got != "skip ctx ctx ctx del add ctx ctx ctx skip" {
		t.Errorf("line diff classes: %s", got)
	}
	if lines[4].Old != 51 || lines[5].New != 51 || lines[5].Text != "changed" {
		t.Errorf("line numbers: %+v %+v", lines[4], lines[5])
	}
}

func TestSearch(t *testing.T) {
	s, f := newTestServer(t)
	body := getOK(t, s, "/search?name=*.go")
	if !strings.Contains(body, f.srcPath("code/hello.go")) || !strings.Contains(body, f.srcPath("code/sub/deep/lib.go")) {
		t.Errorf("search *.go lacks files")
	}
	// hello.go is in both snapshots: two version links.
	i := strings.Index(body, f.srcPath("code/hello.go"))
	row := body[i : i+strings.Index(body[i:], "</tr>")]
	if strings.Count(row, `class="tag"`) != 2 || !strings.Contains(row, f.s1.ID.Short()) || !strings.Contains(row, f.s2.ID.Short()) {
		t.Errorf("hello.go row: %s", row)
	}
	body = getOK(t, s, "/search?name=old-notes.txt")
	if !strings.Contains(body, f.s1.ID.Short()) || strings.Contains(body, ">"+f.s2.ID.Short()) {
		t.Errorf("old-notes.txt is only in the first snapshot")
	}
	if body := getOK(t, s, "/search?name=%5B"); !strings.Contains(body, "bad pattern") {
		t.Errorf("a bad glob is not reported")
	}
	if body := getOK(t, s, "/search?name=f0999?.txt"); strings.Count(body, `"mono">`+f.srcPath("big/f0999")) != 10 {
		t.Errorf("f0999?.txt: %d matches, want 10", strings.Count(body, `"mono">`+f.srcPath("big/f0999")))
	}
	body = getOK(t, s, "/search?name=hello.go&path="+f.srcPath("code/hello.go"))
	if !strings.Contains(body, "1 paths") {
		t.Errorf("search at one path")
	}
}

func TestStaticAssets(t *testing.T) {
	s, _ := newTestServer(t)
	for target, ct := range map[string]string{"/static/style.css": "text/css", "/static/app.js": "text/javascript",
		"/static/highlight.min.js": "text/javascript", "/static/highlight.css": "text/css"} {
		resp := get(t, s, target)
		if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), ct) {
			t.Errorf("%s: %d %q", target, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
	}
	if resp := get(t, s, "/static/nope.js"); resp.StatusCode != 404 {
		t.Errorf("missing asset: %d", resp.StatusCode)
	}
}

func TestLineNumbers(t *testing.T) {
	for _, c := range []struct{ text, want string }{
		{"", ""},
		{"a", "1\n"},
		{"a\n", "1\n"},
		{"a\nb", "1\n2\n"},
		{"\n\n", "1\n2\n"},
	} {
		if got := lineNumbers(c.text); got != c.want {
			t.Errorf("lineNumbers(%q) = %q, want %q", c.text, got, c.want)
		}
	}
}
