package browsertest

import (
	"bytes"
	"context"
	"image"
	"image/color"
	"image/png"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	cdppage "github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/cofferhq/coffer/internal/testutil"
	"github.com/cofferhq/coffer/repo"
	"github.com/cofferhq/coffer/snapshot"
	"github.com/cofferhq/coffer/storage/mem"
	"github.com/cofferhq/coffer/ui"
)

const chromiumPath = "/usr/bin/chromium"

// TestBrowser drives Debian's Chromium through the UI: overview, a
// snapshot, two directories down, a text and an image preview, a download
// compared with its source, and a diff. Screenshots of each page go to a
// directory that is logged (COFFER_UI_SCREENSHOTS chooses it).
func TestBrowser(t *testing.T) {
	testutil.SkipInShort(t, "drives Chromium")
	if _, err := os.Stat(chromiumPath); err != nil {
		testutil.SkipLoudly(t, "chromium not installed (apt-get install chromium)")
	}
	f := buildFixture(t)
	s, err := ui.New(f.repo, ui.Options{Token: "test-token"})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s)
	defer ts.Close()

	shots := os.Getenv("COFFER_UI_SCREENSHOTS")
	if shots == "" {
		if shots, err = os.MkdirTemp("", "coffer-ui-screenshots-"); err != nil {
			t.Fatal(err)
		}
	} else if err := os.MkdirAll(shots, 0o755); err != nil {
		t.Fatal(err)
	}
	downloads := t.TempDir()

	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath),
		chromedp.NoSandbox, chromedp.Headless, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("hide-scrollbars", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	}
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelA()
	ctx, cancelB := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	defer cancelB()
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1280, 900)); err != nil {
		t.Fatalf("starting %s: %v", chromiumPath, err)
	}
	// Limit each step, not the browser's life (see chromedp.Run).
	step := func(name string, fn func(ctx context.Context) error) {
		t.Helper()
		sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		if err := fn(sctx); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	text := func(ctx context.Context, sel string) string {
		s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
		if err != nil {
			t.Fatalf("text of %s: %v", sel, err)
		}
		return s
	}
	shot := func(ctx context.Context, name string) error {
		buf, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)) // 100 gives PNG, less JPEG
		if err != nil {
			return err
		}
		p := filepath.Join(shots, name+".png")
		if err := os.WriteFile(p, buf, 0o644); err != nil {
			return err
		}
		t.Logf("screenshot %s", p)
		return nil
	}
	// follow clicks a link and waits for the page it opens to load.
	follow := func(ctx context.Context, sel string) error {
		_, err := chromedp.Run(ctx, chromedp.WaitEvent(cdppage.LoadEventFired, nil, chromedp.Click(chromedp.CSS(sel))))
		return err
	}
	visible := func(ctx context.Context, sel string) error {
		return chromedp.Do(ctx, chromedp.WaitVisible(chromedp.CSS(sel)))
	}

	step("overview", func(ctx context.Context) error {
		if err := chromedp.Do(ctx, chromedp.Navigate(ts.URL+"/?token="+s.Token())); err != nil {
			return err
		}
		if err := visible(ctx, "svg.chart"); err != nil {
			return err
		}
		if txt := text(ctx, "main"); !strings.Contains(txt, "dedup ratio") {
			t.Errorf("overview text: %.300s", txt)
		}
		url, err := chromedp.Run(ctx, chromedp.Location())
		if err != nil {
			return err
		}
		if strings.Contains(url, "token") {
			t.Errorf("the address still carries the token: %s", url)
		}
		return shot(ctx, "overview")
	})

	id := f.s2.ID.String()
	step("open a snapshot", func(ctx context.Context) error {
		if err := follow(ctx, `header nav a[href="/snapshots"]`); err != nil {
			return err
		}
		if err := shot(ctx, "snapshots"); err != nil {
			return err
		}
		if err := follow(ctx, `table.snapshots a[href^="/s/`+id+`/browse"]`); err != nil {
			return err
		}
		if err := visible(ctx, `table.browse a[href$="/code"]`); err != nil {
			return err
		}
		return shot(ctx, "browse")
	})
	step("two directories down", func(ctx context.Context) error {
		if err := follow(ctx, `table.browse a[href$="/code"]`); err != nil {
			return err
		}
		if err := follow(ctx, `table.browse a[href$="/code/sub"]`); err != nil {
			return err
		}
		if err := visible(ctx, `table.browse a[href$="/code/sub/deep"]`); err != nil {
			return err
		}
		if txt := strings.TrimSpace(text(ctx, ".crumbs")); !strings.HasSuffix(txt, "code/sub") {
			t.Errorf("breadcrumbs %q", txt)
		}
		return shot(ctx, "browse-deeper")
	})
	step("text preview", func(ctx context.Context) error {
		if err := follow(ctx, `.crumbs a[href$="/code"]`); err != nil {
			return err
		}
		if err := follow(ctx, `table.browse a[href$="/code/hello.go"]`); err != nil {
			return err
		}
		if err := visible(ctx, ".preview code.hljs .hljs-keyword"); err != nil {
			return err
		}
		if lang := text(ctx, "h2 .lang"); lang != "(Go)" {
			t.Errorf("preview language %q, want (Go)", lang)
		}
		if txt := text(ctx, ".preview"); !strings.Contains(txt, `fmt.Println("and goodbye")`) {
			t.Errorf("text preview: %.300s", txt)
		}
		return shot(ctx, "file-text")
	})
	step("image preview", func(ctx context.Context) error {
		if err := chromedp.Do(ctx, chromedp.Navigate(ts.URL+fileURL(f.s2.ID, f.srcPath("media/pixel.png")))); err != nil {
			return err
		}
		width, err := chromedp.Run(ctx, chromedp.Poll[int](`(() => { const i = document.querySelector(".preview img"); return i && i.complete && i.naturalWidth; })()`))
		if err != nil {
			return err
		}
		if width != 96 {
			t.Errorf("the image is %d pixels wide, want 96", width)
		}
		return shot(ctx, "file-image")
	})
	step("download", func(ctx context.Context) error {
		progress := chromedp.Events(ctx, browser.DownloadProgress)
		err := chromedp.Do(ctx,
			chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
				_, err := chromedp.Call(ctx, browser.SetDownloadBehavior, browser.SetDownloadBehaviorParams{
					Behavior: browser.SetDownloadBehaviorBehaviorAllowAndName, DownloadPath: downloads, EventsEnabled: new(true)})
				return err
			}),
			chromedp.Click(chromedp.CSS("a.download")))
		if err != nil {
			return err
		}
		for ev, err := range progress {
			if err != nil {
				return err
			}
			if ev.State != browser.DownloadProgressStateCompleted {
				continue
			}
			got, err := os.ReadFile(filepath.Join(downloads, ev.GUID))
			if err != nil {
				return err
			}
			if !bytes.Equal(got, f.png) {
				t.Errorf("downloaded %d bytes, differing from the source's %d", len(got), len(f.png))
			}
			return nil
		}
		return ctx.Err()
	})
	step("diff", func(ctx context.Context) error {
		if err := follow(ctx, `header nav a[href="/diff"]`); err != nil {
			return err
		}
		if err := follow(ctx, "form.filters button"); err != nil {
			return err
		}
		if txt := text(ctx, "table.changes"); !strings.Contains(txt, "code/added.txt") || !strings.Contains(txt, "docs/old-notes.txt") {
			t.Errorf("diff: %.500s", txt)
		}
		if err := shot(ctx, "diff"); err != nil {
			return err
		}
		if err := follow(ctx, "table.changes a.difflink"); err != nil {
			return err
		}
		if txt := text(ctx, "table.diff"); !strings.Contains(txt, "and goodbye") {
			t.Errorf("file diff: %.500s", txt)
		}
		return shot(ctx, "diff-file")
	})
	step("search", func(ctx context.Context) error {
		if err := chromedp.Do(ctx, chromedp.Navigate(ts.URL+"/search?name=*.go")); err != nil {
			return err
		}
		if err := visible(ctx, "table.results"); err != nil {
			return err
		}
		return shot(ctx, "search")
	})
}

