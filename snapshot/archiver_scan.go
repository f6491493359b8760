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
// each regular file up from its directory's open descriptor, where
// filepath.WalkDir's DirEntry.Info resolved the file's whole path again;
// and it matches excludes on the path elements it keeps, where it split
// every relative path anew. Over a tree of 100,000 files in 26,000
// directories (BenchmarkScan) that takes 410-490 ms against 470-740. The
// scan shares the CPUs with the backup it runs beside.
func (a *archiver) scan(ctx context.Context, paths []string) {
	for _, root := range paths {
		if a.skip[root] {
			continue
		}
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
func (a *archiver) scanDir(ctx context.Context, path string, rel []string) error {
	entries, dir, _ := openDir(path, runtime.GOOS == "linux" && len(rel) < maxHeldDirs)
	fd := noDir
	if dir != nil {
		defer dir.Close()
		fd = int(dir.Fd())
	}
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return err
		}
		name := e.Name()
		p := filepath.Join(path, name)
		if a.skip[p] {
			continue
		}
		childRel := append(rel[:len(rel):len(rel)], name)
		if a.excluded(childRel, e.IsDir()) {
			continue
		}
		// Progress counts regular files, as the summary does, not
		// symlinks and special files.
		switch {
		case e.IsDir():
			if err := a.scanDir(ctx, p, childRel); err != nil {
				return err
			}
		case e.Type().IsRegular():
			if size, err := regularSize(fd, p, name); err == nil {
				a.prog.Scanned(1, size)
			}
		}
	}
	return nil
}
