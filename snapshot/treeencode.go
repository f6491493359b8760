package snapshot

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/cofferhq/coffer/repo"
)

// appendTree appends tb encoded exactly as json.Marshal encodes it
// through Node's methods: a tree's id is the hash of these bytes,
// so an unchanged directory must encode to the same bytes, whichever
// encoder wrote its tree before. A backup stores the tree of every
// directory with a changed entry, and encoding/json spent about 2 µs a
// node on reflection. What is not plain (a string that JSON escapes, a
// name that is not UTF-8) is handed to encoding/json itself, which
// FuzzAppendTree checks against the generic encoder.
func appendTree(b []byte, tb treeBlob) ([]byte, error) {
	b = append(b, `{"version":`...)
	b = strconv.AppendInt(b, int64(tb.Version), 10)
	if len(tb.Nodes) > 0 {
		b = append(b, `,"nodes":[`...)
		for i, n := range tb.Nodes {
			if n == nil {
				return nil, fmt.Errorf("node %d is nil", i)
			}
			if i > 0 {
				b = append(b, ',')
			}
			var err error
			if b, err = appendNode(b, n); err != nil {
				return nil, err
			}
		}
		b = append(b, ']')
	}
	if len(tb.Parts) > 0 {
		b = append(b, `,"parts":[`...)
		for i, id := range tb.Parts {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendID(b, id)
		}
		b = append(b, ']')
	}
	return append(b, '}'), nil
}

// appendNode appends n as json.Marshal encodes n.wire().
func appendNode(b []byte, n *Node) ([]byte, error) {
	if !utf8.ValidString(n.Name) || !utf8.ValidString(n.LinkTarget) {
		// Raw names: rare enough to leave to encoding/json.
		enc, err := json.Marshal(n.wire())
		return append(b, enc...), err
	}
	b = append(b, `{"name":`...)
	b = appendString(b, n.Name)
	b = append(b, `,"type":`...)
	b = appendString(b, string(n.Type))
	b = append(b, `,"mode":`...)
	b = strconv.AppendUint(b, uint64(n.Mode), 10)
	b = append(b, `,"uid":`...)
	b = strconv.AppendUint(b, uint64(n.UID), 10)
	b = append(b, `,"gid":`...)
	b = strconv.AppendUint(b, uint64(n.GID), 10)
	if n.User != "" {
		b = append(b, `,"user":`...)
		b = appendString(b, n.User)
	}
	if n.Group != "" {
		b = append(b, `,"group":`...)
		b = appendString(b, n.Group)
	}
	var err error
	b = append(b, `,"mtime":`...)
	if b, err = appendTime(b, n.ModTime); err != nil {
		return nil, err
	}
	if !n.ChangeTime.IsZero() {
		b = append(b, `,"ctime":`...)
		if b, err = appendTime(b, n.ChangeTime); err != nil {
			return nil, err
		}
	}
	b = appendUintField(b, `,"inode":`, n.Inode)
	b = appendUintField(b, `,"device":`, n.Device)
	b = appendUintField(b, `,"links":`, n.Links)
	b = appendUintField(b, `,"rdev":`, n.Rdev)
	if n.Size != 0 {
		b = append(b, `,"size":`...)
		b = strconv.AppendInt(b, n.Size, 10)
	}
	if n.LinkTarget != "" {
		b = append(b, `,"linktarget":`...)
		b = appendString(b, n.LinkTarget)
	}
	if len(n.Xattrs) > 0 {
		b = append(b, `,"xattrs":[`...)
		for i, x := range n.Xattrs {
			if i > 0 {
				b = append(b, ',')
			}
			if b, err = appendXattr(b, x); err != nil {
				return nil, err
			}
		}
		b = append(b, ']')
	}
	if len(n.Content) > 0 {
		b = append(b, `,"content":[`...)
		for i, e := range n.Content {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, '{')
			if !e.ID.IsZero() {
				b = append(b, `"id":`...)
				b = appendID(b, e.ID)
				b = append(b, ',')
			}
			b = append(b, `"size":`...)
			b = strconv.AppendInt(b, e.Size, 10)
			if e.Hole {
				b = append(b, `,"hole":true`...)
			}
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	if !n.Subtree.IsZero() {
		b = append(b, `,"subtree":`...)
		b = appendID(b, n.Subtree)
	}
	if n.Error != "" {
		b = append(b, `,"error":`...)
		b = appendString(b, n.Error)
	}
	return append(b, '}'), nil
}

func appendUintField(b []byte, key string, v uint64) []byte {
	if v == 0 {
		return b
	}
	return strconv.AppendUint(append(b, key...), v, 10)
}

// appendXattr appends x as json.Marshal encodes it (Xattr.MarshalJSON).
func appendXattr(b []byte, x Xattr) ([]byte, error) {
	if !utf8.ValidString(x.Name) {
		enc, err := json.Marshal(x)
		return append(b, enc...), err
	}
	b = append(b, `{"name":`...)
	b = appendString(b, x.Name)
	b = append(b, `,"value":`...)
	if x.Value == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '"')
		b = base64.StdEncoding.AppendEncode(b, x.Value)
		b = append(b, '"')
	}
	return append(b, '}'), nil
}

// appendString appends s quoted. Only printable ASCII that JSON does not
// escape is written here; anything else is left to encoding/json, whose
// escaping (of HTML characters, control characters, U+2028, invalid
// UTF-8) the tree ids depend on.
func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			enc, _ := json.Marshal(s) // a string always encodes
			return append(b, enc...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

func appendID(b []byte, id repo.ID) []byte {
	b = append(b, '"')
	b = hex.AppendEncode(b, id[:])
	return append(b, '"')
}

// appendTime appends t as time.Time's MarshalJSON does, which refuses
// what RFC 3339 cannot say (years outside 0-9999).
func appendTime(b []byte, t time.Time) ([]byte, error) {
	b = append(b, '"')
	b, err := t.AppendText(b)
	if err != nil {
		return nil, err
	}
	return append(b, '"'), nil
}
