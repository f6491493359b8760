package snapshot

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/cofferhq/coffer/repo"
)

// checkEncodeTree checks that encodeTree writes the bytes json.Marshal
// writes through Node's methods (the encoding every stored tree id comes
// from), or fails where it fails.
func checkEncodeTree(t *testing.T, tb treeBlob) {
	t.Helper()
	want, wantErr := json.Marshal(tb)
	got, err := encodeTree(tb)
	if (err != nil) != (wantErr != nil) {
		t.Fatalf("encodeTree returned error %v, json.Marshal %v", err, wantErr)
	}
	if err == nil && !bytes.Equal(got, want) {
		t.Fatalf("encodeTree differs from json.Marshal:\n got %s\nwant %s", got, want)
	}
}

func TestEncodeTreeMatchesJSON(t *testing.T) {
	mtime := time.Date(2026, 12, 4, 15, 4, 5, 987654321, time.FixedZone("", 5*3600+30*60))
	for _, tb := range []treeBlob{
		{Version: treeVersion},
		{Version: treeVersion, Parts: []repo.ID{{1}, {2}}},
		{Version: treeVersion, Nodes: []*Node{
			{Name: "plain", Type: TypeFile, Mode: 0o644, UID: 1000, GID: 100, User: "alice", Group: "users", ModTime: mtime,
				ChangeTime: mtime.Add(time.Hour), Inode: 1 << 40, Device: 2049, Links: 2, Size: 1 << 33,
				Content: []Extent{{ID: repo.ID{0xab}, Size: 10}, {Hole: true, Size: 20}, {Size: 0}}},
			{Name: "<html> & \"quotes\" \\ tab\t nl\n é 日本 \u2028 \u2029 \x7f \x01", Type: TypeDir, Mode: 0o1777,
				ModTime: time.Date(1969, 7, 20, 20, 17, 0, 0, time.UTC), Subtree: repo.ID{7}},
			{Name: "link", Type: TypeSymlink, LinkTarget: "../a>b", Size: 6, User: "bob&co", Error: "read: \"denied\""},
			{Name: "raw-\xff", Type: TypeSymlink, LinkTarget: "to-\xfe"},
			{Name: "x", Type: TypeFile, Xattrs: []Xattr{{Name: "user.a", Value: []byte{0, 1, 2}}, {Name: "user.nil"},
				{Name: "user.empty", Value: []byte{}}, {Name: "user.\xff", Value: []byte("v")}}},
			{Name: "dev", Type: TypeCharDev, Rdev: 0x0801, ModTime: time.Unix(0, 1).UTC()},
			{Name: "zero time", Type: "door"},
		}},
	} {
		checkEncodeTree(t, tb)
	}
	// Years RFC 3339 cannot say fail both encoders alike.
	checkEncodeTree(t, treeBlob{Version: treeVersion, Nodes: []*Node{{Name: "a", ModTime: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}}})
	if _, err := encodeTree(treeBlob{Version: treeVersion, Nodes: []*Node{nil}}); err == nil {
		t.Error("encodeTree took a nil node")
	}
}

// FuzzEncodeTree checks encodeTree against json.Marshal on trees made of
// fuzzed fields, and on every tree the generic decoder reads from fuzzed
// bytes.
func FuzzEncodeTree(f *testing.F) {
	f.Add("name", "target", "user", "error", int64(1733300000), int64(123456789), 3600, int64(42), uint64(7), []byte("value"), "user.x")
	f.Add("a<b>&\"c\"\\", "\xff", "é", "\u2028", int64(-62135596800), int64(0), -12*3600, int64(-1), uint64(0), []byte(nil), "\xfe")
	f.Fuzz(func(t *testing.T, name, target, user, errText string, sec, nsec int64, offset int, size int64, inode uint64, value []byte, xname string) {
		mtime := time.Unix(sec, nsec).In(time.FixedZone("", offset%(24*3600)))
		checkEncodeTree(t, treeBlob{Version: treeVersion, Nodes: []*Node{
			{Name: name, Type: TypeFile, Mode: uint32(inode), UID: uint32(inode >> 32), User: user, Group: user, ModTime: mtime,
				ChangeTime: mtime, Inode: inode, Links: inode, Size: size, Error: errText,
				Xattrs:  []Xattr{{Name: xname, Value: value}},
				Content: []Extent{{ID: repo.ID{byte(inode)}, Size: size}, {Hole: inode%2 == 0, Size: size}}},
			{Name: target, Type: TypeSymlink, LinkTarget: target, Device: inode, Rdev: inode, Subtree: repo.ID{byte(sec)}},
		}})
	})
}

// FuzzEncodeDecodedTree encodes what the generic decoder reads from fuzzed
// bytes: times in any zone, escapes, raw names.
func FuzzEncodeDecodedTree(f *testing.F) {
	for _, s := range treeSeeds(f) {
		f.Add(s.b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		w, err := decodeTreeGeneric(b)
		if err != nil {
			return
		}
		tb := treeBlob{Version: w.Version, Parts: w.Parts}
		for i := range w.Nodes {
			tb.Nodes = append(tb.Nodes, w.Nodes[i].node())
		}
		checkEncodeTree(t, tb)
	})
}
