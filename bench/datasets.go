package main

import (
	"bufio"
	"cmp"
	"encoding/binary"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
)

// Dataset is a generated source tree that every tool backs up.
type Dataset struct {
	Name    string
	Dir     string   // root of the tree; tools back up this directory
	Files   []string // regular files, relative to Dir, sorted
	Bytes   int64    // total size of the regular files
	Widest  string   // the directory with the most entries, relative to Dir
	Entries int      // entries in Widest
	OneFile string   // the file a single-file restore fetches: the largest
}

// datasetNames are the datasets the harness knows, in report order.
var datasetNames = []string{"mixed", "many-small", "big-file", "million"}

// quickDatasets are the datasets -quick runs unless -datasets names
// others: million, even scaled down, adds nothing a smoke test needs that
// many-small does not exercise.
var quickDatasets = []string{"mixed", "many-small", "big-file"}

// sizes holds a dataset's scale; quick mode scales everything down.
type sizes struct {
	srcFiles    int   // mixed: source-like text files
	bigFiles    int   // mixed: incompressible files
	bigFileSize int64 // mixed: size of each; big-file: the one file
	logFiles    int   // mixed: compressible logs
	logFileSize int64
	smallFiles  int // many-small: total files
	wide        int // many-small: entries in the widest directory
	deep        int // many-small: depth of the deep chain
	millFiles   int // million: total files
	millWide    int // million: entries in its widest directory
}

func scale(quick bool) sizes {
	if quick {
		return sizes{srcFiles: 1000, bigFiles: 2, bigFileSize: 16 << 20, logFiles: 4, logFileSize: 2 << 20,
			smallFiles: 2500, wide: 1000, deep: 10, millFiles: 3000, millWide: 500}
	}
	return sizes{srcFiles: 15000, bigFiles: 4, bigFileSize: 256 << 20, logFiles: 10, logFileSize: 10 << 20,
		smallFiles: 300000, wide: 10000, deep: 40, millFiles: 1000000, millWide: 10000}
}

// generate writes the named dataset under dir (replacing it) from
// seed, and describes it. The same name, scale and seed always give the
// same bytes and names.
func generate(name, dir string, quick bool, seed uint64) (*Dataset, error) {
	if err := os.RemoveAll(dir); err != nil {
		return nil, fmt.Errorf("removing an old copy of dataset %s: %w", name, err)
	}
	g := newGen(seed)
	sz := scale(quick)
	var err error
	switch name {
	case "mixed":
		err = g.mixed(dir, sz)
	case "many-small":
		err = g.manySmall(dir, sz)
	case "million":
		err = g.million(dir, sz)
	case "big-file":
		size := int64(4 << 30)
		if quick {
			size = 64 << 20
		}
		err = g.randomFile(filepath.Join(dir, "big.bin"), size)
	default:
		return nil, fmt.Errorf("unknown dataset %q (known: %s)", name, strings.Join(datasetNames, ", "))
	}
	if err != nil {
		return nil, fmt.Errorf("generating dataset %s: %w", name, err)
	}
	return describe(name, dir)
}

// gen is a deterministic generator of names and contents.
type gen struct {
	seed  uint64
	rng   *rand.Rand
	bytes *rand.ChaCha8 // incompressible bytes
	lines []string      // a pool of source-code-like lines
}

func newGen(seed uint64) *gen {
	var s [32]byte
	for i := range s {
		s[i] = byte(seed >> (8 * (i % 8)))
	}
	g := &gen{seed: seed, rng: rand.New(rand.NewPCG(seed, 0x636f66666572)), bytes: rand.NewChaCha8(s)}
	words := []string{"func", "return", "if", "err", "nil", "for", "range", "var", "const", "type",
		"struct", "interface", "map", "string", "int", "byte", "ctx", "context", "fmt.Errorf", "len",
		"append", "make", "go", "defer", "select", "case", "default", "switch", "else", "package",
		"import", "buffer", "reader", "writer", "index", "snapshot", "tree", "blob", "pack", "store"}
	for range 4096 {
		var b strings.Builder
		b.WriteString(strings.Repeat("\t", g.rng.IntN(4)))
		for n := 2 + g.rng.IntN(9); n > 0; n-- {
			b.WriteString(words[g.rng.IntN(len(words))])
			if g.rng.IntN(5) == 0 {
				fmt.Fprintf(&b, "%d", g.rng.IntN(1000))
			}
			b.WriteByte(' ')
		}
		g.lines = append(g.lines, b.String())
	}
	return g
}

// text returns about n bytes of source-code-like lines.
func (g *gen) text(n int) []byte {
	b := make([]byte, 0, n+128)
	for len(b) < n {
		b = append(b, g.lines[g.rng.IntN(len(g.lines))]...)
		b = append(b, '\n')
	}
	return b[:n]
}

