// Package gitignore matches paths against gitignore patterns, with git's
// semantics (gitignore(5)): negation with "!", directory-only patterns
// ending in "/", patterns anchored by a "/" at their start or in their
// middle, "**" for any number of directories, "*", "?" and bracket
// expressions that never match a "/", backslash escapes, trailing spaces
// ignored unless escaped, and later patterns overriding earlier ones.
//
// Paths are given as their components ([]string{"a", "b.txt"}), never
// joined, so that the matcher works the same with any path separator.
// The API follows go-git's plumbing/format/gitignore, which coffer used
// before, so that the archiver's calls stay as they were.
package gitignore

import "strings"

// MatchResult is the outcome of matching one pattern against a path.
type MatchResult int

const (
	// NoMatch means the pattern does not apply to the path.
	NoMatch MatchResult = iota
	// Exclude means the pattern excludes the path.
	Exclude
	// Include means a negated pattern ("!x") includes the path again.
	Include
)

// Pattern is one parsed gitignore pattern.
type Pattern interface {
	// Match reports whether the pattern applies to the path itself
	// (not to one of its parents: Matcher handles those) and how.
	Match(path []string, isDir bool) MatchResult
}

type pattern struct {
	domain   []string // the directory of the .gitignore holding it
	segments []string // split at "/"; "**" kept as a segment
	negate   bool
	dirOnly  bool
	anchored bool // matched from the domain, not at any depth
	empty    bool // a blank line or a comment: matches nothing
}

// ParsePattern parses one line of a gitignore file. domain is the
// directory that holds the file, as path components relative to the
// root paths are given against (nil for the root): the pattern applies
// only below it, as a nested .gitignore does. A blank line or a comment
// ("#...") gives a pattern that matches nothing.
func ParsePattern(p string, domain []string) Pattern {
	res := &pattern{domain: append([]string(nil), domain...)}
	if p == "" || p[0] == '#' {
		res.empty = true
		return res
	}
	p = trimTrailingSpaces(p)
	if p != "" && p[0] == '!' {
		res.negate = true
		p = p[1:]
	}
	if strings.HasSuffix(p, "/") {
		res.dirOnly = true
		p = strings.TrimRight(p, "/")
	}
	if p == "" {
		res.empty = true
		return res
	}
	// A slash at the start or in the middle anchors the pattern to its
	// domain; a name alone matches at any depth.
	if strings.Contains(p, "/") {
		res.anchored = true
		p = strings.TrimPrefix(p, "/")
	}
	// An empty segment ("a//b") matches no path component, as in git.
	res.segments = strings.Split(p, "/")
	return res
}

// trimTrailingSpaces drops unescaped trailing spaces, as git's
// trim_trailing_spaces does: "a\ " keeps its escaped space.
func trimTrailingSpaces(p string) string {
	lastSpace := -1
	for i := 0; i < len(p); i++ {
		switch p[i] {
		case ' ':
			if lastSpace < 0 {
				lastSpace = i
			}
		case '\\':
			i++
			if i >= len(p) {
				return p
			}
			lastSpace = -1
		default:
			lastSpace = -1
		}
	}
	if lastSpace >= 0 {
		return p[:lastSpace]
	}
	return p
}

// Match implements Pattern.
func (p *pattern) Match(path []string, isDir bool) MatchResult {
	if p.empty || len(path) <= len(p.domain) {
		return NoMatch
	}
	for i, e := range p.domain {
		if path[i] != e {
			return NoMatch
		}
	}
	if p.dirOnly && !isDir {
		return NoMatch
	}
	rel := path[len(p.domain):]
	var ok bool
	if p.anchored {
		ok = matchSegments(p.segments, rel)
	} else {
		ok = wildmatch(p.segments[0], rel[len(rel)-1])
	}
	switch {
	case !ok:
		return NoMatch
	case p.negate:
		return Include
	default:
		return Exclude
	}
}

// matchSegments matches pattern segments against path components, where
// a "**" segment stands for zero or more components.
func matchSegments(pat, path []string) bool {
	for len(pat) > 0 {
		if pat[0] == "**" {
			rest := pat[1:]
			if len(rest) == 0 {
				// A trailing "/**" matches everything inside, not the
				// directory itself.
				return len(path) > 0
			}
			for i := 0; i <= len(path); i++ {
				if matchSegments(rest, path[i:]) {
					return true
				}
			}
			return false
		}
		if len(path) == 0 || !wildmatch(pat[0], path[0]) {
			return false
		}
		pat, path = pat[1:], path[1:]
	}
	return len(path) == 0
}

// Matcher matches paths against a list of patterns.
type Matcher interface {
	// Match reports whether path is excluded: whether the last pattern
	// that applies to it, or to one of its parent directories, excludes
	// it. As in git, a path below an excluded directory cannot be
	// included again by a later "!" pattern.
	Match(path []string, isDir bool) bool
}

// NewMatcher returns a Matcher for ps, given in increasing priority: a
// later pattern overrides an earlier one, so the patterns of a nested
// .gitignore come after those of its parents.
func NewMatcher(ps []Pattern) Matcher {
	return &matcher{patterns: ps}
}

type matcher struct {
	patterns []Pattern
}

func (m *matcher) Match(path []string, isDir bool) bool {
	if len(m.patterns) == 0 {
		return false
	}
	for n := 1; n <= len(path); n++ {
		dir := n < len(path) || isDir
		for i := len(m.patterns) - 1; i >= 0; i-- {
			r := m.patterns[i].Match(path[:n], dir)
			if r == Exclude {
				return true
			}
			if r == Include {
				break
			}
		}
	}
	return false
}
