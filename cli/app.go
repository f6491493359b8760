package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/cofferhq/coffer/repo"
	"github.com/cofferhq/coffer/storage"
	"github.com/cofferhq/coffer/storage/all"
	"github.com/cofferhq/coffer/storage/oci"
)

// Env is everything a command may use from its surroundings, so that
// tests can run commands in-process.
type Env struct {
	Args   []string // without the program name
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	Getenv func(string) string
	// IsTerminal reports whether a stream is an interactive terminal.
	IsTerminal func(any) bool
}

// globals are the flags given before `at <store>`.
type globals struct {
	silent         bool
	json           bool
	cacheDir       string
	noCache        bool
	passphraseFile string
	passphraseCmd  string
	otherPassFile  string
	insecureHTTP   bool
	caFile         string
	retryFor       time.Duration
	referenceWith  time.Duration
	uploadChunk    sizeFlag // bytes without a unit
	limitUpload    int64    // KiB/s
	limitDownload  int64    // KiB/s
	keyCache       keyCacheFlag
	version        bool
	store          string
}

// command is one coffer subcommand.
type command struct {
	name     string
	aliases  []string // other names, such as plakar's
	usage    string   // arguments, after the command name
	summary  string
	needRepo bool // false for create and commands that open no repository
	// askPassphrase commands (key management) always ask for the
	// passphrase: the key cache does not stand in for it.
	askPassphrase bool
	// verifiesStore commands (check) read index objects and snapshots
	// from the store even where the cache has them: what they verify is
	// what is stored.
	verifiesStore bool
	noStore       bool // the command names no store: no `at <store>` in its usage
	// selects commands take -host, -tag and -path, which choose the
	// snapshots they consider and which one `latest` is (app.filter).
	selects bool
	// lock says which lock the command holds while it runs, given its
	// options: shared for commands that add, exclusive for those that
	// delete; nil (or "") for readers.
	lock func(opts any) repo.LockKind
	// ownIndex commands load the index themselves, if at all (repair
	// index must run when the index cannot be loaded).
	ownIndex bool
	flags    func(fs *flag.FlagSet) any
	// check rejects arguments and options the command cannot run with
	// before the repository is opened, so that a mistyped command line
	// costs no passphrase prompt, key derivation or request to the store.
	// run may rely on its having passed.
	check func(a *app, opts any, args []string) error
	run   func(ctx context.Context, a *app, opts any, args []string) error
}

// noArgs is the check of a command that takes no positional arguments.
func noArgs(name string) func(*app, any, []string) error {
	return func(_ *app, _ any, args []string) error {
		if len(args) > 0 {
			return usageError("%s takes no arguments", name)
		}
		return nil
	}
}

// commands are coffer's commands. They are set in init, not in the
// declaration, because completion and man describe every command,
// themselves included, which a declaration cannot refer to.
var commands []*command

func init() {
	commands = []*command{
		createCommand, backupCommand, lsCommand, findFilesCommand, catCommand, restoreCommand, archiveCommand, syncCommand,
		tagCommand, statsCommand, storeCommand, cacheCommand, checkCommand, infoCommand, diffCommand, keyCommand,
		loginCommand, logoutCommand, uiCommand, mountCommand, versionCommand, forgetCommand, pruneCommand, unlockCommand, repairCommand,
		completionCommand, manCommand,
	}
}

// commandFlags returns a command's own flags (with -host, -tag and -path
// for commands that select snapshots), sorted by name, for its help,
// completion and manual page.
func commandFlags(c *command) []*flag.Flag {
	fs := flag.NewFlagSet(c.name, flag.ContinueOnError)
	if c.flags != nil {
		c.flags(fs)
	}
	if c.selects {
		(&snapshotFilter{}).register(fs)
	}
	var out []*flag.Flag
	fs.VisitAll(func(f *flag.Flag) { out = append(out, f) })
	return out
}

// globalFlagList returns the global flags, sorted by name.
func globalFlagList() []*flag.Flag {
	var out []*flag.Flag
	(&app{}).globalFlags().VisitAll(func(f *flag.Flag) { out = append(out, f) })
	return out

}

