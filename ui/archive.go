package ui

import (
	"net/http"

	"github.com/cofferhq/coffer/snapshot"
)

// handleArchive streams a directory (or a single file) as a .tar.gz or,
// with ?format=tar or ?format=zip, a .tar or .zip archive (see
// snapshot.WriteArchive). Nothing is buffered: entries are written as the
// trees are walked and the blobs read.
func (s *Server) handleArchive(w http.ResponseWriter, r *http.Request) {
	sn, n, abs, err := s.resolve(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	fq := r.URL.Query().Get("format")
	if fq == "" {
		fq = "tar.gz"
	}
	format, err := snapshot.ParseArchiveFormat(fq)
	if err != nil {
		s.fail(w, r, badRequest("format must be tar, tar.gz or zip"))
		return
	}
	if r.Method != http.MethodHead {
		done, err := s.startWalk(r.Context())
		if err != nil {
			s.fail(w, r, err)
			return
		}
		defer done()
	}
	name := n.Name
	if abs == "/" {
		// The synthetic root has no name or times of its own.
		name = "snapshot-" + sn.ID.Short()
		root := *n
		root.ModTime = sn.Time
		n = &root
	}
	h := w.Header()
	h.Set("Content-Security-Policy", rawCSP)
	switch format {
	case snapshot.ArchiveZip:
		h.Set("Content-Type", "application/zip")
	case snapshot.ArchiveTar:
		h.Set("Content-Type", "application/x-tar")
	default:
		h.Set("Content-Type", "application/gzip")
	}
	h.Set("Content-Disposition", contentDisposition("attachment", name+"."+string(format)))
	if r.Method == http.MethodHead {
		return
	}
	// The directory archived is most likely one just browsed: its nodes
	// come from the cache instead of a second decoding.
	err = snapshot.WriteArchive(r.Context(), s.cache, n, w, snapshot.ArchiveOptions{Format: format, Name: name, LoadTree: s.cache.tree})
	if err != nil {
		s.logf("ui: archive of %s: %v", abs, err)
		panic(http.ErrAbortHandler) // a truncated archive must not look complete
	}
}
