// Package cachefile writes files of a local cache atomically. A cache is
// an optimisation: every function here reports nothing, and a failure
// only costs the cached copy.
package cachefile

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
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