// random returns n incompressible bytes.
func (g *gen) random(n int) []byte {
	b := make([]byte, n)
	_, _ = g.bytes.Read(b)
	return b
}

func writeFile(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, data, 0o644)
}

// randomFile writes size incompressible bytes to path, 1 MiB at a time.
func (g *gen) randomFile(path string, size int64) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	buf := make([]byte, 1<<20)
	for left := size; left > 0; left -= int64(len(buf)) {
		n := min(int64(len(buf)), left)
		_, _ = g.bytes.Read(buf[:n])
		if _, err := w.Write(buf[:n]); err != nil {
			f.Close()
			return err
		}
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// mixed: nested source-like text files, a few large incompressible files,
// compressible logs, and duplicates of some of them.
func (g *gen) mixed(dir string, sz sizes) error {
	// Directories: each new one goes under a random earlier one, up to 6 deep.
	dirs := []string{"src"}
	for i := 1; i < sz.srcFiles/20; i++ {
		parent := dirs[g.rng.IntN(len(dirs))]
		if strings.Count(parent, "/") >= 6 {
			parent = "src"
		}
		dirs = append(dirs, fmt.Sprintf("%s/pkg%04d", parent, i))
	}
	exts := []string{".go", ".c", ".h", ".py", ".md", ".json"}
	var src []string
	for i := range sz.srcFiles {
		name := fmt.Sprintf("%s/file%05d%s", dirs[g.rng.IntN(len(dirs))], i, exts[g.rng.IntN(len(exts))])
		// Mostly small, some up to 64 KiB: about 8 KiB on average.
		n := 200 + g.rng.IntN(8<<10)
		if g.rng.IntN(10) == 0 {
			n = g.rng.IntN(64 << 10)
		}
		if err := writeFile(filepath.Join(dir, name), g.text(n)); err != nil {
			return err
		}
		src = append(src, name)
	}
	for i := range sz.bigFiles {
		if err := g.randomFile(filepath.Join(dir, fmt.Sprintf("data/blob%d.bin", i)), sz.bigFileSize); err != nil {
			return err
		}
	}
	services := []string{"api", "auth", "billing", "search", "worker"}
	levels := []string{"INFO", "INFO", "INFO", "DEBUG", "WARN", "ERROR"}
	for i := range sz.logFiles {
		var b []byte
		for t := 0; int64(len(b)) < sz.logFileSize; t++ {
			b = fmt.Appendf(b, "2026-01-%02dT%02d:%02d:%02d.%03dZ %s service=%s req=%08x path=/v1/items/%d status=%d latency=%dms\n",
				1+i, t/3600%24, t/60%60, t%60, g.rng.IntN(1000), levels[g.rng.IntN(len(levels))],
				services[g.rng.IntN(len(services))], g.rng.Uint32(), g.rng.IntN(100000),
				[]int{200, 200, 200, 201, 304, 404, 500}[g.rng.IntN(7)], g.rng.IntN(900))
		}
		if err := writeFile(filepath.Join(dir, fmt.Sprintf("logs/app-%02d.log", i)), b[:sz.logFileSize]); err != nil {
			return err
		}
	}
	// Duplicates: 3% of the source files and the first log, byte for byte.
	dups := []string{"logs/app-00.log"}
	for i := 0; i < len(src); i += 33 {
		dups = append(dups, src[i])
	}
	for _, name := range dups {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return err
		}
		if err := writeFile(filepath.Join(dir, "copy", name), b); err != nil {
			return err
		}
	}
	return nil
}

// manySmall: files of 0.1-3 KB (a third incompressible), one directory
// with sz.wide entries, a chain sz.deep directories deep (20 files a
// level), and the rest in a two-level tree of 2,000 files a directory.
func (g *gen) manySmall(dir string, sz sizes) error {
	const perLevel = 20
	chain := sz.deep * perLevel
	dirOf := func(i int) string {
		switch {
		case i < sz.wide:
			return "wide"
		case i < sz.wide+chain:
			d := "deep"
			for l := range (i-sz.wide)/perLevel + 1 {
				d += fmt.Sprintf("/l%02d", l)
			}
			return d
		}
		return fmt.Sprintf("tree/d%03d/e%02d", i/2000, i/100%20)
	}
	return g.writeFiles(dir, sz.smallFiles, dirOf, func(i int, r *rand.Rand) (string, int, bool) {
		return fmt.Sprintf("%s/f%06d.txt", dirOf(i), i), 100 + r.IntN(2901), r.IntN(3) == 0
	})
}

// million: sz.millFiles files of 0-4 KiB (a third incompressible), one
// directory with sz.millWide entries, the rest ten to a directory at the
// bottom of a tree five levels deep with ten directories in each.
func (g *gen) million(dir string, sz sizes) error {
	dirOf := func(i int) string {
		if i < sz.millWide {
			return "wide"
		}
		leaf := (i - sz.millWide) / 10
		return fmt.Sprintf("t/a%d/b%d/c%d/d%d/e%d", leaf/10000, leaf/1000%10, leaf/100%10, leaf/10%10, leaf%10)
	}
	return g.writeFiles(dir, sz.millFiles, dirOf, func(i int, r *rand.Rand) (string, int, bool) {
		return fmt.Sprintf("%s/f%07d", dirOf(i), i), r.IntN(4097), r.IntN(3) == 0
	})
}

