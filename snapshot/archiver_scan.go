package snapshot

// The scanner, which runs beside the backup only to give a progress display
// its totals.

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
)

// scan walks the paths ahead of the backup to total files and bytes.
//
// It lists directories as the walk does (openDir) and, on Linux, looks
// each regular file up from its directory's descriptor rather than by its
// whole path; excludes are matched on the path elements it keeps
// (docs/benchmarks-log.md, "big-file with kopia-zstd, and the progress
// scan"). A root that is a symlink is not followed, even where the walk
// follows it to a path given below it: the totals are an estimate.
func (a *archiver) scan(ctx context.Context, paths []string) {
	for _, root := range paths {
		fi, err := os.Lstat(root)
		switch {
		case err != nil:
		case fi.Mode().IsRegular():
			a.prog.Scanned(1, fi.Size())
		case fi.IsDir():
			if a.scanDir(ctx, root, nil) != nil {
				return
			}
		}
	}
}

// scanDir adds the regular files below the directory at path to the
// totals. rel holds the path elements below the backed-up root, for
// excludes. It returns only the context's error.
//
// The directory is closed before its subdirectories are scanned, so the
// scan holds one descriptor at a time beside those the walk holds.
func (a *archiver) scanDir(ctx context.Context, path string, rel []string) error {
	entries, dir, _ := openDir(path, runtime.GOOS == "linux")
	fd := noDir
	if dir != nil {
		fd = int(dir.Fd())
	}
	var subdirs []os.DirEntry
	for _, e := range entries {
		if ctx.Err() != nil {
			break
		}
		name := e.Name()
		p := filepath.Join(path, name)
		if a.skip[p] || a.excluded(append(rel[:len(rel):len(rel)], name), e.IsDir()) {
			continue
		}
		// Progress counts regular files, as the summary does, not
		// symlinks and special files.
		switch {
		case e.IsDir():
			subdirs = append(subdirs, e)
		case e.Type().IsRegular():
			if size, err := regularSize(fd, p, name); err == nil {
				a.prog.Scanned(1, size)
			}
		}
	}
	if dir != nil {
		dir.Close()
	}
	for _, e := range subdirs {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := a.scanDir(ctx, filepath.Join(path, e.Name()), append(rel[:len(rel):len(rel)], e.Name())); err != nil {
			return err
		}
	}
	return ctx.Err()
}
