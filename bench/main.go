// Command bench compares coffer with restic and kopia on generated
// datasets: it times init, backups, restores,
// check and ls for each tool as child processes, takes medians over runs
// with the tools interleaved, and writes a markdown report and charts.
//
// It is a module of its own (its charts need gonum/plot, which coffer
// does not); run it from its directory:
//
//	cd bench
//	go run . -quick                                        # a small smoke run, under 3 minutes
//	go run . -datasets mixed -runs 3 -out ../docs/benchmarks.md
//
// See bench/README.md.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

// options are the command-line flags.
type options struct {
	quick    bool
	datasets []string
	tools    []string
	runs     int
	out      string
	work     string
	restore  string
	seed     uint64
	keep     bool
	sync     bool
	s3       bool
	cold     bool
	coldN    int
}

func main() {
	if mode := os.Getenv(s3CopyEnv); mode != "" {
		if err := s3Copy(mode, os.Args[1:]); err != nil {
			fmt.Fprintln(os.Stderr, "bench s3 copy:", err)
			os.Exit(1)
		}
		return
	}
	if os.Getenv(runnerEnv) == "1" {
		if err := serveRunner(); err != nil {
			fmt.Fprintln(os.Stderr, "bench runner:", err)
			os.Exit(1)
		}
		return
	}
	var o options
	var datasets, tools string
	flag.BoolVar(&o.quick, "quick", false, "scaled-down datasets and one run: a smoke test that the harness works")
	flag.StringVar(&datasets, "datasets", strings.Join(datasetNames, ","), "comma-separated datasets: "+strings.Join(datasetNames, ", ")+"\n(-quick: "+strings.Join(quickDatasets, ",")+" unless set)")
	flag.StringVar(&tools, "tools", strings.Join(defaultTools, ","), "comma-separated tools: "+strings.Join(toolNames, ", ")+"\n(kopia from PATH, ~/.cache/coffer-bench or ../shared/tools/get-kopia; skipped when none has it)")
	flag.IntVar(&o.runs, "runs", 0, "runs per tool and scenario; medians are reported (default 3, or 1 with -quick)")
	flag.StringVar(&o.out, "out", "", "markdown file to write the report section into, replacing its \"coffer vs restic\" section if any;\ncharts go next to it (default: a new report.md in a temporary directory)")
	flag.StringVar(&o.work, "work", "", "scratch directory for datasets and repositories (default: a temporary directory, removed at the end)")
	flag.StringVar(&o.restore, "restore-dir", defaultRestoreDir(), "directory restores write into, emptied before each one (default: on the /dev/shm tmpfs when there is one, else under -work)")
	flag.Uint64Var(&o.seed, "seed", 1, "seed of the generated datasets")
	flag.BoolVar(&o.keep, "keep", false, "keep the datasets and the last run's repositories in -work, to profile a tool on them")
	flag.BoolVar(&o.sync, "sync", false, "measure coffer's sync (into a registry, re-encrypting, mounted, shared keys) against a first backup into the registry,\ninstead of the tool comparison; writes a \"sync between repositories\" section (-quick runs both, the sync on mixed only)")
	flag.BoolVar(&o.s3, "s3", false, "measure coffer's first backup into and restore from an S3 server (VersityGW on loopback) against uploading and downloading\nthe same bytes with minio-go and the aws CLI, instead of the tool comparison; writes an \"S3 store\" section (-quick runs it on mixed only)")
	flag.BoolVar(&o.cold, "cold", false, "measure coffer's ls and single-file restores with a cold cache from a registry repository of 1,000 snapshots,\ncounting the registry's requests, instead of the tool comparison; writes a \"cold registry reads\" section (-quick runs it with 10 snapshots)")
	flag.IntVar(&o.coldN, "cold-snapshots", 1000, "snapshots in -cold's repository (10 with -quick)")
	flag.Parse()
	o.datasets = splitList(datasets)
	if o.quick && !flagSet("datasets") {
		o.datasets = quickDatasets
	}
	o.tools = splitList(tools)
	if o.runs == 0 {
		o.runs = 3
		if o.quick {
			o.runs = 1
		}
	}
	if err := bench(o); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// defaultRestoreDir puts restores on a tmpfs when the machine has one.
// On this project's machines (ext4 on a virtual disk), creating files right
// after many were deleted, as each restore does after the previous one's
// files are removed, costs about 0.5 ms of kernel CPU per file instead of
// 0.04 ms; that timed the file system, for both tools, not the tools.
func defaultRestoreDir() string {
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		return filepath.Join("/dev/shm", fmt.Sprintf("coffer-bench-restore-%d", os.Getpid()))
	}
	return ""
}

