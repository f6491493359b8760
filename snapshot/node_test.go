package snapshot

import (
	"encoding/json"
	"testing"
	"time"
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
