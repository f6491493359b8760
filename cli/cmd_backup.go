package cli

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/cofferhq/coffer/internal/bytesize"
	"github.com/cofferhq/coffer/repo"
	"github.com/cofferhq/coffer/snapshot"
)

type backupOptions struct {
	tags, excludes, excludeFiles stringList
	oneFileSystem, dryRun        bool
	host                         string
	compression                  compressionFlag
	packSize                     sizeFlag // MiB without a unit
	stdinName                    setString
	// excludeLines are the patterns of the -exclude-file files, read
	// once, by checkBackup.
	excludeLines []string
}

var backupCommand = &command{
	name:     "backup",
	usage:    "[flags] [paths...]",
	summary:  "back up paths (default: the current directory) into a new snapshot",
	needRepo: true,
	lock: func(opts any) repo.LockKind {
		if opts.(*backupOptions).dryRun {
			return "" // a dry run stores nothing, not even a lock
		}
		return repo.LockShared
	},
	flags: func(fs *flag.FlagSet) any {
		o := &backupOptions{}
		fs.Var(&o.tags, "tag", "tag the snapshot (repeatable, or comma-separated)")
		fs.Var(&o.excludes, "exclude", "exclude paths matching a gitignore-style pattern (repeatable)")
		fs.Var(&o.excludeFiles, "exclude-file", "read exclude patterns from a file, one per line (repeatable)")
		fs.BoolVar(&o.oneFileSystem, "one-file-system", false, "do not cross filesystem boundaries")
		fs.BoolVar(&o.dryRun, "dry-run", false, "read everything and report, but store nothing")
		fs.StringVar(&o.host, "host", "", "host name to record (default: this host)")
		o.packSize.bare = 1 << 20
		fs.Var(&o.packSize, "pack-size", "store new data in packs of at most this `size` (like 8MiB or 512KiB; a number is MiB; default: the repository's, set by create)")
		fs.Var(&o.stdinName, "stdin-name", "back up standard input, instead of paths, as one file of this `name` at the top of the snapshot (also: the path stdin:NAME)")
		fs.Var(&o.compression, "compression", "`mode` of compressing new data: auto (default: zstd, data that does not compress is stored as is), off, fastest, better or max")
		return o
	},
	check: checkBackup,
	run:   runBackup,
}

// checkBackup rejects what backup cannot run with: standard input given
// with paths, and a pack size, from -pack-size or else from the store's
// settings, that no pack can have. Without -pack-size it puts the store's
// pack size, if any, in o for run.
func checkBackup(a *app, opts any, args []string) error {
	o := opts.(*backupOptions)
	if _, _, err := stdinArgs(o.stdinName, args); err != nil {
		return err
	}
	for _, f := range o.excludeFiles {
		lines, err := readPatternFile(f)
		if err != nil {
			return usageError("-exclude-file %s: %v: give a file of patterns, one per line", f, errors.Unwrap(err))
		}
		o.excludeLines = append(o.excludeLines, lines...)
	}
	if o.packSize.n != 0 {
		if !validPackSize(o.packSize.n) {
			return usageError("backup -pack-size %s: give a size from 512KiB to 1GiB", &o.packSize)
		}
		return nil
	}
	n, err := a.storePackSize()
	if err != nil {
		return err
	}
	if n != 0 && !validPackSize(n) {
		return usageError("store option pack-size=%s: give a size from 512KiB to 1GiB", a.storeCfg.PackSize)
	}
	o.packSize.n = n
	return nil
}

// validPackSize reports whether a backup can write packs of n bytes.
func validPackSize(n int64) bool {
	return repo.CheckPackSize(int(min(n, repo.MaxPackSize+1))) == nil
}

