package main

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"
)

// Result holds every sample taken on one dataset: tool -> scenario -> runs.
type Result struct {
	Dataset *Dataset
	Samples map[string]map[string][]Sample
}

// Report is everything the markdown section says.
type Report struct {
	Command  string
	Date     time.Time
	Machine  string
	Versions string
	Runs     int
	Quick    bool
	// RestoreDir is where restores write; empty: under the work directory.
	RestoreDir string
	Tools      []string // in column order; Tools[0] is the reference for ratios
	Settings   []string // parallel to Tools
	Results    []*Result
	Elapsed    time.Duration
}

// sectionTitle starts the section the report owns in its output file.
const sectionTitle = "## coffer vs restic"

// write renders the report, puts it into the file at path (replacing an
// earlier section of the same title, else appending), writes one chart
// per dataset next to it, and returns the section's markdown.
func (r *Report) write(path string) (string, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("creating the report directory: %w", err)
	}
	var charts []string
	for _, res := range r.Results {
		name := "benchmarks-" + res.Dataset.Name + ".svg"
		if err := r.chart(res, filepath.Join(dir, name)); err != nil {
			return "", err
		}
		charts = append(charts, name)
	}
	md := r.markdown(charts)
	return md, writeSection(path, sectionTitle, md)
}

// replaceSection replaces the section of doc that starts with the heading
// title (up to the next second-level heading) with section, or appends
// section.
func replaceSection(doc, title, section string) string {
	i := -1
	if strings.HasPrefix(doc, title+"\n") {
		i = 0
	} else if j := strings.Index(doc, "\n"+title+"\n"); j >= 0 {
		i = j + 1
	}
	if i < 0 {
		if doc != "" && !strings.HasSuffix(doc, "\n\n") {
			doc = strings.TrimRight(doc, "\n") + "\n\n"
		}
		return doc + section
	}
	rest := doc[i+len(title):]
	if j := strings.Index(rest, "\n## "); j >= 0 {
		return doc[:i] + section + "\n" + rest[j+1:]
	}
	return doc[:i] + section
}

// markdown renders the section.
func (r *Report) markdown(charts []string) string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	p("%s\n\n", sectionTitle)
	p("Written by `bench/` (see bench/README.md); every figure below is the median of %d run(s)", r.Runs)
	if r.Quick {
		p(" of the **scaled-down `-quick` datasets**, a smoke test rather than a measurement")
	}
	p(". Each tool command runs as a child process; the tools take turns within each scenario, in an order that rotates from run to run.\n\n")
	p("Command: `%s` (%s in total)\n\n", r.Command, r.Elapsed.Round(time.Second))
	p("Date: %s. Machine: %s.\n\n", r.Date.Format("2006-01-02"), r.Machine)
	p("Versions: %s.\n\n", r.Versions)
	p("Tools:\n\n")
	for i, t := range r.Tools {
		p("- **%s**: %s\n", t, r.Settings[i])
	}
	p("\nrestic's chunker is fixed at 512 KiB min / 1 MiB average / 8 MiB max, which coffer's default already matches, so no chunker setting differs between them; restic's `--compression auto` is zstd, as is coffer's.\n\n")
	p("How it is measured: wall time from start to exit; CPU time is user + system from wait4's rusage (for coffer-oci the registry's CPU time during the command is added); peak RSS is rusage's maxrss (commands are started by a small runner process, since a child's maxrss counts the peak of the process it was forked from: the figures can be overstated by the runner's own ~10 MiB, never by the harness's); stored bytes are the size of the repository directory (for coffer-oci, what the registry's data directory grew by) after the command; disk reads are rusage's block input, which is 0 when the page cache holds the data. Before each command the harness calls sync(2), untimed, so that no command runs while the kernel writes back what an earlier one left (which held back its writes and shared the disk with its reads and syncs). ")
	p("Page caches are not dropped (that needs privileges): the dataset was just written and is read warm by every tool, so these compare CPU and I/O paths, not cold-disk reads.")
	if strings.HasPrefix(r.RestoreDir, "/dev/shm/") {
		p(" Restores write into a tmpfs (`/dev/shm`): on this machine's ext4, creating files soon after many were deleted, as each restore does after the previous one's files are removed, cost about 0.5 ms of kernel CPU per file instead of 0.04 ms, which timed the file system (for every tool alike) rather than the tools.")
	}
	p(" Before each restore, as many bytes as the dataset holds are written into the restore directory and removed, so that every tool's restore finds that memory free, not only those after the first.")
	p("\n\n")
	for ci, res := range r.Results {
		ds := res.Dataset
		p("### %s\n\n", ds.Name)
		p("%d files, %s; widest directory `%s` (%d entries); single-file restore of `%s`; 5%% of the files changed (half appended, half overwritten in the middle, 4 KiB each).\n\n",
			len(ds.Files), human(ds.Bytes), ds.Widest, ds.Entries, ds.OneFile)
		r.table(&b, res, "Wall time", func(s Sample) float64 { return s.Wall.Seconds() }, seconds, nil)
		r.table(&b, res, "CPU time (user + sys)", func(s Sample) float64 { return s.CPU.Seconds() }, seconds, nil)
		r.table(&b, res, "Peak RSS", func(s Sample) float64 { return float64(s.MaxRSSKiB) * 1024 }, humanF, nil)
		r.table(&b, res, "Bytes stored after the command", func(s Sample) float64 { return float64(s.Stored) }, humanF, storesData)
		r.table(&b, res, "Bytes read from disk (block input)", func(s Sample) float64 { return float64(s.DiskRead) }, humanF,
			func(sc string) bool { return sc == scBackup || sc == scChanged })
		r.goals(&b, res)
		if ci < len(charts) {
			p("![wall time per scenario on %s](%s)\n\n", ds.Name, charts[ci])
		}
	}
	return b.String()
}