// app carries the state shared by one invocation.
type app struct {
	env  Env
	g    globals
	out  *printer
	repo *repo.Repository
	lock *repo.Lock // held while the command runs, if it takes one
	pw   []byte     // the passphrase that opened (or created) repo, for the other repository of sync
	// askPassphrase: the command opens the repository with its
	// passphrase even when the key cache holds its keys.
	askPassphrase bool
	// verifiesStore: the command reads cached objects from the store.
	verifiesStore bool
	// filter is the command's -host, -tag and -path (commands that
	// select snapshots).
	filter snapshotFilter
	// storeCfg is the named store `at @NAME` chose, if any.
	storeCfg *storeConfig
	// objectLockDays is create -object-lock's retention, for the S3
	// store that create opens.
	objectLockDays int
	// command is the name of the command run, once the command line
	// names one.
	command string
	// cacheWarned: the cache directory was found unusable, and said so.
	cacheWarned bool
}

// interruptedMessage says what an interrupted command left behind.
func interruptedMessage(command string) string {
	switch command {
	case "backup":
		return "interrupted: nothing partial was saved; packs already uploaded are reused by the next backup"
	case "restore":
		return "interrupted: the target holds part of the restore; run it again with -overwrite to finish it"
	case "cat", "archive":
		return "interrupted: what went to standard output is cut short (an archive -o file is not written)"
	case "ls", "find", "diff", "stats", "info", "check", "mount", "ui":
		return "interrupted"
	}
	return "interrupted: nothing partial is visible in the repository"
}

// Main runs coffer with env and returns the process exit code.
func Main(ctx context.Context, env Env) int {
	if env.Getenv == nil {
		env.Getenv = os.Getenv
	}
	if env.IsTerminal == nil {
		env.IsTerminal = func(any) bool { return false }
	}
	a := &app{env: env}
	a.out = &printer{stdout: env.Stdout, stderr: env.Stderr}
	err := a.run(ctx)
	code := exitCode(err)
	if code == ExitInterrupted {
		err = errors.New(interruptedMessage(a.command))
	}
	if err != nil && !errors.Is(err, errCheckFailed) {
		a.out.fatal(err, code)
	}
	return code
}

