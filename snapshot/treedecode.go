package snapshot

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"math"
	"time"
	"unicode/utf8"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/cofferhq/coffer/repo"
)

// decodeTreeFast decodes a tree blob written as encodeTree writes one:
// compact JSON, keys once each and in the order of Node's fields. Every
// incremental backup, restore, prune and `ls -r` reads all the trees it
// walks, and the generic decoder spent most of its time finding fields by
// name and moving values through reflection, about 3 µs a node.
//
// It decodes only what it is sure of and reports false for anything else
// (whitespace, another key order, raw names, nulls, numbers
// written another way, invalid UTF-8), which decodeTree then gives to the
// generic decoder: what it returns is what that decoder returns
// (FuzzDecodeTreeFast), and what it refuses the generic decoder decides.
func decodeTreeFast(b []byte) (treeWireValue, bool) {
	p := treeParser{b: b}
	w, ok := p.tree()
	return w, ok && p.i == len(b)
}

// treeParser reads one tree blob; i is the offset of the next byte.
type treeParser struct {
	b []byte
	i int
	// The last user and group names, which most nodes of a directory
	// share: one string each, not one per node.
	user, group string
}

func (p *treeParser) tree() (treeWireValue, bool) {
	var w treeWireValue
	if !p.lit(`{"version":`) {
		return w, false
	}
	v, ok := p.int()
	if !ok || v != int64(int(v)) {
		return w, false
	}
	w.Version = int(v)
	switch {
	case p.lit(`}`):
		return w, true
	case p.lit(`,"nodes":`):
		nodes := make([]nodeWireValue, 0, min(bytes.Count(p.b[p.i:], []byte(`"mode":`)), maxTreeNodes))
		if w.Nodes, ok = list(p, nodes, func(n *nodeWireValue) bool { return p.node(&n.nodeJSON) }); !ok {
			return w, false
		}
		if len(w.Nodes) == 0 {
			w.Nodes = nil // as decodeTreeGeneric returns none
		}
	}
	if p.lit(`,"parts":`) {
		if w.Parts, ok = list(p, nil, func(id *repo.ID) bool {
			var ok bool
			*id, ok = p.id()
			return ok
		}); !ok {
			return w, false
		}
	}
	return w, p.lit(`}`)
}

// The keys of a node, in the order encodeTree writes them.
const (
	keyName = iota
	keyType
	keyMode
	keyUID
	keyGID
	keyUser
	keyGroup
	keyMtime
	keyCtime
	keyInode
	keyDevice
	keyLinks
	keyRdev
	keySize
	keyLinktarget
	keyXattrs
	keyContent
	keySubtree
	keyError
)

var nodeKeys = [...]string{
	keyName:       `"name":`,
	keyType:       `"type":`,
	keyMode:       `"mode":`,
	keyUID:        `"uid":`,
	keyGID:        `"gid":`,
	keyUser:       `"user":`,
	keyGroup:      `"group":`,
	keyMtime:      `"mtime":`,
	keyCtime:      `"ctime":`,
	keyInode:      `"inode":`,
	keyDevice:     `"device":`,
	keyLinks:      `"links":`,
	keyRdev:       `"rdev":`,
	keySize:       `"size":`,
	keyLinktarget: `"linktarget":`,
	keyXattrs:     `"xattrs":`,
	keyContent:    `"content":`,
	keySubtree:    `"subtree":`,
	keyError:      `"error":`,
}

