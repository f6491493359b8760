package mount

import (
	"container/list"
	"fmt"
	"os"
	"sync"

	"github.com/cofferhq/coffer/repo"
)

// DefaultSpillBytes bounds the spill cache when Options.SpillBytes is 0:
// room for the chunks of the files a backup read in parallel with the one
// being read (interleaved with it in its packs) until a reader gets there.
const DefaultSpillBytes = 256 << 20

// spillCache keeps blobs that a fetch of a pack span brought along but no
// read needs yet (chunks of other files, interleaved in the pack) on disk,
// sealed as they came from the pack: still encrypted under the
// repository's key and authenticated again (repo.OpenBlob) when they are
// used, so nothing is kept in plaintext at rest and a byte changed on the
// disk is an integrity error, never wrong data. Each fetch writes a
// segment file of its own; once the segments exceed max, the oldest is
// dropped whole. Segment files are unlinked as soon as they are created
// (only the open descriptor keeps them), and their directory is removed
// by close, so nothing outlives the mount.
type spillCache struct {
	mu   sync.Mutex
	dir  string
	max  int64
	size int64
	segs list.List // of *spillSeg, oldest first
	m    map[repo.ID]spillLoc
	err  error // the first write failure, after which nothing is spilled
}

// spillSeg is one fetch's segment file.
type spillSeg struct {
	f    *os.File
	size int64
	ids  []repo.ID
	elem *list.Element
}

// spillLoc is where a blob lies in a segment.
type spillLoc struct {
	seg *spillSeg
	off int64
	n   int
}

// newSpillCache makes a spill cache in a new directory under parent
// (os.TempDir() if empty).
func newSpillCache(parent string, max int64) (*spillCache, error) {
	dir, err := os.MkdirTemp(parent, "coffer-mount-")
	if err != nil {
		return nil, fmt.Errorf("making the mount's spill directory: %w", err)
	}
	return &spillCache{dir: dir, max: max, m: map[repo.ID]spillLoc{}}, nil
}

// newSegment starts a segment; nil once writing has failed.
func (s *spillCache) newSegment() *spillSeg {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return nil
	}
	f, err := os.CreateTemp(s.dir, "seg-")
	if err == nil {
		err = os.Remove(f.Name())
	}
	if err != nil {
		if f != nil {
			f.Close()
		}
		s.err = err
		return nil
	}
	seg := &spillSeg{f: f}
	seg.elem = s.segs.PushBack(seg)
	return seg
}

// put appends a sealed blob to seg and records it, dropping the oldest
// other segments past the bound; it reports whether the blob is kept.
func (s *spillCache) put(seg *spillSeg, id repo.ID, sealed []byte) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if seg.elem == nil || s.err != nil { // dropped meanwhile, or failed
		return false
	}
	if _, err := seg.f.WriteAt(sealed, seg.size); err != nil {
		s.err = err
		return false
	}
	s.m[id] = spillLoc{seg: seg, off: seg.size, n: len(sealed)}
	seg.ids = append(seg.ids, id)
	seg.size += int64(len(sealed))
	s.size += int64(len(sealed))
	for s.size > s.max && s.segs.Front() != nil && s.segs.Front().Value != seg {
		s.drop(s.segs.Front().Value.(*spillSeg))
	}
	return true
}

// drop forgets a segment and closes its file, which frees its space.
func (s *spillCache) drop(seg *spillSeg) {
	s.segs.Remove(seg.elem)
	seg.elem = nil
	for _, id := range seg.ids {
		if l, ok := s.m[id]; ok && l.seg == seg {
			delete(s.m, id)
		}
	}
	s.size -= seg.size
	seg.f.Close()
}

// has reports whether id is spilled.
func (s *spillCache) has(id repo.ID) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.m[id]
	return ok
}

// get returns a spilled blob's sealed bytes, in a buffer of the caller's;
// ok is false if it is not (or no longer) spilled.
func (s *spillCache) get(id repo.ID) ([]byte, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	l, ok := s.m[id]
	if !ok {
		return nil, false
	}
	buf := make([]byte, l.n)
	if _, err := l.seg.f.ReadAt(buf, l.off); err != nil {
		delete(s.m, id)
		return nil, false
	}
	return buf, true
}

// forget drops id, whose spilled bytes failed authentication, so that the
// next read fetches it from the store again.
func (s *spillCache) forget(id repo.ID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, id)
}

// close drops every segment and removes the directory.
func (s *spillCache) close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for s.segs.Front() != nil {
		s.drop(s.segs.Front().Value.(*spillSeg))
	}
	return os.RemoveAll(s.dir)
}
