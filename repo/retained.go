package repo

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"time"

	"github.com/cofferhq/coffer/internal/cachefile"
)

// A pack whose delete a retention (S3 Object Lock) refused stays until
// its date. If the index still lists it (a retained index object does)
// and a snapshot uses some of its blobs, every prune before the date
// would repack it again, each copy itself retained: so prune remembers,
// in the cache, the packs it found retained and their dates, and does
// not repack them until then. (A client without that cache repacks such
// a pack once, and then knows.)

// retainedPath returns the cache file of the packs found retained at
// this location.
func (r *Repository) retainedPath() string {
	loc := sha256.Sum256([]byte(r.store.Location()))
	return filepath.Join(r.cacheDir, "retained", hex.EncodeToString(loc[:16]))
}

// loadRetained returns the packs found retained whose date is still to
// come. A missing or damaged file is none.
func (r *Repository) loadRetained() map[ID]time.Time {
	out := map[ID]time.Time{}
	if r.cacheDir == "" {
		return out
	}
	b, err := os.ReadFile(r.retainedPath())
	if err != nil {
		return out
	}
	var m map[ID]time.Time
	if json.Unmarshal(b, &m) != nil {
		return out
	}
	now := time.Now()
	for id, until := range m {
		if until.After(now) {
			out[id] = until
		}
	}
	return out
}

// saveRetained remembers the packs found retained.
func (r *Repository) saveRetained(m map[ID]time.Time) {
	if r.cacheDir == "" {
		return
	}
	cachefile.Write(r.retainedPath(), mustJSON(m))
}
