//go:build !linux

package snapshot

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"
)

// This file holds the metadata code for systems other than Linux, which
// coffer builds for but does not test on: what the os package offers
// (type, permission bits, size, mtime, symlink targets), plus ownership,
// inode, ctime and device numbers where the system has a stat_t
// (meta_bsd.go). Extended attributes are neither read nor written, holes
// are not detected (files are read whole), and special files are not
// created on restore; the restorer warns for what a snapshot holds and
// this system cannot restore.

// readMeta describes the filesystem object at path as a Node named name,
// without following a final symlink and without reading file content.
// names resolves owner names where the system has owners.
func readMeta(path, name string, names *idNames) (*Node, error) {
	info, err := os.Lstat(path)
	if err != nil {
		return nil, err // a *PathError that names path
	}
	typ, ok := fileModeNodeType(info.Mode())
	if !ok {
		return nil, fmt.Errorf("%s: unsupported file type %v", path, info.Mode().Type())
	}
	n := &Node{
		Name:    name,
		Type:    typ,
		Mode:    posixMode(info.Mode()),
		ModTime: info.ModTime().UTC(),
	}
	switch typ {
	case TypeFile:
		n.Size = info.Size()
	case TypeSymlink:
		target, err := os.Readlink(path)
		if err != nil {
			return nil, err
		}
		n.LinkTarget = target
		n.Size = int64(len(target))
	}
	statExtra(n, info, names)
	return n, nil
}

// readMetaSince is readMeta: extended attributes, which readMetaSince
// takes from the parent snapshot on Linux, are not read here, and the
// entry is looked up by its path, not from its directory's descriptor.
func readMetaSince(_ int, path, name string, names *idNames, _ *Node) (*Node, error) {
	return readMeta(path, name, names)
}

func fileModeNodeType(m fs.FileMode) (NodeType, bool) {
	switch {
	case m.IsRegular():
		return TypeFile, true
	case m.IsDir():
		return TypeDir, true
	case m&fs.ModeSymlink != 0:
		return TypeSymlink, true
	case m&fs.ModeNamedPipe != 0:
		return TypeFifo, true
	case m&fs.ModeSocket != 0:
		return TypeSocket, true
	case m&fs.ModeCharDevice != 0:
		return TypeCharDev, true
	case m&fs.ModeDevice != 0:
		return TypeBlkDev, true
	}
	return "", false
}

// posixMode turns Go's mode bits into st_mode & 07777, what Node records.
func posixMode(m fs.FileMode) uint32 {
	mode := uint32(m.Perm())
	if m&fs.ModeSetuid != 0 {
		mode |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		mode |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		mode |= 0o1000
	}
	return mode
}

// fileMode is posixMode's inverse, for os.Chmod.
func fileMode(mode uint32) fs.FileMode {
	m := fs.FileMode(mode & 0o777)
	if mode&0o4000 != 0 {
		m |= fs.ModeSetuid
	}
	if mode&0o2000 != 0 {
		m |= fs.ModeSetgid
	}
	if mode&0o1000 != 0 {
		m |= fs.ModeSticky
	}
	return m
}

// createSpecial does not create the special file n describes: see
// errSpecialUnsupported.
func createSpecial(path string, n *Node) error {
	return fmt.Errorf("%s (%s): %w", path, n.Type, errSpecialUnsupported)
}

// applyMeta gives the object at path the ownership (with asRoot, where
// the system has owners), mode and mtime recorded in n, as the Linux
// version does, except that extended attributes are not written (each
// node that has some gets a warning wrapping errXattrUnsupported) and a
// symlink's own mode and times are left as they are.
func applyMeta(path string, n *Node, asRoot bool) error {
	if asRoot {
		if err := chownNode(path, n); err != nil {
			return err
		}
	}
	var warnings []error
	if len(n.Xattrs) > 0 {
		warnings = append(warnings, fmt.Errorf("%s: %d extended attributes not restored: %w", path, len(n.Xattrs), errXattrUnsupported))
	}
	if n.Type == TypeSymlink {
		return errors.Join(warnings...)
	}
	if err := os.Chmod(path, fileMode(n.Mode)); err != nil {
		return err
	}
	// A zero time leaves the access time as it is: it is not recorded.
	if err := os.Chtimes(path, time.Time{}, n.ModTime); err != nil {
		return err
	}
	return errors.Join(warnings...)
}

// dense says every file is: holes are not detected here.
func dense(fs.FileInfo) bool { return true }

// dataRegions returns the whole file as one data region: holes are not
// detected here, so a sparse file is read, and stored, with its zeros
// (deduplicated and compressed, but restored dense).
func dataRegions(f *os.File, size int64) ([]region, error) {
	if size <= 0 {
		return nil, nil
	}
	return []region{{0, size}}, nil
}