func (a *app) run(ctx context.Context) (err error) {
	fs := a.globalFlags()
	if err := fs.Parse(a.env.Args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			a.usage(fs)
			return nil
		}
		return fmt.Errorf("%w: %v (see coffer -h)", errUsage, explainFlagError(fs, err))
	}
	args := fs.Args()
	if len(args) >= 1 && args[0] == "at" {
		if len(args) < 2 {
			return fmt.Errorf("%w: `at` needs a store location, e.g. coffer at /backups/repo ls", errUsage)
		}
		a.g.store = args[1]
		// Global flags may follow the store too: `coffer at R -json ls`.
		if err := fs.Parse(args[2:]); err != nil {
			return fmt.Errorf("%w: %v (see coffer -h)", errUsage, explainFlagError(fs, err))
		}
		args = fs.Args()
	} else {
		a.g.store = a.env.Getenv("COFFER_REPOSITORY")
	}
	if a.g.version {
		args = []string{"version"}
	}
	if len(args) == 0 {
		a.usage(fs)
		return fmt.Errorf("%w: no command given", errUsage)
	}
	if args[0] == "help" {
		if len(args) == 1 {
			a.usage(fs)
			return nil
		}
		cmd := findCommand(args[1])
		if cmd == nil {
			return unknownCommand(args[1])
		}
		a.commandUsage(cmd)
		return nil
	}
	cmd := findCommand(args[0])
	if cmd == nil {
		return unknownCommand(args[0])
	}
	a.command = cmd.name
	cfs := flag.NewFlagSet("coffer "+cmd.name, flag.ContinueOnError)
	cfs.SetOutput(io.Discard)
	var opts any
	if cmd.flags != nil {
		opts = cmd.flags(cfs)
	}
	if cmd.selects {
		a.filter.register(cfs)
	}
	// And after the command, among its own: `coffer at R ls -json`. The
	// global flags' values are shared, so a flag given twice keeps the
	// last value, wherever it was.
	fs.VisitAll(func(f *flag.Flag) { cfs.Var(f.Value, f.Name, f.Usage) })
	positional, err := parseInterspersed(cfs, args[1:])
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			a.commandUsage(cmd)
			return nil
		}
		return fmt.Errorf("%w: %s: %v", errUsage, cmd.name, explainFlagError(cfs, err))
	}
	a.out.silent, a.out.json = a.g.silent, a.g.json
	if !cmd.noStore {
		given := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
		cfs.Visit(func(f *flag.Flag) { given[f.Name] = true })
		if a.g.store, a.storeCfg, err = a.resolveStore(a.g.store); err != nil {
			return err
		}
		if err := a.applyStoreConfig(a.storeCfg, given); err != nil {
			return err
		}
	}
	if a.g.retryFor <= 0 {
		return fmt.Errorf("%w: -retry-for %s: give a positive duration, such as 30s or 10m", errUsage, a.g.retryFor)
	}
	if a.g.referenceWith < time.Second {
		return fmt.Errorf("%w: -reference-within %s: give a duration of at least 1s, such as 10s", errUsage, a.g.referenceWith)
	}
	if a.g.limitUpload < 0 || a.g.limitDownload < 0 {
		return fmt.Errorf("%w: -limit-upload and -limit-download take a positive number of KiB/s, such as 1024", errUsage)
	}
	if n := a.g.uploadChunk.n; n != 0 && n < oci.MinUploadChunk {
		return fmt.Errorf("%w: -upload-chunk %s: give at least 64KiB, such as 512KiB", errUsage, &a.g.uploadChunk)
	}
	if err := a.keyCacheFromEnv(); err != nil {
		return err
	}
	if a.g.cacheDir == "" {
		a.g.cacheDir = a.env.Getenv("COFFER_CACHE_DIR")
	}
	if a.g.cacheDir == "" && !a.g.noCache {
		if dir, err := os.UserCacheDir(); err == nil {
			a.g.cacheDir = filepath.Join(dir, "coffer")
		}
	}
	if a.g.noCache {
		a.g.cacheDir = ""
	}
	if cmd.check != nil {
		if err := cmd.check(a, opts, positional); err != nil {
			return err
		}
	}
	if cmd.needRepo {
		var lock repo.LockKind
		if cmd.lock != nil {
			lock = cmd.lock(opts)
		}
		a.askPassphrase = cmd.askPassphrase
		a.verifiesStore = cmd.verifiesStore
		if err := a.openRepo(ctx, cmd.name, lock, !cmd.ownIndex); err != nil {
			return err
		}
		defer func() {
			if cerr := a.closeRepo(); cerr != nil && err == nil {
				err = cerr
			}
		}()
	}
	return cmd.run(ctx, a, opts, positional)
}

