//go:build linux

package ui

// Shared fixture of the ui tests: one repository (in memory) with two
// snapshots of a generated tree, built once for the whole package.

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cofferhq/coffer/internal/testutil"
	"github.com/cofferhq/coffer/repo"
	"github.com/cofferhq/coffer/snapshot"
	"github.com/cofferhq/coffer/storage/mem"
)

const bigDirEntries = 10000

type fixture struct {
	src    string // the backed-up directory
	repo   *repo.Repository
	s1, s2 *snapshot.Snapshot // before and after the edit
	files  map[string][]byte  // relative path -> content, as in s2
	png    []byte
	err    error
}

var (
	fixOnce sync.Once
	fix     fixture
	fixDir  string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if fixDir != "" {
		os.RemoveAll(fixDir)
	}
	os.Exit(code)
}

const helloV1 = `package main

import "fmt"

// main greets.
func main() {
	fmt.Println("hello, <world> & friends")
}
`

const helloV2 = `package main

import "fmt"

// main greets twice.
func main() {
	fmt.Println("hello, <world> & friends")
	fmt.Println("and goodbye")
}
`

// minimalPDF is a small valid PDF with one page saying "coffer".
const minimalPDF = "%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>endobj\n" +
	"3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 200 100]/Contents 4 0 R/Resources<</Font<</F1 5 0 R>>>>>>endobj\n" +
	"4 0 obj<</Length 41>>stream\nBT /F1 24 Tf 40 40 Td (coffer) Tj ET\nendstream endobj\n" +
	"5 0 obj<</Type/Font/Subtype/Type1/BaseFont/Helvetica>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"

func makePNG() []byte {
	img := image.NewRGBA(image.Rect(0, 0, 96, 64))
	for y := range 64 {
		for x := range 96 {
			img.Set(x, y, color.RGBA{uint8(x * 2), uint8(y * 4), 160, 255})
		}
	}
	var b bytes.Buffer
	png.Encode(&b, img)
	return b.Bytes()
}

func writeFile(t testing.TB, root, rel string, data []byte) {
	p := filepath.Join(root, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// getFixture builds the shared repository on first use.
func getFixture(t *testing.T) *fixture {
	t.Helper()
	fixOnce.Do(func() { fix.err = buildFixture(t) })
	if fix.err != nil {
		t.Fatalf("building the fixture: %v", fix.err)
	}
	return &fix
}

func buildFixture(t *testing.T) error {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "coffer-ui-test-")
	if err != nil {
		return err
	}
	fixDir = dir
	src := filepath.Join(dir, "src")
	fix.src = src
	fix.png = makePNG()
	bin := make([]byte, 100<<10)
	rnd := rand.New(rand.NewPCG(1, 2))
	for i := range bin {
		bin[i] = byte(rnd.Uint32())
	}
	copy(bin, "\x00\x01\x02binary\x00")
	fix.files = map[string][]byte{
		"code/hello.go":        []byte(helloV1),
		"code/<script>.txt":    []byte("<script>alert('x')</script> is text here\n"),
		"media/pixel.png":      fix.png,
		"media/report.pdf":     []byte(minimalPDF),
		"media/blob.bin":       bin,
		"docs/readme.md":       []byte("# readme\n\nsome *markdown*\n"),
		"docs/old-notes.txt":   []byte("to be removed\n"),
		"code/sub/deep/lib.go": []byte("package deep\n\nconst Answer = 42\n"),
	}
	for rel, data := range fix.files {
		writeFile(t, src, rel, data)
	}
	big := filepath.Join(src, "big")
	if err := os.MkdirAll(big, 0o755); err != nil {
		return err
	}
	for i := range bigDirEntries {
		if err := os.WriteFile(filepath.Join(big, fmt.Sprintf("f%05d.txt", i)), []byte(strings.Repeat("x", i%97)), 0o644); err != nil {
			return err
		}
	}
	testutil.GenerateTree(t, filepath.Join(src, "gen"), testutil.TreeOptions{Seed: 7, Files: 20, LargeFileSize: -1, NoSpecial: true})

	r, err := repo.Create(ctx, mem.New(), []byte("coffer ui test"), repo.CreateOptions{KDF: repo.TestKDF, PackSize: 1 << 20})
	if err != nil {
		return err
	}
	fix.repo = r
	if fix.s1, err = snapshot.Backup(ctx, r, snapshot.BackupOptions{Paths: []string{src}, Host: "alpha", Tags: []string{"daily"}}); err != nil {
		return err
	}
	time.Sleep(10 * time.Millisecond)
	writeFile(t, src, "code/hello.go", []byte(helloV2))
	fix.files["code/hello.go"] = []byte(helloV2)
	writeFile(t, src, "code/added.txt", []byte("new in the second snapshot\n"))
	fix.files["code/added.txt"] = []byte("new in the second snapshot\n")
	os.Remove(filepath.Join(src, "docs/old-notes.txt"))
	delete(fix.files, "docs/old-notes.txt")
	if fix.s2, err = snapshot.Backup(ctx, r, snapshot.BackupOptions{Paths: []string{src}, Host: "beta", Tags: []string{"weekly", "manual"}}); err != nil {
		return err
	}
	return nil
}

// newTestServer returns a Server on the fixture with a known token.
func newTestServer(t *testing.T) (*Server, *fixture) {
	t.Helper()
	f := getFixture(t)
	s, err := New(f.repo, Options{Token: "test-token"})
	if err != nil {
		t.Fatal(err)
	}
	return s, f
}

// get requests target with the access cookie and returns the response.
func get(t *testing.T, h http.Handler, target string) *http.Response {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, target, nil)
	req.AddCookie(&http.Cookie{Name: cookieName, Value: "test-token"})
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Result()
}

// getOK requests target and fails unless the answer is 200; it returns the body.
func getOK(t *testing.T, h http.Handler, target string) string {
	t.Helper()
	resp := get(t, h, target)
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d, want 200: %.500s", target, resp.StatusCode, b)
	}
	return string(b)
}

// srcPath is the absolute snapshot path of a fixture file.
func (f *fixture) srcPath(rel string) string {
	return filepath.ToSlash(filepath.Join(f.src, filepath.FromSlash(rel)))
}
