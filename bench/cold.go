package main

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Issue 16, item 5: reads from a registry repository that holds many
// snapshots, with a cold cache. The repository is made once (not
// measured) by that many small backups straight into the registry; then
// each run, with an emptied cache directory before every command,
// measures `ls` (the snapshot list), the restore of one file from the
// latest snapshot, and the restore of one file from a snapshot named by
// its id, counting the requests the registry receives through a counting
// proxy in the harness; and, for comparison, `ls` again with the cache
// the previous `ls` left.

// coldSectionTitle starts the section -cold owns in the report file.
const coldSectionTitle = "## cold registry reads"

// Cold scenarios, in the order of the first run (it rotates).
const (
	coldLs        = "ls (cold cache)"
	coldRestore   = "restore latest:FILE (cold cache)"
	coldRestoreID = "restore ID:FILE (cold cache)"
	coldLsWarm    = "ls (cache of the ls before)"
)

var coldScenarios = []string{coldLs, coldRestore, coldRestoreID, coldLsWarm}

// coldGoal is the wall-time goal per scenario, 0 for none.
func coldGoal(sc string) time.Duration {
	switch sc {
	case coldLs:
		return 2 * time.Second
	case coldRestore, coldRestoreID:
		return 3 * time.Second
	}
	return 0
}

// ColdSample is one measured command and the requests it made.
type ColdSample struct {
	Sample
	Requests map[string]int // by kind (see requestKind) and "total"
	Bytes    int64          // response bytes
}

// ColdReport is the -cold section.
type ColdReport struct {
	Command, Machine, Versions string
	Date                       time.Time
	Runs, Snapshots, Files     int
	Quick                      bool
	Build                      time.Duration // making the repository
	Load                       []string      // 1-minute load at the start and end of the measured runs
	Samples                    map[string][]ColdSample
	Elapsed                    time.Duration
}

// counter is a reverse proxy in front of the registry that counts the
// requests passing through it, by kind, and the bytes of the answers.
type counter struct {
	mu    sync.Mutex
	kinds map[string]int
	bytes atomic.Int64
	srv   *http.Server
	addr  string
}

// startCounter listens on a free loopback port and forwards to target.
func startCounter(target string) (*counter, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("starting the counting proxy: %w", err)
	}
	c := &counter{kinds: map[string]int{}, addr: l.Addr().String()}
	proxy := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: "http", Host: target})
	proxy.ModifyResponse = func(r *http.Response) error {
		if r.ContentLength > 0 {
			c.bytes.Add(r.ContentLength)
		}
		return nil
	}
	c.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.mu.Lock()
		c.kinds[requestKind(r)]++
		c.kinds["total"]++
		c.mu.Unlock()
		proxy.ServeHTTP(w, r)
	})}
	go func() { _ = c.srv.Serve(l) }()
	return c, nil
}

// requestKind names a registry request by method and what it addresses.
func requestKind(r *http.Request) string {
	p := r.URL.Path
	what := "other"
	switch {
	case p == "/v2/" || p == "/v2":
		what = "ping"
	case strings.Contains(p, "/manifests/"):
		what = "manifest"
	case strings.Contains(p, "/blobs/uploads"):
		what = "upload"
	case strings.Contains(p, "/blobs/"):
		what = "blob"
		if r.Header.Get("Range") != "" {
			what = "blob range"
		}
	case strings.HasSuffix(p, "/tags/list"):
		what = "tags list"
	case strings.Contains(p, "/referrers/"):
		what = "referrers"
	}
	return r.Method + " " + what
}

// take returns the counts since the last take and resets them.
func (c *counter) take() (map[string]int, int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	k := c.kinds
	c.kinds = map[string]int{}
	return k, c.bytes.Swap(0)
}

func (c *counter) stop() { _ = c.srv.Close() }