// globalFlags returns a flag set of the flags every command takes, bound
// to a.g. They may come before `at`, after the store, or among the
// command's own flags.
func (a *app) globalFlags() *flag.FlagSet {
	fs := flag.NewFlagSet("coffer", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.BoolVar(&a.g.silent, "silent", false, "print nothing but errors")
	fs.BoolVar(&a.g.json, "json", false, "print JSON documents (NDJSON events for long commands)")
	fs.StringVar(&a.g.cacheDir, "cache-dir", "", "local cache directory (env COFFER_CACHE_DIR)")
	fs.BoolVar(&a.g.noCache, "no-cache", false, "do not use a local cache")
	fs.StringVar(&a.g.passphraseFile, "passphrase-file", "", "read the passphrase from this file (env COFFER_PASSPHRASE)")
	fs.StringVar(&a.g.passphraseCmd, "passphrase-command", "", "run this `command` (with sh -c) and use its output as the passphrase (env COFFER_PASSPHRASE_COMMAND)")
	fs.StringVar(&a.g.otherPassFile, "other-passphrase-file", "", "read the passphrase of the other repository (sync's, create -from's) from this file (env COFFER_OTHER_PASSPHRASE; default: this repository's passphrase, then a prompt)")
	fs.BoolVar(&a.g.insecureHTTP, "insecure-http", false, "allow plain HTTP to a registry or S3 endpoint that is not on this machine")
	fs.StringVar(&a.g.caFile, "ca-file", "", "trust the certificate authorities in this PEM file for registries and S3 endpoints")
	fs.DurationVar(&a.g.retryFor, "retry-for", oci.DefaultRetryFor, "retry a registry or S3 endpoint that is down, restarting or failing (5xx, 429, resets) for up to this long")
	fs.DurationVar(&a.g.referenceWith, "reference-within", oci.DefaultReferenceWithin, "tag every uploaded pack within this long (below a registry's online GC grace time)")
	a.g.uploadChunk.bare = 1
	fs.Var(&a.g.uploadChunk, "upload-chunk", "upload packs larger than this `size` (like 512KiB) in chunks of it, below a proxy's limit on request bodies (default: one request per pack)")
	fs.Int64Var(&a.g.limitUpload, "limit-upload", 0, "send at most this many `KiB/s` to a registry (default: no limit)")
	fs.Int64Var(&a.g.limitDownload, "limit-download", 0, "read at most this many `KiB/s` from a registry (default: no limit)")
	fs.Var(&a.g.keyCache, "key-cache", "keep the repository's keys for this long after a passphrase opens it, and use them instead of asking (like 15m; env COFFER_KEY_CACHE; see README: key cache)")
	fs.BoolVar(&a.g.version, "version", false, "print the version and exit (the version command)")
	return fs
}

// unknownCommand is the error for a command name coffer does not know,
// suggesting the nearest one when it is close enough to be a typo.
func unknownCommand(name string) error {
	best, bestDist := "", 3 // at most two edits away
	for _, c := range commands {
		for _, n := range append([]string{c.name}, c.aliases...) {
			if d := editDistance(name, n); d < bestDist || d == bestDist && best == "" && strings.HasPrefix(n, name) {
				best, bestDist = n, d
			}
		}
	}
	if best != "" {
		return fmt.Errorf("%w: unknown command %q: did you mean %q? (see coffer -h)", errUsage, name, best)
	}
	return fmt.Errorf("%w: unknown command %q (see coffer -h)", errUsage, name)
}

// editDistance is the Levenshtein distance between a and b, in bytes.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// parseInterspersed lets flags follow positional arguments, as in
// `restore d61 -to ./restored`; "--" ends flag parsing.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		consumed := len(args) - fs.NArg()
		if consumed > 0 && args[consumed-1] == "--" {
			return append(positional, fs.Args()...), nil
		}
		args = fs.Args()
		if len(args) == 0 {
			return positional, nil
		}
		positional = append(positional, args[0])
		args = args[1:]
	}
}

func findCommand(name string) *command {
	for _, c := range commands {
		if c.name == name || slices.Contains(c.aliases, name) {
			return c
		}
	}
	return nil
}

// openStore opens the store named by `at` or COFFER_REPOSITORY.
func (a *app) openStore(ctx context.Context) (storage.Store, error) {
	if a.g.store == "" {
		return nil, fmt.Errorf("%w: no repository: use `coffer at <store> <command>` or set COFFER_REPOSITORY", errUsage)
	}
	if a.g.caFile != "" {
		if _, err := os.Stat(a.g.caFile); err != nil {
			return nil, usageError("-ca-file: %v: give the PEM file of the certificate authorities to trust", err)
		}
	}
	o := a.ociOptions()
	if scheme, _ := storage.Scheme(a.g.store); scheme == "oci" && (o.Username == "") != (o.Password == "") {
		// Half a pair would reach the registry as no credentials, or fail
		// there with the library's words.
		set, unset := "COFFER_REGISTRY_USERNAME", "COFFER_REGISTRY_PASSWORD"
		if o.Username == "" {
			set, unset = unset, set
		}
		return nil, usageError("%s is set but %s is not: set both, or neither to use the docker config (coffer login)", set, unset)
	}
	if err := a.registryCredentials(ctx, &o, a.storeCfg); err != nil {
		return nil, err
	}
	return all.Registry(all.Options{OCI: o, S3: a.s3Options()}).Open(ctx, a.g.store)
}

