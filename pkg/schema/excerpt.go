package schema

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// maxExcerpt bounds what an error quotes of a value read from a file.
const maxExcerpt = 24

// Excerpt quotes a value read from a file for an error message: at most
// maxExcerpt bytes (cut at a character, the full length said after), with
// control characters, invalid UTF-8 and other unprintable runes shown as
// '?'. Errors end up in terminals, stage.log and CI logs: they must not
// replay escape sequences, nor copy a whole line of whatever file a param
// named by mistake (a password file's first line, say).
func Excerpt(s string) string {
	n := len(s)
	cut := n > maxExcerpt
	if cut {
		s = s[:maxExcerpt]
		// Drop a character the cut split in two.
		i := len(s) - 1
		for i > 0 && !utf8.RuneStart(s[i]) && len(s)-i < utf8.UTFMax {
			i--
		}
		if !utf8.FullRuneInString(s[i:]) {
			s = s[:i]
		}
	}
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == utf8.RuneError, !unicode.IsPrint(r):
			b.WriteByte('?')
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		default:
			b.WriteRune(r)
		}
	}
	if cut {
		b.WriteString("…")
	}
	b.WriteByte('"')
	if cut {
		fmt.Fprintf(&b, " (%d bytes)", n)
	}
	return b.String()
}
