//go:build linux

package cli

import (
	"encoding/json"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/cofferhq/coffer/internal/testutil"
)

// statusEvents runs a -json command and returns its status events.
func statusEvents(t *testing.T, h *harness, args ...string) []statusEvent {
	t.Helper()
	r := h.run(append([]string{"-json", "at", h.repo}, args...)...)
	if r.code != 0 {
		t.Fatalf("%v: exit %d: %s", args, r.code, r.stderr)
	}
	var events []statusEvent
	for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		var e statusEvent
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		if e.Type == "status" {
			events = append(events, e)
		}
	}
	if len(events) == 0 {
		t.Fatalf("%v -json printed no status event", args)
	}
	last := events[len(events)-1]
	if last.BytesDone != last.BytesTotal || last.ItemsDone != last.ItemsTotal || last.PercentDone != 100 {
		t.Errorf("%v: the last status event is not complete: %+v", args, last)
	}
	return events
}

// A backup of one 4 GiB file reports its bytes as it reads them: within
// the first second, not once the file is whole; the time it says is left,
// once a tenth is done, is of the right size (within a factor of two of
// what it takes); restore, check -read-data and sync report status events
// too, ending complete.
func TestProgressEvents(t *testing.T) {
	testutil.SkipInShort(t, "a backup of 4 GiB")
	dir := "/dev/shm"
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		dir = ""
	}
	src, err := os.MkdirTemp(dir, "coffer-progress-*")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(src) })
	f, err := os.Create(filepath.Join(src, "big"))
	if err != nil {
		t.Fatal(err)
	}
	zeros := make([]byte, 16<<20)
	for range 256 {
		if _, err := f.Write(zeros); err != nil {
			t.Fatal(err)
		}
	}
	f.Close()

	h := newHarness(t)
	h.create()
	events := statusEvents(t, h, "backup", src)
	first, last := events[0], events[len(events)-1]
	if first.SecondsElapsed > 1.5 || first.BytesDone == 0 || first.BytesDone >= 4<<30 || first.BytesTotal != 4<<30 || first.Unit != "files" {
		t.Errorf("the first status event shows no byte progress within a second: %+v", first)
	}
	// When each status event between 10% and 90% says the backup will
	// end, against when it did. Other tests share the machine's two
	// cores, which no estimate can foresee: TestETA holds the estimate to
	// 20% on a steady backup; here it must be of the right size. A bound
	// of 1.6 failed CI twice, at 1.76 and 1.67: a first second slowed by
	// the other tests' packages, and the rest of the backup at twice its
	// rate.
	checked := 0
	for _, e := range events[:len(events)-1] {
		if e.PercentDone < 10 || e.PercentDone > 90 || e.SecondsRemaining == nil {
			continue
		}
		checked++
		if end := e.SecondsElapsed + *e.SecondsRemaining; end < 0.5*last.SecondsElapsed || end > 2*last.SecondsElapsed {
			t.Errorf("at %.0f%% (%.1f s) the ETA said %.1f s left: an end at %.1f s; it ended at %.1f s",
				e.PercentDone, e.SecondsElapsed, *e.SecondsRemaining, end, last.SecondsElapsed)
		}
	}
	if checked == 0 {
		t.Errorf("no status event between 10%% and 90%% to check the ETA of: %+v", events)
	}

	small := newHarness(t)
	small.create()
	small.backup(sourceTree(t))
	if e := statusEvents(t, small, "restore", "latest", "-to", t.TempDir()); e[0].Unit != "files" || e[len(e)-1].BytesTotal == 0 {
		t.Errorf("restore status: %+v", e)
	}
	if e := statusEvents(t, small, "check", "-read-data"); e[0].Unit != "packs" || e[len(e)-1].ItemsTotal == 0 {
		t.Errorf("check status: %+v", e)
	}
	other := *small
	other.repo = filepath.Join(t.TempDir(), "other")
	other.create()
	if e := statusEvents(t, small, "sync", "to", other.repo); e[0].Unit != "blobs" || e[len(e)-1].ItemsTotal == 0 {
		t.Errorf("sync status: %+v", e)
	}
	small.mustAt("forget", "latest")
	if e := statusEvents(t, small, "prune"); e[0].Unit != "packs" || e[len(e)-1].ItemsTotal == 0 || e[len(e)-1].Action != "prune" {
		t.Errorf("prune status: %+v", e)
	}
}

// On a steady backup (a fake clock, 100 MiB/s, totals found by the
// scanner during the first second), every status event from 10% on says
// within 20% how long is left, though the backup spent its first 5 s
// reading nothing (loading an index); before anything is read it says
// nothing.
func TestETA(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	p := &progress{verb: "backup", unit: "files", start: now, now: func() time.Time { return now }}
	if e := p.status(); e.SecondsRemaining != nil || e.PercentDone != 0 {
		t.Errorf("before anything: %+v", e)
	}
	now = now.Add(5 * time.Second)
	if e := p.status(); e.SecondsRemaining != nil || e.PercentDone != 0 {
		t.Errorf("after 5 s with nothing read: %+v", e)
	}
	const total, rate = 10 << 30, 100 << 20 // 10 GiB at 100 MiB/s: 102.4 s
	for step := 1; step <= 1024; step++ {   // a tenth of a second each
		now = now.Add(100 * time.Millisecond)
		if step <= 10 {
			p.Scanned(1000, total/10)
		}
		p.Processed(10, rate/10)
		e := p.status()
		if e.PercentDone < 10 {
			continue
		}
		actual := float64(total-e.BytesDone) / rate
		if e.SecondsRemaining == nil {
			t.Fatalf("at %.1f%%: no ETA", e.PercentDone)
		}
		if math.Abs(*e.SecondsRemaining-actual) > 0.2*actual+0.01 {
			t.Fatalf("at %.1f%%: ETA %.1f s, %.1f s left", e.PercentDone, *e.SecondsRemaining, actual)
		}
	}
	if e := p.status(); e.PercentDone != 100 || *e.SecondsRemaining != 0 || e.ItemsDone != 10240 || e.ItemsTotal != 10000 {
		t.Errorf("at the end: %+v", e)
	}
}

// A backup with a parent snapshot gives the parent's totals as an
// estimate, then corrects them once its walk is done: a correction
// downwards must reach the bar's total too.
func TestProgressBarCorrection(t *testing.T) {
	p := &progress{verb: "backup", unit: "files", start: time.Now(), now: time.Now,
		bar: progressbar.NewOptions64(-1, progressbar.OptionSetWriter(io.Discard))}
	p.Scanned(10, 1000)
	p.Scanned(-2, -400)
	if got, files := p.bar.GetMax64(), p.totalFiles.Load(); got != 600 || files != 8 {
		t.Errorf("after an estimate of 10 files, 1000 bytes corrected by -2, -400: the bar's total is %d bytes, %d files; want 600, 8", got, files)
	}
}
