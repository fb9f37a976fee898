package experiment

import (
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// RepeatVar is the cell key that holds a repeated instance's repeat id, so
// instances read "real[rate=4,repeat=2]". A matrix variable may not use the
// name when a stage repeats.
const RepeatVar = "repeat"

// MaxRepeats bounds `repeat:`: a repeat is a whole rerun of a stage.
const MaxRepeats = 1000

// decodeRepeat reads `repeat: N` (ids 1..N) or `repeat: [a, b]` (the labels,
// which name instance folders like matrix values do). N = 1 is a single run,
// kept as one id so the instance is still named [repeat=1].
func decodeRepeat(p *problems, stage string, v *yaml.Node) []any {
	where := "stages." + stage + ".repeat"
	switch {
	case v.Kind == yaml.ScalarNode && v.ShortTag() == "!!int":
		n, err := strconv.Atoi(v.Value)
		if err != nil || n < 1 || n > MaxRepeats {
			p.add(posOf(v), "%s: expected a count from 1 to %d (runs of the same stage and inputs), got %s", where, MaxRepeats, v.Value)
			return nil
		}
		ids := make([]any, n)
		for i := range ids {
			ids[i] = i + 1
		}
		return ids
	case v.Kind == yaml.SequenceNode:
		if len(v.Content) == 0 {
			p.add(posOf(v), "%s: the list is empty; give a count (repeat: 3) or at least one label", where)
			return nil
		}
		var ids []any
		seen := map[string]Pos{}
		for _, item := range v.Content {
			item = deref(item)
			if item.Kind != yaml.ScalarNode || item.ShortTag() == "!!null" {
				p.add(posOf(item), "%s: labels must be numbers or strings, got %s", where, describe(item))
				continue
			}
			val, err := scalarValue(item)
			if err != nil {
				p.add(posOf(item), "%s: %v", where, err)
				continue
			}
			text := Format(val)
			if strings.ContainsAny(text, "/\\,=[]\"'") || strings.IndexFunc(text, isSpaceOrControl) >= 0 || text == "" {
				p.add(posOf(item), "%s: label %q cannot name an instance folder; use a short name without spaces, quotes, '/', '\\', ',', '=', '[' or ']'", where, text)
				continue
			}
			if first, dup := seen[text]; dup {
				p.add(posOf(item), "%s: duplicate label %s (first at line %d)", where, text, first.Line)
				continue
			}
			seen[text] = posOf(item)
			ids = append(ids, val)
		}
		if len(ids) > MaxRepeats {
			p.add(posOf(v), "%s: %d labels; at most %d repeats", where, len(ids), MaxRepeats)
			return nil
		}
		return ids
	}
	p.add(posOf(v), "%s: expected a count (repeat: 3) or a list of labels (repeat: [sweep1, sweep2]), got %s", where, describe(v))
	return nil
}

// repeatCells extends a cell with each repeat id of a repeated stage.
func repeatCells(cell map[string]any, ids []any) []map[string]any {
	out := make([]map[string]any, len(ids))
	for i, id := range ids {
		c := make(map[string]any, len(cell)+1)
		for k, v := range cell {
			c[k] = v
		}
		c[RepeatVar] = id
		out[i] = c
	}
	return out
}

// repeatIndex is the 1-based position of a cell's repeat id in ids.
func repeatIndex(cell map[string]any, ids []any) int {
	want := Format(cell[RepeatVar])
	for i, id := range ids {
		if Format(id) == want {
			return i + 1
		}
	}
	return 0
}
