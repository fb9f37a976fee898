package report

import (
	"fmt"
	"math"
	"strings"

	"github.com/gsim-dev/gsim/pkg/analysis"
)

// Noise is the real engine's own spread on this workload: the reference
// run and its reruns (separate engine processes on the same workload).
type Noise struct {
	// Runs counts the reference and its reruns.
	Runs int `json:"runs"`
	// Bands maps metric → stat → the min-max of that statistic over the
	// runs (analysis.Band).
	Bands map[string]map[string]analysis.Band `json:"bands"`
	// Rerun maps metric → the mean KS and W1 of each rerun to the
	// reference: the distance a second run of the real engine has.
	Rerun map[string]analysis.Distance `json:"rerun_distances"`
}

// CandidateNoise is one candidate against the noise band.
type CandidateNoise struct {
	// Within maps metric → stat → whether the candidate's statistic lies
	// in the rerun band widened to at least ±3% of the reference.
	Within map[string]map[string]bool `json:"within_noise"`
	// Ratio maps metric → the candidate's KS and W1 to the reference
	// divided by a rerun's.
	Ratio map[string]analysis.Distance `json:"distance_ratio"`
}

// Verdict says whether a candidate can be told apart from a rerun of the
// real engine, by the rule in docs/report.md.
type Verdict struct {
	// Indistinguishable is true when every held statistic is within
	// noise and every W1 ratio at most analysis.MaxDistanceRatio.
	Indistinguishable bool `json:"indistinguishable"`
	// Held and Met count the statistics the rule held the candidate to.
	Held int `json:"held"`
	Met  int `json:"met"`
	// Misses name what failed, worst first ("TTFT P90 +35.1% (band -4.0…+8.2%)").
	Misses   []string `json:"misses"`
	Sentence string   `json:"sentence"`
}

// verdictMetrics and verdictStats are what the rule holds a candidate to:
// the latencies users quote, at the percentiles they quote. P99 only where
// the band rests on enough requests (analysis.MinTailRequests).
var (
	verdictMetrics = []string{analysis.TTFT, analysis.TPOT, analysis.E2E}
	verdictStats   = []string{analysis.StatP50, analysis.StatP90, analysis.StatP99}
)

// noiseOf computes the band of every statistic and the rerun distances.
// ref and reruns are the runs' summaries and samples per metric.
func noiseOf(metrics []analysis.MetricInfo, ref *analysis.Run, reruns []*analysis.Run) *Noise {
	if len(reruns) == 0 {
		return nil
	}
	n := &Noise{Runs: 1 + len(reruns), Bands: map[string]map[string]analysis.Band{}, Rerun: map[string]analysis.Distance{}}
	for _, m := range metrics {
		sums := []analysis.Summary{ref.Samples[m.Key].Summary()}
		var samples []*analysis.Sample
		for _, r := range reruns {
			sums = append(sums, r.Samples[m.Key].Summary())
			samples = append(samples, r.Samples[m.Key])
		}
		bands := map[string]analysis.Band{}
		for _, st := range analysis.StatNames {
			if st == analysis.StatCount {
				continue
			}
			bands[st] = analysis.BandOf(sums, st)
		}
		n.Bands[m.Key] = bands
		n.Rerun[m.Key] = analysis.RerunDistanceSamples(ref.Samples[m.Key], samples)
	}
	return n
}

// candidateNoise places a candidate's statistics and distances against the
// noise.
func candidateNoise(n *Noise, refStats, candStats map[string]analysis.Summary, dist map[string]analysis.Distance) *CandidateNoise {
	if n == nil {
		return nil
	}
	cn := &CandidateNoise{Within: map[string]map[string]bool{}, Ratio: map[string]analysis.Distance{}}
	for metric, bands := range n.Bands {
		w := map[string]bool{}
		for st, b := range bands {
			w[st] = b.Within(candStats[metric].Get(st), refStats[metric].Get(st))
		}
		cn.Within[metric] = w
		cn.Ratio[metric] = dist[metric].Ratio(n.Rerun[metric])
	}
	return cn
}

type miss struct {
	text string
	size float64 // how far outside, for ordering
}

