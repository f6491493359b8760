package ui

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"path"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/cofferhq/coffer/snapshot"
)

const (
	textPreviewMax = 1 << 20  // bytes of a text file shown
	hexPreviewMax  = 64 << 10 // bytes of a binary file shown in hex
)

type fileData struct {
	Snap      *snapshot.Snapshot
	Node      *snapshot.Node
	Path      string
	Kind      string // text, image, pdf, binary, empty, other
	Text      string // the text shown, highlighted in the browser by highlight.js
	Lines     string // its line numbers, one per line
	Hex       string
	Truncated bool
	RawURL    string
	Download  string
	Versions  string // search link for other versions
	DiffPrev  string
}

// handleFile shows a node's metadata and a preview of a file's content.
func (s *Server) handleFile(w http.ResponseWriter, r *http.Request) {
	sn, n, abs, err := s.resolve(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if n.Type == snapshot.TypeDir {
		http.Redirect(w, r, snapURL(sn.ID, "browse", abs), http.StatusSeeOther)
		return
	}
	d := &fileData{Snap: sn, Node: n, Path: abs, Kind: "other", RawURL: snapURL(sn.ID, "raw", abs),
		Download: snapURL(sn.ID, "raw", abs) + "?download=1",
		Versions: "/search" + queryString("name", n.Name, "path", abs)}
	if n.Type == snapshot.TypeFile {
		head, full, err := s.head(r.Context(), n, textPreviewMax)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		d.Kind = sniffKind(n.Name, head)
		switch d.Kind {
		case "text":
			d.Truncated = !full
			d.Text = string(trimPartialRune(head))
			d.Lines = lineNumbers(d.Text)
		case "binary":
			d.Truncated = len(head) > hexPreviewMax || !full
			d.Hex = hexDump(head[:min(len(head), hexPreviewMax)])
		}
	}
	s.render(w, r, "file.html", &page{Title: abs + " in " + sn.ID.Short(), Nav: "snapshots", Crumb: crumbs(sn.ID, abs),
		Highlight: d.Kind == "text"}, d)
}

// errEnough stops snapshot.Cat once a prefix has been read.
var errEnough = errors.New("enough")

type limitBuffer struct {
	buf   bytes.Buffer
	limit int
}

func (l *limitBuffer) Write(p []byte) (int, error) {
	room := l.limit - l.buf.Len()
	if len(p) > room {
		l.buf.Write(p[:room])
		return room, errEnough
	}
	return l.buf.Write(p)
}

// head reads up to limit bytes of a file; full reports whether that is
// all of it.
func (s *Server) head(ctx context.Context, n *snapshot.Node, limit int) ([]byte, bool, error) {
	lb := &limitBuffer{limit: limit}
	err := snapshot.Cat(ctx, s.cache, n, lb)
	if err != nil && !errors.Is(err, errEnough) {
		return nil, false, err
	}
	return lb.buf.Bytes(), int64(lb.buf.Len()) >= n.Size && !errors.Is(err, errEnough), nil
}

// sniffKind decides how to preview a file from its name and first bytes.
func sniffKind(name string, head []byte) string {
	if len(head) == 0 {
		return "empty"
	}
	if bytes.HasPrefix(head, []byte("%PDF-")) {
		return "pdf"
	}
	if inlineImage(http.DetectContentType(head)) {
		return "image"
	}
	if !bytes.ContainsRune(head, 0) && utf8.Valid(trimPartialRune(head)) {
		return "text"
	}
	return "binary"
}

func inlineImage(ct string) bool {
	switch ct {
	case "image/png", "image/jpeg", "image/gif", "image/webp", "image/bmp", "image/x-icon":
		return true
	}
	return false
}

// trimPartialRune drops an incomplete UTF-8 sequence cut off at the end.
func trimPartialRune(b []byte) []byte {
	for i := 1; i <= 3 && i <= len(b); i++ {
		if utf8.RuneStart(b[len(b)-i]) {
			if !utf8.FullRune(b[len(b)-i:]) {
				return b[:len(b)-i]
			}
			break
		}
	}
	return b
}

// lineNumbers returns "1\n2\n…" with one number per line of text, for
// the column beside a text preview.
func lineNumbers(text string) string {
	n := strings.Count(text, "\n")
	if text != "" && !strings.HasSuffix(text, "\n") {
		n++
	}
	var b strings.Builder
	for i := 1; i <= n; i++ {
		b.WriteString(strconv.Itoa(i))
		b.WriteByte('\n')
	}
	return b.String()
}

func hexDump(b []byte) string {
	var sb strings.Builder
	for off := 0; off < len(b); off += 16 {
		line := b[off:min(off+16, len(b))]
		fmt.Fprintf(&sb, "%08x  ", off)
		for i := range 16 {
			if i < len(line) {
				fmt.Fprintf(&sb, "%02x ", line[i])
			} else {
				sb.WriteString("   ")
			}
			if i == 7 {
				sb.WriteByte(' ')
			}
		}
		sb.WriteString(" |")
		for _, c := range line {
			if c >= 0x20 && c < 0x7f {
				sb.WriteByte(c)
			} else {
				sb.WriteByte('.')
			}
		}
		sb.WriteString("|\n")
	}
	return sb.String()
}

// rawCSP is the policy of raw content: nothing in it may run or load.
const rawCSP = "sandbox; default-src 'none'; img-src 'self'; style-src 'unsafe-inline'"

// handleRaw serves a file's bytes. Images and PDFs are served inline with
// their content type, text as text/plain; anything else, and everything
// with ?download=1, as an attachment.
func (s *Server) handleRaw(w http.ResponseWriter, r *http.Request) {
	_, n, _, err := s.resolve(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if n.Type != snapshot.TypeFile {
		s.fail(w, r, badRequest("%s is a %s, not a file", n.Name, n.Type))
		return
	}
	head, _, err := s.head(r.Context(), n, 512)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	ct, inline := "application/octet-stream", false
	switch kind := sniffKind(n.Name, head); kind {
	case "image":
		ct, inline = http.DetectContentType(head), true
	case "pdf":
		ct, inline = "application/pdf", true
	case "text", "empty":
		ct, inline = "text/plain; charset=utf-8", true
	}
	if r.URL.Query().Get("download") != "" {
		inline = false
	}
	h := w.Header()
	if ct != "application/pdf" {
		h.Set("Content-Security-Policy", rawCSP)
	}
	h.Set("Content-Type", ct)
	h.Set("Content-Length", strconv.FormatInt(n.Size, 10))
	disp := "attachment"
	if inline {
		disp = "inline"
	}
	h.Set("Content-Disposition", contentDisposition(disp, n.Name))
	if r.Method == http.MethodHead {
		return
	}
	if err := snapshot.Cat(r.Context(), s.cache, n, w); err != nil {
		s.logf("ui: serving %s: %v", n.Name, err)
		panic(http.ErrAbortHandler) // the client sees a truncated response, not a short file
	}
}

func contentDisposition(disp, name string) string {
	if v := mime.FormatMediaType(disp, map[string]string{"filename": name}); v != "" {
		return v
	}
	return mime.FormatMediaType(disp, map[string]string{"filename": path.Base(strings.ToValidUTF8(name, "_"))})
}