// table writes one markdown table: a row per scenario, the median of
// value for each tool, then the reference tool's value divided by each
// peer's (below 1 means the reference is cheaper).
func (r *Report) table(b *strings.Builder, res *Result, title string, value func(Sample) float64, format func(float64) string, only func(string) bool) {
	ref := r.Tools[0]
	var peers []string
	for _, t := range r.Tools[1:] {
		if !strings.HasPrefix(t, ref) {
			peers = append(peers, t)
		}
	}
	fmt.Fprintf(b, "%s (median):\n\n| scenario |", title)
	for _, t := range r.Tools {
		fmt.Fprintf(b, " %s |", t)
	}
	for _, t := range peers {
		fmt.Fprintf(b, " %s / %s |", ref, t)
	}
	best := r.bestPeers()
	cols := len(r.Tools) + len(peers)
	if len(best) > 0 {
		fmt.Fprintf(b, " %s / min(%s) |", ref, strings.Join(best, ", "))
		cols++
	}
	b.WriteString("\n|---|" + strings.Repeat("---:|", cols) + "\n")
	for _, sc := range scenarios {
		if only != nil && !only(sc) {
			continue
		}
		fmt.Fprintf(b, "| %s |", sc)
		med := map[string]float64{}
		for _, t := range r.Tools {
			med[t] = value(medianSample(res.Samples[t][sc]))
			fmt.Fprintf(b, " %s |", format(med[t]))
		}
		for _, t := range peers {
			if med[t] > 0 && med[ref] > 0 {
				fmt.Fprintf(b, " **%.2f** |", med[ref]/med[t])
			} else {
				b.WriteString(" - |")
			}
		}
		if len(best) > 0 {
			if m := minOf(med, best); m > 0 && med[ref] > 0 {
				fmt.Fprintf(b, " **%.2f** |", med[ref]/m)
			} else {
				b.WriteString(" - |")
			}
		}
		b.WriteString("\n")
	}
	b.WriteString("\n")
}

// bestPeers are the peers issue 16's goals take the better of: restic
// and kopia at their defaults, those of them that ran.
func (r *Report) bestPeers() []string {
	var out []string
	for _, t := range []string{"restic", "kopia"} {
		if slices.Contains(r.Tools, t) {
			out = append(out, t)
		}
	}
	return out
}

// minOf returns the smallest positive value of med among tools, or 0.
func minOf(med map[string]float64, tools []string) float64 {
	m := 0.0
	for _, t := range tools {
		if v := med[t]; v > 0 && (m == 0 || v < m) {
			m = v
		}
	}
	return m
}