// coldBench makes a registry repository of snapshots small backups and
// measures the cold scenarios runs times.
func coldBench(rn *runner, bins *binaries, snapshots, runs int, dir, restoreDir string) (*ColdReport, error) {
	if err := os.RemoveAll(dir); err != nil {
		return nil, fmt.Errorf("removing an earlier -cold directory: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("creating the -cold directory: %w", err)
	}
	reg, err := startRegistry(bins.registry, dir)
	if err != nil {
		return nil, err
	}
	defer reg.stop()
	cnt, err := startCounter(reg.addr)
	if err != nil {
		return nil, err
	}
	defer cnt.stop()
	rep := &ColdReport{Snapshots: snapshots, Runs: runs, Samples: map[string][]ColdSample{}}
	direct := "oci://" + reg.addr + "/bench/cold"
	store := "oci://" + cnt.addr + "/bench/cold"
	env := func(cache string) []string {
		return []string{"COFFER_PASSPHRASE=" + passphrase, "COFFER_CACHE_DIR=" + cache}
	}

	t0 := time.Now()
	logf("cold: making %s with %d snapshots", direct, snapshots)
	if out, err := coffer(bins.coffer, "", env(filepath.Join(dir, "cache-make")), "at", direct, "create"); err != nil {
		return nil, fmt.Errorf("cold: creating the repository: %w: %s", err, out)
	}
	file, files, err := coldBackups(bins.coffer, direct, dir, snapshots, env)
	if err != nil {
		return nil, err
	}
	rep.Files = files
	rep.Build = time.Since(t0)
	logf("cold: %d snapshots made in %s", snapshots, rep.Build.Round(time.Second))

	// The id of the first snapshot listed: one that is not the latest.
	out, err := coffer(bins.coffer, "", env(filepath.Join(dir, "cache-make")), "at", direct, "ls")
	if err != nil {
		return nil, fmt.Errorf("cold: listing the snapshots: %w: %s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != snapshots {
		return nil, fmt.Errorf("cold: ls lists %d snapshots, want %d", len(lines), snapshots)
	}
	fields := strings.Fields(lines[0])
	if len(fields) < 2 {
		return nil, fmt.Errorf("cold: cannot read a snapshot id from %q", lines[0])
	}
	id := fields[1]

	// Every command gets a cache directory never used before, and the
	// harness deletes none of them until the runs are over: on the
	// development machine's ext4 (mounted with discard), an openat
	// creating one of the ~2,000 cache files of a cold command right
	// where the last command's were deleted took 0.49 ms instead of
	// 0.085 ms, which made a cold restore by latest 3.6-4.4 s instead of
	// 2.2 s: that timed the harness's deletions, not a cold start.
	caches := filepath.Join(dir, "caches")
	defer os.RemoveAll(caches)
	fresh := 0
	rep.Load = append(rep.Load, loadAverage())
	for r := range runs {
		order := append(slices.Clone(coldScenarios[r%3:3]), coldScenarios[:r%3]...)
		order = append(order, coldLsWarm)
		for _, sc := range order {
			// Each command runs twice from the same cache state: timed
			// against the registry itself, then counted through the
			// proxy (whose own latency is not the command's).
			var cache string
			prepare := func(at string) error {
				fresh++
				cache = filepath.Join(caches, fmt.Sprint(fresh))
				if sc == coldLsWarm { // the cache an ls leaves
					if out, err := coffer(bins.coffer, "", env(cache), "at", at, "ls"); err != nil {
						return fmt.Errorf("cold: %w: %s", err, out)
					}
				}
				if err := os.RemoveAll(restoreDir); err != nil {
					return err
				}
				return os.MkdirAll(restoreDir, 0o755)
			}
			argv := func(at string) []string {
				argv := []string{bins.coffer, "-silent", "at", at}
				switch sc {
				case coldLs, coldLsWarm:
					return append(argv, "ls")
				case coldRestore:
					return append(argv, "restore", "latest:"+file, "-to", restoreDir)
				default: // coldRestoreID
					return append(argv, "restore", id+":"+file, "-to", restoreDir)
				}
			}
			check := func() error {
				if sc == coldRestore || sc == coldRestoreID {
					if err := checkColdRestore(restoreDir, file); err != nil {
						return fmt.Errorf("cold, %s: %w", sc, err)
					}
				}
				return nil
			}
			if err := prepare(direct); err != nil {
				return nil, err
			}
			s, err := rn.run(command{argv: argv(direct), env: env(cache)})
			if err != nil {
				return nil, fmt.Errorf("cold, run %d, %s: %w", r+1, sc, err)
			}
			if err := check(); err != nil {
				return nil, err
			}
			if err := prepare(store); err != nil {
				return nil, err
			}
			cnt.take()
			a := argv(store)
			if out, err := coffer(a[0], "", env(cache), a[1:]...); err != nil {
				return nil, fmt.Errorf("cold, run %d, %s through the counting proxy: %w: %s", r+1, sc, err, out)
			}
			kinds, bytes := cnt.take()
			if err := check(); err != nil {
				return nil, err
			}
			logf("cold run %d  %-36s %6.2fs wall %6.2fs cpu %4d MiB rss %5d requests", r+1, sc, s.Wall.Seconds(), s.CPU.Seconds(), s.MaxRSSKiB>>10, kinds["total"])
			rep.Samples[sc] = append(rep.Samples[sc], ColdSample{Sample: s, Requests: kinds, Bytes: bytes})
		}
	}
	rep.Load = append(rep.Load, loadAverage())
	return rep, nil
}

// coldBackups makes snapshots backups into store, one writer per CPU, each
// of a small tree of its own (40 files of 1 KiB in 4 directories) whose
// file "counter" changes every time. It returns
// the path of the file single-file restores fetch and the files per tree.
// The backups run under nice -n 19.
func coldBackups(bin, store, dir string, snapshots int, env func(string) []string) (string, int, error) {
	const perTree = 40
	workers := min(runtime.NumCPU(), snapshots)
	var next atomic.Int64
	errs := make(chan error, workers)
	for w := range workers {
		go func() {
			tree := filepath.Join(dir, "trees", fmt.Sprint(w))
			g := newGen(uint64(w) + 1)
			for i := range perTree - 1 {
				if err := writeFile(filepath.Join(tree, fmt.Sprintf("d%d/f%02d.txt", i%4, i)), g.text(1<<10)); err != nil {
					errs <- err
					return
				}
			}
			for {
				i := next.Add(1) - 1
				if i >= int64(snapshots) {
					errs <- nil
					return
				}
				if err := os.WriteFile(filepath.Join(tree, "counter"), fmt.Appendf(nil, "%d\n", i), 0o644); err != nil {
					errs <- err
					return
				}
				// At the lowest priority: making the repository is not
				// measured, and may share the machine with what is.
				out, err := coffer("nice", tree, env(filepath.Join(dir, fmt.Sprintf("cache-make-%d", w))), "-n", "19", bin, "at", store, "backup", ".")
				if err != nil {
					next.Store(int64(snapshots))
					errs <- fmt.Errorf("cold: backup %d: %w: %s", i+1, err, out)
					return
				}
				if i%100 == 99 {
					logf("cold: %d snapshots", i+1)
				}
			}
		}()
	}
	var first error
	for range workers {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	return "d1/f01.txt", perTree, first
}

// coffer runs bin (coffer, or nice starting it), unmeasured, in directory
// dir (the current one when empty) and returns its combined output.
func coffer(bin, dir string, env []string, args ...string) (string, error) {
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// checkColdRestore checks that the restore wrote the file, 1 KiB.
func checkColdRestore(dir, file string) error {
	n, err := dirSize(dir)
	if err != nil {
		return err
	}
	if n != 1<<10 {
		return fmt.Errorf("the restore of %s wrote %d bytes, want 1024", file, n)
	}
	return nil
}

// write puts the section into the file at path, replacing an earlier one.
func (r *ColdReport) write(path string) (string, error) {
	md := r.markdown()
	return md, writeSection(path, coldSectionTitle, md)
}

// markdown renders the section.
func (r *ColdReport) markdown() string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	p("%s\n\n", coldSectionTitle)
	p("Written by `bench/` with `-cold` (see bench/README.md): issue 16's item 5. A registry repository (CNCF Distribution on 127.0.0.1, filesystem storage) holding %d snapshots, made by as many backups of small trees (%d files of 1 KiB, one of them changed before each backup; %s to make, not measured). Each command starts with a `COFFER_CACHE_DIR` never used before (but the last row, which has the cache the `ls` before it left; none is deleted until the runs end) and is timed talking to the registry directly; it then runs again from the same cache state through a counting proxy in the harness, which gives the requests and bytes (the proxy's own latency is not the command's). Every figure is the median of %d run(s)",
		r.Snapshots, r.Files, r.Build.Round(time.Second), r.Runs)
	if r.Quick {
		p(" with **%d snapshots (`-quick`)**, a smoke test rather than a measurement", r.Snapshots)
	}
	p(".\n\n")
	p("Command: `%s` (%s in total)\n\n", r.Command, r.Elapsed.Round(time.Second))
	p("Date: %s. Machine: %s. Load average (1 min) at the start and end of the measured runs: %s.\n\n", r.Date.Format("2006-01-02"), r.Machine, strings.Join(r.Load, ", "))
	p("Versions: %s.\n\n", r.Versions)
	p("| command | wall | CPU | peak RSS | requests | by kind (median) | MiB received | goal | |\n|---|---:|---:|---:|---:|---|---:|---:|---|\n")
	for _, sc := range coldScenarios {
		ss := r.Samples[sc]
		if len(ss) == 0 {
			continue
		}
		var plain []Sample
		var total, bytes []int64
		kinds := map[string][]int64{}
		for _, s := range ss {
			plain = append(plain, s.Sample)
			total = append(total, int64(s.Requests["total"]))
			bytes = append(bytes, s.Bytes)
			for k := range s.Requests {
				if k != "total" {
					kinds[k] = nil
				}
			}
		}
		var names []string
		for k := range kinds {
			names = append(names, k)
		}
		slices.Sort(names)
		var by []string
		for _, k := range names {
			var xs []int64
			for _, s := range ss {
				xs = append(xs, int64(s.Requests[k]))
			}
			by = append(by, fmt.Sprintf("%s %d", k, median(xs)))
		}
		m := medianSample(plain)
		goal, verdict := "", ""
		if g := coldGoal(sc); g > 0 {
			goal, verdict = "<= "+seconds(g.Seconds()), "met"
			if m.Wall > g {
				verdict = "**missed**"
			}
		}
		p("| `%s` | %s | %s | %s | %d | %s | %.2f | %s | %s |\n", sc, seconds(m.Wall.Seconds()), seconds(m.CPU.Seconds()), human(m.MaxRSSKiB<<10),
			median(total), strings.Join(by, ", "), float64(median(bytes))/(1<<20), goal, verdict)
	}
	p("\n")
	return b.String()
}