// ociOptions gathers what the registry store needs from flags and the
// environment. Credentials come from COFFER_REGISTRY_USERNAME and
// COFFER_REGISTRY_PASSWORD, or else from the docker config.
func (a *app) ociOptions() oci.Options {
	return oci.Options{
		InsecureHTTP:    a.g.insecureHTTP,
		CAFile:          a.g.caFile,
		Username:        a.env.Getenv("COFFER_REGISTRY_USERNAME"),
		Password:        a.env.Getenv("COFFER_REGISTRY_PASSWORD"),
		DockerConfig:    a.env.Getenv("DOCKER_CONFIG"),
		CacheDir:        a.g.cacheDir,
		Writer:          a.env.Getenv("COFFER_WRITER"),
		TempDir:         a.env.Getenv("TMPDIR"), // os.TempDir() reads the process's, not Env's
		RetryFor:        a.g.retryFor,
		ReferenceWithin: a.g.referenceWith,
		UploadChunk:     a.g.uploadChunk.n,
		LimitUpload:     a.g.limitUpload << 10,
		LimitDownload:   a.g.limitDownload << 10,
		Logf:            a.out.notice,
	}
}

// openOptions are the options repositories are opened with.
func (a *app) openOptions() repo.OpenOptions {
	o := repo.OpenOptions{
		CacheDir: a.g.cacheDir,
		TempDir:  a.env.Getenv("TMPDIR"), // os.TempDir() reads the process's, not Env's
		Warnf:    a.out.warningf,

		ReadStored: a.verifiesStore,
	}
	if o.CacheDir != "" {
		if err := os.MkdirAll(o.CacheDir, 0o700); err != nil && !a.cacheWarned {
			// Said, not left to fail quietly: without the cache, rollback
			// detection is off. Once, though sync opens two repositories.
			a.cacheWarned = true
			a.out.warningf("the cache directory cannot be used (%v): this command runs without a cache, so it cannot tell whether snapshots it saw before were hidden; give -cache-dir a directory", err)
		}
		if a.cacheWarned {
			o.CacheDir = ""
		}
	}
	if a.g.keyCache.d > 0 {
		dir, err := a.keyCacheDir()
		if err != nil {
			a.out.warningf("the key is not cached: %v", err)
		} else {
			o.KeyCache = &repo.KeyCache{Dir: dir, MaxAge: a.g.keyCache.d}
		}
	}
	return o
}

// openRepo opens the repository, takes the command's lock, and loads
// the index. The lock comes first: a backup's lock must be in the store
// before it reads what a concurrent prune may have planned
// (docs/design.md, "Writers and deleters").
func (a *app) openRepo(ctx context.Context, name string, lock repo.LockKind, loadIndex bool) error {
	st, err := a.openStore(ctx)
	if err != nil {
		return err
	}
	opts := a.openOptions()
	if a.askPassphrase {
		opts.KeyCache = nil
	}
	r, err := repo.Open(ctx, st, func() ([]byte, error) {
		pw, err := a.passphrase(ctx, false)
		a.pw = pw
		return pw, err
	}, opts)
	if err != nil {
		st.Close()
		if errors.Is(err, storage.ErrNotFound) && !errors.Is(err, repo.ErrCorrupt) && !errors.Is(err, storage.ErrNotCreatable) {
			return fmt.Errorf("%w; create one with `coffer at %s create`", err, a.g.store)
		}
		return err
	}
	if lock != "" {
		if a.lock, err = r.Lock(ctx, lock, name); err != nil {
			r.Close()
			return err
		}
	}
	a.repo = r
	if !loadIndex {
		return nil
	}
	if err := r.LoadIndex(ctx); err != nil {
		a.closeRepo()
		return err
	}
	return nil
}

