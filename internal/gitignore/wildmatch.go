package gitignore

import "unicode/utf8"

// wildmatch reports whether name, one path component, matches pat, one
// pattern segment: "*" matches any run of characters, "?" one character,
// "[...]" one character of a set ("[!...]" or "[^...]" one not in it,
// with ranges "a-z" and classes "[:alpha:]"), and "\" makes the next
// character literal. It is written here, not taken from path.Match, for
// git's "[!...]" and "[:class:]" and because filepath.Match takes "\" as
// a separator on Windows. A malformed pattern matches nothing, as in git.
func wildmatch(pat, name string) bool {
	// Backtracking over the last "*" only: linear in practice, and no
	// pattern can make it exponential.
	px, nx := 0, 0
	starPx, starNx := -1, -1
	for px < len(pat) || nx < len(name) {
		if px < len(pat) {
			switch c := pat[px]; c {
			case '*':
				for px < len(pat) && pat[px] == '*' {
					px++
				}
				starPx, starNx = px, nx
				continue
			case '?':
				if nx < len(name) {
					_, w := utf8.DecodeRuneInString(name[nx:])
					px++
					nx += w
					continue
				}
			case '[':
				if nx < len(name) {
					r, w := utf8.DecodeRuneInString(name[nx:])
					ok, end, valid := matchBracket(pat, px, r)
					if !valid {
						return false
					}
					if ok {
						px = end
						nx += w
						continue
					}
				}
			case '\\':
				if px+1 >= len(pat) {
					return false // a trailing backslash is invalid
				}
				r, w := utf8.DecodeRuneInString(pat[px+1:])
				if nx < len(name) {
					nr, nw := utf8.DecodeRuneInString(name[nx:])
					if nr == r {
						px += 1 + w
						nx += nw
						continue
					}
				}
			default:
				r, w := utf8.DecodeRuneInString(pat[px:])
				if nx < len(name) {
					nr, nw := utf8.DecodeRuneInString(name[nx:])
					if nr == r {
						px += w
						nx += nw
						continue
					}
				}
			}
		}
		// No match here: let the last "*" take one more character.
		if starPx >= 0 && starNx < len(name) {
			_, w := utf8.DecodeRuneInString(name[starNx:])
			starNx += w
			px, nx = starPx, starNx
			continue
		}
		return false
	}
	return true
}

// matchBracket matches r against the bracket expression starting at
// pat[start] == '['. It returns whether r is in the set, the index just
// past the closing ']', and whether the expression is well formed.
func matchBracket(pat string, start int, r rune) (matched bool, end int, valid bool) {
	i := start + 1
	negate := false
	if i < len(pat) && (pat[i] == '!' || pat[i] == '^') {
		negate = true
		i++
	}
	first := true
	for {
		if i >= len(pat) {
			return false, 0, false // no closing ']'
		}
		c := pat[i]
		if c == ']' && !first {
			return matched != negate, i + 1, true
		}
		first = false
		if c == '[' && i+1 < len(pat) && pat[i+1] == ':' {
			cls := indexFrom(pat, i+2, ":]")
			if cls < 0 {
				return false, 0, false
			}
			in, known := inClass(pat[i+2:cls], r)
			if !known {
				return false, 0, false
			}
			matched = matched || in
			i = cls + 2
			continue
		}
		lo, w, ok := bracketChar(pat, i)
		if !ok {
			return false, 0, false
		}
		i += w
		hi := lo
		if i+1 < len(pat) && pat[i] == '-' && pat[i+1] != ']' {
			if hi, w, ok = bracketChar(pat, i+1); !ok {
				return false, 0, false
			}
			i += 1 + w
		}
		if lo <= r && r <= hi {
			matched = true
		}
	}
}

// bracketChar reads one possibly escaped character of a bracket
// expression at pat[i].
func bracketChar(pat string, i int) (rune, int, bool) {
	if pat[i] == '\\' {
		if i+1 >= len(pat) {
			return 0, 0, false
		}
		r, w := utf8.DecodeRuneInString(pat[i+1:])
		return r, 1 + w, true
	}
	r, w := utf8.DecodeRuneInString(pat[i:])
	return r, w, true
}

func indexFrom(s string, from int, sub string) int {
	for i := from; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return i
		}
	}
	return -1
}

// inClass reports whether r is in the POSIX class name, as git's
// wildmatch defines them (ASCII only), and whether the class exists.
func inClass(name string, r rune) (in, known bool) {
	isUpper := 'A' <= r && r <= 'Z'
	isLower := 'a' <= r && r <= 'z'
	isDigit := '0' <= r && r <= '9'
	switch name {
	case "alnum":
		return isUpper || isLower || isDigit, true
	case "alpha":
		return isUpper || isLower, true
	case "blank":
		return r == ' ' || r == '\t', true
	case "cntrl":
		return r < 0x20 || r == 0x7f, true
	case "digit":
		return isDigit, true
	case "graph":
		return r > 0x20 && r < 0x7f, true
	case "lower":
		return isLower, true
	case "print":
		return r >= 0x20 && r < 0x7f, true
	case "punct":
		return r > 0x20 && r < 0x7f && !isUpper && !isLower && !isDigit, true
	case "space":
		return r == ' ' || (r >= '\t' && r <= '\r'), true
	case "upper":
		return isUpper, true
	case "xdigit":
		return isDigit || ('a' <= r && r <= 'f') || ('A' <= r && r <= 'F'), true
	}
	return false, false
}
