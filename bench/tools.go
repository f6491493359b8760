package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// The scenarios, in the order each run performs them.
const (
	scInit       = "init"
	scBackup     = "first backup"
	scNoChange   = "no-change backup"
	scChanged    = "backup after 5% changed"
	scRestore    = "full restore"
	scRestoreOne = "single-file restore"
	scCheck      = "check -read-data"
	scLs         = "ls widest dir"
	// scHistory is not measured: it adds backups, each after another 5%
	// of the files changed, until the repository holds historyLen
	// snapshots, which scPrune then thins out.
	scHistory = "backup of a history"
	scPrune   = "forget -keep-last 2 -prune"
)

// historyLen is how many snapshots the repository holds before scPrune;
// -quick makes quickHistoryLen, which is enough to exercise the scenario
// and keeps the smoke test within its budget with six tools.
const historyLen, quickHistoryLen = 10, 4

var scenarios = []string{scInit, scBackup, scNoChange, scChanged, scRestore, scRestoreOne, scCheck, scLs, scHistory, scPrune}

// storesData says which scenarios change the store, so that its size is
// measured after them.
func storesData(sc string) bool {
	return sc == scInit || sc == scBackup || sc == scNoChange || sc == scChanged || sc == scHistory || sc == scPrune
}

// passphrase is the password every tool's repository gets.
const passphrase = "coffer-bench-passphrase"

// Tool is one backup program at one set of settings.
type Tool struct {
	Name     string
	Settings string // how it is configured, for the report
	// open prepares a fresh, empty repository for one run in dir.
	open func(dir string, run int, ds *Dataset) (*Instance, error)
}

// Instance is a tool with a repository of its own for one run.
type Instance struct {
	env   []string
	store string // the tool's repository argument
	// cmd builds the command for a scenario; out is an empty directory
	// for restores.
	cmd func(sc string, ds *Dataset, out string) (command, error)
	// size returns the bytes the repository takes in its store.
	size func() (int64, error)
}

// toolNames are the tools the harness knows, in report order; the first
// is the one ratios are taken against.
var toolNames = []string{"coffer", "coffer-oci", "coffer-uncompressed", "restic", "restic-matched", "kopia", "kopia-zstd"}

// defaultTools are the tools run unless -tools says otherwise.
// coffer-uncompressed is left out: it answers one question (how coffer
// compares with a tool that does not compress by default, such as kopia)
// and would add a quarter to a full run.
var defaultTools = []string{"coffer", "coffer-oci", "restic", "restic-matched", "kopia", "kopia-zstd"}

// binaries holds the paths of built or found executables.
type binaries struct {
	coffer, restic, registry, kopia, versitygw string
}

// cofferTool runs coffer against a local directory store, or against the
// registry when reg is not nil; uncompressed backs up with -compression off.
func cofferTool(b *binaries, reg *registry, uncompressed bool) *Tool {
	t := &Tool{Name: "coffer", Settings: "defaults: keyed FastCDC 512 KiB/1 MiB/8 MiB, zstd default level (skipped for incompressible chunks), 32 MiB packs, local directory store"}
	var extra []string
	switch {
	case reg != nil:
		t.Name = "coffer-oci"
		t.Settings = "defaults, into CNCF Distribution on 127.0.0.1 (filesystem storage; the registry's CPU time is added to coffer's)"
	case uncompressed:
		t.Name = "coffer-uncompressed"
		t.Settings = "defaults but backups with -compression off (kopia's default is no compression), local directory store"
		extra = []string{"-compression", "off"}
	}
	t.open = func(dir string, run int, ds *Dataset) (*Instance, error) {
		in := &Instance{env: []string{"COFFER_PASSPHRASE=" + passphrase, "COFFER_CACHE_DIR=" + filepath.Join(dir, "cache")}}
		if reg == nil {
			in.store = filepath.Join(dir, "repo")
			in.size = func() (int64, error) { return dirSize(in.store) }
		} else {
			// The time keeps names unique when -work and its registry are reused.
			in.store = fmt.Sprintf("oci://%s/bench/%s-%d-%d", reg.addr, ds.Name, run, time.Now().UnixNano())
			base, err := dirSize(reg.data)
			if err != nil {
				return nil, err
			}
			in.size = func() (int64, error) {
				n, err := dirSize(reg.data)
				return n - base, err
			}
		}
		in.cmd = func(sc string, ds *Dataset, out string) (command, error) {
			args := []string{b.coffer, "-silent", "at", in.store}
			switch sc {
			case scInit:
				args = append(args, "create")
			case scBackup, scNoChange, scChanged, scHistory:
				args = append(append(append(args, "backup"), extra...), ds.Dir)
			case scPrune:
				args = append(args, "forget", "-keep-last", "2", "-prune")
			case scRestore:
				args = append(args, "restore", "latest", "-to", out)
			case scRestoreOne:
				args = append(args, "restore", "latest:"+filepath.ToSlash(ds.OneFile), "-to", out)
			case scCheck:
				args = append(args, "check", "-read-data")
			case scLs:
				args = append(args, "ls", "latest:"+filepath.ToSlash(ds.Widest))
			}
			return command{argv: args, env: in.env}, nil
		}
		return in, nil
	}
	return t
}

