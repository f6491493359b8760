package cli

import (
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/cofferhq/coffer/internal/bytesize"
)

// progress shows how a long command advances: a progress bar on a
// terminal, a plain line every plainInterval otherwise, nothing with
// -silent or -json. It implements snapshot.BackupProgress and
// snapshot.RestoreProgress.
type progress struct {
	out        *printer
	verb       string
	unit       string // what files counts: files, or blobs for sync
	bar        *progressbar.ProgressBar
	files      atomic.Int64
	bytes      atomic.Int64
	totalFiles atomic.Int64
	totalBytes atomic.Int64
	start      time.Time
	plainShown bool // status lines are printed
	stop       chan struct{}
	wg         sync.WaitGroup
}

const plainInterval = 10 * time.Second

// newProgress starts reporting on w. It returns a progress that only
// forwards warnings when output is silent or JSON.
func (a *app) newProgress(verb string) *progress {
	p := &progress{out: a.out, verb: verb, unit: "files", start: time.Now(), stop: make(chan struct{})}
	if a.g.silent || a.g.json {
		return p
	}
	w := a.env.Stderr
	if a.env.IsTerminal(w) {
		p.bar = progressbar.NewOptions64(-1,
			progressbar.OptionSetWriter(w),
			progressbar.OptionSetDescription(verb),
			progressbar.OptionShowBytes(true),
			progressbar.OptionUseIECUnits(true),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionSetElapsedTime(true),
			progressbar.OptionThrottle(200*time.Millisecond),
			progressbar.OptionClearOnFinish(),
			progressbar.OptionFullWidth(),
		)
		return p
	}
	p.plainShown = true
	p.wg.Add(1)
	go p.plain(w)
	return p
}

// shown reports whether p displays anything but warnings, and so has a
// use for totals.
func (p *progress) shown() bool { return p.bar != nil || p.plainShown }

// plain prints a status line periodically for logs and pipes.
func (p *progress) plain(w io.Writer) {
	defer p.wg.Done()
	t := time.NewTicker(plainInterval)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
			p.out.mu.Lock()
			fmt.Fprintln(w, p.line())
			p.out.mu.Unlock()
		}
	}
}

func (p *progress) line() string {
	elapsed := time.Since(p.start)
	files, bytes := p.files.Load(), p.bytes.Load()
	totalFiles, totalBytes := p.totalFiles.Load(), p.totalBytes.Load()
	rate := float64(bytes) / elapsed.Seconds()
	s := fmt.Sprintf("[%s] %s: %d/%d %s, %s/%s, %s/s", duration(elapsed), p.verb, files, totalFiles, p.unit,
		bytesize.Format(bytes), bytesize.Format(totalBytes), bytesize.Format(int64(rate)))
	if totalBytes > 0 && bytes > 0 && bytes < totalBytes {
		eta := time.Duration(float64(totalBytes-bytes) / rate * float64(time.Second))
		s += fmt.Sprintf(", %d%%, ETA %s", bytes*100/totalBytes, duration(eta))
	}
	return s
}

func (p *progress) describe() {
	if p.bar != nil {
		p.bar.Describe(fmt.Sprintf("%s %d/%d %s", p.verb, p.files.Load(), p.totalFiles.Load(), p.unit))
	}
}

// Scanned adds to the totals (backup).
func (p *progress) Scanned(files, bytes int64) {
	p.totalFiles.Add(files)
	if p.bar != nil && bytes > 0 {
		p.bar.ChangeMax64(p.totalBytes.Add(bytes))
	} else {
		p.totalBytes.Add(bytes)
	}
}

// Total sets the totals (restore).
func (p *progress) Total(files, bytes int64) {
	p.totalFiles.Store(files)
	p.totalBytes.Store(bytes)
	if p.bar != nil {
		p.bar.ChangeMax64(bytes)
	}
}

// Processed adds work done.
func (p *progress) Processed(files, bytes int64) {
	p.files.Add(files)
	p.bytes.Add(bytes)
	if p.bar != nil {
		p.describe()
		_ = p.bar.Add64(bytes)
	}
}

// Warn reports an entry that could not be handled.
func (p *progress) Warn(path string, err error) {
	if p.bar != nil {
		_ = p.bar.Clear()
	}
	p.out.warn(path, err)
}

// done stops the display.
func (p *progress) done() {
	close(p.stop)
	p.wg.Wait()
	if p.bar != nil {
		_ = p.bar.Finish()
	}
}
