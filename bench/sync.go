package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"
)

// The sync scenarios (-sync; issue 14's speed lines), in report order.
// Every one writes into a fresh repository on the run's registry.
const (
	// syBackup is the baseline: a first backup of the dataset.
	syBackup = "first backup into the registry"
	// syReencrypt syncs the local repository's snapshot into a repository
	// created normally: other keys, so every blob is decrypted and sealed
	// again and trees are rewritten.
	syReencrypt = "sync local -> registry (other keys)"
	// syMount syncs the syReencrypt repository into a second one on the
	// same registry created with `create -from` it: packs are mounted.
	syMount = "sync registry -> registry (create -from, mounts)"
	// syMountWarm is syMount again, into another repository, with the
	// cache syMount left: the source's trees are cached, as they are for
	// a user who backs up into the source (for information).
	syMountWarm = "same, source's trees cached"
	// syShared syncs the local repository into one created with `create
	// -from` it: packs are uploaded as they are.
	syShared = "sync local -> registry (create -from)"
)

var syncScenarios = []string{syBackup, syReencrypt, syMount, syMountWarm, syShared}

// syncGroups are the scenarios in the order a run performs them, rotated
// from run to run; syMount reads the repository syReencrypt wrote, and
// syMountWarm the cache syMount left, so they stay together.
var syncGroups = [][]string{{syBackup}, {syReencrypt, syMount, syMountWarm}, {syShared}}

// The targets of issue 14.
const (
	syncReencryptTarget = 1.25            // syReencrypt / syBackup, wall time
	syncMountTarget     = 5 * time.Second // syMount, wall time
)

// syncSectionTitle starts the section the sync report owns in -out.
const syncSectionTitle = "## sync between repositories"

// syncSample is one measured command of the sync benchmark.
type syncSample struct {
	Sample
	Summary syncSummary
}

// syncSummary is what coffer's -json summary says a command sent.
type syncSummary struct {
	Uploaded     int64 // pack bytes sent (sync: bytes_uploaded; backup: stored_bytes)
	PacksCopied  int   // packs copied as they are (uploaded or mounted)
	PacksMounted int   // of those, mounted
	BlobsCopied  int64 // blobs re-encrypted one by one
	Snapshots    int   // snapshots copied (or stored, for a backup)
}

// SyncResult holds the samples of one dataset: scenario -> runs.
type SyncResult struct {
	Dataset *Dataset
	Samples map[string][]syncSample
}

// SyncReport is what the sync section says.
type SyncReport struct {
	Command  string
	Date     time.Time
	Machine  string
	Versions string
	Runs     int
	Quick    bool
	Results  []*SyncResult
	Elapsed  time.Duration
	// Load is the machine's 1-minute load average at the start and end
	// of each dataset's runs: other processes' share of the CPUs, which
	// wall times depend on and CPU times hardly do.
	Load []string
}

// loadAverage returns the 1-minute load average, or "?".
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); err == nil && len(f) > 0 {
		return f[0]
	}
	return "?"
}