func runBackup(ctx context.Context, a *app, opts any, args []string) error {
	o := opts.(*backupOptions)
	stdinName, args, err := stdinArgs(o.stdinName, args)
	if err != nil {
		return err
	}
	if len(args) == 0 && stdinName == "" {
		args = []string{"."}
	}
	excludes := append(slices.Clone(o.excludes), o.excludeLines...)
	var tags []string
	for _, t := range o.tags {
		for _, s := range strings.Split(t, ",") {
			if s = strings.TrimSpace(s); s != "" {
				tags = append(tags, s)
			}
		}
	}
	// Never back up the repository or the cache into itself.
	skip := a.ownLocalPaths()
	prog := a.newProgress("backup", "files")
	sn, err := snapshot.Backup(ctx, a.repo, snapshot.BackupOptions{
		Paths: args, Tags: tags, Excludes: excludes, OneFileSystem: o.oneFileSystem,
		DryRun: o.dryRun, Host: o.host, SkipPaths: skip, Progress: prog, Scan: prog.shown(),
		Compression: repo.Compression(o.compression), PackSize: int(o.packSize.n),
		StdinName: stdinName, Stdin: a.env.Stdin,
	})
	prog.done()
	if errors.Is(err, snapshot.ErrNoSuchPath) {
		// Found once the repository is open: a registry that refuses
		// writes is the news before a path is looked at.
		return usageError("%v; give paths that exist", err)
	}
	if errors.Is(err, snapshot.ErrStreamPath) {
		return usageError("%v; to store standard input as a file, use -stdin-name NAME (as `pg_dump db | coffer at R backup -stdin-name db.sql`)", err)
	}
	if err != nil {
		return err
	}
	s := sn.Summary
	verb := "saved"
	id := sn.ID.Short()
	if o.dryRun {
		verb, id = "would be saved (dry run)", "--------"
	}
	stored := "stored " + bytesize.Format(s.StoredBytes)
	if o.dryRun {
		// Nothing was compressed or sealed, so what the new data would
		// take in packs is not known; its plaintext is.
		stored = "nothing stored"
	}
	a.out.textf("snapshot %s %s: %s, %s%s, %s in %s; new data %s, %s\n",
		id, verb, counted(s.Files, "file"), counted(s.Dirs, "dir"), othersText(s.Others), bytesize.Format(s.Size), duration(s.Duration),
		bytesize.Format(s.NewBytes), stored)
	ev := backupEvent{summaryHead: head("backup"), DryRun: o.dryRun, Summary: newBackupSummary(s)}
	if !o.dryRun {
		ev.SnapshotID = sn.ID.String()
	}
	a.out.result(ev)
	if s.Errors > 0 {
		return fmt.Errorf("%w (%d entries; see the warnings above)", errPartial, s.Errors)
	}
	return nil
}

// stdinArgs returns the name standard input is backed up as, from
// -stdin-name or plakar's form, a single path stdin:NAME, and the paths
// left to back up.
func stdinArgs(flagName setString, args []string) (string, []string, error) {
	for _, arg := range args {
		name, ok := strings.CutPrefix(arg, "stdin:")
		if !ok {
			continue
		}
		if len(args) > 1 || flagName.set {
			return "", nil, usageError("backup %s: standard input is backed up alone: give no other paths, nor -stdin-name, with it", arg)
		}
		if err := snapshot.CheckStdinName(name); err != nil {
			return "", nil, usageError("backup %s: %v", arg, err)
		}
		return name, nil, nil
	}
	if !flagName.set {
		return "", args, nil
	}
	if len(args) > 0 {
		return "", nil, usageError("backup -stdin-name %s: standard input is backed up alone: give no paths with it", flagName.s)
	}
	if err := snapshot.CheckStdinName(flagName.s); err != nil {
		return "", nil, usageError("backup -stdin-name: %v", err)
	}
	return flagName.s, nil, nil
}

func readPatternFile(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading exclude file: %w", err)
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		if strings.TrimSpace(line) == "" || strings.HasPrefix(line, "#") {
			continue
		}
		lines = append(lines, line)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading exclude file %s: %w", path, err)
	}
	return lines, nil
}