// node reads one node into n. Keys must come in nodeKeys' order, which
// also rules out a key given twice.
func (p *treeParser) node(n *nodeJSON) bool {
	if !p.lit(`{`) {
		return false
	}
	next := 0
	for first := true; ; first = false {
		if p.lit(`}`) {
			return true
		}
		if !first && !p.lit(`,`) {
			return false
		}
		k := next
		for k < len(nodeKeys) && !p.lit(nodeKeys[k]) {
			k++
		}
		if k == len(nodeKeys) {
			return false // a key it does not take, or one out of order
		}
		next = k + 1
		var ok bool
		switch k {
		case keyName:
			n.Name, ok = p.str()
		case keyType:
			n.Type, ok = p.nodeType()
		case keyMode:
			n.Mode, ok = p.uint32()
		case keyUID:
			n.UID, ok = p.uint32()
		case keyGID:
			n.GID, ok = p.uint32()
		case keyUser:
			n.User, ok = p.shared(&p.user)
		case keyGroup:
			n.Group, ok = p.shared(&p.group)
		case keyMtime:
			n.ModTime, ok = p.time()
		case keyCtime:
			n.ChangeTime, ok = p.time()
		case keyInode:
			n.Inode, ok = p.uint()
		case keyDevice:
			n.Device, ok = p.uint()
		case keyLinks:
			n.Links, ok = p.uint()
		case keyRdev:
			n.Rdev, ok = p.uint()
		case keySize:
			n.Size, ok = p.int()
		case keyLinktarget:
			n.LinkTarget, ok = p.str()
		case keyXattrs:
			n.Xattrs, ok = list(p, nil, p.xattr)
		case keyContent:
			n.Content, ok = list(p, nil, p.extent)
		case keySubtree:
			n.Subtree, ok = p.id()
		case keyError:
			n.Error, ok = p.str()
		}
		if !ok {
			return false
		}
	}
}

// list reads a JSON array whose elements item reads, each into a zero
// element appended to dst. An empty array gives an empty slice, not nil,
// as the generic decoder does.
func list[T any](p *treeParser, dst []T, item func(*T) bool) ([]T, bool) {
	if !p.lit(`[`) {
		return nil, false
	}
	if dst == nil {
		dst = []T{}
	}
	if p.lit(`]`) {
		return dst, true
	}
	for {
		var zero T
		dst = append(dst, zero)
		if !item(&dst[len(dst)-1]) {
			return nil, false
		}
		if !p.lit(`,`) {
			break
		}
	}
	return dst, p.lit(`]`)
}

// extent reads one extent of a file's content:
// {"id":...,"size":...,"hole":true}, id and hole each optional.
func (p *treeParser) extent(e *Extent) bool {
	var ok bool
	if !p.lit(`{`) {
		return false
	}
	if p.lit(`"id":`) {
		if e.ID, ok = p.id(); !ok || !p.lit(`,`) {
			return false
		}
	}
	if !p.lit(`"size":`) {
		return false
	}
	if e.Size, ok = p.int(); !ok {
		return false
	}
	if p.lit(`,"hole":`) {
		switch {
		case p.lit(`true`):
			e.Hole = true
		case p.lit(`false`):
		default:
			return false
		}
	}
	return p.lit(`}`)
}

// xattr reads one extended attribute: {"name":...,"value":"base64"}. A
// value of null and a raw name are left to the generic decoder.
func (p *treeParser) xattr(x *Xattr) bool {
	var ok bool
	if !p.lit(`{"name":`) {
		return false
	}
	if x.Name, ok = p.str(); !ok || !p.lit(`,"value":`) {
		return false
	}
	if x.Value, ok = p.base64(); !ok {
		return false
	}
	return p.lit(`}`)
}

// base64 reads a JSON string of standard base64, as encoding/json writes
// []byte.
func (p *treeParser) base64() ([]byte, bool) {
	s, ok := p.quoted()
	if !ok {
		return nil, false
	}
	for _, c := range s {
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '+' || c == '/' || c == '=') {
			return nil, false
		}
	}
	out := make([]byte, base64.StdEncoding.DecodedLen(len(s)))
	n, err := base64.StdEncoding.Decode(out, s)
	return out[:n], err == nil
}

// lit consumes s if the input goes on with it.
func (p *treeParser) lit(s string) bool {
	if len(p.b)-p.i >= len(s) && string(p.b[p.i:p.i+len(s)]) == s {
		p.i += len(s)
		return true
	}
	return false
}