// syncBench measures the sync scenarios runs times on ds. The local
// source repository is made once (not measured); each run starts a
// registry of its own on an empty directory, so that nothing one run
// uploaded is in the registry for the next, and removes it at the end.
// The first run restores every synced repository and compares it with the
// dataset, and every run checks from coffer's summary that something was
// copied, so that a sync that copies nothing cannot look fast.
func syncBench(rn *runner, b *binaries, ds *Dataset, runs int, keep bool, dir, restoreDir string) (*SyncResult, error) {
	res := &SyncResult{Dataset: ds, Samples: map[string][]syncSample{}}
	if err := os.RemoveAll(dir); err != nil {
		return nil, fmt.Errorf("removing an earlier sync benchmark: %w", err)
	}
	coffer := func(cache, store string, args ...string) command {
		return command{argv: append([]string{b.coffer, "-json", "at", store}, args...),
			env: []string{"COFFER_PASSPHRASE=" + passphrase, "COFFER_CACHE_DIR=" + cache}}
	}
	// setup runs a command that is not measured.
	setup := func(c command) error {
		_, err := rn.run(c)
		return err
	}
	local := filepath.Join(dir, "local", "repo")
	localCache := filepath.Join(dir, "local", "cache")
	logf("%-10s sync: backing up into the local source repository (not measured)", ds.Name)
	if err := setup(coffer(localCache, local, "create")); err != nil {
		return nil, err
	}
	if err := setup(coffer(localCache, local, "backup", ds.Dir)); err != nil {
		return nil, err
	}
	for r := range runs {
		runDir := filepath.Join(dir, fmt.Sprintf("run%d", r))
		if err := os.MkdirAll(runDir, 0o755); err != nil {
			return nil, fmt.Errorf("creating %s: %w", runDir, err)
		}
		reg, err := startRegistry(b.registry, runDir)
		if err != nil {
			return nil, err
		}
		err = syncRun(rn, reg, coffer, setup, ds, res, r, local, runDir, restoreDir)
		reg.stop()
		if err != nil {
			return nil, fmt.Errorf("dataset %s, sync run %d: %w", ds.Name, r+1, err)
		}
		if keep && r == runs-1 {
			logf("kept the last run's registry in %s (start it with `registry serve %s`)", runDir, filepath.Join(runDir, "registry.yml"))
			break
		}
		if err := os.RemoveAll(runDir); err != nil {
			return nil, fmt.Errorf("removing the repositories of run %d: %w", r+1, err)
		}
	}
	if !keep {
		if err := os.RemoveAll(dir); err != nil {
			return nil, fmt.Errorf("removing the sync benchmark's repositories: %w", err)
		}
	}
	return res, nil
}

// syncRun is run r of syncBench, on the registry reg.
func syncRun(rn *runner, reg *registry, coffer func(cache, store string, args ...string) command, setup func(command) error,
	ds *Dataset, res *SyncResult, r int, local, runDir, restoreDir string) error {
	oci := func(name string) string {
		return fmt.Sprintf("oci://%s/bench/%s-%s-%d", reg.addr, ds.Name, name, time.Now().UnixNano())
	}
	// Each measured command gets a cache directory of its own, so that
	// none profits from what an earlier one cached, but syMountWarm, which
	// is about that.
	cache := func(sc string) string {
		return filepath.Join(runDir, "cache", strings.NewReplacer(" ", "_", "/", "_", ">", "", "(", "", ")", "", ",", "").Replace(sc))
	}
	stores := map[string]string{}
	// measure runs c, adds the registry's CPU time to its own, and reads
	// its -json summary.
	measure := func(sc string, c command) error {
		c.stdout = filepath.Join(runDir, "out.json")
		base, err := dirSize(reg.data)
		if err != nil {
			return err
		}
		regCPU := reg.cpu()
		s, err := rn.run(c)
		if err != nil {
			return fmt.Errorf("%s: %w", sc, err)
		}
		s.CPU += reg.cpu() - regCPU
		n, err := dirSize(reg.data)
		if err != nil {
			return err
		}
		s.Stored = n - base
		sum, err := readSummary(c.stdout)
		if err != nil {
			return fmt.Errorf("%s: %w", sc, err)
		}
		if err := sum.plausible(sc); err != nil {
			return fmt.Errorf("%s: %w", sc, err)
		}
		logf("%-10s run %d  %-48s %8.2fs wall %8.2fs cpu %6d MiB rss  %s uploaded, %d packs mounted",
			ds.Name, r+1, sc, s.Wall.Seconds(), s.CPU.Seconds(), s.MaxRSSKiB>>10, human(sum.Uploaded), sum.PacksMounted)
		res.Samples[sc] = append(res.Samples[sc], syncSample{Sample: s, Summary: sum})
		return nil
	}
	do := func(sc string) error {
		dst := oci(map[string]string{syBackup: "backup", syReencrypt: "reencrypt", syMount: "mounted", syMountWarm: "mounted-warm", syShared: "shared"}[sc])
		stores[sc] = dst
		var create []string
		var src string
		switch sc {
		case syBackup:
			create = []string{"create"}
		case syReencrypt:
			create, src = []string{"create"}, local
		case syMount, syMountWarm:
			src = stores[syReencrypt]
			create = []string{"create", "-from", src}
		case syShared:
			src = local
			create = []string{"create", "-from", src}
		}
		if err := setup(coffer(cache(sc), dst, create...)); err != nil {
			return err
		}
		if sc == syBackup {
			return measure(sc, coffer(cache(sc), dst, "backup", ds.Dir))
		}
		c := cache(sc)
		if sc == syMountWarm {
			c = cache(syMount)
		}
		return measure(sc, coffer(c, src, "sync", "to", dst))
	}
	rot := r % len(syncGroups)
	for _, g := range append(slices.Clone(syncGroups[rot:]), syncGroups[:rot]...) {
		for _, sc := range g {
			if err := do(sc); err != nil {
				return err
			}
		}
	}
	if r > 0 {
		return nil
	}
	for _, sc := range []string{syReencrypt, syMount, syMountWarm, syShared} {
		if err := os.RemoveAll(restoreDir); err != nil {
			return fmt.Errorf("emptying the restore directory: %w", err)
		}
		if err := setup(coffer(cache(sc), stores[sc], "restore", "latest", "-to", restoreDir)); err != nil {
			return fmt.Errorf("restoring what %s copied: %w", sc, err)
		}
		if err := sameTree(ds, restoreDir); err != nil {
			return fmt.Errorf("what %s copied does not restore identical to the dataset: %w", sc, err)
		}
		logf("%-10s run %d  %-48s restores identical to the dataset", ds.Name, r+1, sc)
	}
	return os.RemoveAll(restoreDir)
}

