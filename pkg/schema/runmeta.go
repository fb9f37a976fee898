package schema

import (
	"encoding/json"
	"fmt"
	"os"
)

// ReadRunMeta reads run_meta.json and checks the fields compare relies on.
// Unknown keys are allowed: engines add their own.
func ReadRunMeta(path string) (*RunMeta, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var m RunMeta
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, jsonErr(path, b, err)
	}
	if err := checkRunMeta(path, &m); err != nil {
		return nil, err
	}
	return &m, nil
}

func checkRunMeta(path string, m *RunMeta) error {
	field := func(name, format string, args ...any) error {
		return &Error{File: path, Column: name, Msg: fmt.Sprintf(format, args...)}
	}
	switch {
	case m.SchemaVersion != Version:
		return field("schema_version", "%d (expected %d)", m.SchemaVersion, Version)
	case m.RunType != RunReal && m.RunType != RunSim && m.RunType != RunVidur:
		return field("run_type", "%s (expected %s, %s or %s)", Excerpt(m.RunType), RunReal, RunSim, RunVidur)
	case m.Model == "":
		return field("model", "empty (expected the model name, e.g. Qwen/Qwen3-0.6B)")
	case !isHexDigest(m.WorkloadDigest):
		return field("workload_digest", "%s (expected the 64-hex-digit schema.WorkloadDigest of the workload this run replayed)", Excerpt(m.WorkloadDigest))
	}
	return nil
}

func isHexDigest(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// WriteRunMeta writes m as indented JSON, filling schema_version.
func WriteRunMeta(path string, m *RunMeta) error {
	if m.SchemaVersion == 0 {
		m.SchemaVersion = Version
	}
	return writeJSON(path, m)
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encode %s: %w", path, err)
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}
