package schema

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// A canonical table is named by its CSV path (dir/token_metrics.csv) and may
// be stored in one of three forms: Parquet (dir/token_metrics.parquet, what
// gsim's simulators write), plain CSV (what GPU runners write), or gzipped
// CSV (recorded runs in the repository). Every reader finds the one that is
// there, so old runs and new ones read alike.

// TablePath returns the stored form of the table whose CSV path is csvPath
// and whether it is Parquet. A folder holding both a Parquet and a CSV form
// is ambiguous and an error; with none, the error is csvPath's not-exist.
func TablePath(csvPath string) (path string, isParquet bool, err error) {
	if strings.HasSuffix(csvPath, ParquetSuffix) {
		_, err := os.Stat(csvPath)
		return csvPath, true, err
	}
	pq := parquetPath(csvPath)
	_, perr := os.Stat(pq)
	hasPQ := perr == nil
	plain, gz := statExists(csvPath), statExists(csvPath+GzipSuffix)
	switch {
	case hasPQ && (plain || gz):
		other := csvPath
		if !plain {
			other += GzipSuffix
		}
		return "", false, &Error{File: pq, Msg: fmt.Sprintf("%s is here too; a run folder holds one form of each table: remove the stale one", filepath.Base(other))}
	case hasPQ:
		return pq, true, nil
	case plain:
		return csvPath, false, nil
	case gz:
		return csvPath + GzipSuffix, false, nil
	}
	if perr != nil && !errors.Is(perr, fs.ErrNotExist) {
		return "", false, perr
	}
	_, err = os.Stat(csvPath)
	return "", false, err
}

// parquetPath is the Parquet name beside a CSV name.
func parquetPath(csvPath string) string {
	return strings.TrimSuffix(csvPath, ".csv") + ParquetSuffix
}

func statExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
