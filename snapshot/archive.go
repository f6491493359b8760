package snapshot

import (
	"archive/tar"
	"archive/zip"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"path"
	"strings"

	"github.com/cofferhq/coffer/repo"
)

// ArchiveFormat is a kind of archive WriteArchive writes.
type ArchiveFormat string

// The archive formats WriteArchive writes.
const (
	ArchiveTar   ArchiveFormat = "tar"
	ArchiveTarGz ArchiveFormat = "tar.gz"
	ArchiveZip   ArchiveFormat = "zip"
)

// ArchiveFormats lists every format, for messages naming the choices.
var ArchiveFormats = []ArchiveFormat{ArchiveTar, ArchiveTarGz, ArchiveZip}

// ParseArchiveFormat returns the format named s, or an error listing the
// formats there are.
func ParseArchiveFormat(s string) (ArchiveFormat, error) {
	for _, f := range ArchiveFormats {
		if string(f) == s {
			return f, nil
		}
	}
	return "", fmt.Errorf("unknown archive format %q: use tar, tar.gz or zip", s)
}

// ArchiveOptions says what WriteArchive writes.
type ArchiveOptions struct {
	Format ArchiveFormat
	// Name is the path of the archived node in the archive; everything
	// below a directory is inside it.
	Name string
	// LoadTree, if set, loads the archived directory's own tree, so that
	// a caller holding decoded trees (the UI's cache: the directory
	// archived is most likely one just browsed) need not decode it again.
	// The trees below it are loaded ahead by Walk through the loader.
	LoadTree func(ctx context.Context, id repo.ID) ([]*Node, error)
	// Incomplete, if set, is called for each file that was not read in
	// full at backup time (Node.Error says why): the archive holds what
	// was read, StoredSize bytes, under the file's name.
	Incomplete func(p string, n *Node)
}

// WriteArchive writes root (a directory with everything below it, or a
// single entry) to w as an archive. Nothing is buffered: entries are
// written as the trees are walked and the blobs read, so on an error w
// has received a truncated archive, which the caller must not pass off
// as complete.
//
// A tar archive (PAX format) holds modes, owners by id and name, mtimes
// and ctimes to the nanosecond, symlinks, hard links (every name of an
// inode after the first as a link to the first), fifos and devices, and
// user extended attributes as SCHILY.xattr records (GNU tar restores them
// with --xattrs). Sparse files are written whole. A zip archive holds
// files, directories and symlinks (as Info-ZIP writes them: the target as
// content, S_IFLNK in the external attributes), with modes and mtimes to
// the second; hard links are stored as copies. Sockets cannot be archived
// and are left out, and zip leaves out fifos and devices too.
func WriteArchive(ctx context.Context, r BlobLoader, root *Node, w io.Writer, opt ArchiveOptions) error {
	if opt.LoadTree == nil {
		opt.LoadTree = func(ctx context.Context, id repo.ID) ([]*Node, error) { return LoadTree(ctx, r, id) }
	}
	switch opt.Format {
	case ArchiveTar:
		return writeTar(ctx, r, root, w, opt)
	case ArchiveTarGz:
		gz := gzip.NewWriter(w)
		if err := writeTar(ctx, r, root, gz, opt); err != nil {
			return err
		}
		return gz.Close()
	case ArchiveZip:
		return writeZip(ctx, r, root, w, opt)
	}
	return fmt.Errorf("unknown archive format %q: use tar, tar.gz or zip", opt.Format)
}

// walkArchive calls fn for root (at opt.Name) and everything below it.
func walkArchive(ctx context.Context, r BlobLoader, root *Node, opt ArchiveOptions, fn func(p string, n *Node) error) error {
	if opt.Incomplete != nil {
		archived := fn
		fn = func(p string, n *Node) error {
			if n.Type == TypeFile && n.Error != "" {
				opt.Incomplete(p, n)
			}
			return archived(p, n)
		}
	}
	if err := fn(opt.Name, root); err != nil {
		return err
	}
	if root.Type != TypeDir {
		return nil
	}
	nodes, err := opt.LoadTree(ctx, root.Subtree)
	if err != nil {
		return err
	}
	for _, c := range nodes {
		p := path.Join(opt.Name, c.Name)
		if err := fn(p, c); err != nil {
			return err
		}
		if c.Type == TypeDir {
			if err := Walk(ctx, r, p, c.Subtree, fn); err != nil {
				return err
			}
		}
	}
	return nil
}

