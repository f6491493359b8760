// Command coffer makes encrypted, deduplicated backups to OCI registries
// and local directories. See README.md.
package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"runtime/metrics"
	"runtime/pprof"
	"runtime/trace"
	"sync"
	"syscall"
	"time"

	"golang.org/x/term"

	"github.com/cofferhq/coffer/cli"
)

func main() {
	// coffer's heap is mostly large buffers that are reused (file chunks,
	// sealed blobs, chunker windows) and cost the collector nothing to
	// scan, so collecting at 50% growth instead of 100% lowers peak memory
	// at no measurable cost in time (docs/benchmarks.md). GOGC set in the
	// environment still decides.
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(50)
	}
	stopProfiles, err := startProfiles()
	if err != nil {
		fmt.Fprintln(os.Stderr, "coffer:", err)
		os.Exit(cli.ExitFailure)
	}
	code := run()
	if err := stopProfiles(); err != nil {
		fmt.Fprintln(os.Stderr, "coffer:", err)
	}
	os.Exit(code)
}

// startProfiles starts the profiles the environment asks for, for
// benchmarks (docs/benchmarks.md explains where time and memory go with
// them): COFFER_CPUPROFILE names a file for a CPU profile of the run;
// COFFER_MEMPROFILE one for a heap profile written at the end (its
// alloc_space view shows every allocation the run made);
// COFFER_PEAKPROFILE one for a heap profile taken when the live heap was
// largest (its inuse_space view shows what peak RSS is made of); and
// COFFER_TRACE one for an execution trace (`go tool trace -pprof=sync`
// and `-pprof=sched` show where the workers wait instead of working).
func startProfiles() (stop func() error, err error) {
	var stops []func() error
	for _, p := range []struct {
		env   string
		start func(io.Writer) error
		stop  func()
	}{
		{"COFFER_CPUPROFILE", pprof.StartCPUProfile, pprof.StopCPUProfile},
		{"COFFER_TRACE", trace.Start, trace.Stop},
	} {
		path := os.Getenv(p.env)
		if path == "" {
			continue
		}
		f, err := os.Create(path)
		if err == nil {
			err = p.start(f)
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p.env, err)
		}
		stops = append(stops, func() error {
			p.stop()
			return f.Close()
		})
	}
	if path := os.Getenv("COFFER_MEMPROFILE"); path != "" {
		stops = append(stops, func() error {
			f, err := os.Create(path)
			if err != nil {
				return fmt.Errorf("COFFER_MEMPROFILE: %w", err)
			}
			defer f.Close()
			return pprof.Lookup("allocs").WriteTo(f, 0)
		})
	}
	if path := os.Getenv("COFFER_PEAKPROFILE"); path != "" {
		stops = append(stops, watchPeakHeap(path))
	}
	return func() error {
		var errs []error
		for _, stop := range stops {
			errs = append(errs, stop())
		}
		return errors.Join(errs...)
	}, nil
}

// watchPeakHeap samples the live heap every 50 ms and keeps a heap
// profile of the largest it saw, which the returned stop writes to path.
func watchPeakHeap(path string) (stop func() error) {
	done := make(chan struct{})
	var (
		mu   sync.Mutex
		peak bytes.Buffer
	)
	go func() {
		sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
		var largest uint64
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
			}
			metrics.Read(sample)
			// A profile reflects the last collection; taking one is
			// worth it only when the heap grew by a twentieth.
			if v := sample[0].Value.Uint64(); v > largest+largest/20 {
				largest = v
				mu.Lock()
				peak.Reset()
				_ = pprof.Lookup("heap").WriteTo(&peak, 0)
				mu.Unlock()
			}
		}
	}()
	return func() error {
		close(done)
		mu.Lock()
		defer mu.Unlock()
		if peak.Len() == 0 { // a run shorter than a sample
			_ = pprof.Lookup("heap").WriteTo(&peak, 0)
		}
		if err := os.WriteFile(path, peak.Bytes(), 0o644); err != nil {
			return fmt.Errorf("COFFER_PEAKPROFILE: %w", err)
		}
		return nil
	}
}

func run() int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return cli.Main(ctx, cli.Env{
		Args:   os.Args[1:],
		Stdin:  os.Stdin,
		Stdout: os.Stdout,
		Stderr: os.Stderr,
		Getenv: os.Getenv,
		IsTerminal: func(w any) bool {
			f, ok := w.(*os.File)
			return ok && term.IsTerminal(int(f.Fd()))
		},
	})
}
