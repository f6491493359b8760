package gitignore

import (
	"strings"
	"testing"
)

func split(p string) []string { return strings.Split(p, "/") }

// TestMatcher checks git's gitignore semantics, case by case; each case
// is a list of patterns (one .gitignore at the root) and paths that are,
// or are not, excluded. A path ending in "/" is a directory.
func TestMatcher(t *testing.T) {
	tests := []struct {
		name     string
		patterns []string
		excluded []string
		kept     []string
	}{
		{"name at any depth", []string{"*.log"},
			[]string{"a.log", "x/y/b.log", "dir.log/"},
			[]string{"a.txt", "log", "a.log.txt"}},
		{"excluded directory excludes its contents", []string{"build"},
			[]string{"build/", "build/x.o", "src/build/deep/file"},
			[]string{"builds/", "src/xbuild"}},
		{"directory only", []string{"cache/"},
			[]string{"cache/", "a/cache/", "cache/file", "a/cache/sub/file"},
			[]string{"cache", "a/cache"}},
		{"anchored by a leading slash", []string{"/todo"},
			[]string{"todo", "todo/", "todo/x"},
			[]string{"a/todo", "a/todo/"}},
		{"anchored by a middle slash", []string{"doc/frotz"},
			[]string{"doc/frotz", "doc/frotz/", "doc/frotz/x"},
			[]string{"a/doc/frotz", "frotz", "doc/frotzz"}},
		{"anchored directory only", []string{"doc/frotz/"},
			[]string{"doc/frotz/", "doc/frotz/file"},
			[]string{"doc/frotz", "a/doc/frotz/"}},
		{"leading **", []string{"**/foo"},
			[]string{"foo", "foo/", "a/foo", "a/b/foo/x"},
			[]string{"foobar", "a/xfoo"}},
		{"leading ** with a path", []string{"**/foo/bar"},
			[]string{"foo/bar", "a/b/foo/bar"},
			[]string{"bar", "foo/x/bar"}},
		{"trailing **", []string{"abc/**"},
			[]string{"abc/x", "abc/x/y", "abc/x/"},
			[]string{"abc", "abc/", "x/abc/y"}},
		{"middle **", []string{"a/**/b"},
			[]string{"a/b", "a/x/b", "a/x/y/b", "a/x/y/b/c"},
			[]string{"a/bb", "x/a/b", "b"}},
		{"** inside a name is *", []string{"a**z"},
			[]string{"az", "abcz", "d/abz"},
			[]string{"a/z"}},
		{"question mark", []string{"?.c"},
			[]string{"a.c", "d/b.c", "é.c"},
			[]string{".c", "ab.c"}},
		{"star does not cross a slash", []string{"a/*.c"},
			[]string{"a/x.c", "a/.c"},
			[]string{"a/b/x.c", "x.c"}},
		{"star matches dot files", []string{"*"},
			[]string{".hidden", "x", "d/"},
			nil},
		{"character class", []string{"[abc].txt", "file[0-9]", "x[!0-9]", "y[^a-z]"},
			[]string{"a.txt", "c.txt", "file7", "xa", "yA"},
			[]string{"d.txt", "filex", "x5", "yb"}},
		{"POSIX classes", []string{"[[:digit:]]*", "[[:upper:][:space:]]z"},
			[]string{"1abc", "Az", " z"},
			[]string{"abc", "az"}},
		{"bracket with ] first and escaped", []string{"[]]x", `[\]]y`, "[a-]z"},
			[]string{"]x", "]y", "-z", "az"},
			[]string{"x", "bz"}},
		{"unclosed bracket matches nothing", []string{"[abc", "ok"},
			[]string{"ok"},
			[]string{"[abc", "a"}},
		{"unknown class matches nothing", []string{"[[:nope:]]"},
			nil,
			[]string{"a", ":"}},
		{"negation", []string{"*.log", "!keep.log"},
			[]string{"a.log", "x/b.log"},
			[]string{"keep.log", "x/keep.log"}},
		{"later rules win", []string{"!keep.log", "*.log"},
			[]string{"keep.log", "a.log"},
			nil},
		{"negation cannot reach below an excluded directory", []string{"build/", "!build/keep.txt"},
			[]string{"build/keep.txt", "build/"},
			nil},
		{"negation of a directory, then of its contents", []string{"/*", "!/foo", "/foo/*", "!/foo/bar"},
			[]string{"a", "x/", "foo/baz", "foo/baz/"},
			[]string{"foo/", "foo/bar", "foo/bar/deep"}},
		{"escaped hash and bang", []string{`\#notes`, `\!important`},
			[]string{"#notes", "!important"},
			[]string{"notes", "important"}},
		{"comments and blank lines", []string{"#notes", "", "   "},
			nil,
			[]string{"#notes", "notes", "   ", ""}},
		{"trailing spaces are ignored", []string{"a.txt   ", "!b.txt  "},
			[]string{"a.txt"},
			[]string{"a.txt   ", "b.txt"}},
		{"escaped trailing space is kept", []string{`c\ `, `d\  `},
			[]string{"c ", "d "},
			[]string{"c", "d", "d  "}},
		{"escaped wildcards are literal", []string{`\*.txt`, `q\?`, `\[x]`},
			[]string{"*.txt", "q?", "[x]"},
			[]string{"a.txt", "qa", "x"}},
		{"double slash matches nothing", []string{"a//b"},
			nil,
			[]string{"a/b", "b", "x/a/b"}},
		{"lone slash or bang match nothing", []string{"/", "!"},
			nil,
			[]string{"a", "a/"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var ps []Pattern
			for _, p := range tt.patterns {
				ps = append(ps, ParsePattern(p, nil))
			}
			m := NewMatcher(ps)
			check := func(p string, want bool) {
				isDir := strings.HasSuffix(p, "/")
				path := split(strings.TrimSuffix(p, "/"))
				if got := m.Match(path, isDir); got != want {
					t.Errorf("patterns %q: Match(%q) = %v, want %v", tt.patterns, p, got, want)
				}
			}
			for _, p := range tt.excluded {
				check(p, true)
			}
			for _, p := range tt.kept {
				check(p, false)
			}
		})
	}
}

