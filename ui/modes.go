package ui

import "io/fs"

func permBits(m uint32) fs.FileMode {
	mode := fs.FileMode(m & 0o777)
	if m&0o4000 != 0 {
		mode |= fs.ModeSetuid
	}
	if m&0o2000 != 0 {
		mode |= fs.ModeSetgid
	}
	if m&0o1000 != 0 {
		mode |= fs.ModeSticky
	}
	return mode
}

func dirMode(m uint32) fs.FileMode     { return fs.ModeDir | permBits(m) }
func fileMode(m uint32) fs.FileMode    { return permBits(m) }
func symlinkMode(m uint32) fs.FileMode { return fs.ModeSymlink | permBits(m) }
