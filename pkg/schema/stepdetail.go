package schema

import (
	"encoding/csv"
	"errors"
	"io"
	"strconv"
)

// StepDetailFile is the real bench's optional per-step breakdown: where each
// engine step's time went (scheduling, batch preparation, the forward, the
// device-to-host wait, the update) and which CUDA graph it used. Simulators
// do not write it; it is the evidence a step model is calibrated against.
const StepDetailFile = "step_detail.csv"

// StepDetail is one row of step_detail.csv. Times are ns since the replay
// started; -1 marks what the engine version offered no hook for.
type StepDetail struct {
	Step                                      int64
	StartNs, SchedEndNs, PrepEndNs            int64
	ComputeStartNs, ComputeEndNs, SyncEndNs   int64
	UpdateStartNs, EndNs                      int64
	QTokens, KVRead, MaxSeqlenQ, MaxSeqlenK   int64
	QPadded, KVPadded, SeqlenKPadded          int64
	GraphKey                                  string
	GraphHit, GraphCaptured, GraphsCached     int64
	DecodeFastPath, Waiting, Active, FreeBlks int64
	// GCCount and GCNs are Python garbage-collector pauses inside the step.
	GCCount, GCNs int64
}

// StepDetailColumns is the header of step_detail.csv.
var StepDetailColumns = []string{"step", "start_ns", "sched_end_ns", "prep_end_ns", "compute_start_ns",
	"compute_end_ns", "sync_end_ns", "update_start_ns", "end_ns", "q_tokens", "kv_read", "max_seqlen_q",
	"max_seqlen_k", "q_padded", "kv_padded", "seqlen_k_padded", "graph_key", "graph_hit", "graph_captured",
	"graphs_cached", "decode_fast_path", "waiting", "active", "free_blocks", "gc_count", "gc_ns"}

// ReadStepDetail reads step_detail.csv (or its .gz). Every column but
// graph_key is an integer; steps must increase.
func ReadStepDetail(path string) ([]StepDetail, error) {
	f, err := Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r := csv.NewReader(f)
	r.ReuseRecord = true
	head, err := r.Read()
	if err != nil {
		return nil, rowErr(path, 1, "", "no header: %v (expected %d columns starting with step)", err, len(StepDetailColumns))
	}
	if len(head) != len(StepDetailColumns) {
		return nil, rowErr(path, 1, "", "%d columns (expected %d: %v)", len(head), len(StepDetailColumns), StepDetailColumns)
	}
	for i, c := range head {
		if c != StepDetailColumns[i] {
			return nil, rowErr(path, 1, c, "column %d is %q (expected %q)", i+1, c, StepDetailColumns[i])
		}
	}
	var out []StepDetail
	for row := 2; ; row++ {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, rowErr(path, row, "", "%v", err)
		}
		var v [25]int64
		j := 0
		for i, s := range rec {
			if i == 16 {
				continue
			}
			x, err := strconv.ParseInt(s, 10, 64)
			if err != nil {
				return nil, rowErr(path, row, StepDetailColumns[i], "%q is not an integer", s)
			}
			v[j] = x
			j++
		}
		d := StepDetail{Step: v[0], StartNs: v[1], SchedEndNs: v[2], PrepEndNs: v[3], ComputeStartNs: v[4],
			ComputeEndNs: v[5], SyncEndNs: v[6], UpdateStartNs: v[7], EndNs: v[8], QTokens: v[9], KVRead: v[10],
			MaxSeqlenQ: v[11], MaxSeqlenK: v[12], QPadded: v[13], KVPadded: v[14], SeqlenKPadded: v[15],
			GraphKey: rec[16], GraphHit: v[16], GraphCaptured: v[17], GraphsCached: v[18], DecodeFastPath: v[19],
			Waiting: v[20], Active: v[21], FreeBlks: v[22], GCCount: v[23], GCNs: v[24]}
		if len(out) > 0 && d.Step <= out[len(out)-1].Step {
			return nil, rowErr(path, row, "step", "%d after step %d (expected strictly increasing step numbers)", d.Step, out[len(out)-1].Step)
		}
		out = append(out, d)
	}
}