// writeFiles writes count files under root with one writer per CPU: file
// i goes into directory dirOf(i) under the name, size and kind (text or
// incompressible) that file(i, r) picks, r and the file's bytes coming
// from a generator seeded with g's seed and i, so that the bytes do not
// depend on which writer writes which file. Directories are created
// first, in order.
func (g *gen) writeFiles(root string, count int, dirOf func(int) string, file func(i int, r *rand.Rand) (name string, size int, random bool)) error {
	last := ""
	for i := range count {
		if d := dirOf(i); d != last {
			if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
				return err
			}
			last = d
		}
	}
	var next atomic.Int64
	errs := make(chan error, runtime.GOMAXPROCS(0))
	for range cap(errs) {
		go func() {
			var buf []byte
			for {
				i := int(next.Add(1) - 1)
				if i >= count {
					errs <- nil
					return
				}
				r := rand.New(rand.NewPCG(g.seed, uint64(i)))
				name, n, random := file(i, r)
				buf = buf[:0]
				if random {
					for len(buf) < n {
						buf = binary.LittleEndian.AppendUint64(buf, r.Uint64())
					}
				} else {
					for len(buf) < n {
						buf = append(append(buf, g.lines[r.IntN(len(g.lines))]...), '\n')
					}
				}
				if err := os.WriteFile(filepath.Join(root, name), buf[:n], 0o644); err != nil {
					next.Store(int64(count)) // stop the other writers
					errs <- err
					return
				}
			}
		}()
	}
	var first error
	for range cap(errs) {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	return first
}

// describe walks a generated tree and records what the scenarios need.
func describe(name, dir string) (*Dataset, error) {
	ds := &Dataset{Name: name, Dir: dir}
	var largest int64 = -1
	entries := map[string]int{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		if rel == "." {
			return nil
		}
		entries[filepath.Dir(rel)]++
		if !d.Type().IsRegular() {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		ds.Files = append(ds.Files, rel)
		ds.Bytes += info.Size()
		if info.Size() > largest {
			largest, ds.OneFile = info.Size(), rel
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("describing dataset %s: %w", name, err)
	}
	slices.Sort(ds.Files)
	for d, n := range entries {
		if n > ds.Entries || n == ds.Entries && cmp.Less(d, ds.Widest) {
			ds.Widest, ds.Entries = d, n
		}
	}
	return ds, nil
}

// change is one file modification that mutate made, with what undoes it.
type change struct {
	path   string
	size   int64  // the file's size before
	offset int64  // where old was overwritten
	old    []byte // the bytes overwritten; nil for an append
}

// mutate changes 5% of the dataset's files (at least one): half get 4 KiB
// appended, half get 4 KiB overwritten in the middle. It returns the
// changes so that undo can put the original bytes back.
func mutate(ds *Dataset, seed uint64) ([]change, error) {
	g := newGen(seed ^ 0x5eed)
	n := max(1, len(ds.Files)/20)
	picked := g.rng.Perm(len(ds.Files))[:n]
	slices.Sort(picked)
	var changes []change
	for i, idx := range picked {
		path := filepath.Join(ds.Dir, ds.Files[idx])
		info, err := os.Stat(path)
		if err != nil {
			return changes, fmt.Errorf("mutating: %w", err)
		}
		c := change{path: path, size: info.Size()}
		f, err := os.OpenFile(path, os.O_RDWR, 0)
		if err != nil {
			return changes, fmt.Errorf("mutating: %w", err)
		}
		data := g.random(4 << 10)
		if i%2 == 0 || info.Size() < int64(len(data)) {
			_, err = f.WriteAt(data, info.Size())
		} else {
			c.offset = (info.Size() - int64(len(data))) / 2
			c.old = make([]byte, len(data))
			if _, err = f.ReadAt(c.old, c.offset); err == nil {
				_, err = f.WriteAt(data, c.offset)
			}
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return changes, fmt.Errorf("mutating %s: %w", path, err)
		}
		changes = append(changes, c)
	}
	return changes, nil
}

// undo reverts the changes mutate made.
func undo(changes []change) error {
	for _, c := range changes {
		f, err := os.OpenFile(c.path, os.O_RDWR, 0)
		if err != nil {
			return fmt.Errorf("reverting a change: %w", err)
		}
		if c.old != nil {
			_, err = f.WriteAt(c.old, c.offset)
		}
		if err == nil {
			err = f.Truncate(c.size)
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("reverting the change to %s: %w", c.path, err)
		}
	}
	return nil
}
