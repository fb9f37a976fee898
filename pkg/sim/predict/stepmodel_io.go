package predict

import (
	"encoding/json"
	"fmt"
	"os"
)

// Write saves the model as JSON.
func (m *StepModel) Write(path string) error {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// ReadStepModel loads a model written by Write.
func ReadStepModel(path string) (*StepModel, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("step model: %w", err)
	}
	var m StepModel
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("step model %s: %w", path, err)
	}
	if m.Mechanics != nil {
		for _, l := range []struct {
			what string
			law  Law
		}{{"host", m.Mechanics.Host}, {"device", m.Mechanics.Device}, {"capture", m.Mechanics.Capture}} {
			if err := l.law.check(l.what); err != nil {
				return nil, fmt.Errorf("step model %s: %w; refit it with the fit stage", path, err)
			}
		}
		return &m, nil
	}
	if len(m.Features) == 0 || len(m.Features) != len(m.Coef) {
		return nil, fmt.Errorf("step model %s: features and coefficients_ns must be non-empty and of equal length; refit it with the fit stage", path)
	}
	for _, f := range m.Features {
		ok := false
		for _, a := range AllFeatures {
			ok = ok || a == f
		}
		if !ok {
			return nil, fmt.Errorf("step model %s: unknown feature %q", path, f)
		}
	}
	return &m, nil
}
