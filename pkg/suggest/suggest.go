// Package suggest finds the name a user probably meant, for "did you mean"
// hints in error messages (stage names, kinds, parameters, flags).
package suggest

import (
	"fmt"
	"strings"
)

// Closest returns the candidate nearest to s by edit distance (ignoring
// case), if it is near enough to be a plausible typo: at most half of s's
// length, and at least 2, edits away.
func Closest(s string, candidates []string) (string, bool) {
	best, bestD := "", -1
	for _, c := range candidates {
		d := Distance(strings.ToLower(s), strings.ToLower(c))
		if bestD < 0 || d < bestD {
			best, bestD = c, d
		}
	}
	if bestD < 0 {
		return "", false
	}
	limit := len(s) / 2
	if limit < 2 {
		limit = 2
	}
	return best, bestD <= limit
}

// DidYouMean formats a suggestion suffix, ` (did you mean "x"?)`, or ""
// when nothing is close.
func DidYouMean(s string, candidates []string) string {
	if c, ok := Closest(s, candidates); ok {
		return fmt.Sprintf(" (did you mean %q?)", c)
	}
	return ""
}

// Distance is the Levenshtein distance between a and b, in runes.
func Distance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}