// TestNestedDomains checks patterns of a nested .gitignore: they apply
// only below its directory, anchored ones from that directory, and they
// override the patterns of the parents that come before them.
func TestNestedDomains(t *testing.T) {
	m := NewMatcher([]Pattern{
		ParsePattern("*.tmp", nil),
		ParsePattern("/top", nil),
		ParsePattern("!keep.tmp", []string{"sub"}),
		ParsePattern("/local", []string{"sub"}),
		ParsePattern("gen/", []string{"sub", "inner"}),
	})
	tests := []struct {
		path  string
		isDir bool
		want  bool
	}{
		{"a.tmp", false, true},
		{"keep.tmp", false, true},      // the negation is sub's only
		{"sub/keep.tmp", false, false}, // overridden in sub
		{"sub/x/keep.tmp", false, false},
		{"sub/a.tmp", false, true},
		{"top", false, true},
		{"sub/top", false, false},
		{"local", false, false}, // anchored to sub
		{"sub/local", false, true},
		{"sub/x/local", false, false},
		{"sub", true, false}, // a domain never matches itself
		{"sub/inner/gen", true, true},
		{"sub/inner/x/gen/file", false, true},
		{"sub/gen", true, false},
		{"gen", true, false},
	}
	for _, tt := range tests {
		if got := m.Match(split(tt.path), tt.isDir); got != tt.want {
			t.Errorf("Match(%q, dir %v) = %v, want %v", tt.path, tt.isDir, got, tt.want)
		}
	}
}

// TestPatternMatch checks Pattern.Match on its own: the path itself, not
// its parents, and Include for a negation.
func TestPatternMatch(t *testing.T) {
	tests := []struct {
		pattern string
		path    string
		isDir   bool
		want    MatchResult
	}{
		{"*.o", "a/b.o", false, Exclude},
		{"!*.o", "b.o", false, Include},
		{"build", "build/x", false, NoMatch}, // the parent matches, not the path
		{"dir/", "dir", false, NoMatch},
		{"dir/", "dir", true, Exclude},
		{"#x", "#x", false, NoMatch},
	}
	for _, tt := range tests {
		if got := ParsePattern(tt.pattern, nil).Match(split(tt.path), tt.isDir); got != tt.want {
			t.Errorf("ParsePattern(%q).Match(%q, %v) = %v, want %v", tt.pattern, tt.path, tt.isDir, got, tt.want)
		}
	}
}

// TestDomainIsCopied checks that a caller reusing its slice does not
// change a parsed pattern.
func TestDomainIsCopied(t *testing.T) {
	dom := []string{"a"}
	p := ParsePattern("x", dom)
	dom[0] = "b"
	if p.Match(split("a/x"), false) != Exclude {
		t.Error("the pattern's domain changed with the caller's slice")
	}
}

func FuzzWildmatch(f *testing.F) {
	for _, s := range []string{"*", "a*b*c", "[a-z]", "[!x]", "\\*", "[[:alpha:]]", "[", "a\\"} {
		f.Add(s, "abc")
	}
	f.Fuzz(func(t *testing.T, pat, name string) {
		wildmatch(pat, name) // must not panic or hang
	})
}