// resticTool runs restic on a local repository; matched adds the settings
// that make it do what coffer does by default.
func resticTool(b *binaries, matched bool) *Tool {
	t := &Tool{Name: "restic", Settings: "v0.19.1 defaults: chunker 512 KiB/1 MiB/8 MiB (fixed), --compression auto (zstd), 16 MiB packs, --read-concurrency 2"}
	var extra []string
	if matched {
		t.Name = "restic-matched"
		t.Settings = "v0.19.1 with coffer's settings: --compression auto --pack-size 32 --read-concurrency 3 (the chunker already matches)"
		extra = []string{"--compression", "auto", "--pack-size", "32", "--read-concurrency", "3"}
	}
	t.open = func(dir string, run int, ds *Dataset) (*Instance, error) {
		in := &Instance{store: filepath.Join(dir, "repo"),
			env: []string{"RESTIC_PASSWORD=" + passphrase, "RESTIC_CACHE_DIR=" + filepath.Join(dir, "cache")}}
		in.size = func() (int64, error) { return dirSize(in.store) }
		in.cmd = func(sc string, ds *Dataset, out string) (command, error) {
			args := []string{b.restic, "-r", in.store, "-q"}
			c := command{env: in.env}
			switch sc {
			case scInit:
				args = append(args, "init")
			case scBackup, scNoChange, scChanged, scHistory:
				args = append(append(args, "backup"), extra...)
				args = append(args, ds.Dir)
			case scPrune:
				args = append(args, "forget", "--keep-last", "2", "--prune")
			case scRestore:
				args = append(args, "restore", "latest", "--target", out)
			case scRestoreOne:
				args = append(args, "dump", "latest", filepath.Join(ds.Dir, ds.OneFile))
				c.stdout = filepath.Join(out, filepath.Base(ds.OneFile))
			case scCheck:
				args = append(args, "check", "--read-data")
			case scLs:
				args = append(args, "ls", "latest", filepath.Join(ds.Dir, ds.Widest))
			}
			c.argv = args
			return c, nil
		}
		return in, nil
	}
	return t
}