// readSummary reads the "summary" document of a coffer -json command's
// output in path.
func readSummary(path string) (syncSummary, error) {
	f, err := os.Open(path)
	if err != nil {
		return syncSummary{}, err
	}
	defer f.Close()
	var sum syncSummary
	found := false
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var doc struct {
			Type          string `json:"type"`
			Copied        int    `json:"copied"`
			PacksCopied   int    `json:"packs_copied"`
			PacksMounted  int    `json:"packs_mounted"`
			BlobsCopied   int64  `json:"blobs_copied"`
			BytesUploaded int64  `json:"bytes_uploaded"`
			SnapshotID    string `json:"snapshot_id"`
			Summary       struct {
				StoredBytes int64 `json:"stored_bytes"`
			} `json:"summary"`
		}
		if json.Unmarshal(sc.Bytes(), &doc) != nil || doc.Type != "summary" {
			continue
		}
		found = true
		if doc.SnapshotID != "" { // a backup's
			sum = syncSummary{Uploaded: doc.Summary.StoredBytes, Snapshots: 1}
			continue
		}
		sum = syncSummary{Uploaded: doc.BytesUploaded, PacksCopied: doc.PacksCopied, PacksMounted: doc.PacksMounted,
			BlobsCopied: doc.BlobsCopied, Snapshots: doc.Copied}
	}
	if err := sc.Err(); err != nil {
		return sum, fmt.Errorf("reading %s: %w", path, err)
	}
	if !found {
		return sum, fmt.Errorf("no summary in coffer's -json output (%s)", path)
	}
	return sum, nil
}

// plausible says whether the summary of scenario sc shows the copy that
// scenario is about: one snapshot, and its data re-encrypted, mounted or
// copied whole.
func (s syncSummary) plausible(sc string) error {
	if s.Snapshots != 1 {
		return fmt.Errorf("%d snapshots stored, want 1", s.Snapshots)
	}
	switch {
	case sc == syBackup && s.Uploaded == 0:
		return fmt.Errorf("the backup stored nothing")
	case sc == syReencrypt && s.BlobsCopied == 0:
		return fmt.Errorf("no blob was re-encrypted")
	case (sc == syMount || sc == syMountWarm) && s.PacksMounted == 0:
		return fmt.Errorf("no pack was mounted")
	case sc == syShared && s.PacksCopied == 0:
		return fmt.Errorf("no pack was copied as it is")
	}
	return nil
}

// sameTree checks that dir holds exactly the regular files of ds, with the
// same contents.
func sameTree(ds *Dataset, dir string) error {
	var got []string
	err := filepathWalkFiles(dir, func(rel string) { got = append(got, rel) })
	if err != nil {
		return err
	}
	slices.Sort(got)
	if !slices.Equal(got, ds.Files) {
		return fmt.Errorf("%d files restored, the dataset has %d (or their names differ)", len(got), len(ds.Files))
	}
	for _, rel := range ds.Files {
		if err := sameFile(filepath.Join(ds.Dir, rel), filepath.Join(dir, rel)); err != nil {
			return err
		}
	}
	return nil
}