// judge applies the rule: P50 and P90 of TTFT, TPOT and E2E within noise,
// P99 too where the band rests on at least MinTailRequests requests per
// run, and W1 of each at most MaxDistanceRatio times a rerun's.
func judge(n *Noise, c Candidate, refStats, candStats map[string]analysis.Summary, refLabel string) *Verdict {
	if n == nil || c.Noise == nil {
		return nil
	}
	v := &Verdict{}
	var misses []miss
	thinTail := false
	for _, metric := range verdictMetrics {
		name := analysis.Info(metric).Name
		for _, st := range verdictStats {
			b := n.Bands[metric][st]
			if st == analysis.StatP99 && b.MinCount < analysis.MinTailRequests {
				thinTail = true
				continue
			}
			if !b.Defined() {
				continue
			}
			v.Held++
			if c.Noise.Within[metric][st] {
				v.Met++
				continue
			}
			ref, cand := refStats[metric].Get(st), candStats[metric].Get(st)
			e := analysis.RelError(ref, cand)
			lo, hi := b.Tolerance(ref)
			rlo, rhi := analysis.RelError(ref, lo), analysis.RelError(ref, hi)
			out := math.Max(analysis.RelError(hi, cand), analysis.RelError(cand, lo))
			misses = append(misses, miss{fmt.Sprintf("%s %s %s (band %s…%s)", name, strings.ToUpper(st), fmtSignedPct(e), fmtSignedPct(rlo), fmtSignedPct(rhi)), out})
		}
		r := c.Noise.Ratio[metric].W1
		if math.IsNaN(r) {
			continue
		}
		v.Held++
		if r <= analysis.MaxDistanceRatio {
			v.Met++
			continue
		}
		misses = append(misses, miss{fmt.Sprintf("W1 of %s %.2f× a rerun's", name, r), r - analysis.MaxDistanceRatio})
	}
	for i := 1; i < len(misses); i++ {
		for j := i; j > 0 && misses[j].size > misses[j-1].size; j-- {
			misses[j], misses[j-1] = misses[j-1], misses[j]
		}
	}
	for _, m := range misses {
		v.Misses = append(v.Misses, m.text)
	}
	v.Indistinguishable = v.Held > 0 && v.Met == v.Held
	tail := ""
	if thinTail {
		tail = fmt.Sprintf("; P99 not held: its band rests on fewer than %d requests per run", analysis.MinTailRequests)
	}
	switch {
	case v.Held == 0:
		v.Sentence = fmt.Sprintf("**%s** cannot be judged against the rerun band: no statistic has a band", c.Label)
	case v.Indistinguishable:
		v.Sentence = fmt.Sprintf("**%s** is indistinguishable from a rerun of %s: all %d held statistics within noise (the rerun band, at least ±%.0f%%; W1 at most %.2f× a rerun's)%s",
			c.Label, refLabel, v.Held, 100*analysis.TolFloor, analysis.MaxDistanceRatio, tail)
	default:
		shown := v.Misses
		if len(shown) > 3 {
			shown = shown[:3]
		}
		v.Sentence = fmt.Sprintf("**%s** is distinguishable from a rerun of %s: %d of %d held statistics within noise; worst: %s%s",
			c.Label, refLabel, v.Met, v.Held, strings.Join(shown, "; "), tail)
	}
	return v
}

// oneLine is the comparison's verdict in one line of plain text, for the
// end of `gsim run` and the sweep report.
func oneLine(res *Result) string {
	var parts []string
	for _, c := range res.Candidates {
		switch {
		case c.Verdict == nil:
			parts = append(parts, fmt.Sprintf("%s: no rerun band (add repeat: 2 to the reference stage)", c.Label))
		case c.Verdict.Indistinguishable:
			parts = append(parts, fmt.Sprintf("%s indistinguishable from a rerun (%d/%d within noise)", c.Label, c.Verdict.Met, c.Verdict.Held))
		default:
			worst := ""
			if len(c.Verdict.Misses) > 0 {
				worst = ", worst " + c.Verdict.Misses[0]
			}
			parts = append(parts, fmt.Sprintf("%s distinguishable (%d/%d within noise%s)", c.Label, c.Verdict.Met, c.Verdict.Held, worst))
		}
	}
	return strings.Join(parts, "; ")
}
