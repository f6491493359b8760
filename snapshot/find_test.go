package snapshot

import (
	"testing"
	"time"
)

func TestFindMatcher(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	file := &Node{Name: "x", Type: TypeFile, ModTime: t0}
	for _, c := range []struct {
		q    FindQuery
		path string
		want bool
	}{
		{FindQuery{Patterns: []string{"*.go"}}, "/src/a/main.go", true},
		{FindQuery{Patterns: []string{"*.go"}}, "/src/a/main.go.bak", false},
		{FindQuery{Patterns: []string{"main.?o"}}, "/main.go", true},
		{FindQuery{Patterns: []string{"*.txt", "*.go"}}, "/a/b.go", true}, // any pattern
		{FindQuery{Patterns: []string{"a/*.go"}}, "/src/a/main.go", true}, // at any depth
		{FindQuery{Patterns: []string{"a/*.go"}}, "/src/a/b/main.go", false},
		{FindQuery{Patterns: []string{"/src/a/*.go"}}, "/src/a/main.go", true}, // anchored
		{FindQuery{Patterns: []string{"/a/*.go"}}, "/src/a/main.go", false},
		{FindQuery{Patterns: []string{"src/**/*.go"}}, "/src/main.go", true}, // ** is zero directories too
		{FindQuery{Patterns: []string{"src/**/*.go"}}, "/src/a/b/c/main.go", true},
		{FindQuery{Patterns: []string{"src/**"}}, "/home/src/a/b", true},
		{FindQuery{Patterns: []string{"/src/**/c"}}, "/home/src/a/c", false},
		{FindQuery{Patterns: []string{"src/**/*.go"}}, "/lib/a/main.go", false},
		{FindQuery{Patterns: []string{`a/b\.c`}}, "/a/b.c", true},
		{FindQuery{Patterns: []string{`/a/.*\.go$`}, Regex: true}, "/x/a/b/c.go", true},
		{FindQuery{Patterns: []string{`^/a/`}, Regex: true}, "/x/a/b/c.go", false},
		{FindQuery{Patterns: []string{"*"}, Newer: t0}, "/x", true}, // at or after
		{FindQuery{Patterns: []string{"*"}, Newer: t0.Add(time.Second)}, "/x", false},
		{FindQuery{Patterns: []string{"*"}, Older: t0}, "/x", false}, // strictly before
		{FindQuery{Patterns: []string{"*"}, Older: t0.Add(time.Second)}, "/x", true},
	} {
		m, err := NewMatcher(c.q)
		if err != nil {
			t.Fatalf("%+v: %v", c.q, err)
		}
		if got := m.Match(c.path, file); got != c.want {
			t.Errorf("%+v on %s: %v, want %v", c.q, c.path, got, c.want)
		}
	}
	for _, q := range []FindQuery{{Patterns: []string{"[a"}}, {Patterns: []string{"a/[b"}}, {Patterns: []string{"(a"}, Regex: true}} {
		if _, err := NewMatcher(q); err == nil {
			t.Errorf("%+v: no error for a bad pattern", q)
		}
	}
}
