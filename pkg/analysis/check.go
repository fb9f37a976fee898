package analysis

import (
	"errors"
	"fmt"
	"strings"

	"github.com/gsim-dev/gsim/pkg/schema"
)

// Sentinel errors of the consistency checks; errors returned by the checks
// wrap one of them (test with errors.Is) and say which folder and what to do.
var (
	ErrWorkloadDigest = errors.New("workload digest mismatch")
	ErrRequestSet     = errors.New("request sets differ")
	ErrTokenCounts    = errors.New("token counts differ")
)

// maxListed bounds how many offending request ids an error names.
const maxListed = 5

func short(d string) string {
	if len(d) > 16 {
		return d[:16] + "…"
	}
	if d == "" {
		return "(empty)"
	}
	return d
}

// CheckDigest checks that run's run_meta.json names the workload digest want,
// which came from the folder wantFrom (a workload folder or the reference
// run), so latencies of different workloads are never compared.
func CheckDigest(name string, r *Run, want, wantFrom string) error {
	got := r.Meta.WorkloadDigest
	if got == want {
		return nil
	}
	return fmt.Errorf("%w: run %q (%s): %s has workload_digest %s but %s has %s; the run was made on another workload: rerun it on this workload, or compare it with the runs of the workload it was made on",
		ErrWorkloadDigest, name, r.Dir, schema.RunMetaFile, short(got), wantFrom, short(want))
}

// CheckSameRequests checks that cand has exactly ref's request ids and, per
// request, the same num_prefill_tokens and num_decode_tokens.
func CheckSameRequests(refName string, ref *Run, name string, cand *Run) error {
	var missing, extra []int64
	var nMissing, nExtra int
	var mism []string
	var nMism int
	a, b := ref.Shapes, cand.Shapes
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		switch {
		case j == len(b) || (i < len(a) && a[i].ID < b[j].ID):
			nMissing++
			if len(missing) < maxListed {
				missing = append(missing, a[i].ID)
			}
			i++
		case i == len(a) || b[j].ID < a[i].ID:
			nExtra++
			if len(extra) < maxListed {
				extra = append(extra, b[j].ID)
			}
			j++
		default:
			if a[i].Prefill != b[j].Prefill || a[i].Decode != b[j].Decode {
				nMism++
				if len(mism) < maxListed {
					mism = append(mism, fmt.Sprintf("request %d: %s has prefill=%d decode=%d, %s has prefill=%d decode=%d",
						a[i].ID, refName, a[i].Prefill, a[i].Decode, name, b[j].Prefill, b[j].Decode))
				}
			}
			i++
			j++
		}
	}
	if nMissing > 0 || nExtra > 0 {
		var parts []string
		if nMissing > 0 {
			parts = append(parts, fmt.Sprintf("%d request(s) of %q missing (ids %s)", nMissing, refName, ids(missing, nMissing)))
		}
		if nExtra > 0 {
			parts = append(parts, fmt.Sprintf("%d request(s) not in %q (ids %s)", nExtra, refName, ids(extra, nExtra)))
		}
		return fmt.Errorf("%w: run %q (%s), %s: %s; every run must contain every workload request (failed ones with status=failed): rerun it on the same workload",
			ErrRequestSet, name, cand.Dir, schema.RequestMetricsFile, strings.Join(parts, "; "))
	}
	if nMism > 0 {
		return fmt.Errorf("%w: run %q (%s), %s: %d request(s) differ in num_prefill_tokens/num_decode_tokens: %s; the runs were made on different workloads: rerun it on the same workload",
			ErrTokenCounts, name, cand.Dir, schema.RequestMetricsFile, nMism, strings.Join(mism, "; "))
	}
	return nil
}

// CheckAgainstWorkload checks a run's request ids and token counts against
// the workload's trace_lengths.csv.
func CheckAgainstWorkload(w *schema.Workload, wdir, name string, r *Run) error {
	ref := &Run{Dir: wdir, Shapes: make([]Shape, len(w.Requests))}
	for i, q := range w.Requests {
		ref.Shapes[i] = Shape{q.ID, q.NumPrefillTokens, q.NumDecodeTokens}
	}
	return CheckSameRequests("workload", ref, name, r)
}

func ids(list []int64, n int) string {
	s := make([]string, len(list))
	for i, v := range list {
		s[i] = fmt.Sprint(v)
	}
	out := strings.Join(s, ", ")
	if n > len(list) {
		out += fmt.Sprintf(", … %d more", n-len(list))
	}
	return out
}
