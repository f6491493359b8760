package ui

import (
	"archive/tar"
	"archive/zip"
	"compress/gzip"
	"context"
	"io"
	"net/http"
	"path"
	"strings"

	"github.com/cofferhq/coffer/snapshot"
)

// handleArchive streams a directory (or a single file) as a .tar.gz or,
// with ?format=zip, a .zip archive. Nothing is buffered: entries are
// written as the trees are walked and the blobs read.
func (s *Server) handleArchive(w http.ResponseWriter, r *http.Request) {
	sn, n, abs, err := s.resolve(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	format := r.URL.Query().Get("format")
	if format == "" {
		format = "tar.gz"
	}
	if format != "tar.gz" && format != "zip" {
		s.fail(w, r, badRequest("format must be tar.gz or zip"))
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
		name = "snapshot-" + sn.ID.Short()
	}
	h := w.Header()
	h.Set("Content-Security-Policy", rawCSP)
	if format == "zip" {
		h.Set("Content-Type", "application/zip")
	} else {
		h.Set("Content-Type", "application/gzip")
	}
	h.Set("Content-Disposition", contentDisposition("attachment", name+"."+format))
	if r.Method == http.MethodHead {
		return
	}
	if format == "zip" {
		err = s.writeZip(r.Context(), w, name, n)
	} else {
		err = s.writeTarGz(r.Context(), w, name, n)
	}
	if err != nil {
		s.logf("ui: archive of %s: %v", abs, err)
		panic(http.ErrAbortHandler) // a truncated archive must not look complete
	}
}

// walkNode calls fn for n (at name) and everything below it. The
// directory archived is most likely one just browsed: its nodes come from
// the cache instead of a second decoding, and only the trees below it are
// walked by snapshot.Walk (which loads them ahead).
func (s *Server) walkNode(ctx context.Context, name string, n *snapshot.Node, fn func(p string, n *snapshot.Node) error) error {
	if err := fn(name, n); err != nil {
		return err
	}
	if n.Type != snapshot.TypeDir {
		return nil
	}
	nodes, err := s.cache.tree(ctx, n.Subtree)
	if err != nil {
		return err
	}
	for _, c := range nodes {
		p := path.Join(name, c.Name)
		if err := fn(p, c); err != nil {
			return err
		}
		if c.Type == snapshot.TypeDir {
			if err := snapshot.Walk(ctx, s.cache, p, c.Subtree, fn); err != nil {
				return err
			}
		}
	}
	return nil
}

func (s *Server) writeTarGz(ctx context.Context, w io.Writer, name string, root *snapshot.Node) error {
	gz := gzip.NewWriter(w)
	tw := tar.NewWriter(gz)
	err := s.walkNode(ctx, name, root, func(p string, n *snapshot.Node) error {
		hdr := &tar.Header{Name: p, Mode: int64(n.Mode), Uid: int(n.UID), Gid: int(n.GID),
			Uname: n.User, Gname: n.Group, ModTime: n.ModTime, Format: tar.FormatPAX}
		switch n.Type {
		case snapshot.TypeDir:
			hdr.Typeflag, hdr.Name = tar.TypeDir, p+"/"
		case snapshot.TypeFile:
			hdr.Typeflag, hdr.Size = tar.TypeReg, n.Size
		case snapshot.TypeSymlink:
			hdr.Typeflag, hdr.Linkname = tar.TypeSymlink, n.LinkTarget
		case snapshot.TypeFifo:
			hdr.Typeflag = tar.TypeFifo
		case snapshot.TypeCharDev, snapshot.TypeBlkDev:
			hdr.Typeflag = tar.TypeChar
			if n.Type == snapshot.TypeBlkDev {
				hdr.Typeflag = tar.TypeBlock
			}
			hdr.Devmajor, hdr.Devminor = int64((n.Rdev>>8)&0xfff), int64((n.Rdev&0xff)|((n.Rdev>>12)&0xfff00))
		default:
			return nil // sockets cannot be archived
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if n.Type == snapshot.TypeFile {
			return snapshot.Cat(ctx, s.cache, n, tw)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return gz.Close()
}

func (s *Server) writeZip(ctx context.Context, w io.Writer, name string, root *snapshot.Node) error {
	zw := zip.NewWriter(w)
	err := s.walkNode(ctx, name, root, func(p string, n *snapshot.Node) error {
		fh := &zip.FileHeader{Name: strings.TrimPrefix(path.Clean(p), "/"), Modified: n.ModTime, Method: zip.Deflate}
		switch n.Type {
		case snapshot.TypeDir:
			fh.Name += "/"
			fh.Method = zip.Store
			fh.SetMode(n.FileMode())
		case snapshot.TypeFile:
			fh.SetMode(n.FileMode())
		case snapshot.TypeSymlink:
			fh.SetMode(n.FileMode())
		default:
			return nil // zip holds no devices, fifos or sockets
		}
		fw, err := zw.CreateHeader(fh)
		if err != nil {
			return err
		}
		switch n.Type {
		case snapshot.TypeFile:
			return snapshot.Cat(ctx, s.cache, n, fw)
		case snapshot.TypeSymlink:
			_, err = io.WriteString(fw, n.LinkTarget)
		}
		return err
	})
	if err != nil {
		return err
	}
	return zw.Close()
}