// flagSet reports whether the command line set the named flag.
func flagSet(name string) bool {
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

func splitList(s string) []string {
	var out []string
	for f := range strings.SplitSeq(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}

// bench runs everything o asks for and writes the report.
func bench(o options) (err error) {
	start := time.Now()
	// First, while the harness is small: see runner.
	rn, err := startRunner()
	if err != nil {
		return err
	}
	defer rn.close()
	for _, d := range o.datasets {
		if !slices.Contains(datasetNames, d) {
			return fmt.Errorf("unknown dataset %q (known: %s)", d, strings.Join(datasetNames, ", "))
		}
	}
	need := map[string]bool{}
	if o.sync || o.s3 || o.cold {
		// The tool comparison does not run; sync needs coffer and the
		// registry, the S3 benchmark coffer and VersityGW, -cold coffer
		// and the registry.
		o.tools = nil
	}
	// coldOn says whether the cold registry reads are measured: with
	// -cold, and with -quick alone, as a smoke test.
	coldOn := o.cold || o.quick && !o.sync && !o.s3
	if coldOn {
		need["registry"] = true
	}
	// syncOn says which datasets the sync benchmark runs on: all with
	// -sync, and with -quick (without -s3), as a smoke test, the
	// scaled-down mixed; s3On the same for the S3 benchmark.
	syncOn := func(ds string) bool { return o.sync || o.quick && !o.s3 && ds == "mixed" }
	s3On := func(ds string) bool { return o.s3 || o.quick && !o.sync && ds == "mixed" }
	if slices.ContainsFunc(o.datasets, syncOn) {
		need["registry"] = true
	}
	if slices.ContainsFunc(o.datasets, s3On) {
		need["versitygw"] = true
	}
	for _, t := range o.tools {
		if !slices.Contains(toolNames, t) {
			return fmt.Errorf("unknown tool %q (known: %s)", t, strings.Join(toolNames, ", "))
		}
		need[t] = true
	}
	if o.runs < 1 {
		return fmt.Errorf("-runs must be at least 1")
	}
	if o.keep && o.work == "" {
		return fmt.Errorf("-keep needs -work: the default scratch directory is removed at the end")
	}
	work := o.work
	if work == "" {
		if work, err = os.MkdirTemp("", "coffer-bench-"); err != nil {
			return fmt.Errorf("creating a scratch directory: %w", err)
		}
		defer os.RemoveAll(work)
	} else if err := os.MkdirAll(work, 0o755); err != nil {
		return fmt.Errorf("creating the scratch directory: %w", err)
	}
	out := o.out
	if out == "" {
		dir, err := os.MkdirTemp("", "coffer-bench-report-")
		if err != nil {
			return fmt.Errorf("creating the report directory: %w", err)
		}
		out = filepath.Join(dir, "report.md")
	}

	bins, err := findBinaries(work, need, logf)
	if err != nil {
		return err
	}
	var tools []*Tool
	var reg *registry
	for _, name := range toolNames {
		if !need[name] {
			continue
		}
		switch name {
		case "coffer", "coffer-uncompressed":
			tools = append(tools, cofferTool(bins, nil, name == "coffer-uncompressed"))
		case "coffer-oci":
			if reg, err = startRegistry(bins.registry, work); err != nil {
				return err
			}
			defer reg.stop()
			tools = append(tools, cofferTool(bins, reg, false))
		case "restic", "restic-matched":
			tools = append(tools, resticTool(bins, name == "restic-matched"))
		case "kopia", "kopia-zstd":
			if bins.kopia == "" {
				logf("no kopia (see findKopia): skipping %s", name)
				continue
			}
			tools = append(tools, kopiaTool(bins, name == "kopia-zstd"))
		}
	}
	if len(tools) == 0 && !o.sync && !o.s3 && !o.cold {
		return fmt.Errorf("no tools to run")
	}

	rep := &Report{Command: commandLine(), Date: time.Now().UTC(), Machine: describeMachine(), Runs: o.runs, Quick: o.quick, RestoreDir: o.restore,
		Versions: toolVersions(bins, reg != nil)}
	for _, t := range tools {
		rep.Tools = append(rep.Tools, t.Name)
		rep.Settings = append(rep.Settings, t.Settings)
	}
	srep := &SyncReport{Command: rep.Command, Date: rep.Date, Machine: rep.Machine, Runs: o.runs, Quick: o.quick,
		Versions: toolVersions(&binaries{coffer: bins.coffer, registry: bins.registry}, true)}
	aws := findAWS()
	s3rep := &S3Report{Command: rep.Command, Date: rep.Date, Machine: rep.Machine, Runs: o.runs, Quick: o.quick,
		Versions: toolVersions(&binaries{coffer: bins.coffer}, false)}
	if bins.versitygw != "" {
		s3rep.Versions += ", `versitygw " + versityPin() + "`"
		if aws != "" {
			s3rep.AWS = version(aws, "--version")
		} else {
			logf("no aws CLI: the S3 benchmark compares with the minio-go copier only")
		}
	}
	var syncTime, s3Time time.Duration
	if o.cold && len(o.datasets) > 0 && flagSet("datasets") {
		return fmt.Errorf("-cold makes its own repository: it takes no -datasets")
	}
	if o.cold {
		o.datasets = nil
	}
	for _, name := range o.datasets {
		logf("generating dataset %s", name)
		ds, err := generate(name, filepath.Join(work, "data", name), o.quick, o.seed)
		if err != nil {
			return err
		}
		logf("dataset %s: %d files, %s, widest directory %s (%d entries)", name, len(ds.Files), human(ds.Bytes), ds.Widest, ds.Entries)
		restoreDir := o.restore
		if restoreDir == "" {
			restoreDir = filepath.Join(work, "restore")
		}
		if s3On(name) {
			t0 := time.Now()
			load := loadAverage()
			res, err := s3Bench(rn, bins, aws, ds, o.runs, o.keep, filepath.Join(work, "s3", name), restoreDir)
			if err != nil {
				return err
			}
			s3rep.Load = append(s3rep.Load, load, loadAverage())
			s3Time += time.Since(t0)
			s3rep.Results = append(s3rep.Results, res)
		}
		if !o.sync && !o.s3 && !o.cold {
			history := historyLen
			if o.quick {
				history = quickHistoryLen
			}
			res, err := runDataset(rn, ds, tools, reg, o.runs, history, o.keep, filepath.Join(work, "runs", name), restoreDir)
			if err != nil {
				return err
			}
			rep.Results = append(rep.Results, res)
		}
		if syncOn(name) {
			t0 := time.Now()
			load := loadAverage()
			res, err := syncBench(rn, bins, ds, o.runs, o.keep, filepath.Join(work, "sync", name), restoreDir)
			if err != nil {
				return err
			}
			srep.Load = append(srep.Load, load, loadAverage())
			syncTime += time.Since(t0)
			srep.Results = append(srep.Results, res)
		}
		if o.keep {
			continue
		}
		if err := os.RemoveAll(ds.Dir); err != nil {
			return fmt.Errorf("removing dataset %s: %w", name, err)
		}
	}
	if coldOn {
		t0 := time.Now()
		snapshots := o.coldN
		if o.quick && !flagSet("cold-snapshots") {
			snapshots = 10
		}
		restoreDir := o.restore
		if restoreDir == "" {
			restoreDir = filepath.Join(work, "restore")
		}
		crep, err := coldBench(rn, bins, snapshots, o.runs, filepath.Join(work, "cold"), restoreDir)
		if err != nil {
			return err
		}
		crep.Command, crep.Date, crep.Machine, crep.Quick = rep.Command, rep.Date, rep.Machine, o.quick
		crep.Versions = toolVersions(&binaries{coffer: bins.coffer, registry: bins.registry}, true)
		crep.Elapsed = time.Since(t0)
		md, err := crep.write(out)
		if err != nil {
			return err
		}
		fmt.Print(md)
	}
	rep.Elapsed = time.Since(start)
	if !o.sync && !o.s3 && !o.cold {
		md, err := rep.write(out)
		if err != nil {
			return err
		}
		fmt.Print(md)
	}
	if len(srep.Results) > 0 {
		// With -sync, the whole command's time; else the sync part's.
		srep.Elapsed = syncTime
		if o.sync && !o.s3 {
			srep.Elapsed = rep.Elapsed
		}
		md, err := srep.write(out)
		if err != nil {
			return err
		}
		fmt.Print(md)
	}
	if len(s3rep.Results) > 0 {
		// With -s3 alone, the whole command's time; else the S3 part's.
		s3rep.Elapsed = s3Time
		if o.s3 && !o.sync {
			s3rep.Elapsed = rep.Elapsed
		}
		md, err := s3rep.write(out)
		if err != nil {
			return err
		}
		fmt.Print(md)
	}
	logf("report written to %s; total time %s", out, rep.Elapsed.Round(time.Second))
	return nil
}

// runDataset runs every scenario o.runs times for each tool on ds. Within
// a run, each scenario is run by every tool before the next scenario, and
// the order of the tools rotates from run to run.
func runDataset(rn *runner, ds *Dataset, tools []*Tool, reg *registry, runs, history int, keep bool, dir, restoreDir string) (*Result, error) {
	res := &Result{Dataset: ds, Samples: map[string]map[string][]Sample{}}
	for _, t := range tools {
		res.Samples[t.Name] = map[string][]Sample{}
	}
	for r := range runs {
		order := append(slices.Clone(tools[r%len(tools):]), tools[:r%len(tools)]...)
		runDir := filepath.Join(dir, fmt.Sprintf("run%d", r))
		// An earlier -keep may have left repositories here.
		if err := os.RemoveAll(runDir); err != nil {
			return nil, fmt.Errorf("removing the repositories of an earlier run: %w", err)
		}
		inst := map[string]*Instance{}
		for _, t := range order {
			in, err := t.open(filepath.Join(runDir, t.Name), r, ds)
			if err != nil {
				return nil, fmt.Errorf("%s: preparing run %d: %w", t.Name, r+1, err)
			}
			inst[t.Name] = in
		}
		var changes []change
		undoAll := func() error {
			for i := len(changes) - 1; i >= 0; i-- {
				if err := undo(changes[i : i+1]); err != nil {
					return err
				}
			}
			changes = nil
			return nil
		}
		for _, sc := range scenarios {
			if sc == scChanged {
				c, err := mutate(ds, uint64(r))
				if err != nil {
					return nil, err
				}
				changes = append(changes, c...)
			}
			if sc == scHistory {
				// Three snapshots so far; the rest, each after its own 5%.
				for k := 3; k < history; k++ {
					c, err := mutate(ds, uint64(r)*1000+uint64(k))
					if err != nil {
						return nil, err
					}
					changes = append(changes, c...)
					for _, t := range order {
						s, err := measure(rn, t, inst[t.Name], reg, sc, ds, restoreDir)
						if err != nil {
							return nil, fmt.Errorf("dataset %s, run %d, %s, backup %d: %w", ds.Name, r+1, t.Name, k+1, err)
						}
						logf("%-10s run %d  %-15s %-24s %8.2fs wall (backup %d, not reported)", ds.Name, r+1, t.Name, sc, s.Wall.Seconds(), k+1)
						if k == history-1 {
							res.Samples[t.Name][sc] = append(res.Samples[t.Name][sc], s)
						}
					}
				}
				continue
			}
			for _, t := range order {
				s, err := measure(rn, t, inst[t.Name], reg, sc, ds, restoreDir)
				if err != nil {
					return nil, fmt.Errorf("dataset %s, run %d, %s, %s: %w", ds.Name, r+1, t.Name, sc, err)
				}
				logf("%-10s run %d  %-15s %-24s %8.2fs wall %8.2fs cpu %6d MiB rss", ds.Name, r+1, t.Name, sc,
					s.Wall.Seconds(), s.CPU.Seconds(), s.MaxRSSKiB>>10)
				res.Samples[t.Name][sc] = append(res.Samples[t.Name][sc], s)
			}
		}
		if err := undoAll(); err != nil {
			return nil, err
		}
		if keep && r == runs-1 {
			break
		}
		if err := os.RemoveAll(runDir); err != nil {
			return nil, fmt.Errorf("removing the repositories of run %d: %w", r+1, err)
		}
	}
	return res, nil
}

// primeRestoreDir writes n bytes into a file in dir and removes it, so
// that a restore into dir finds that much memory free. Without it, the
// first tool to restore after the backups filled the page cache paid for
// the kernel's reclaiming it, and the tools after it did not: on the
// /dev/shm tmpfs, coffer's restore of big-file's 4 GiB took 6.6 s (8.3
// s of system time) as the first of the run and 3.6 s right after.
func primeRestoreDir(dir string, n int64) error {
	f, err := os.CreateTemp(dir, "prime")
	if err != nil {
		return fmt.Errorf("priming the restore directory: %w", err)
	}
	defer os.Remove(f.Name())
	buf := make([]byte, 1<<20)
	for n > 0 {
		k := int(min(n, int64(len(buf))))
		if _, err := f.Write(buf[:k]); err != nil {
			f.Close()
			return fmt.Errorf("priming the restore directory: %w", err)
		}
		n -= int64(k)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("priming the restore directory: %w", err)
	}
	return os.Remove(f.Name())
}

// measure runs one scenario of one tool, with an empty restore directory,
// and adds the store's size and, for coffer-oci, the registry's CPU time.
func measure(rn *runner, t *Tool, in *Instance, reg *registry, sc string, ds *Dataset, restoreDir string) (Sample, error) {
	if err := os.RemoveAll(restoreDir); err != nil {
		return Sample{}, fmt.Errorf("emptying the restore directory: %w", err)
	}
	if err := os.MkdirAll(restoreDir, 0o755); err != nil {
		return Sample{}, fmt.Errorf("creating the restore directory: %w", err)
	}
	if sc == scRestore || sc == scRestoreOne {
		if err := primeRestoreDir(restoreDir, ds.Bytes); err != nil {
			return Sample{}, err
		}
	}
	c, err := in.cmd(sc, ds, restoreDir)
	if err != nil {
		return Sample{}, err
	}
	var regCPU time.Duration
	if t.Name == "coffer-oci" {
		regCPU = reg.cpu()
	}
	// What earlier commands left for the kernel to write back is written
	// now, untimed: left to be written while this command runs, it slowed
	// whichever tool came next, whose writes the kernel throttled and
	// whose reads and syncs shared the disk with it (README.md).
	syscall.Sync()
	s, err := rn.run(c)
	if err != nil {
		return s, err
	}
	if t.Name == "coffer-oci" {
		s.CPU += reg.cpu() - regCPU
	}
	if storesData(sc) {
		if s.Stored, err = in.size(); err != nil {
			return s, err
		}
	}
	if err := verifyRestore(sc, ds, restoreDir); err != nil {
		return s, err
	}
	return s, os.RemoveAll(restoreDir)
}

// verifyRestore checks that a restore wrote as many bytes as the dataset
// holds (the whole of it, or its largest file), so that a tool that
// restores nothing cannot look fast.
func verifyRestore(sc string, ds *Dataset, restoreDir string) error {
	var want int64
	switch sc {
	case scRestore:
		n, err := dirSize(ds.Dir)
		if err != nil {
			return err
		}
		want = n
	case scRestoreOne:
		info, err := os.Stat(filepath.Join(ds.Dir, ds.OneFile))
		if err != nil {
			return fmt.Errorf("checking the restore: %w", err)
		}
		want = info.Size()
	default:
		return nil
	}
	got, err := dirSize(restoreDir)
	if err != nil {
		return err
	}
	if got != want {
		return fmt.Errorf("the restore wrote %d bytes of files, want %d", got, want)
	}
	return nil
}

// commandLine is how this process was invoked, as `go run . ...` in
// bench/.
func commandLine() string {
	return strings.TrimSpace("cd bench && go run . " + strings.Join(os.Args[1:], " "))
}