// fixture is a repository (in memory) with two snapshots of a small tree:
// the second changes code/hello.go, adds code/added.txt and removes
// docs/old-notes.txt, for the diff.
type fixture struct {
	src    string // the backed-up directory
	repo   *repo.Repository
	s1, s2 *snapshot.Snapshot
	png    []byte
}

func buildFixture(t *testing.T) *fixture {
	t.Helper()
	ctx := t.Context()
	f := &fixture{src: filepath.Join(t.TempDir(), "src"), png: makePNG()}
	files := map[string]string{
		"code/hello.go":        helloV1,
		"code/sub/deep/lib.go": "package deep\n\nconst Answer = 42\n",
		"media/pixel.png":      string(f.png),
		"docs/readme.md":       "# readme\n\nsome *markdown*\n",
		"docs/old-notes.txt":   "to be removed\n",
	}
	for rel, data := range files {
		writeFile(t, f.src, rel, data)
	}
	r, err := repo.Create(ctx, mem.New(), []byte("coffer ui test"), repo.CreateOptions{KDF: repo.TestKDF, PackSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	f.repo = r
	if f.s1, err = snapshot.Backup(ctx, r, snapshot.BackupOptions{Paths: []string{f.src}, Host: "alpha", Tags: []string{"daily"}}); err != nil {
		t.Fatal(err)
	}
	// The second backup must see a newer mtime on the edited file.
	time.Sleep(10 * time.Millisecond)
	writeFile(t, f.src, "code/hello.go", helloV2)
	writeFile(t, f.src, "code/added.txt", "new in the second snapshot\n")
	if err := os.Remove(filepath.Join(f.src, "docs", "old-notes.txt")); err != nil {
		t.Fatal(err)
	}
	if f.s2, err = snapshot.Backup(ctx, r, snapshot.BackupOptions{Paths: []string{f.src}, Host: "beta", Tags: []string{"weekly", "manual"}}); err != nil {
		t.Fatal(err)
	}
	return f
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

func writeFile(t *testing.T, root, rel, data string) {
	t.Helper()
	p := filepath.Join(root, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

// srcPath is the absolute snapshot path of a fixture file.
func (f *fixture) srcPath(rel string) string {
	return filepath.ToSlash(filepath.Join(f.src, filepath.FromSlash(rel)))
}

// fileURL is the UI's address of the file page of p in snapshot id, as
// the UI's links make it (each path element escaped).
func fileURL(id repo.ID, p string) string {
	els := strings.Split(strings.TrimPrefix(p, "/"), "/")
	for i, el := range els {
		els[i] = url.PathEscape(el)
	}
	return "/s/" + id.String() + "/file/" + strings.Join(els, "/")
}
