package profile

import (
	"encoding/csv"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Write writes p under root in Vidur's layout (mlp.csv, attention.csv) and,
// when p has them, cpu_overhead.csv and extra_ops.csv. An op with TimeMs but no Stats is
// written with all five statistics equal to its median and std 0.
func Write(root string, p *Profile) error {
	if p.Device == "" || strings.Count(p.Model, "/") != 1 {
		return fmt.Errorf("write profile: need a device and an org/model name, got %q and %q", p.Device, p.Model)
	}
	dir := filepath.Join(root, filepath.FromSlash(ComputeDir), p.Device, filepath.FromSlash(p.Model))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("write profile: %w", err)
	}
	q := *p
	q.MLP = append([]MLPRow(nil), p.MLP...)
	q.Attention = append([]AttentionRow(nil), p.Attention...)
	sortRows(&q)

	mlp := [][]string{MLPColumns()}
	for _, r := range q.MLP {
		rec := statCells(MLPOps, r.Stats, r.TimeMs)
		rec = append(rec, itoa(r.NHead), itoa(r.NKVHead), itoa(r.NEmbd), itoa(r.NExpandedEmbd),
			itoa(r.VocabSize), pyBool(r.UseGatedMLP), itoa(r.NumTokens), itoa(r.NumTensorParallelWorkers))
		mlp = append(mlp, rec)
	}
	if err := writeCSV(filepath.Join(dir, MLPFile), mlp); err != nil {
		return err
	}
	attn := [][]string{AttentionColumns()}
	for _, r := range q.Attention {
		rec := statCells(AttentionOps, r.Stats, r.TimeMs)
		rec = append(rec, itoa(r.NEmbd), itoa(r.NQHead), itoa(r.NKVHead), itoa(r.BlockSize),
			itoa(r.NumTensorParallelWorkers), itoa(r.MaxModelLen), itoa(r.BatchSize),
			itoa(r.PrefillChunkSize), itoa(r.KVCacheSize), pyBool(r.IsPrefill), r.AttentionBackend)
		attn = append(attn, rec)
	}
	if err := writeCSV(filepath.Join(dir, AttentionFile), attn); err != nil {
		return err
	}
	if len(p.CPURows) > 0 {
		cpu := [][]string{CPUOverheadColumns}
		for _, r := range p.CPURows {
			cpu = append(cpu, []string{r.Name, itoa(r.BatchSize), itoa(r.Samples),
				ftoa(r.Stat.Median), ftoa(r.Stat.Mean), ftoa(r.Stat.Min), ftoa(r.Stat.Max), ftoa(r.Stat.Std)})
		}
		if err := writeCSV(filepath.Join(root, CPUOverheadFile), cpu); err != nil {
			return err
		}
	}
	if len(p.Extra) > 0 {
		x := [][]string{ExtraOpsColumns}
		for _, r := range p.Extra {
			x = append(x, []string{r.Op, itoa(r.NumTokens), itoa(r.KVTokens), itoa(r.Samples),
				ftoa(r.Stat.Median), ftoa(r.Stat.Mean), ftoa(r.Stat.Min), ftoa(r.Stat.Max), ftoa(r.Stat.Std)})
		}
		if err := writeCSV(filepath.Join(root, ExtraOpsFile), x); err != nil {
			return err
		}
	}
	return nil
}

func statCells(ops []string, stats map[string]Stat, med map[string]float64) []string {
	out := make([]string, 0, len(ops)*len(Stats))
	for _, op := range ops {
		s, ok := stats[op]
		if !ok {
			m, has := med[op]
			if !has {
				for range Stats {
					out = append(out, "")
				}
				continue
			}
			s = Stat{Min: m, Max: m, Mean: m, Median: m}
		}
		for _, v := range s.values() {
			out = append(out, ftoa(v))
		}
	}
	return out
}

func writeCSV(path string, recs [][]string) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("write profile: %w", err)
	}
	w := csv.NewWriter(f)
	if err := w.WriteAll(recs); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

func itoa(v int) string { return strconv.Itoa(v) }

func ftoa(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }

// pyBool writes booleans as pandas does, since Vidur compares them after
// pandas parses the CSV.
func pyBool(b bool) string {
	if b {
		return "True"
	}
	return "False"
}
