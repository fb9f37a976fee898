package report

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
)

// ReadResult reads compare.json from a compare output folder.
func ReadResult(dir string) (*Result, error) {
	path := filepath.Join(dir, CompareFile)
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w (is this a compare stage's output folder?)", path, err)
	}
	var r Result
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if r.SchemaVersion != ResultVersion {
		return nil, fmt.Errorf("%s: schema_version %d, this gsim reads %d; rerun the compare stage", path, r.SchemaVersion, ResultVersion)
	}
	if len(r.Runs) == 0 {
		return nil, fmt.Errorf("%s: no runs", path)
	}
	return &r, nil
}
