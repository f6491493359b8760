package snapshot

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io/fs"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/cofferhq/coffer/repo"
)

// NodeType is the kind of filesystem object a Node records.
type NodeType string

// The node types a tree can hold.
const (
	TypeFile    NodeType = "file"
	TypeDir     NodeType = "dir"
	TypeSymlink NodeType = "symlink"
	TypeFifo    NodeType = "fifo"
	TypeSocket  NodeType = "socket"
	TypeCharDev NodeType = "chardev"
	TypeBlkDev  NodeType = "blockdev"
)

// Extent is one piece of a regular file's content, in file order: either a
// run of Hole zero bytes that is not stored (a hole of a sparse file), or a
// chunk of data stored as the blob ID whose plaintext is Size bytes long.
type Extent struct {
	ID   repo.ID `json:"id,omitzero"`
	Size int64   `json:"size"`
	Hole bool    `json:"hole,omitempty"`
}

// Xattr is one extended attribute.
type Xattr struct {
	Name  string `json:"name"`
	Value []byte `json:"value"`
}

// Node is one entry of a directory: its name, metadata and, for a regular
// file, its content; for a directory, the id of its own tree blob.
//
// Times are stored with nanosecond precision in UTC. The access time is
// not recorded: it changes whenever a file is read, so recording it would
// make every directory look changed to the next backup (as borg decided
// too); a restored entry gets its mtime as atime. Inode, Device and Links
// are recorded so that a later backup can tell an unchanged file without
// reading it, and so that hard links can be restored as hard links.
type Node struct {
	Name       string    `json:"name"`
	Type       NodeType  `json:"type"`
	Mode       uint32    `json:"mode"` // POSIX st_mode & 07777: permissions plus setuid, setgid, sticky
	UID        uint32    `json:"uid"`
	GID        uint32    `json:"gid"`
	User       string    `json:"user,omitempty"`
	Group      string    `json:"group,omitempty"`
	ModTime    time.Time `json:"mtime"`
	ChangeTime time.Time `json:"ctime,omitzero"`
	Inode      uint64    `json:"inode,omitempty"`
	Device     uint64    `json:"device,omitempty"` // st_dev of the filesystem holding the node
	Links      uint64    `json:"links,omitempty"`  // st_nlink
	Rdev       uint64    `json:"rdev,omitempty"`   // device number, for TypeCharDev and TypeBlkDev
	Size       int64     `json:"size,omitempty"`   // logical size of a regular file (holes included) or of a symlink target
	LinkTarget string    `json:"linktarget,omitempty"`
	Xattrs     []Xattr   `json:"xattrs,omitempty"`
	Content    []Extent  `json:"content,omitempty"`
	Subtree    repo.ID   `json:"subtree,omitzero"`
	// Error records why the node could not be read completely (for example
	// permission denied). Such a file has no or partial Content and restore
	// skips its data.
	Error string `json:"error,omitempty"`
}

// StoredSize returns the number of bytes Cat writes for a file node: the
// sum of its content's extents, holes included. It is Size unless the
// file could not be read in full at backup time (Error says why), when
// it is what was read.
func (n *Node) StoredSize() int64 {
	var size int64
	for _, e := range n.Content {
		size += e.Size
	}
	return size
}

// IncompleteWarning is the warning about a file node not read in full at
// backup time that Restore, WriteArchive's callers and the like give,
// with what they did with it (done: "restored", "archived").
func (n *Node) IncompleteWarning(done string) error {
	return fmt.Errorf("was not readable at backup time (%s); %s with the %d of its %d bytes that were read", n.Error, done, n.StoredSize(), n.Size)
}

// FileMode returns the node's type and permissions as an fs.FileMode, the
// one translation of the stored POSIX bits that every listing (`ls -l`,
// the UI) and archive shows, so that they cannot disagree.
func (n *Node) FileMode() fs.FileMode {
	m := fs.FileMode(n.Mode & 0o777)
	if n.Mode&0o4000 != 0 {
		m |= fs.ModeSetuid
	}
	if n.Mode&0o2000 != 0 {
		m |= fs.ModeSetgid
	}
	if n.Mode&0o1000 != 0 {
		m |= fs.ModeSticky
	}
	switch n.Type {
	case TypeDir:
		m |= fs.ModeDir
	case TypeSymlink:
		m |= fs.ModeSymlink
	case TypeFifo:
		m |= fs.ModeNamedPipe
	case TypeSocket:
		m |= fs.ModeSocket
	case TypeCharDev:
		m |= fs.ModeDevice | fs.ModeCharDevice
	case TypeBlkDev:
		m |= fs.ModeDevice
	}
	return m
}

// Names, link targets and xattr names on Linux are byte strings that need
// not be valid UTF-8, which a JSON string cannot carry unchanged. Such a
// value is stored in a *_raw field (base64 bytes) instead.

type nodeJSON Node // Node without its methods

type nodeWire struct {
	*nodeJSON
	NameRaw       []byte `json:"name_raw,omitempty"`
	LinkTargetRaw []byte `json:"linktarget_raw,omitempty"`
}

// MarshalJSON encodes n, moving names that are not UTF-8 to raw fields.
func (n *Node) MarshalJSON() ([]byte, error) { return json.Marshal(n.wire()) }