// filepathWalkFiles calls fn with the path, relative to dir, of every
// regular file under dir.
func filepathWalkFiles(dir string, fn func(rel string)) error {
	return filepath.Walk(dir, func(path string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if info.Mode().IsRegular() {
			rel, err := filepath.Rel(dir, path)
			if err != nil {
				return err
			}
			fn(rel)
		}
		return nil
	})
}

// sameFile compares two files byte for byte.
func sameFile(a, b string) error {
	fa, err := os.Open(a)
	if err != nil {
		return err
	}
	defer fa.Close()
	fb, err := os.Open(b)
	if err != nil {
		return err
	}
	defer fb.Close()
	ba, bb := make([]byte, 1<<20), make([]byte, 1<<20)
	for off := int64(0); ; {
		na, erra := io.ReadFull(fa, ba)
		nb, errb := io.ReadFull(fb, bb)
		if na != nb || !bytes.Equal(ba[:na], bb[:nb]) {
			return fmt.Errorf("%s differs from %s within bytes %d-%d", b, a, off, off+int64(max(na, nb)))
		}
		off += int64(na)
		if erra == io.EOF || erra == io.ErrUnexpectedEOF {
			if errb != erra {
				return fmt.Errorf("%s is longer than %s", b, a)
			}
			return nil
		}
		if erra != nil {
			return erra
		}
		if errb != nil {
			return errb
		}
	}
}

// write puts the sync section into the file at path, replacing an earlier
// one, and returns its markdown.
func (r *SyncReport) write(path string) (string, error) {
	md := r.markdown()
	return md, writeSection(path, syncSectionTitle, md)
}