// quoted returns the bytes of a JSON string, unquoted, and whether they
// needed unquoting (then they are a new slice).
func (p *treeParser) quoted() ([]byte, bool) {
	if p.i >= len(p.b) || p.b[p.i] != '"' {
		return nil, false
	}
	start := p.i + 1
	plain := true
	for j := start; j < len(p.b); j++ {
		switch c := p.b[j]; {
		case c == '"':
			p.i = j + 1
			s := p.b[start:j]
			if plain {
				return s, true
			}
			// Escapes (encoding/json writes <, > and & as \u003c and so
			// on) and anything not ASCII go through jsontext, which
			// refuses invalid UTF-8 and bad escapes.
			out, err := jsontext.AppendUnquote(nil, p.b[start-1:j+1])
			if err != nil {
				return nil, false
			}
			return out, true
		case c == '\\':
			plain = false
			j++ // the escaped byte cannot end the string
		case c < 0x20:
			return nil, false
		case c >= utf8.RuneSelf:
			plain = false
		}
	}
	return nil, false
}

func (p *treeParser) str() (string, bool) {
	s, ok := p.quoted()
	return string(s), ok
}

// shared reads a string and returns *last instead when it is the same.
func (p *treeParser) shared(last *string) (string, bool) {
	s, ok := p.quoted()
	if !ok {
		return "", false
	}
	if string(s) != *last {
		*last = string(s)
	}
	return *last, true
}

func (p *treeParser) nodeType() (NodeType, bool) {
	s, ok := p.quoted()
	if !ok {
		return "", false
	}
	for _, t := range [...]NodeType{TypeFile, TypeDir, TypeSymlink, TypeFifo, TypeSocket, TypeCharDev, TypeBlkDev} {
		if string(s) == string(t) {
			return t, true
		}
	}
	return NodeType(s), true
}

func (p *treeParser) id() (repo.ID, bool) {
	var id repo.ID
	if !p.lit(`"`) || len(p.b)-p.i < 2*len(id)+1 || p.b[p.i+2*len(id)] != '"' {
		return id, false
	}
	if _, err := hex.Decode(id[:], p.b[p.i:p.i+2*len(id)]); err != nil {
		return id, false
	}
	p.i += 2*len(id) + 1
	return id, true
}

func (p *treeParser) time() (time.Time, bool) {
	var t time.Time
	s, ok := p.quoted()
	if !ok || t.UnmarshalText(s) != nil {
		return time.Time{}, false
	}
	return t, true
}

// digits reads the JSON integer that comes next: an optional minus, then
// 0 or digits not starting with 0, not followed by a fraction or an
// exponent (those are left to the generic decoder). It returns the
// magnitude, which must fit in a uint64.
func (p *treeParser) digits() (neg bool, v uint64, ok bool) {
	j := p.i
	if j < len(p.b) && p.b[j] == '-' {
		neg = true
		j++
	}
	d := j
	for ; j < len(p.b) && p.b[j] >= '0' && p.b[j] <= '9'; j++ {
		c := uint64(p.b[j] - '0')
		if v > (math.MaxUint64-c)/10 {
			return false, 0, false
		}
		v = v*10 + c
	}
	if j == d || (p.b[d] == '0' && j > d+1) {
		return false, 0, false
	}
	if j < len(p.b) && (p.b[j] == '.' || p.b[j] == 'e' || p.b[j] == 'E') {
		return false, 0, false
	}
	p.i = j
	return neg, v, true
}

func (p *treeParser) int() (int64, bool) {
	neg, v, ok := p.digits()
	switch {
	case !ok:
		return 0, false
	case neg && v <= 1<<63:
		return int64(-v), true
	case !neg && v < 1<<63:
		return int64(v), true
	}
	return 0, false
}

func (p *treeParser) uint() (uint64, bool) {
	neg, v, ok := p.digits()
	return v, ok && !neg
}

func (p *treeParser) uint32() (uint32, bool) {
	v, ok := p.uint()
	return uint32(v), ok && v <= math.MaxUint32
}