// wire returns n's encoded form.
func (n *Node) wire() nodeWire {
	if utf8.ValidString(n.Name) && utf8.ValidString(n.LinkTarget) {
		return nodeWire{nodeJSON: (*nodeJSON)(n)}
	}
	c := *n
	w := nodeWire{nodeJSON: (*nodeJSON)(&c)}
	if !utf8.ValidString(c.Name) {
		w.NameRaw, c.Name = []byte(c.Name), ""
	}
	if !utf8.ValidString(c.LinkTarget) {
		w.LinkTargetRaw, c.LinkTarget = []byte(c.LinkTarget), ""
	}
	return w
}

// nodeWireValue is nodeWire holding the node by value, so that a slice
// of them decodes with one allocation for all nodes.
type nodeWireValue struct {
	nodeJSON
	NameRaw       []byte `json:"name_raw,omitempty"`
	LinkTargetRaw []byte `json:"linktarget_raw,omitempty"`
}

// node returns the decoded node, with raw names moved back.
func (w *nodeWireValue) node() *Node {
	n := (*Node)(&w.nodeJSON)
	if w.NameRaw != nil {
		n.Name = string(w.NameRaw)
	}
	if w.LinkTargetRaw != nil {
		n.LinkTarget = string(w.LinkTargetRaw)
	}
	return n
}

// UnmarshalJSON decodes what MarshalJSON wrote.
func (n *Node) UnmarshalJSON(b []byte) error {
	w := nodeWire{nodeJSON: (*nodeJSON)(n)}
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	if w.NameRaw != nil {
		n.Name = string(w.NameRaw)
	}
	if w.LinkTargetRaw != nil {
		n.LinkTarget = string(w.LinkTargetRaw)
	}
	return nil
}

type xattrJSON Xattr

type xattrWire struct {
	*xattrJSON
	NameRaw []byte `json:"name_raw,omitempty"`
}

// MarshalJSON encodes x, moving a name that is not UTF-8 to name_raw.
func (x Xattr) MarshalJSON() ([]byte, error) {
	w := xattrWire{xattrJSON: (*xattrJSON)(&x)}
	if !utf8.ValidString(x.Name) {
		w.NameRaw, x.Name = []byte(x.Name), ""
	}
	return json.Marshal(w)
}

// UnmarshalJSON decodes what MarshalJSON wrote.
func (x *Xattr) UnmarshalJSON(b []byte) error {
	w := xattrWire{xattrJSON: (*xattrJSON)(x)}
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	if w.NameRaw != nil {
		x.Name = string(w.NameRaw)
	}
	return nil
}

// ModeString formats the node's type and permissions as ls -l does
// ("drwsr-xr-t"), rather than as fs.FileMode.String ("dugrwxr-xr-x"),
// which people reading a listing do not expect. `coffer ls -l` and the
// web UI show it.
func (n *Node) ModeString() string {
	m := n.FileMode()
	t := byte('-')
	switch {
	case m.IsDir():
		t = 'd'
	case m&fs.ModeSymlink != 0:
		t = 'l'
	case m&fs.ModeNamedPipe != 0:
		t = 'p'
	case m&fs.ModeSocket != 0:
		t = 's'
	case m&fs.ModeCharDevice != 0:
		t = 'c'
	case m&fs.ModeDevice != 0:
		t = 'b'
	}
	b := []byte{t}
	const rwx = "rwxrwxrwx"
	for i := range 9 {
		if m&(1<<(8-i)) != 0 {
			b = append(b, rwx[i])
		} else {
			b = append(b, '-')
		}
	}
	if m&fs.ModeSetuid != 0 {
		b[3] = map[bool]byte{true: 's', false: 'S'}[b[3] == 'x']
	}
	if m&fs.ModeSetgid != 0 {
		b[6] = map[bool]byte{true: 's', false: 'S'}[b[6] == 'x']
	}
	if m&fs.ModeSticky != 0 {
		b[9] = map[bool]byte{true: 't', false: 'T'}[b[9] == 'x']
	}
	return string(b)
}

// sameNodes reports whether nodes, in any order, are prev, which is
// sorted by name, node for node (sameNode).
func sameNodes(nodes, prev []*Node) bool {
	if len(nodes) != len(prev) {
		return false
	}
	slices.SortFunc(nodes, func(a, b *Node) int { return strings.Compare(a.Name, b.Name) })
	for i, n := range nodes {
		if !sameNode(n, prev[i]) {
			return false
		}
	}
	return true
}

// sameNode reports whether a and b record the same entry: every field
// equal, times as instants (a time read from the file system and one
// decoded from a tree differ in location only). A tree of such nodes
// encodes what the other's does. TestSameNodeEveryField changes each
// field in turn, so a field added to Node and not compared here fails it.
func sameNode(a, b *Node) bool {
	return a.Name == b.Name && a.Type == b.Type && a.Mode == b.Mode &&
		a.UID == b.UID && a.GID == b.GID && a.User == b.User && a.Group == b.Group &&
		a.ModTime.Equal(b.ModTime) && a.ChangeTime.Equal(b.ChangeTime) &&
		a.Inode == b.Inode && a.Device == b.Device && a.Links == b.Links && a.Rdev == b.Rdev &&
		a.Size == b.Size && a.LinkTarget == b.LinkTarget &&
		slices.EqualFunc(a.Xattrs, b.Xattrs, func(x, y Xattr) bool { return x.Name == y.Name && bytes.Equal(x.Value, y.Value) }) &&
		slices.Equal(a.Content, b.Content) && a.Subtree == b.Subtree && a.Error == b.Error
}