// closeRepo makes everything the command wrote visible to others, then
// releases its lock and the repository. Flushing can be work (the OCI
// store references its last objects and applies deletes), so its error
// counts; it happens under the lock, since a deleter's lock must cover
// its deletes.
func (a *app) closeRepo() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	err := storage.Flush(ctx, a.repo.Store())
	if err != nil {
		err = fmt.Errorf("finishing writes to the repository: %w", err)
	}
	if a.lock != nil {
		if uerr := a.lock.Unlock(); uerr != nil && err == nil {
			err = uerr
		}
		a.lock = nil
	}
	if cerr := a.repo.Close(); cerr != nil && err == nil {
		err = fmt.Errorf("closing the repository: %w", cerr)
	}
	return err
}

func (a *app) usage(fs *flag.FlagSet) {
	w := a.env.Stdout
	fmt.Fprintln(w, "coffer: encrypted, deduplicated backups to OCI registries and local directories")
	fmt.Fprintln(w, "\nusage: coffer [global flags] at <store> <command> [flags] [args]")
	fmt.Fprintln(w, "       (COFFER_REPOSITORY may replace `at <store>`)")
	fmt.Fprintln(w, "\ncommands:")
	names := make([]string, 0, len(commands))
	for _, c := range commands {
		name := c.name
		if len(c.aliases) > 0 {
			name += " (" + strings.Join(c.aliases, ", ") + ")"
		}
		names = append(names, fmt.Sprintf("  %-12s %s", name, c.summary))
	}
	sort.Strings(names)
	fmt.Fprintln(w, strings.Join(names, "\n"))
	fmt.Fprintln(w, "\nglobal flags:")
	fs.SetOutput(w)
	fs.PrintDefaults()
	fs.SetOutput(io.Discard)
	fmt.Fprintln(w, "\nRun `coffer <command> -h` for a command's flags. Exit codes are listed in README.md.")
}

func (a *app) commandUsage(c *command) {
	w := a.env.Stdout
	at := "at <store> "
	if c.noStore {
		at = ""
	}
	fmt.Fprintf(w, "usage: coffer %s%s %s\n\n%s\n", at, c.name, c.usage, c.summary)
	if len(c.aliases) > 0 {
		fmt.Fprintf(w, "also: %s\n", strings.Join(c.aliases, ", "))
	}
	// A flag set of the command's own flags, for their defaults: the one
	// parsed holds the global flags too, which `coffer -h` lists.
	fs := flag.NewFlagSet(c.name, flag.ContinueOnError)
	if c.flags != nil {
		c.flags(fs)
	}
	if c.selects {
		(&snapshotFilter{}).register(fs)
	}
	fs.SetOutput(w)
	fs.PrintDefaults()
	fmt.Fprintln(w, "\nGlobal flags (see coffer -h) may come before `at`, after the store, or among these.")
}

// flagValueError is the flag package's message for a value its own
// types cannot parse, which says no more than "parse error".
var flagValueError = regexp.MustCompile(`^invalid value "(.*)" for flag -([^:]+): parse error$`)

// explainFlagError adds to a flag error what the flag's value must look
// like, where the flag package says only that it did not parse.
func explainFlagError(fs *flag.FlagSet, err error) error {
	m := flagValueError.FindStringSubmatch(err.Error())
	if m == nil {
		return err
	}
	f := fs.Lookup(m[2])
	if f == nil {
		return err
	}
	want := ""
	switch fmt.Sprintf("%T", f.Value) {
	case "*flag.durationValue":
		want = "a duration such as 90s, 10m or 1h30m"
	case "*flag.intValue", "*flag.int64Value", "*flag.uintValue", "*flag.uint64Value":
		want = "a whole number"
	case "*flag.float64Value":
		want = "a number"
	default:
		return err
	}
	return fmt.Errorf("-%s %q: want %s", m[2], m[1], want)
}