// tarHeader returns n's header, nil for a node tar cannot hold.
func tarHeader(p string, n *Node) *tar.Header {
	hdr := &tar.Header{Name: p, Mode: int64(n.Mode), Uid: int(n.UID), Gid: int(n.GID),
		Uname: n.User, Gname: n.Group, ModTime: n.ModTime, ChangeTime: n.ChangeTime, Format: tar.FormatPAX}
	switch n.Type {
	case TypeDir:
		hdr.Typeflag, hdr.Name = tar.TypeDir, p+"/"
	case TypeFile:
		// What Cat writes, which is less than Size for a file not read in
		// full at backup time: a header promising more would end the
		// archive there.
		hdr.Typeflag, hdr.Size = tar.TypeReg, n.StoredSize()
	case TypeSymlink:
		hdr.Typeflag, hdr.Linkname = tar.TypeSymlink, n.LinkTarget
	case TypeFifo:
		hdr.Typeflag = tar.TypeFifo
	case TypeCharDev, TypeBlkDev:
		hdr.Typeflag = tar.TypeChar
		if n.Type == TypeBlkDev {
			hdr.Typeflag = tar.TypeBlock
		}
		// Linux's encoding of dev_t (glibc's gnu_dev_major/minor).
		hdr.Devmajor = int64((n.Rdev>>8)&0xfff | (n.Rdev>>32)&^0xfff)
		hdr.Devminor = int64(n.Rdev&0xff | (n.Rdev>>12)&^0xff&0xffffffff)
	default:
		return nil // sockets cannot be archived
	}
	for _, x := range n.Xattrs {
		if hdr.PAXRecords == nil {
			hdr.PAXRecords = map[string]string{}
		}
		hdr.PAXRecords["SCHILY.xattr."+x.Name] = string(x.Value)
	}
	return hdr
}

func writeTar(ctx context.Context, r BlobLoader, root *Node, w io.Writer, opt ArchiveOptions) error {
	tw := tar.NewWriter(w)
	// The first archived name of each inode with more than one link; the
	// others become links to it, as GNU tar writes them.
	first := map[[2]uint64]string{}
	err := walkArchive(ctx, r, root, opt, func(p string, n *Node) error {
		hdr := tarHeader(p, n)
		if hdr == nil {
			return nil
		}
		if n.Links > 1 && n.Type != TypeDir {
			key := [2]uint64{n.Device, n.Inode}
			if target, ok := first[key]; ok {
				hdr.Typeflag, hdr.Linkname, hdr.Size = tar.TypeLink, target, 0
				return tw.WriteHeader(hdr)
			}
			first[key] = p
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if n.Type == TypeFile {
			return Cat(ctx, r, n, tw)
		}
		return nil
	})
	if err != nil {
		return err
	}
	return tw.Close()
}

func writeZip(ctx context.Context, r BlobLoader, root *Node, w io.Writer, opt ArchiveOptions) error {
	zw := zip.NewWriter(w)
	err := walkArchive(ctx, r, root, opt, func(p string, n *Node) error {
		// zip.Writer stores Modified as the extended timestamp field too,
		// which unzip restores to the second (the DOS time has 2 s steps).
		fh := &zip.FileHeader{Name: strings.TrimPrefix(path.Clean(p), "/"), Modified: n.ModTime, Method: zip.Deflate}
		switch n.Type {
		case TypeDir:
			fh.Name += "/"
			fh.Method = zip.Store
		case TypeFile, TypeSymlink:
		default:
			return nil // zip holds no devices, fifos or sockets
		}
		fh.SetMode(n.FileMode())
		fw, err := zw.CreateHeader(fh)
		if err != nil {
			return err
		}
		switch n.Type {
		case TypeFile:
			return Cat(ctx, r, n, fw)
		case TypeSymlink:
			_, err = io.WriteString(fw, n.LinkTarget)
		}
		return err
	})
	if err != nil {
		return err
	}
	return zw.Close()
}