// markdown renders the sync section.
func (r *SyncReport) markdown() string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	p("%s\n\n", syncSectionTitle)
	p("Written by `bench/` with `-sync` (see bench/README.md): issue 14's speed lines for `sync`. Every figure is the median of %d run(s)", r.Runs)
	if r.Quick {
		p(" of the **scaled-down `-quick` dataset**, a smoke test rather than a measurement")
	}
	p(".\n\n")
	p("Command: `%s` (%s in total)\n\n", r.Command, r.Elapsed.Round(time.Second))
	p("Date: %s. Machine: %s.\n\n", r.Date.Format("2006-01-02"), r.Machine)
	p("Versions: %s.\n\n", r.Versions)
	if len(r.Load) > 0 {
		p("Load average (1 min) at the start and end of the runs: %s, on %d CPUs: other processes shared the machine, which wall times depend on and CPU times hardly do.\n\n",
			strings.Join(r.Load, ", "), runtime.NumCPU())
	}
	p("What is measured, each run against a CNCF Distribution of its own on 127.0.0.1 (filesystem storage, started on an empty directory), each command into a fresh repository created beforehand (not measured) and with an empty cache directory of its own:\n\n")
	p("- **%s**: `coffer at oci://... backup DATASET`, the baseline;\n", syBackup)
	p("- **%s**: `coffer at LOCAL sync to oci://...A`, from a local repository holding one backup of the dataset (made once, not measured) into a repository created normally, so with other keys: every blob is decrypted and sealed again; target: at most %.2fx the first backup;\n", syReencrypt, syncReencryptTarget)
	p("- **%s**: `coffer at oci://...A sync to oci://...B`, B created with `create -from` A on the same registry: packs are mounted across repositories, no pack bytes uploaded; target: at most %s; every measured command starts with an empty cache, so this one reads every tree of the snapshot from A (one ranged GET each);\n", syMount, seconds(syncMountTarget.Seconds()))
	p("- **%s**: the same again into another repository created with `create -from` A, with the cache directory the previous command left, which holds A's trees, as a user's who backs up into A does (for information);\n", syMountWarm)
	p("- **%s**: `coffer at LOCAL sync to oci://...C`, C created with `create -from` LOCAL: shared keys, packs uploaded as they are (for information).\n\n", syShared)
	p("Scenarios take turns in an order that rotates from run to run (the second follows the first sync, whose repository it reads). Wall time from start to exit; CPU time is user + system of coffer plus the registry's CPU time during the command; peak RSS is coffer's (rusage maxrss); \"registry grew\" is what the registry's data directory grew by; \"pack bytes uploaded\" and \"packs copied whole (mounted)\" are from coffer's `-json` summary. ")
	p("Every run checks from that summary that the snapshot was copied (blobs re-encrypted, packs mounted or copied); the first run restores each synced repository and compares it byte for byte with the dataset. The dataset and the local repository are read warm (page cache).\n\n")
	for _, res := range r.Results {
		ds := res.Dataset
		p("### %s\n\n", ds.Name)
		p("%d files, %s.\n\n", len(ds.Files), human(ds.Bytes))
		base := medianSyncSample(res.Samples[syBackup])
		p("| scenario | wall | CPU (coffer + registry) | peak RSS | registry grew | pack bytes uploaded | packs copied whole (mounted) | wall / first backup |\n")
		p("|---|---:|---:|---:|---:|---:|---:|---:|\n")
		for _, sc := range syncScenarios {
			m := medianSyncSample(res.Samples[sc])
			ratio := "-"
			if base.Wall > 0 {
				ratio = fmt.Sprintf("%.2f", m.Wall.Seconds()/base.Wall.Seconds())
				if sc == syReencrypt {
					ratio = "**" + ratio + "**"
				}
			}
			packs := "-"
			if sc != syBackup {
				packs = fmt.Sprintf("%d (%d)", m.Summary.PacksCopied, m.Summary.PacksMounted)
			}
			p("| %s | %s | %s | %s | %s | %s | %s | %s |\n", sc, seconds(m.Wall.Seconds()), seconds(m.CPU.Seconds()),
				human(m.MaxRSSKiB*1024), human(m.Stored), human(m.Summary.Uploaded), packs, ratio)
		}
		p("\nWall time of each run:\n\n| scenario |")
		for i := range r.Runs {
			p(" run %d |", i+1)
		}
		p("\n|---|%s\n", strings.Repeat("---:|", r.Runs))
		for _, sc := range syncScenarios {
			p("| %s |", sc)
			for _, s := range res.Samples[sc] {
				p(" %s |", seconds(s.Wall.Seconds()))
			}
			p("\n")
		}
		p("\n")
		reenc := medianSyncSample(res.Samples[syReencrypt])
		mount := medianSyncSample(res.Samples[syMount])
		if base.Wall > 0 {
			ratio := reenc.Wall.Seconds() / base.Wall.Seconds()
			p("- sync local -> registry (other keys) / first backup, ratio of the median wall times: **%.2f** (target: at most %.2f): %s", ratio, syncReencryptTarget, metOrMissed(ratio <= syncReencryptTarget))
			if base.CPU > 0 {
				p("; of the median CPU times (coffer + registry): %.2f", reenc.CPU.Seconds()/base.CPU.Seconds())
			}
			// The two ran in the same run, minutes apart at most, so the
			// ratio within each run is less exposed to the load of the
			// machine drifting between runs.
			var perRun []float64
			for i, s := range res.Samples[syReencrypt] {
				if i < len(res.Samples[syBackup]) {
					perRun = append(perRun, s.Wall.Seconds()/res.Samples[syBackup][i].Wall.Seconds())
				}
			}
			if len(perRun) > 1 {
				var txt []string
				for _, x := range perRun {
					txt = append(txt, fmt.Sprintf("%.2f", x))
				}
				sorted := slices.Clone(perRun)
				slices.Sort(sorted)
				p("; within each run: %s (median %.2f)", strings.Join(txt, ", "), sorted[(len(sorted)-1)/2])
			}
			p(".\n")
		}
		p("- sync registry -> registry with `create -from`: **%s** (target: at most %s): %s.\n\n", seconds(mount.Wall.Seconds()), seconds(syncMountTarget.Seconds()),
			metOrMissed(mount.Wall <= syncMountTarget))
	}
	return b.String()
}

func metOrMissed(ok bool) string {
	if ok {
		return "met"
	}
	return "**missed**"
}

// medianSyncSample reduces samples to their per-measure medians.
func medianSyncSample(ss []syncSample) syncSample {
	var plain []Sample
	var up, copied, mounted []int64
	for _, s := range ss {
		plain = append(plain, s.Sample)
		up = append(up, s.Summary.Uploaded)
		copied = append(copied, int64(s.Summary.PacksCopied))
		mounted = append(mounted, int64(s.Summary.PacksMounted))
	}
	return syncSample{Sample: medianSample(plain), Summary: syncSummary{Uploaded: median(up),
		PacksCopied: int(median(copied)), PacksMounted: int(median(mounted))}}
}
