package predict

import (
	"path/filepath"
	"testing"

	"github.com/gsim-dev/gsim/pkg/profile"
	"github.com/gsim-dev/gsim/pkg/sim/sched"
)

// The recorded H100 profile of Qwen3-0.6B (testdata/profile/h100) read
// through the real reader: decode steps must land near the GPU time the
// profiler measured for whole engine decode steps (its cpu_overhead.csv
// engine_decode_step_gpu rows), since both count kernels only.
func TestRecordedH100Profile(t *testing.T) {
	root := filepath.Join("..", "..", "..", "testdata", "profile", "h100")
	prof, err := profile.Read(root)
	if err != nil {
		t.Fatal(err)
	}
	p, err := NewVidurProfile(prof, VidurModel{NumLayers: 28, NumQHeads: 16, NumKVHeads: 8, Hidden: 1024, PostAttnNorm: true}, NewVidurOptions())
	if err != nil {
		t.Fatal(err)
	}
	gpu := map[int]float64{}
	for _, r := range prof.CPURows {
		if r.Name == "engine_decode_step_gpu" {
			gpu[r.BatchSize] = r.Stat.Median
		}
	}
	if len(gpu) == 0 {
		t.Skip("profile has no engine_decode_step_gpu rows")
	}
	for bs, want := range gpu {
		var b sched.Batch
		for i := 0; i < bs; i++ {
			r := sched.NewRequest(i, int64(i), 0, 128, 64)
			r.PrefillDone, r.Processed = true, 129
			b.Entries = append(b.Entries, sched.Entry{Req: r, Tokens: 1, ProcessedBefore: 129, CacheBefore: 128})
		}
		got := p.StepMs(&b)
		t.Logf("decode batch %d: vidur-profile %.3f ms, profiled engine GPU step %.3f ms", bs, got, want)
		if got < 0.7*want || got > 1.4*want {
			t.Errorf("decode batch %d: %.3f ms is far from the profiled %.3f ms", bs, got, want)
		}
	}
}