// kopiaTool runs kopia on a local filesystem repository; zstd sets the
// global policy to zstd compression right after the repository is created
// (kopia compresses nothing by default), to compare with coffer's and
// restic's zstd.
func kopiaTool(b *binaries, zstd bool) *Tool {
	t := &Tool{Name: "kopia", Settings: "defaults (no compression), filesystem repository"}
	if zstd {
		t.Name = "kopia-zstd"
		t.Settings = "defaults but `policy set --global --compression=zstd` right after `repository create` (part of init), filesystem repository"
	}
	t.open = func(dir string, run int, ds *Dataset) (*Instance, error) {
		in := &Instance{store: filepath.Join(dir, "repo"), env: []string{
			"KOPIA_PASSWORD=" + passphrase, "KOPIA_CONFIG_PATH=" + filepath.Join(dir, "kopia.config"),
			"KOPIA_CACHE_DIRECTORY=" + filepath.Join(dir, "cache"), "KOPIA_LOG_DIR=" + filepath.Join(dir, "logs"),
			"KOPIA_CHECK_FOR_UPDATES=false"}}
		in.size = func() (int64, error) { return dirSize(in.store) }
		// root returns the root object of the latest snapshot of ds, found
		// before the measured command starts.
		root := func() (string, error) {
			cmd := exec.Command(b.kopia, "snapshot", "list", ds.Dir, "--json")
			cmd.Env = append(os.Environ(), in.env...)
			outb, err := cmd.Output()
			if err != nil {
				return "", fmt.Errorf("kopia snapshot list: %w", err)
			}
			var snaps []struct {
				RootEntry struct {
					Obj string `json:"obj"`
				} `json:"rootEntry"`
			}
			if err := json.Unmarshal(outb, &snaps); err != nil || len(snaps) == 0 {
				return "", fmt.Errorf("kopia snapshot list: no snapshot of %s found (%v)", ds.Dir, err)
			}
			return snaps[len(snaps)-1].RootEntry.Obj, nil
		}
		in.cmd = func(sc string, ds *Dataset, out string) (command, error) {
			c := command{env: in.env}
			var r string
			// kopia names the root directory by the root object alone.
			widest := kopiaPath(ds.Widest)
			if sc == scRestore || sc == scRestoreOne || sc == scLs {
				var err error
				if r, err = root(); err != nil {
					return c, err
				}
			}
			switch sc {
			case scInit:
				c.argv = []string{b.kopia, "repository", "create", "filesystem", "--path", in.store}
				if zstd {
					c.argv = []string{"/bin/sh", "-ec", `"$0" repository create filesystem --path "$1"
"$0" policy set --global --compression=zstd`, b.kopia, in.store}
				}
			case scBackup, scNoChange, scChanged, scHistory:
				c.argv = []string{b.kopia, "snapshot", "create", ds.Dir}
			case scPrune:
				// kopia forgets by policy, then reclaims space in full
				// maintenance; --safety=none deletes at once, as restic and
				// coffer do with no backup running (its default waits
				// hours).
				c.argv = []string{"/bin/sh", "-ec", `"$0" policy set --keep-latest 2 --keep-hourly 0 --keep-daily 0 --keep-weekly 0 --keep-monthly 0 --keep-annual 0 "$1"
"$0" snapshot expire --delete "$1"
"$0" maintenance run --full --safety=none`, b.kopia, ds.Dir}
			case scRestore:
				c.argv = []string{b.kopia, "restore", r, out}
			case scRestoreOne:
				c.argv = []string{b.kopia, "show", r + "/" + filepath.ToSlash(ds.OneFile)}
				c.stdout = filepath.Join(out, filepath.Base(ds.OneFile))
			case scCheck:
				c.argv = []string{b.kopia, "snapshot", "verify", "--verify-files-percent=100"}
			case scLs:
				c.argv = []string{b.kopia, "ls", r + widest}
			}
			return c, nil
		}
		return in, nil
	}
	return t
}

// kopiaPath returns "/" + dir for a path below a kopia root object, or "" for
// the root itself.
func kopiaPath(dir string) string {
	if dir == "." || dir == "" {
		return ""
	}
	return "/" + filepath.ToSlash(dir)
}

// registry is a CNCF Distribution process serving on loopback.
type registry struct {
	cmd  *exec.Cmd
	addr string // host:port
	data string // its storage root directory
}

