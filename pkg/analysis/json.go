package analysis

import (
	"encoding/json"
	"math"
	"strconv"
)

// Num is a float64 that encodes NaN and ±Inf as JSON null (encoding/json
// refuses them), so an undefined statistic survives a round trip as NaN.
type Num float64

// MarshalJSON writes null for non-finite values.
func (n Num) MarshalJSON() ([]byte, error) {
	f := float64(n)
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return []byte("null"), nil
	}
	return strconv.AppendFloat(nil, f, 'g', -1, 64), nil
}

// UnmarshalJSON reads null as NaN.
func (n *Num) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*n = Num(math.NaN())
		return nil
	}
	var f float64
	if err := json.Unmarshal(b, &f); err != nil {
		return err
	}
	*n = Num(f)
	return nil
}

type summaryJSON struct {
	Count       int     `json:"count"`
	Mean        Num     `json:"mean"`
	P50         Num     `json:"p50"`
	P90         Num     `json:"p90"`
	P95         Num     `json:"p95"`
	P99         Num     `json:"p99"`
	Min         Num     `json:"min"`
	Max         Num     `json:"max"`
	Quantiles   string  `json:"quantiles,omitempty"`
	RelAccuracy float64 `json:"rel_accuracy,omitempty"`
}

// MarshalJSON encodes undefined statistics (empty samples) as null.
func (s Summary) MarshalJSON() ([]byte, error) {
	return json.Marshal(summaryJSON{s.Count, Num(s.Mean), Num(s.P50), Num(s.P90), Num(s.P95), Num(s.P99), Num(s.Min), Num(s.Max),
		s.Quantiles, s.RelAccuracy})
}

// UnmarshalJSON reads null statistics as NaN.
func (s *Summary) UnmarshalJSON(b []byte) error {
	var j summaryJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*s = Summary{j.Count, float64(j.Mean), float64(j.P50), float64(j.P90), float64(j.P95), float64(j.P99), float64(j.Min), float64(j.Max),
		j.Quantiles, j.RelAccuracy}
	return nil
}

type distanceJSON struct {
	KS      Num     `json:"ks"`
	W1      Num     `json:"w1"`
	KSError float64 `json:"ks_error,omitempty"`
	W1Error float64 `json:"w1_error,omitempty"`
}

// MarshalJSON encodes undefined distances as null.
func (d Distance) MarshalJSON() ([]byte, error) {
	return json.Marshal(distanceJSON{Num(d.KS), Num(d.W1), d.KSError, d.W1Error})
}

// UnmarshalJSON reads null distances as NaN.
func (d *Distance) UnmarshalJSON(b []byte) error {
	var j distanceJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*d = Distance{float64(j.KS), float64(j.W1), j.KSError, j.W1Error}
	return nil
}
