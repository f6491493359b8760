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

// TestSameNodeEveryField changes each field of a node in turn: sameNode
// must see every change, so a field added to Node and not compared
// there fails here, rather than letting a backup reuse a parent tree
// that records the old value. Times are compared as instants.
func TestSameNodeEveryField(t *testing.T) {
	base := func() *Node {
		return &Node{Name: "f", Type: TypeFile, Mode: 0o644, UID: 1, GID: 2, User: "u", Group: "g",
			ModTime: time.Unix(100, 5), ChangeTime: time.Unix(200, 6), Inode: 3, Device: 4, Links: 1, Rdev: 0,
			Size: 10, LinkTarget: "", Xattrs: []Xattr{{Name: "user.a", Value: []byte("v")}},
			Content: []Extent{{ID: repo.ID{1}, Size: 10}}, Subtree: repo.ID{}, Error: ""}
	}
	a := base()
	if b := base(); !sameNode(a, b) {
		t.Fatal("two equal nodes differ")
	}
	utc := base()
	utc.ModTime, utc.ChangeTime = utc.ModTime.UTC(), utc.ChangeTime.UTC()
	if !sameNode(a, utc) {
		t.Error("the same instants in another location differ")
	}
	typ := reflect.TypeFor[Node]()
	for i := range typ.NumField() {
		f := typ.Field(i)
		b := base()
		v := reflect.ValueOf(b).Elem().Field(i)
		switch f.Type {
		case reflect.TypeFor[time.Time]():
			v.Set(reflect.ValueOf(v.Interface().(time.Time).Add(time.Nanosecond)))
		case reflect.TypeFor[[]Xattr]():
			b.Xattrs = []Xattr{{Name: "user.a", Value: []byte("w")}}
		case reflect.TypeFor[[]Extent]():
			b.Content = []Extent{{ID: repo.ID{2}, Size: 10}}
		case reflect.TypeFor[repo.ID]():
			v.Set(reflect.ValueOf(repo.ID{9}))
		default:
			switch v.Kind() {
			case reflect.String:
				v.SetString(v.String() + "x")
			case reflect.Uint32, reflect.Uint64:
				v.SetUint(v.Uint() + 1)
			case reflect.Int64:
				v.SetInt(v.Int() + 1)
			default:
				t.Fatalf("field %s of type %s: the test does not know how to change it", f.Name, f.Type)
			}
		}
		if sameNode(a, b) {
			t.Errorf("a node with another %s is the same to sameNode", f.Name)
		}
	}
}
