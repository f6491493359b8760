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
// terminal, a plain line every plainInterval otherwise, a status event
// every statusInterval with -json, nothing with -silent. It implements
// snapshot.BackupProgress, snapshot.RestoreProgress, snapshot.CheckProgress
// and snapshot.SyncProgress.
type progress struct {
	out        *printer
	verb       string
	unit       string // what files counts: files, packs (check) or blobs (sync)
	bar        *progressbar.ProgressBar
	files      atomic.Int64
	bytes      atomic.Int64
	totalFiles atomic.Int64
	totalBytes atomic.Int64
	start      time.Time
	// first is when work was first reported and how many bytes that
	// report held: the rate behind an ETA is measured from there, since
	// the time before it (locking, loading the index, finding the parent)
	// says nothing of how fast the rest will go.
	first      sync.Once
	firstAt    time.Time
	firstBytes int64
	started    atomic.Bool // first's fields are set
	plainShown bool        // status lines are printed
	jsonShown  bool        // status events are printed
	now        func() time.Time
	stop       chan struct{}
	wg         sync.WaitGroup
}

const plainInterval = 10 * time.Second

// statusInterval is how often -json prints a status event.
const statusInterval = time.Second

// newProgress starts reporting how a command (verb) advances, counting
// unit (files, packs, blobs) and bytes. It returns a progress that only
// forwards warnings when output is silent.
func (a *app) newProgress(verb, unit string) *progress {
	p := &progress{out: a.out, verb: verb, unit: unit, start: time.Now(), stop: make(chan struct{}), now: time.Now}
	if a.g.silent {
		return p
	}
	if a.g.json {
		p.jsonShown = true
		p.wg.Add(1)
		go p.statusEvents()
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
func (p *progress) shown() bool { return p.bar != nil || p.plainShown || p.jsonShown }

// statusEvent is the -json form of progress, printed every
// statusInterval while a backup, restore, check -read-data or sync runs,
// and once at its end (docs/json.md).
type statusEvent struct {
	Type             string   `json:"type"`   // "status"
	Action           string   `json:"action"` // backup, restore, check, sync, prune
	Unit             string   `json:"unit"`   // what items count: files, packs (check, prune), blobs
	ItemsDone        int64    `json:"items_done"`
	ItemsTotal       int64    `json:"items_total"`
	BytesDone        int64    `json:"bytes_done"`
	BytesTotal       int64    `json:"bytes_total"`
	PercentDone      float64  `json:"percent_done"` // of the bytes, 0 to 100
	SecondsElapsed   float64  `json:"seconds_elapsed"`
	SecondsRemaining *float64 `json:"seconds_remaining,omitempty"` // at the rate so far; absent until known
}

func (p *progress) status() statusEvent {
	elapsed := p.now().Sub(p.start)
	e := statusEvent{Type: "status", Action: p.verb, Unit: p.unit,
		ItemsDone: p.files.Load(), ItemsTotal: p.totalFiles.Load(),
		BytesDone: p.bytes.Load(), BytesTotal: p.totalBytes.Load(),
		SecondsElapsed: elapsed.Seconds()}
	switch {
	case e.BytesTotal > 0:
		e.PercentDone = min(100, 100*float64(e.BytesDone)/float64(e.BytesTotal))
	case e.ItemsTotal > 0: // a prune that only deletes
		e.PercentDone = min(100, 100*float64(e.ItemsDone)/float64(e.ItemsTotal))
	}
	if e.BytesDone > 0 && e.BytesTotal >= e.BytesDone {
		left := float64(e.BytesTotal-e.BytesDone) / p.rate(e.BytesDone, elapsed)
		e.SecondsRemaining = &left
	}
	return e
}

// rate is how many bytes a second the work goes at, done bytes and
// elapsed time into the command: measured from the first report of work
// once there is a second one, from the start until then.
func (p *progress) rate(done int64, elapsed time.Duration) float64 {
	if p.started.Load() && done > p.firstBytes {
		if d := p.now().Sub(p.firstAt); d > 0 {
			return float64(done-p.firstBytes) / d.Seconds()
		}
	}
	return float64(done) / elapsed.Seconds()
}

// every calls fn each interval until the progress is done.
func (p *progress) every(interval time.Duration, fn func()) {
	defer p.wg.Done()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
			fn()
		}
	}
}

// statusEvents prints a status event every statusInterval.
func (p *progress) statusEvents() {
	p.every(statusInterval, func() { p.out.result(p.status()) })
}

// plain prints a status line periodically for logs and pipes.
func (p *progress) plain(w io.Writer) {
	p.every(plainInterval, func() {
		p.out.mu.Lock()
		fmt.Fprintln(w, p.line())
		p.out.mu.Unlock()
	})
}

func (p *progress) line() string {
	elapsed := p.now().Sub(p.start)
	files, bytes := p.files.Load(), p.bytes.Load()
	totalFiles, totalBytes := p.totalFiles.Load(), p.totalBytes.Load()
	rate := p.rate(bytes, elapsed)
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
	if p.bar != nil && bytes != 0 { // an estimate's correction can be negative
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
	done := p.bytes.Add(bytes)
	if bytes > 0 && !p.started.Load() {
		p.first.Do(func() {
			p.firstAt, p.firstBytes = p.now(), done
			p.started.Store(true)
		})
	}
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
	if p.jsonShown {
		p.out.result(p.status()) // the last, for a monitor that waits for 100%
	}
	if p.bar != nil {
		_ = p.bar.Finish()
	}
}
