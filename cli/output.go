package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// printer writes results as text or JSON and honours -silent. Errors and
// warnings go to stderr, results to stdout. It is safe for concurrent use.
type printer struct {
	mu     sync.Mutex
	stdout io.Writer
	stderr io.Writer
	silent bool
	json   bool
}

// textf prints a line of text output, unless -silent or -json.
func (p *printer) textf(format string, args ...any) {
	if p.silent || p.json {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.stdout, format, args...)
}

// result prints v as one JSON document (one line) when -json is set.
func (p *printer) result(v any) {
	if !p.json {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	b, err := json.Marshal(v)
	if err != nil {
		fmt.Fprintf(p.stderr, "coffer: encoding JSON: %v\n", err)
		return
	}
	p.stdout.Write(append(b, '\n'))
}

// warn prints a warning on stderr (as an NDJSON event with -json).
func (p *printer) warn(path string, err error) {
	if p.json {
		p.result(warningEvent{"warning", path, err.Error()})
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.stderr, "warning: %s: %s\n", path, oneLine(err.Error()))
}

// warningf prints a warning that concerns no one path, such as
// snapshots gone from the store, on stderr (an NDJSON event with -json).
// Unlike a notice, -silent does not hide it.
func (p *printer) warningf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if p.json {
		p.result(warningEvent{Type: "warning", Message: msg})
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.stderr, "warning: %s\n", oneLine(msg))
}

// notice prints a message for the user on stderr, such as waiting for a
// rate-limited registry; -silent hides it, -json makes it an event.
func (p *printer) notice(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if p.json {
		p.result(noticeEvent{"notice", msg})
		return
	}
	if p.silent {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.stderr, "coffer: %s\n", oneLine(msg))
}

// fatal prints the error that ends the command, always on one line.
func (p *printer) fatal(err error, code int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	msg := oneLine(err.Error())
	if p.json {
		b, _ := json.Marshal(errorEvent{"error", msg, code})
		p.stderr.Write(append(b, '\n'))
		return
	}
	fmt.Fprintf(p.stderr, "coffer: %s\n", msg)
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// duration formats a run time rounded to the second, "1s" or "2m5s".
func duration(d time.Duration) string {
	return d.Round(time.Second).String()
}

// counted returns n and the noun, singular for one: "1 file", "2 files".
// plural is the noun for other counts; without it, the noun gets an s.
func counted[N ~int | ~int64](n N, noun string, plural ...string) string {
	if n == 1 {
		return fmt.Sprintf("1 %s", noun)
	}
	if len(plural) > 0 {
		noun = plural[0]
	} else {
		noun += "s"
	}
	return fmt.Sprintf("%d %s", n, noun)
}

// othersText counts the entries that are neither files nor directories
// (symlinks, fifos, sockets, devices) for backup's and restore's
// summaries, which leave them out when there are none.
func othersText(n int64) string {
	if n == 0 {
		return ""
	}
	return ", " + counted(n, "symlink or special file", "symlinks and special files")
}

// stderrWriter returns a writer to stderr for a library's own lines
// (mount -debug), written in turn with the printer's.
func (p *printer) stderrWriter() io.Writer { return stderrWriter{p} }

type stderrWriter struct{ p *printer }

func (w stderrWriter) Write(b []byte) (int, error) {
	w.p.mu.Lock()
	defer w.p.mu.Unlock()
	return w.p.stderr.Write(b)
}
