package store

import (
	"fmt"
	"strings"
)

// LinkName turns an instance id into the name of its friendly link under
// runs/<experiment>/. Ids carry their matrix cell in brackets
// ("compare[rate=2]"), and `[`, `]` and `=` need quoting in shells (zsh
// globs brackets) and escaping in URLs, so a link is named with characters
// that need neither: the opening bracket becomes '.', '=' becomes '@', the
// closing bracket is dropped, and any other character outside
// [A-Za-z0-9._,-] is written +XX (hex bytes):
//
//	report                      → report
//	compare[rate=2]             → compare.rate@2
//	sim[model=Qwen/Qwen3,rate=4] → sim.model@Qwen+2FQwen3,rate@4
//
// The mapping is one-to-one on instance ids, because stage names hold no
// '.', '@' or '+' and every other character maps to itself or to an escape
// that starts with '+'. Displays keep showing the id itself.
func LinkName(instance string) string {
	stageName, cell, hasCell := strings.Cut(instance, "[")
	if hasCell && strings.HasSuffix(cell, "]") {
		cell = strings.TrimSuffix(cell, "]")
	} else if hasCell {
		// Not an id gsim makes; keep the bracket, escaped.
		cell = "[" + cell
		hasCell = false
	}
	var b strings.Builder
	escapeLinkPart(&b, stageName, false)
	if hasCell {
		b.WriteByte('.')
		escapeLinkPart(&b, cell, true)
	} else if cell != "" {
		escapeLinkPart(&b, cell, false)
	}
	return b.String()
}

func escapeLinkPart(b *strings.Builder, s string, inCell bool) {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '_', c == '-':
			b.WriteByte(c)
		case inCell && (c == '.' || c == ','):
			b.WriteByte(c)
		case inCell && c == '=':
			b.WriteByte('@')
		default:
			fmt.Fprintf(b, "+%02X", c)
		}
	}
}

// legacyLinkName is how links were named before LinkName: the id itself
// with '%' and '/' escaped. Stores made then keep working: Linked falls back
// to it and Link replaces it.
func legacyLinkName(instance string) string {
	return legacyLinkNamer.Replace(instance)
}

// legacyLinkNamer is built once: a replacer's set-up costs more than its use.
var legacyLinkNamer = strings.NewReplacer("%", "%25", "/", "%2F")
