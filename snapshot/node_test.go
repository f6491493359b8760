package snapshot

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/cofferhq/coffer/repo"
)

func TestNodeJSONKeepsNonUTF8Names(t *testing.T) {
	tests := []struct{ name, target, xattr string }{
		{"plain", "target", "user.a"},
		{"latin1-\xe9t\xe9", "to-\xff", "user.\xfe"},
		{"", "", ""},
	}
	for _, tt := range tests {
		in := &Node{Name: tt.name, Type: TypeSymlink, LinkTarget: tt.target, ModTime: time.Unix(1, 2).UTC(),
			Xattrs: []Xattr{{Name: tt.xattr, Value: []byte{0, 1}}}}
		b, err := json.Marshal(in)
		if err != nil {
			t.Fatal(err)
		}
		var out Node
		if err := json.Unmarshal(b, &out); err != nil {
			t.Fatal(err)
		}
		if out.Name != tt.name || out.LinkTarget != tt.target || out.Xattrs[0].Name != tt.xattr {
			t.Errorf("round trip of %q/%q/%q gave %q/%q/%q (json %s)", tt.name, tt.target, tt.xattr, out.Name, out.LinkTarget, out.Xattrs[0].Name, b)
		}
	}
}

// Trees are encoded and decoded without Node's JSON methods, for speed;
// the bytes, which name the tree blob and so decide dedup, must be exactly
// those the methods give, and decoding must give the same nodes.
func TestTreeEncodingMatchesNodeMethods(t *testing.T) {
	mtime := time.Date(2025, 3, 4, 5, 6, 7, 891011121, time.UTC)
	nodes := []*Node{
		{Name: "a.txt", Type: TypeFile, Mode: 0o644, ModTime: mtime, ChangeTime: mtime, UID: 1000, GID: 1000,
			User: "alice", Group: "staff", Inode: 42, Links: 2, Size: 3 << 20,
			Content: []Extent{{ID: repo.ID{1}, Size: 1 << 20}, {Hole: true, Size: 1 << 20}, {ID: repo.ID{2}, Size: 1 << 20}}},
		{Name: "dir", Type: TypeDir, Mode: 0o755 | 0o1000, ModTime: mtime, Subtree: repo.ID{3}},
		{Name: "latin1-\xe9t\xe9", Type: TypeSymlink, LinkTarget: "to-\xff", ModTime: mtime,
			Xattrs: []Xattr{{Name: "user.\xfe", Value: []byte{0, 1}}, {Name: "user.ok", Value: nil}}},
		{Name: "unreadable", Type: TypeFile, Error: "permission denied"},
		{Name: "zz-dev", Type: TypeCharDev, Rdev: 259},
	}
	for _, tb := range []treeBlob{
		{Version: treeVersion, Nodes: nodes},
		{Version: treeVersion, Parts: []repo.ID{{4}, {5}}},
		{Version: treeVersion},
	} {
		want, err := json.Marshal(tb) // through Node.MarshalJSON, node by node
		if err != nil {
			t.Fatal(err)
		}
		got, err := encodeTree(tb)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("encodeTree differs from the Node methods:\n got %s\nwant %s", got, want)
		}
		var viaMethods treeBlob
		if err := json.Unmarshal(want, &viaMethods); err != nil {
			t.Fatal(err)
		}
		decoded, err := decodeTree(got)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(*decoded, viaMethods) {
			t.Errorf("decodeTree differs from the Node methods:\n got %+v\nwant %+v", *decoded, viaMethods)
		}
	}
}