// startRegistry starts Distribution on a free 127.0.0.1 port with
// filesystem storage under dir, like bench/oci-push.sh does.
func startRegistry(bin, dir string) (*registry, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("finding a free port: %w", err)
	}
	addr := l.Addr().String()
	l.Close()
	r := &registry{addr: addr, data: filepath.Join(dir, "registry-data")}
	cfg := fmt.Sprintf(`version: 0.1
log: {level: error, accesslog: {disabled: true}}
storage:
  filesystem: {rootdirectory: %s}
  delete: {enabled: true}
http: {addr: %s}
`, r.data, addr)
	cfgPath := filepath.Join(dir, "registry.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		return nil, fmt.Errorf("writing the registry config: %w", err)
	}
	logf, err := os.Create(filepath.Join(dir, "registry.log"))
	if err != nil {
		return nil, fmt.Errorf("creating the registry log: %w", err)
	}
	r.cmd = exec.Command(bin, "serve", cfgPath)
	r.cmd.Stdout, r.cmd.Stderr = logf, logf
	if err := r.cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("starting the registry %s: %w", bin, err)
	}
	logf.Close()
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return r, nil
		}
	}
	r.stop()
	return nil, fmt.Errorf("the registry did not listen on %s within 15 s (see %s)", addr, filepath.Join(dir, "registry.log"))
}

// cpu returns the registry's CPU time so far.
func (r *registry) cpu() time.Duration { return procCPU(r.cmd.Process.Pid) }

func (r *registry) stop() {
	_ = r.cmd.Process.Kill()
	_ = r.cmd.Wait()
}