// goals writes issue 16's goals for res, each met or missed: wall time of
// the backups and the restore at most speed times the faster of restic and
// kopia (0.5, or 0.7 on million), peak RSS at most the smaller of the two
// in every scenario, bytes stored at most 1.02 times restic's.
func (r *Report) goals(b *strings.Builder, res *Result) {
	ref, best := r.Tools[0], r.bestPeers()
	if ref != "coffer" || len(best) == 0 {
		return
	}
	speed := 0.5
	if res.Dataset.Name == "million" {
		speed = 0.7
	}
	med := func(t, sc string, v func(Sample) float64) float64 { return v(medianSample(res.Samples[t][sc])) }
	wall := func(s Sample) float64 { return s.Wall.Seconds() }
	rss := func(s Sample) float64 { return float64(s.MaxRSSKiB) * 1024 }
	stored := func(s Sample) float64 { return float64(s.Stored) }
	fmt.Fprintf(b, "Issue 16's goals (coffer's median against the better median of %s):\n\n", strings.Join(best, " and "))
	b.WriteString("| goal | scenario | coffer | peer | ratio | target | |\n|---|---|---:|---:|---:|---:|---|\n")
	row := func(goal, sc string, v func(Sample) float64, peers []string, target float64, format func(float64) string) {
		m := map[string]float64{}
		for _, t := range peers {
			m[t] = med(t, sc, v)
		}
		c, p := med(ref, sc, v), minOf(m, peers)
		if p <= 0 {
			return
		}
		verdict := "met"
		if c/p > target {
			verdict = "**missed**"
		}
		fmt.Fprintf(b, "| %s | %s | %s | %s | %.2f | <= %.2f | %s |\n", goal, sc, format(c), format(p), c/p, target, verdict)
	}
	for _, sc := range []string{scBackup, scNoChange, scChanged, scRestore} {
		row("wall time", sc, wall, best, speed, seconds)
	}
	for _, sc := range scenarios {
		row("peak RSS", sc, rss, best, 1, humanF)
	}
	if slices.Contains(r.Tools, "restic") {
		for _, sc := range []string{scBackup, scHistory, scPrune} {
			row("bytes stored (vs restic)", sc, stored, []string{"restic"}, 1.02, humanF)
		}
	}
	b.WriteString("\n")
}

func seconds(s float64) string {
	if s < 10 {
		return fmt.Sprintf("%.2f s", s)
	}
	return fmt.Sprintf("%.1f s", s)
}

func humanF(n float64) string { return human(int64(n)) }

// human formats a byte count with a binary unit.
func human(n int64) string {
	switch {
	case n < 0:
		return "-"
	case n < 1<<10:
		return fmt.Sprintf("%d B", n)
	case n < 1<<20:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	case n < 1<<30:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
}

// describeMachine names the CPU, core count, memory, OS, kernel and Go.
func describeMachine() string {
	cpu := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				cpu = strings.TrimSpace(v)
				break
			}
		}
	}
	mem := ""
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kib int64
		if _, err := fmt.Sscanf(string(b), "MemTotal: %d kB", &kib); err == nil {
			mem = fmt.Sprintf(", %.0f GiB RAM", float64(kib)/(1<<20))
		}
	}
	osName := runtime.GOOS
	if b, err := os.ReadFile("/etc/os-release"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "PRETTY_NAME="); ok {
				osName = strings.Trim(v, `"`)
			}
		}
	}
	kernel := ""
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		kernel = ", Linux " + strings.TrimSpace(string(b))
	}
	return fmt.Sprintf("%d CPUs (%s)%s, %s%s, %s", runtime.NumCPU(), cpu, mem, osName, kernel, runtime.Version())
}

// toolVersions lists the versions of the binaries in use.
func toolVersions(b *binaries, registry bool) string {
	v := []string{version(b.coffer, "version")}
	if b.restic != "" {
		v = append(v, version(b.restic, "version"))
	}
	if registry {
		v = append(v, version(b.registry, "--version"))
	}
	if b.kopia != "" {
		kv := "kopia " + version(b.kopia, "--version")
		if strings.Contains(b.kopia, "kopia-"+kopiaBuild) {
			// get-kopia's build does not know its own version.
			kv = "kopia " + kopiaBuild + " (../shared/tools/get-kopia)"
		}
		v = append(v, kv)
	}
	return "`" + strings.Join(v, "`, `") + "`"
}

// writeSection puts md into the markdown file at path as the section
// titled title, replacing an earlier one and keeping the rest.
func writeSection(path, title, md string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("creating the report directory: %w", err)
	}
	old, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("reading %s: %w", path, err)
	}
	if err := os.WriteFile(path, []byte(replaceSection(string(old), title, md)), 0o644); err != nil {
		return fmt.Errorf("writing the report: %w", err)
	}
	return nil
}
