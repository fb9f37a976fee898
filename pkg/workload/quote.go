package workload

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/gsim-dev/gsim/pkg/schema"
)

// quoter shows values read from a file a param names in error messages,
// which end up in terminals, stage.log and CI logs. It quotes at most a
// short, sanitized excerpt (schema.Excerpt), and nothing at all from a file
// that lies outside the experiment's folder (after symlinks) and that other
// users may not read: that is where secrets live (a password file, a key),
// and a param can name one by mistake or in a shared experiment. Such a
// file's errors still give the row, line and column.
type quoter struct{ hide bool }

const hidden = "not shown: the file is outside the experiment's folder and not world-readable"

func quoterFor(baseDir, path string) quoter {
	return quoter{hide: outside(baseDir, path) && !worldReadable(path)}
}

func outside(baseDir, path string) bool {
	if baseDir == "" {
		baseDir = "."
	}
	dir, err := filepath.EvalSymlinks(baseDir)
	if err != nil {
		return true
	}
	file, err := filepath.EvalSymlinks(path)
	if err != nil {
		return true
	}
	dir, err1 := filepath.Abs(dir)
	file, err2 := filepath.Abs(file)
	rel, err := filepath.Rel(dir, file)
	return err1 != nil || err2 != nil || err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator))
}

func worldReadable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().Perm()&0o004 != 0
}

// value quotes one value read from the file.
func (q quoter) value(s string) string {
	if q.hide {
		return "a value (" + hidden + ")"
	}
	return schema.Excerpt(s)
}

// columns lists a file's column names: plain names as written, anything
// else excerpted, at most maxListed of them.
func (q quoter) columns(names []string) string {
	if q.hide {
		if len(names) == 1 {
			return "1 column, " + hidden
		}
		return fmt.Sprintf("%d columns, %s", len(names), hidden)
	}
	const maxListed = 8
	var parts []string
	for i, n := range names {
		if i == maxListed {
			parts = append(parts, fmt.Sprintf("and %d more", len(names)-maxListed))
			break
		}
		if len(n) > 0 && len(n) <= 64 && strings.Trim(n, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.") == "" {
			parts = append(parts, n)
		} else {
			parts = append(parts, schema.Excerpt(n))
		}
	}
	return strings.Join(parts, ", ")
}
