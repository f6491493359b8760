package snapshot

import (
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/cofferhq/coffer/repo"
)

// TestDecodeTreeFastTakesCanonicalTrees checks that trees as backups
// write them are read by the fast decoder, not handed on, and come out as
// the generic decoder reads them; and that what it does not take (raw
// names, nulls, other spellings) it hands on rather than misreads.
func TestDecodeTreeFastTakesCanonicalTrees(t *testing.T) {
	mtime := time.Date(2026, 12, 4, 15, 4, 5, 987654321, time.UTC)
	canonical := []*Node{
		{Name: "a <&> \"quoted\" \\ é 日本 \u2028", Type: TypeFile, Mode: 0o4755, UID: 1<<32 - 1, GID: 0, User: "alice", Group: "staff",
			ModTime: mtime, ChangeTime: mtime.Add(time.Second), Inode: 1<<64 - 1, Device: 2049, Links: 3, Size: 30,
			Content: []Extent{{ID: repo.ID{0xab, 1}, Size: 10}, {Hole: true, Size: 15}, {ID: repo.ID{0xcd}, Size: 5}}},
		{Name: "b", Type: TypeFile, ModTime: time.Date(1969, 7, 20, 20, 17, 0, 0, time.UTC), Size: 0, Content: []Extent{}},
		{Name: "c", Type: TypeDir, Mode: 0o755, ModTime: mtime, Subtree: repo.ID{7}, User: "alice", Group: "staff"},
		{Name: "d", Type: TypeSymlink, ModTime: mtime, LinkTarget: "../b\ttab", Size: 8},
		{Name: "e", Type: TypeBlkDev, ModTime: mtime, Rdev: 0x0801},
		{Name: "f", Type: TypeFile, ModTime: mtime, Size: -1, Error: "permission denied"},
		{Name: "g", Type: "door", ModTime: time.Time{}},
	}
	var nodes []*Node
	for i := range 300 {
		nodes = append(nodes, &Node{Name: fmt.Sprintf("file%04d", i), Type: TypeFile, Mode: 0o644, ModTime: mtime, Size: int64(i),
			Content: []Extent{{ID: repo.ID{byte(i)}, Size: int64(i)}}})
	}
	for _, tc := range []struct {
		name string
		tb   treeBlob
		fast bool
	}{
		{"every field", treeBlob{Version: treeVersion, Nodes: canonical}, true},
		{"many files", treeBlob{Version: treeVersion, Nodes: nodes}, true},
		{"parts", treeBlob{Version: treeVersion, Parts: []repo.ID{{1}, {2}, {3}}}, true},
		{"empty", treeBlob{Version: treeVersion}, true},
		{"xattrs", treeBlob{Version: treeVersion, Nodes: []*Node{{Name: "x", Type: TypeFile, Content: []Extent{},
			Xattrs: []Xattr{{Name: "security.selinux", Value: []byte("unconfined_u:object_r:user_home_t:s0\x00")}, {Name: "user.empty", Value: []byte{}}}}}}, true},
		{"xattr without a value", treeBlob{Version: treeVersion, Nodes: []*Node{{Name: "x", Type: TypeFile, Xattrs: []Xattr{{Name: "user.a"}}}}}, false},
		{"raw xattr name", treeBlob{Version: treeVersion, Nodes: []*Node{{Name: "x", Type: TypeFile, Xattrs: []Xattr{{Name: "user.\xff", Value: []byte{1}}}}}}, false},
		{"raw name", treeBlob{Version: treeVersion, Nodes: []*Node{{Name: "\xff", Type: TypeFifo}}}, false},
		{"raw link target", treeBlob{Version: treeVersion, Nodes: []*Node{{Name: "l", Type: TypeSymlink, LinkTarget: "\xfe"}}}, false},
	} {
		b, err := encodeTree(tc.tb)
		if err != nil {
			t.Fatal(err)
		}
		want, err := decodeTreeGeneric(b)
		if err != nil {
			t.Fatal(err)
		}
		got, ok := decodeTreeFast(b)
		if ok != tc.fast {
			t.Errorf("%s: fast decoder took it: %v, want %v\n%s", tc.name, ok, tc.fast, b)
			continue
		}
		if ok && !reflect.DeepEqual(got, want) {
			t.Errorf("%s: fast decoder read\n%+v\nthe generic one\n%+v", tc.name, got, want)
		}
	}
	for _, b := range []string{
		`{"version":1, "nodes":[{"name":"a","type":"fifo","mode":0,"uid":0,"gid":0,"mtime":"0001-01-01T00:00:00Z"}]}`,
		`{"version":1,"nodes":[{"type":"fifo","name":"a","mode":0,"uid":0,"gid":0,"mtime":"0001-01-01T00:00:00Z"}]}`,
		`{"version":1,"nodes":[{"name":"a","Type":"fifo","mode":0,"uid":0,"gid":0,"mtime":"0001-01-01T00:00:00Z"}]}`,
		`{"version":1,"nodes":[{"name":"a","type":"fifo","mode":1e2,"uid":0,"gid":0,"mtime":"0001-01-01T00:00:00Z"}]}`,
		`{"version":1,"nodes":[{"name":"a","type":"fifo","mode":0,"uid":0,"gid":0,"mtime":"0001-01-01T00:00:00Z","user":null}]}`,
		`{"version":1,"nodes":[{"name":"a","name":"b","type":"fifo","mode":0,"uid":0,"gid":0,"mtime":"0001-01-01T00:00:00Z"}]}`,
		`{"version":1,"nodes":[{"name":"a","type":"fifo","mode":4294967296,"uid":0,"gid":0,"mtime":"0001-01-01T00:00:00Z"}]}`,
		`{"version":1,"nodes":[{"name":"a\xff","type":"fifo","mode":0,"uid":0,"gid":0,"mtime":"0001-01-01T00:00:00Z"}]}`,
		`{"version":1,"nodes":[]} `,
	} {
		if w, ok := decodeTreeFast([]byte(b)); ok {
			t.Errorf("fast decoder took %s as %+v; the generic decoder must decide", b, w)
		}
	}
}

// FuzzDecodeTreeFast checks that whatever the fast decoder takes, the
// generic decoder reads the same.
func FuzzDecodeTreeFast(f *testing.F) {
	for _, s := range treeSeeds(f) {
		f.Add(s.b)
	}
	f.Add([]byte(`{"version":1,"nodes":[{"name":"x","type":"file","mode":420,"uid":0,"gid":0,"mtime":"0001-01-01T00:00:00Z","xattrs":[{"name":"user.a","value":"AAE="},{"name":"user.b","value":""}],"content":[]}]}`))
	f.Add([]byte(`{"version":1,"nodes":[{"name":"a\u00e9\n","type":"file","mode":420,"uid":0,"gid":0,"mtime":"2024-05-06T07:08:09.5+02:00","size":-0,"content":[{"size":0,"hole":false}]}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		got, ok := decodeTreeFast(b)
		if !ok {
			return
		}
		want, err := decodeTreeGeneric(b)
		if err != nil {
			t.Fatalf("fast decoder took what the generic one refuses (%v):\n%q\n%+v", err, b, got)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("fast decoder read %q as\n%+v\nthe generic one as\n%+v", b, got, want)
		}
	})
}
