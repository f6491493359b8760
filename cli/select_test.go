//go:build linux

package cli

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// Three other hosts and this one in one repository: -host, -tag and -path
// choose snapshots for ls, cat and find; `latest` is this host's newest
// even when another host backed up later, and the newest of those chosen
// with -host; ls names hosts once there are several; tag rewrites
// snapshots, and nothing reports their removal as a rollback.
func TestSelectSnapshots(t *testing.T) {
	h := newHarness(t)
	h.create()
	src := sourceTree(t)
	who := filepath.Join(src, "who")
	ids := map[string]string{}
	for _, b := range []struct{ name, host, tag string }{
		{"a", "alpha", ""}, {"b", "bravo", "weekly"}, {"self", "", "x"}, {"c", "charlie", ""},
	} {
		if err := os.WriteFile(who, []byte(b.name), 0o644); err != nil {
			t.Fatal(err)
		}
		args := []string{src}
		if b.host != "" {
			args = append(args, "-host", b.host)
		}
		if b.tag != "" {
			args = append(args, "-tag", b.tag)
		}
		ids[b.name] = h.backup(args...)
	}
	self, _ := os.Hostname()

	ls := h.mustAt("ls")
	if n := strings.Count(ls, "\n"); n != 4 || !strings.Contains(ls, " on alpha\n") || !strings.Contains(ls, " on "+self+"\n") {
		t.Errorf("ls of four hosts' snapshots:\n%s", ls)
	}
	if out := h.mustAt("ls", "-host", "alpha"); strings.Count(out, "\n") != 1 || !strings.Contains(out, ids["a"]) || strings.Contains(out, " on ") {
		t.Errorf("ls -host alpha:\n%s", out)
	}
	if out := h.mustAt("ls", "-tag", "weekly"); strings.Count(out, "\n") != 1 || !strings.Contains(out, ids["b"]) {
		t.Errorf("ls -tag weekly:\n%s", out)
	}
	if out := h.mustAt("ls", "-path", "/elsewhere"); out != "" {
		t.Errorf("ls -path of a path never backed up: %q", out)
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"cat", "latest:who"}, "self"}, // this host's, though charlie's is newer
		{[]string{"cat", "-host", "charlie", "latest:who"}, "c"},
		{[]string{"cat", "latest:who", "-host", "alpha"}, "a"},
		{[]string{"cat", "-tag", "weekly", "latest:who"}, "b"},
		{[]string{"cat", "-path", src, "-host", "bravo", "latest:who"}, "b"},
		{[]string{"cat", ids["a"] + ":who"}, "a"},
	} {
		if got := h.mustAt(tc.args...); got != tc.want {
			t.Errorf("%v: %q, want %q", tc.args, got, tc.want)
		}
	}
	wantOneLineError(t, h.at("cat", "-host", "delta", "latest:who"), ExitNoSnapshot, "-host delta")
	if out := h.mustAt("find", "-host", "alpha", "who"); strings.Count(out, "\n") != 1 || !strings.Contains(out, ids["a"]) {
		t.Errorf("find -host alpha:\n%s", out)
	}

	// tag: -add, -remove, -set on ids and on a filter.
	out := h.mustAt("tag", ids["a"], "-add", "keep,monthly")
	m := regexp.MustCompile(`snapshot ` + ids["a"] + ` is now ([0-9a-f]{8}) \[keep,monthly\]`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("tag -add: %q", out)
	}
	if got := h.mustAt("cat", m[1]+":who"); got != "a" {
		t.Errorf("the retagged snapshot holds %q", got)
	}
	wantOneLineError(t, h.at("cat", ids["a"]+":who"), ExitNoSnapshot)
	if out := h.mustAt("tag", "-tag", "monthly", "-remove", "monthly"); !strings.Contains(out, "[keep]") {
		t.Errorf("tag -remove by filter: %q", out)
	}
	if out := h.mustAt("tag", "-host", "bravo", "-set", ""); !strings.Contains(out, "1 of 1 snapshot changed") {
		t.Errorf("tag -set '': %q", out)
	}
	if out := h.mustAt("tag", "-host", "bravo", "-set", ""); !strings.Contains(out, "0 of 1 snapshot changed") {
		t.Errorf("tag -set '' again: %q", out)
	}
	r := h.at("ls", "-tag", "keep")
	if r.code != 0 || strings.Count(r.stdout, "\n") != 1 || r.stderr != "" {
		t.Errorf("ls -tag keep after retagging: exit %d, %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	if out := h.mustAt("ls", "-tag", "weekly"); out != "" {
		t.Errorf("a removed tag still selects: %q", out)
	}
	h.checkReadData("after tag")

	wantOneLineError(t, h.at("tag", ids["c"]), ExitUsage, "-add")
	wantOneLineError(t, h.at("tag", "-add", "x"), ExitUsage, "snapshot ids")
	wantOneLineError(t, h.at("tag", ids["c"], "-set", "x", "-add", "y"), ExitUsage, "-set")
}
