package snapshot

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cofferhq/coffer/repo"
)

func fuzzNodes() []*Node {
	mtime := time.Date(2024, 5, 6, 7, 8, 9, 123456789, time.UTC)
	return []*Node{
		{Name: "a-dir", Type: TypeDir, Mode: 0o755, ModTime: mtime, Subtree: repo.ID{1}},
		{Name: "b-file", Type: TypeFile, Mode: 0o644, UID: 1000, GID: 1000, User: "u", Group: "g", ModTime: mtime,
			ChangeTime: mtime, Inode: 42, Device: 7, Links: 2, Size: 30,
			Content: []Extent{{ID: repo.ID{2}, Size: 10}, {Size: 15, Hole: true}, {ID: repo.ID{3}, Size: 5}},
			Xattrs:  []Xattr{{Name: "user.x", Value: []byte{0, 1, 2}}, {Name: "user.\xff", Value: nil}}},
		{Name: "c-link", Type: TypeSymlink, ModTime: mtime, LinkTarget: "b-file", Size: 6},
		{Name: "d-\xe9t\xe9", Type: TypeSymlink, ModTime: mtime, LinkTarget: "to-\xff", Size: 4},
		{Name: "e-unreadable", Type: TypeFile, ModTime: mtime, Size: 100, Error: "permission denied"},
		{Name: "f-fifo", Type: TypeFifo, ModTime: mtime},
		{Name: "g-dev", Type: TypeCharDev, ModTime: mtime, Rdev: 0x0103},
	}
}

