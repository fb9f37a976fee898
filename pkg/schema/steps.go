package schema

import (
	"io"
)

// StepMetricsWriter streams step_metrics.csv.
type StepMetricsWriter struct{ iw intWriter }

// NewStepMetricsWriter returns a buffered writer; call Flush at the end.
func NewStepMetricsWriter(w io.Writer) *StepMetricsWriter {
	return &StepMetricsWriter{iw: newIntWriter(w, StepMetricsColumns)}
}

// Write appends one row.
func (s *StepMetricsWriter) Write(m StepMetric) error {
	return s.iw.writeRow(m.Step, m.StartNs, m.EndNs, m.NumPrefillTokens, m.NumDecodeTokens,
		m.NumRequests, m.NumPrefillRequests, m.NumDecodeRequests, m.NumContextTokens)
}

// Flush writes the header if nothing was written and flushes the buffer.
func (s *StepMetricsWriter) Flush() error { return s.iw.flush() }

// WriteStepMetrics writes rows to path.
func WriteStepMetrics(path string, rows []StepMetric) error {
	return writeFileWith(path, func(w io.Writer) error {
		sw := NewStepMetricsWriter(w)
		for _, r := range rows {
			if err := sw.Write(r); err != nil {
				return err
			}
		}
		return sw.Flush()
	})
}

// ReadStepMetrics reads and checks step_metrics (path names the CSV form;
// the Parquet or gzipped form is read when that is what the folder holds):
// values non-negative, steps strictly increasing, start <= end, starts
// non-decreasing, and the request counts consistent (a request is prefill or
// decode in a step, so num_requests lies between the larger part and their
// sum).
func ReadStepMetrics(path string) ([]StepMetric, error) {
	var rows []StepMetric
	err := ScanStepMetrics(path, func(m StepMetric) error {
		rows = append(rows, m)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return rows, nil
}

// ScanStepMetrics streams step_metrics through fn with ReadStepMetrics'
// checks.
func ScanStepMetrics(path string, fn func(StepMetric) error) error {
	p, pq, err := TablePath(path)
	if err != nil {
		return err
	}
	chk := stepCheck{file: p}
	return scanStored(p, pq, StepMetricsColumns, func(row int, v []int64) error {
		m := StepMetric{Step: v[0], StartNs: v[1], EndNs: v[2], NumPrefillTokens: v[3], NumDecodeTokens: v[4],
			NumRequests: v[5], NumPrefillRequests: v[6], NumDecodeRequests: v[7], NumContextTokens: v[8]}
		if err := chk.add(row, &m); err != nil {
			return err
		}
		return fn(m)
	})
}

// stepCheck applies the step rules row by row.
type stepCheck struct {
	file string
	prev StepMetric
	rows int
}

func (c *stepCheck) add(row int, m *StepMetric) error {
	path := c.file
	for i, x := range [...]int64{m.Step, m.StartNs, m.EndNs, m.NumPrefillTokens, m.NumDecodeTokens,
		m.NumRequests, m.NumPrefillRequests, m.NumDecodeRequests, m.NumContextTokens} {
		if x < 0 {
			return rowErr(path, row, StepMetricsColumns[i], "%d is negative (expected >= 0)", x)
		}
	}
	if c.rows > 0 {
		if m.Step <= c.prev.Step {
			return rowErr(path, row, "step", "%d after step %d (expected strictly increasing step numbers)", m.Step, c.prev.Step)
		}
		if m.StartNs < c.prev.StartNs {
			return rowErr(path, row, "start_ns", "%d is before the previous step's start %d (expected steps in time order)", m.StartNs, c.prev.StartNs)
		}
	}
	if m.EndNs < m.StartNs {
		return rowErr(path, row, "end_ns", "%d is before start_ns %d (expected end_ns >= start_ns)", m.EndNs, m.StartNs)
	}
	if big := max(m.NumPrefillRequests, m.NumDecodeRequests); m.NumRequests < big || m.NumRequests > m.NumPrefillRequests+m.NumDecodeRequests {
		return rowErr(path, row, "num_requests", "%d with %d prefill and %d decode requests (expected between %d and %d)",
			m.NumRequests, m.NumPrefillRequests, m.NumDecodeRequests, big, m.NumPrefillRequests+m.NumDecodeRequests)
	}
	c.prev = *m
	c.rows++
	return nil
}
