// Package cachefile writes files of a local cache atomically. A cache is
// an optimisation: every function here reports nothing, and a failure
// only costs the cached copy.
package cachefile

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// Write stores b at path through a temporary file and a rename, so a
// reader sees the old file, the new one, or none, never a part.
// Directories are created with mode 0700.
func Write(path string, b []byte) {
	Copy(path, bytes.NewReader(b))
}

// Copy is Write for bytes read from r.
func Copy(path string, r io.Reader) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return
	}
	tmp, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return
	}
	_, werr := io.Copy(tmp, r)
	cerr := tmp.Close()
	if werr != nil || cerr != nil || os.Rename(tmp.Name(), path) != nil {
		_ = os.Remove(tmp.Name())
	}
}

// tagName and tagContent are a cache directory tag
// (https://bford.info/cachedir/): backup tools, coffer's own included
// when asked to exclude caches, and tar --exclude-caches skip a
// directory holding it.
const (
	tagName    = "CACHEDIR.TAG"
	tagContent = "Signature: 8a477f597d28d172789f06886806bc55\n" +
		"# This file is a cache directory tag created by coffer.\n" +
		"# For information about cache directory tags, see:\n" +
		"#\thttps://bford.info/cachedir/\n"
)

// Use marks dir as a cache directory in use now: it is created (mode
// 0700) with a cache directory tag if need be, and its modification time
// set to now, which Dirs reports as its last use.
func Use(dir string) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return
	}
	if _, err := os.Stat(filepath.Join(dir, tagName)); err != nil {
		Write(filepath.Join(dir, tagName), []byte(tagContent))
	}
	now := time.Now()
	_ = os.Chtimes(dir, now, now)
}

// Dir is one cache directory: what Dirs reports.
type Dir struct {
	Name string    // its name in the base directory
	Path string    // base joined with Name
	Size int64     // bytes of the files below it
	Used time.Time // when Use last marked it
}

// Dirs returns the directories in base whose name match accepts, with
// their sizes and last use; none when base does not exist.
func Dirs(base string, match func(name string) bool) ([]Dir, error) {
	entries, err := os.ReadDir(base)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var dirs []Dir
	for _, e := range entries {
		if !e.IsDir() || !match(e.Name()) {
			continue
		}
		d := Dir{Name: e.Name(), Path: filepath.Join(base, e.Name())}
		if fi, err := e.Info(); err == nil {
			d.Used = fi.ModTime()
		}
		_ = filepath.WalkDir(d.Path, func(_ string, de fs.DirEntry, err error) error {
			if err == nil && de.Type().IsRegular() {
				if fi, err := de.Info(); err == nil {
					d.Size += fi.Size()
				}
			}
			return nil
		})
		dirs = append(dirs, d)
	}
	return dirs, nil
}

// Tag marks base, the directory holding caches, with a cache directory
// tag, creating it if need be.
func Tag(base string) {
	if err := os.MkdirAll(base, 0o700); err != nil {
		return
	}
	if _, err := os.Stat(filepath.Join(base, tagName)); err != nil {
		Write(filepath.Join(base, tagName), []byte(tagContent))
	}
}
