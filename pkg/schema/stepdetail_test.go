package schema

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// testdata/step_detail.csv was written by stages/real_bench's recorder
// (bench_core.DETAIL_COLUMNS) driven by its unit test's stand-in engine, so
// this checks that the Go reader and the Python writer agree on the columns.
func TestReadStepDetailFromRunner(t *testing.T) {
	rows, err := ReadStepDetail("testdata/step_detail.csv")
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 3 {
		t.Fatalf("%d rows, want 3", len(rows))
	}
	r := rows[0]
	if r.GraphKey != "128x16384x1024" || r.QPadded != 128 || r.KVPadded != 16384 || r.SeqlenKPadded != 1024 ||
		r.GraphHit != 0 || r.GraphCaptured != 1 || r.QTokens != 100 || r.MaxSeqlenK != 100 {
		t.Errorf("row 0: %+v", r)
	}
	if rows[2].GraphHit != 1 || rows[2].GraphCaptured != 0 || rows[2].KVRead != 101 {
		t.Errorf("row 2: %+v", rows[2])
	}
	for _, r := range rows {
		if !(r.StartNs <= r.SchedEndNs && r.SchedEndNs <= r.PrepEndNs && r.PrepEndNs <= r.ComputeStartNs &&
			r.ComputeEndNs <= r.SyncEndNs && r.SyncEndNs <= r.UpdateStartNs && r.UpdateStartNs <= r.EndNs) {
			t.Errorf("step %d: times out of order: %+v", r.Step, r)
		}
	}
}

func TestReadStepDetailErrors(t *testing.T) {
	head := strings.Join(StepDetailColumns, ",") + "\n"
	good := "0,0,1,2,3,4,5,6,7,1,0,1,1,64,16384,1024,64x16384x1024,0,1,1,0,0,1,10,0,0\n"
	cases := []struct{ name, body, want string }{
		{"bad header", "step,start\n", "2 columns"},
		{"renamed column", strings.Replace(head, "gc_ns", "gc", 1) + good, `column 26 is "gc"`},
		{"not an integer", head + strings.Replace(good, ",16384,", ",x,", 1), "kv_padded"},
		{"steps not increasing", head + good + good, "strictly increasing"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), StepDetailFile)
			if err := os.WriteFile(p, []byte(tc.body), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := ReadStepDetail(p)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err %v, want it to mention %q", err, tc.want)
			}
		})
	}
}
