package predict

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// table is a CSV file read by column name, numbers parsed lazily.
type table struct {
	path string
	cols map[string]int
	rows [][]string
}

func readTable(path string) (*table, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r := csv.NewReader(f)
	r.FieldsPerRecord = -1
	head, err := r.Read()
	if err != nil {
		return nil, fmt.Errorf("%s: no header row: %w", path, err)
	}
	t := &table{path: path, cols: map[string]int{}}
	for i, h := range head {
		t.cols[strings.TrimSpace(h)] = i
	}
	for {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		t.rows = append(t.rows, rec)
	}
	return t, nil
}

func (t *table) has(col string) bool { _, ok := t.cols[col]; return ok }

// num returns column col of row i as a number; a missing column or an empty
// cell reads as def (Vidur fills missing op columns with 0 the same way).
func (t *table) num(i int, col string, def float64) (float64, error) {
	c, ok := t.cols[col]
	if !ok || c >= len(t.rows[i]) {
		return def, nil
	}
	s := strings.TrimSpace(t.rows[i][c])
	if s == "" || s == "nan" || s == "NaN" {
		return def, nil
	}
	if s == "True" || s == "true" {
		return 1, nil
	}
	if s == "False" || s == "false" {
		return 0, nil
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, fmt.Errorf("%s: row %d, column %s: %q is not a number", t.path, i+2, col, s)
	}
	return v, nil
}

func (t *table) require(cols ...string) error {
	var missing []string
	for _, c := range cols {
		if !t.has(c) {
			missing = append(missing, c)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%s: missing column(s) %s; is it a Vidur-format profile?", t.path, strings.Join(missing, ", "))
	}
	return nil
}
