package cli

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/cofferhq/coffer/internal/bytesize"
	"github.com/cofferhq/coffer/repo"
	"github.com/cofferhq/coffer/snapshot"
	"github.com/cofferhq/coffer/storage"
)

type backupOptions struct {
	tags, excludes, excludeFiles stringList
	oneFileSystem, dryRun        bool
	host                         string
	compression                  compressionFlag
	packSize                     sizeFlag // MiB without a unit
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
		fs.Var(&o.compression, "compression", "`mode` of compressing new data: auto (default: zstd, data that does not compress is stored as is), off, fastest, better or max")
		return o
	},
	run: runBackup,
}

func runBackup(ctx context.Context, a *app, opts any, args []string) error {
	o := opts.(*backupOptions)
	if len(args) == 0 {
		args = []string{"."}
	}
	if n := o.packSize.n; n != 0 && repo.CheckPackSize(int(min(n, repo.MaxPackSize+1))) != nil {
		return usageError("backup -pack-size %s: give a size from 512KiB to 1GiB", &o.packSize)
	}
	excludes := append([]string(nil), o.excludes...)
	for _, f := range o.excludeFiles {
		lines, err := readPatternFile(f)
		if err != nil {
			return err
		}
		excludes = append(excludes, lines...)
	}
	var tags []string
	for _, t := range o.tags {
		for _, s := range strings.Split(t, ",") {
			if s = strings.TrimSpace(s); s != "" {
				tags = append(tags, s)
			}
		}
	}
	// Never back up the repository or the cache into itself.
	var skip []string
	if lp, ok := a.repo.Store().(storage.LocalPather); ok {
		skip = append(skip, lp.LocalPath())
	}
	if a.g.cacheDir != "" {
		skip = append(skip, a.g.cacheDir)
	}
	prog := a.newProgress("backup")
	sn, err := snapshot.Backup(ctx, a.repo, snapshot.BackupOptions{
		Paths: args, Tags: tags, Excludes: excludes, OneFileSystem: o.oneFileSystem,
		DryRun: o.dryRun, Host: o.host, SkipPaths: skip, Progress: prog, Scan: prog.shown(),
		Compression: repo.Compression(o.compression), PackSize: int(o.packSize.n),
	})
	prog.done()
	if err != nil {
		return err
	}
	s := sn.Summary
	verb := "saved"
	id := sn.ID.Short()
	if o.dryRun {
		verb, id = "would be saved (dry run)", "--------"
	}
	a.out.textf("snapshot %s %s: %d files, %d dirs, %s in %s; new data %s, stored %s\n",
		id, verb, s.Files, s.Dirs, bytesize.Format(s.Size), duration(s.Duration), bytesize.Format(s.NewBytes), bytesize.Format(s.StoredBytes))
	a.out.result(map[string]any{"type": "summary", "snapshot_id": sn.ID.String(), "dry_run": o.dryRun, "summary": s})
	if s.Errors > 0 {
		return fmt.Errorf("%w (%d entries; see the warnings above)", errPartial, s.Errors)
	}
	return nil
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
