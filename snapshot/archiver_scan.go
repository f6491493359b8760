package snapshot

// The scanner, which runs beside the backup only to give a progress display
// its totals.

import (
	"context"
	"os"
	"path/filepath"
	"strings"
)

// scan walks the paths ahead of the backup to total files and bytes.
func (a *archiver) scan(ctx context.Context, paths []string) {
	for _, root := range paths {
		_ = filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if err != nil || a.skip[p] {
				if d != nil && d.IsDir() {
					return filepath.SkipDir
				}
				return nil
			}
			if p != root {
				rel, _ := filepath.Rel(root, p)
				if a.excluded(strings.Split(rel, string(filepath.Separator)), d.IsDir()) {
					if d.IsDir() {
						return filepath.SkipDir
					}
					return nil
				}
			}
			// Progress counts regular files, as the summary does, not
			// symlinks and special files.
			if d.Type().IsRegular() {
				if fi, err := d.Info(); err == nil {
					a.prog.Scanned(1, fi.Size())
				}
			}
			return nil
		})
	}
}