// findBinaries builds coffer from the tree the harness runs in, finds or
// builds restic v0.19.1 and Distribution, and finds kopia (findKopia).
func findBinaries(work string, need map[string]bool, logf func(string, ...any)) (*binaries, error) {
	b := &binaries{coffer: filepath.Join(work, "bin", "coffer")}
	root, err := cofferRoot()
	if err != nil {
		return nil, err
	}
	logf("building coffer from %s", root)
	if err := goCmd(root, "", "build", "-o", b.coffer, "./cmd/coffer"); err != nil {
		return nil, fmt.Errorf("building coffer: %w", err)
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	cache = filepath.Join(cache, "coffer-bench")
	if need["restic"] || need["restic-matched"] {
		b.restic = findRestic(filepath.Join(cache, "restic-"+resticVersion))
		if b.restic == "" {
			dir := filepath.Join(cache, "restic-"+resticVersion)
			logf("building restic %s into %s", resticVersion, dir)
			if err := goCmd("", "GOBIN="+dir, "install", "github.com/restic/restic/cmd/restic@"+resticVersion); err != nil {
				return nil, fmt.Errorf("installing restic %s: %w", resticVersion, err)
			}
			b.restic = filepath.Join(dir, "restic")
		}
	}
	if need["coffer-oci"] || need["registry"] {
		b.registry = filepath.Join(os.Getenv("COFFER_TOOLBIN"), "registry")
		if os.Getenv("COFFER_TOOLBIN") == "" || !executable(b.registry) {
			dir := filepath.Join(cache, "toolbin")
			b.registry = filepath.Join(dir, "registry")
			if !executable(b.registry) {
				logf("building CNCF Distribution into %s", dir)
				if err := goCmd(root, "", "build", "-modfile=tools/go.mod", "-o", dir+"/", "github.com/distribution/distribution/v3/cmd/registry"); err != nil {
					return nil, fmt.Errorf("building the registry: %w", err)
				}
			}
		}
	}
	if need["versitygw"] {
		b.versitygw = filepath.Join(os.Getenv("COFFER_TOOLBIN"), "versitygw")
		if os.Getenv("COFFER_TOOLBIN") == "" || !executable(b.versitygw) {
			dir := filepath.Join(cache, "toolbin")
			b.versitygw = filepath.Join(dir, "versitygw")
			if !executable(b.versitygw) {
				logf("building VersityGW into %s", dir)
				if err := goCmd(root, "", "build", "-modfile=tools/go.mod", "-o", dir+"/", "github.com/versity/versitygw/cmd/versitygw"); err != nil {
					return nil, fmt.Errorf("building VersityGW: %w", err)
				}
			}
		}
	}
	if need["kopia"] || need["kopia-zstd"] {
		b.kopia = findKopia(root, filepath.Join(cache, "kopia-"+kopiaBuild), logf)
	}
	return b, nil
}

const resticVersion = "v0.19.1"

// kopiaBuild names the kopia build that ../shared/tools/get-kopia (beside
// coffer's tree) unpacks; a copy is cached under that name.
const kopiaBuild = "v0.23.1-83"

// findKopia returns kopia from PATH, else from cacheDir, else unpacks it
// there with get-kopia from the shared tools beside the coffer tree root;
// "" when none of these has it. kopia is a peer measured against, never a
// dependency of coffer.
func findKopia(root, cacheDir string, logf func(string, ...any)) string {
	if p, err := exec.LookPath("kopia"); err == nil {
		return p
	}
	cached := filepath.Join(cacheDir, "kopia")
	if executable(cached) {
		return cached
	}
	script := filepath.Join(filepath.Dir(root), "shared", "tools", "get-kopia")
	if _, err := os.Stat(script); err != nil {
		logf("no kopia on PATH, in %s or from %s", cacheDir, script)
		return ""
	}
	logf("unpacking kopia into %s with %s", cacheDir, script)
	cmd := exec.Command("/bin/sh", script, cacheDir)
	cmd.Stdout, cmd.Stderr = io.Discard, os.Stderr
	if err := cmd.Run(); err != nil || !executable(cached) {
		logf("get-kopia failed (%v): no kopia", err)
		return ""
	}
	return cached
}

// findRestic returns a restic of the pinned version from /tmp/bin, PATH
// or the cache directory, or "" when there is none.
func findRestic(cacheDir string) string {
	cands := []string{"/tmp/bin/restic", filepath.Join(cacheDir, "restic")}
	if p, err := exec.LookPath("restic"); err == nil {
		cands = append(cands, p)
	}
	for _, p := range cands {
		if !executable(p) {
			continue
		}
		out, err := exec.Command(p, "version").Output()
		if err == nil && strings.HasPrefix(string(out), "restic "+strings.TrimPrefix(resticVersion, "v")+" ") {
			return p
		}
	}
	return ""
}

func executable(p string) bool {
	info, err := os.Stat(p)
	return err == nil && info.Mode().IsRegular() && info.Mode()&0o111 != 0
}

// goCmd runs the go command in dir (the current directory when empty)
// with extra environment, its output going to the harness's standard
// error.
func goCmd(dir, env string, args ...string) error {
	cmd := exec.Command("go", args...)
	cmd.Dir = dir
	cmd.Env = os.Environ()
	if env != "" {
		cmd.Env = append(cmd.Env, env)
	}
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go %s: %w", strings.Join(args, " "), err)
	}
	return nil
}

// version returns the first line a binary prints for its version command.
func version(argv ...string) string {
	out, err := exec.Command(argv[0], argv[1:]...).Output()
	if err != nil {
		return "unknown"
	}
	line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	// Distribution starts with its own path; keep the name only.
	if rest, ok := strings.CutPrefix(line, argv[0]); ok {
		line = filepath.Base(argv[0]) + rest
	}
	return line
}

// cofferRoot returns the root of the coffer module the harness is run
// from (bench is a module of its own inside it, so that its plotting
// libraries are no requirement of coffer's): the nearest directory up
// from the current one whose go.mod declares github.com/cofferhq/coffer.
func cofferRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("finding the coffer tree: %w", err)
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && modfileDeclares(b, "github.com/cofferhq/coffer") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no coffer tree (a go.mod of module github.com/cofferhq/coffer) above the current directory: run the harness from bench/ in coffer's tree")
		}
		dir = parent
	}
}

// modfileDeclares reports whether the go.mod text b declares module path.
func modfileDeclares(b []byte, path string) bool {
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] == "module" && strings.Trim(f[1], `"`) == path {
			return true
		}
	}
	return false
}
