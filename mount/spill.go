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

// spillMemBytes is how much of the spill cache stays in memory before
// its oldest segments go to disk: a reader that goes on through the
// tree, as tar does, uses most spilled blobs soon after their fetch, and
// writing them to a file first cost as much CPU as decrypting them
// (docs/benchmarks.md, "mount").
const spillMemBytes = 64 << 20

// spillCache keeps blobs that a fetch of a pack span brought along but no
// read needs yet (chunks of other files, interleaved in the pack), sealed
// as they came from the pack: still encrypted under the repository's key
// and authenticated again (repo.OpenBlob) when they are used, so nothing
// is kept in plaintext, and a byte changed on the disk is an integrity
// error, never wrong data. Each fetch makes a segment of its own, whose
// blobs stay in memory (the fetch's own buffers, not copied) while the
// segments in memory hold at most memMax bytes; past that, the oldest
// segment in memory is written to a file of its own, in one write. Once
// all segments exceed max, the oldest is dropped whole. A blob a reader
// takes leaves the spill cache (it is in the memory cache then), and a
// segment with no blob left goes at once. Segment files are unlinked as
// soon as they are created (only the open descriptor keeps them), and
// their directory is removed by close, so nothing outlives the mount.
type spillCache struct {
	mu      sync.Mutex
	dir     string
	max     int64
	memMax  int64
	size    int64     // of every segment: its blobs in memory, or its file
	memSize int64     // of the blobs in memory
	segs    list.List // of *spillSeg, oldest first
	m       map[repo.ID]spillLoc
	err     error // the first write failure, after which segments are dropped, not written
}

// spillSeg is one fetch's segment: its blobs in memory, or in a file (f).
type spillSeg struct {
	f    *os.File
	size int64 // its share of spillCache.size
	ids  []repo.ID
	live int // blobs not taken yet
	elem *list.Element
}

// spillLoc is a spilled blob: its bytes while its segment is in memory,
// else where they lie in the segment's file.
type spillLoc struct {
	seg *spillSeg
	mem []byte
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
	return &spillCache{dir: dir, max: max, memMax: min(max, spillMemBytes), m: map[repo.ID]spillLoc{}}, nil
}

// newSegment starts a segment, in memory.
func (s *spillCache) newSegment() *spillSeg {
	s.mu.Lock()
	defer s.mu.Unlock()
	seg := &spillSeg{}
	seg.elem = s.segs.PushBack(seg)
	return seg
}

// put adds a sealed blob to seg, keeping sealed itself while seg is in
// memory, and records it; then it drops the oldest other segments past
// the bound and writes the oldest in memory to disk past memMax. It
// reports whether the blob is kept.
func (s *spillCache) put(seg *spillSeg, id repo.ID, sealed []byte) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if seg.elem == nil { // dropped meanwhile
		return false
	}
	l := spillLoc{seg: seg, off: seg.size, n: len(sealed)}
	if seg.f != nil {
		if _, err := seg.f.WriteAt(sealed, seg.size); err != nil {
			s.err = err
			s.drop(seg)
			return false
		}
	} else {
		l.mem = sealed
		s.memSize += int64(len(sealed))
	}
	s.m[id] = l
	seg.ids = append(seg.ids, id)
	seg.live++
	seg.size += int64(len(sealed))
	s.size += int64(len(sealed))
	for s.size > s.max && s.segs.Front() != nil && s.segs.Front().Value != seg {
		s.drop(s.segs.Front().Value.(*spillSeg))
	}
	for e := s.segs.Front(); e != nil && s.memSize > s.memMax; {
		next := e.Next()
		if old := e.Value.(*spillSeg); old.f == nil {
			s.toDisk(old)
		}
		e = next
	}
	return seg.elem != nil
}

// toDisk writes the blobs of a segment in memory to a file of its own,
// in one write, or drops the segment if that fails (its blobs are
// fetched again when read).
func (s *spillCache) toDisk(seg *spillSeg) {
	if s.err == nil {
		var buf []byte
		for _, id := range seg.ids {
			if l, ok := s.m[id]; ok && l.seg == seg {
				buf = append(buf, l.mem...)
			}
		}
		f, err := os.CreateTemp(s.dir, "seg-")
		if err == nil {
			if err = os.Remove(f.Name()); err == nil {
				_, err = f.WriteAt(buf, 0)
			}
			if err != nil {
				f.Close()
			}
		}
		if err == nil {
			var off int64
			for _, id := range seg.ids {
				if l, ok := s.m[id]; ok && l.seg == seg {
					s.memSize -= int64(l.n)
					l.mem, l.off = nil, off
					s.m[id] = l
					off += int64(l.n)
				}
			}
			s.size += off - seg.size
			seg.f, seg.size = f, off
			return
		}
		s.err = err
	}
	s.drop(seg)
}

// drop forgets a segment and its blobs, and closes its file.
func (s *spillCache) drop(seg *spillSeg) {
	s.segs.Remove(seg.elem)
	seg.elem = nil
	for _, id := range seg.ids {
		if l, ok := s.m[id]; ok && l.seg == seg {
			delete(s.m, id)
			if l.mem != nil {
				s.memSize -= int64(l.n)
			}
		}
	}
	s.size -= seg.size
	if seg.f != nil {
		seg.f.Close()
	}
}

// has reports whether id is spilled.
func (s *spillCache) has(id repo.ID) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.m[id]
	return ok
}

// take removes a spilled blob from the cache and returns its sealed
// bytes, which are the caller's to keep (and to decrypt in place); ok is
// false if it is not (or no longer) spilled. A segment with no blob left
// goes.
func (s *spillCache) take(id repo.ID) (sealed []byte, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	l, ok := s.m[id]
	if !ok {
		return nil, false
	}
	delete(s.m, id)
	seg := l.seg
	seg.live--
	if l.mem != nil {
		sealed = l.mem
		s.memSize -= int64(l.n)
		seg.size -= int64(l.n)
		s.size -= int64(l.n)
	} else {
		sealed = make([]byte, l.n)
		if _, err := seg.f.ReadAt(sealed, l.off); err != nil {
			sealed, ok = nil, false
		}
	}
	if seg.live == 0 && seg.elem != nil {
		s.drop(seg)
	}
	return sealed, ok
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