func mustMarshal(tb testing.TB, v any) []byte {
	tb.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// treeSeed is an encoded tree blob and whether decodeTree must accept it.
type treeSeed struct {
	name string
	b    []byte
	ok   bool
}

func treeSeeds(tb testing.TB) []treeSeed {
	nodes := fuzzNodes()
	tree := func(nodes ...*Node) []byte { return mustMarshal(tb, treeBlob{Version: treeVersion, Nodes: nodes}) }
	edit := func(i int, fn func(n *Node)) []byte {
		c := *nodes[i]
		c.Content = slices.Clone(c.Content)
		fn(&c)
		return tree(&c)
	}
	zeroID := strings.Repeat("00", 32)
	return []treeSeed{
		{"every node type", tree(nodes...), true},
		{"empty directory", tree(), true},
		{"one file", tree(nodes[1]), true},
		{"parts", mustMarshal(tb, treeBlob{Version: treeVersion, Parts: []repo.ID{{1}, {2}}}), true},
		{"file with an error and no content", tree(nodes[4]), true},
		{"raw name", []byte(`{"version":1,"nodes":[{"name":"","name_raw":"/w==","type":"fifo"}]}`), true},
		{"out of order", tree(nodes[1], nodes[0]), false},
		{"duplicate", tree(nodes[0], nodes[0]), false},
		{"name ..", edit(0, func(n *Node) { n.Name = ".." }), false},
		{"name .", edit(0, func(n *Node) { n.Name = "." }), false},
		{"empty name", edit(0, func(n *Node) { n.Name = "" }), false},
		{"name with a slash", edit(0, func(n *Node) { n.Name = "a/b" }), false},
		{"name with NUL", edit(0, func(n *Node) { n.Name = "a\x00b" }), false},
		{"raw name with a slash", edit(0, func(n *Node) { n.Name = "/\xff" }), false},
		{"directory without subtree", edit(0, func(n *Node) { n.Subtree = repo.ID{} }), false},
		{"directory with content", edit(0, func(n *Node) { n.Content = nodes[1].Content }), false},
		{"content contradicts size", edit(1, func(n *Node) { n.Size++ }), false},
		{"data extent without id", edit(1, func(n *Node) { n.Content[0].ID = repo.ID{} }), false},
		{"negative extent", edit(1, func(n *Node) { n.Content[1].Size = -15 }), false},
		{"content on a symlink", edit(2, func(n *Node) { n.Content = nodes[1].Content }), false},
		{"unknown type", edit(2, func(n *Node) { n.Type = "door" }), false},
		{"newer version", mustMarshal(tb, treeBlob{Version: treeVersion + 1}), false},
		{"version 0", mustMarshal(tb, treeBlob{Version: 0, Nodes: nodes}), false},
		{"no version", []byte(`{"nodes":[]}`), false},
		{"null node", []byte(`{"version":1,"nodes":[null]}`), false},
		{"nodes and parts", []byte(`{"version":1,"nodes":[{"name":"a","type":"fifo"}],"parts":["` + zeroID + `"]}`), false},
		{"raw name .", []byte(`{"version":1,"nodes":[{"name":"x","name_raw":"Lg==","type":"fifo"}]}`), false},
		{"raw name out of order", []byte(`{"version":1,"nodes":[{"name":"b","type":"fifo"},{"name":"c","name_raw":"YQ==","type":"fifo"}]}`), false},
		{"bad id", []byte(`{"version":1,"parts":["00"]}`), false},
		{"nodes not a list", []byte(`{"version":1,"nodes":{}}`), false},
		{"a list", []byte(`[]`), false},
		{"truncated", tree(nodes...)[:100], false},
		{"empty", []byte{}, false},
	}
}

func TestDecodeTreeSeeds(t *testing.T) {
	for _, s := range treeSeeds(t) {
		tb, err := decodeTree(s.b)
		if s.ok != (err == nil) {
			t.Errorf("%s: decodeTree: %v, want accepted %v\n%s", s.name, err, s.ok, s.b)
		}
		if err == nil && tb == nil {
			t.Errorf("%s: nil tree without an error", s.name)
		}
		if s.name == "newer version" && !errors.Is(err, repo.ErrNewerFormat) {
			t.Errorf("%s: %v, want ErrNewerFormat", s.name, err)
		}
	}
}

func FuzzDecodeTree(f *testing.F) {
	for _, s := range treeSeeds(f) {
		f.Add(s.b)
	}

	f.Fuzz(func(t *testing.T, b []byte) {
		tb, err := decodeTree(b)
		if err != nil {
			if tb != nil {
				t.Fatalf("decodeTree returned a tree with error %v", err)
			}
			if errors.Is(err, repo.ErrNewerFormat) {
				var v struct{ Version int }
				if json.Unmarshal(b, &v) == nil && v.Version <= treeVersion {
					t.Fatalf("ErrNewerFormat for version %d", v.Version)
				}
			}
			return
		}
		if tb.Version != treeVersion {
			t.Fatalf("accepted tree version %d", tb.Version)
		}
		if len(tb.Nodes) > 0 && len(tb.Parts) > 0 {
			t.Fatal("accepted a tree with both nodes and parts")
		}
		for i, n := range tb.Nodes {
			if n == nil {
				t.Fatalf("node %d is nil", i)
			}
			if n.Name == "" || n.Name == "." || n.Name == ".." || strings.ContainsAny(n.Name, "/\x00") {
				t.Fatalf("node %d: invalid name %q accepted", i, n.Name)
			}
			if i > 0 && tb.Nodes[i-1].Name >= n.Name {
				t.Fatalf("names %q and %q are out of order or duplicated", tb.Nodes[i-1].Name, n.Name)
			}
			switch n.Type {
			case TypeFile:
				for _, e := range n.Content {
					if e.Size < 0 || !e.Hole && e.ID.IsZero() {
						t.Fatalf("node %q: extent %+v accepted", n.Name, e)
					}
				}
			case TypeDir:
				if n.Subtree.IsZero() || len(n.Content) > 0 {
					t.Fatalf("directory %q without subtree or with content accepted", n.Name)
				}
			case TypeSymlink, TypeFifo, TypeSocket, TypeCharDev, TypeBlkDev:
				if len(n.Content) > 0 {
					t.Fatalf("%s %q with content accepted", n.Type, n.Name)
				}
			default:
				t.Fatalf("node %q: type %q accepted", n.Name, n.Type)
			}
		}

		// decodeTree uses the faster JSON v2 decoder: what it accepts,
		// encoding/json (which encodes trees, and decoded them before)
		// reads the same.
		var w1 treeWireValue
		if err := json.Unmarshal(b, &w1); err != nil {
			t.Fatalf("decodeTree accepted what encoding/json refuses: %v", err)
		}
		if len(w1.Nodes) != len(tb.Nodes) || !slices.Equal(w1.Parts, tb.Parts) {
			t.Fatalf("encoding/json reads %d nodes and parts %v, decodeTree %d and %v", len(w1.Nodes), w1.Parts, len(tb.Nodes), tb.Parts)
		}
		for i := range w1.Nodes {
			if n1 := w1.Nodes[i].node(); !reflect.DeepEqual(n1, tb.Nodes[i]) {
				t.Fatalf("node %d: encoding/json reads %+v, decodeTree %+v", i, n1, tb.Nodes[i])
			}
		}

		// An accepted tree saves and loads back with the same names, and
		// its encoding is stable from then on.
		enc, err := json.Marshal(tb)
		if err != nil {
			t.Fatalf("an accepted tree does not encode: %v", err)
		}
		again, err := decodeTree(enc)
		if err != nil {
			t.Fatalf("a re-encoded tree is refused: %v\n%s", err, enc)
		}
		if len(again.Nodes) != len(tb.Nodes) || len(again.Parts) != len(tb.Parts) {
			t.Fatalf("round trip changed %d nodes and %d parts to %d and %d", len(tb.Nodes), len(tb.Parts), len(again.Nodes), len(again.Parts))
		}
		for i := range tb.Nodes {
			if again.Nodes[i].Name != tb.Nodes[i].Name || again.Nodes[i].LinkTarget != tb.Nodes[i].LinkTarget {
				t.Fatalf("round trip changed node %q -> %q to %q -> %q", tb.Nodes[i].Name, tb.Nodes[i].LinkTarget, again.Nodes[i].Name, again.Nodes[i].LinkTarget)
			}
		}
		if enc2 := mustMarshal(t, again); !bytes.Equal(enc2, enc) {
			t.Fatalf("encoding is not stable:\n%s\n%s", enc, enc2)
		}
	})
}

func FuzzDecodeSnapshot(f *testing.F) {
	sn := Snapshot{Version: snapshotVersion, Time: time.Date(2024, 1, 2, 3, 4, 5, 6, time.UTC), Host: "h", User: "u",
		Paths: []string{"/home/u", "/etc"}, Base: "/", Tags: []string{"daily"}, Excludes: []string{"*.tmp"},
		Parent: repo.ID{7}, Tree: repo.ID{8}, Program: "coffer dev",
		Summary: Summary{Files: 3, Dirs: 2, Size: 100, Duration: time.Second, Start: time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)}}
	variant := func(fn func(s *Snapshot)) []byte {
		c := sn
		fn(&c)
		return mustMarshal(f, c)
	}
	tree := strings.Repeat("ab", 32)
	seeds := []struct {
		b  []byte
		ok bool
	}{
		{mustMarshal(f, sn), true},
		{variant(func(s *Snapshot) { s.Parent = repo.ID{}; s.Tags, s.Excludes = nil, nil }), true},
		{[]byte(`{"version":1,"paths":["/"],"tree":"` + tree + `"}`), true},
		{variant(func(s *Snapshot) { s.Version = snapshotVersion + 1 }), false},
		{variant(func(s *Snapshot) { s.Version = 0 }), false},
		{variant(func(s *Snapshot) { s.Tree = repo.ID{} }), false},
		{variant(func(s *Snapshot) { s.Paths = nil }), false},
		{[]byte(`{"version":1,"paths":["/"],"tree":"00"}`), false},
		{[]byte(`{"version":1,"paths":["/"],"tree":"` + tree + `","time":"not a time"}`), false},
		{[]byte(`null`), false},
		{[]byte(``), false},
	}
	for i, s := range seeds {
		if _, err := decodeSnapshot(s.b); s.ok != (err == nil) {
			f.Fatalf("seed %d: decodeSnapshot: %v, want accepted %v\n%s", i, err, s.ok, s.b)
		}
		f.Add(s.b)
	}

	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := decodeSnapshot(b)
		if err != nil {
			if got != nil {
				t.Fatalf("decodeSnapshot returned a snapshot with error %v", err)
			}
			if errors.Is(err, repo.ErrNewerFormat) {
				var v struct{ Version int }
				if json.Unmarshal(b, &v) == nil && v.Version <= snapshotVersion {
					t.Fatalf("ErrNewerFormat for version %d", v.Version)
				}
			}
			return
		}
		if got.Version != snapshotVersion || got.Tree.IsZero() || len(got.Paths) == 0 {
			t.Fatalf("accepted snapshot version %d, tree %s, %d paths", got.Version, got.Tree, len(got.Paths))
		}
		if !got.ID.IsZero() {
			t.Fatal("decodeSnapshot set the id from the object's content")
		}
		enc, err := json.Marshal(got)
		if err != nil {
			t.Fatalf("an accepted snapshot does not encode: %v", err)
		}
		again, err := decodeSnapshot(enc)
		if err != nil {
			t.Fatalf("a re-encoded snapshot is refused: %v\n%s", err, enc)
		}
		if again.Tree != got.Tree || again.Parent != got.Parent || len(again.Paths) != len(got.Paths) || !again.Time.Equal(got.Time) {
			t.Fatalf("round trip changed %+v to %+v", got, again)
		}
	})
}
