package workload

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gsim-dev/gsim/pkg/schema"
	"github.com/gsim-dev/gsim/pkg/stage"
)

func TestKindRun(t *testing.T) {
	base := t.TempDir()
	trace := "arrived_at,num_prefill_tokens,num_decode_tokens\n1.5,10,2\n2.0,20,3\n2.25,30,4\n"
	if err := os.WriteFile(filepath.Join(base, "t.csv"), []byte(trace), 0o644); err != nil {
		t.Fatal(err)
	}
	params := paramsFromYAML(t, `
model: Qwen/Qwen3-0.6B
seed: 3
arrival: {process: trace, path: t.csv}
prefill: {dist: empirical, path: t.csv}
decode: {dist: empirical, path: t.csv}
`)
	k := Kind{}
	if err := k.CheckParams(params); err != nil {
		t.Fatal(err)
	}
	fp, err := k.Fingerprint(params, base)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := stage.FileDigest(filepath.Join(base, "t.csv"))
	if len(fp) != 1 || fp["file:t.csv"] != want {
		t.Fatalf("fingerprint %v, want file:t.csv = %s", fp, want)
	}
	spec := &stage.Spec{BaseDir: base, Instance: "wl", Params: params, OutDir: filepath.Join(t.TempDir(), "out")}
	var log bytes.Buffer
	if err := k.Run(context.Background(), spec, stage.Env{Log: &log}); err != nil {
		t.Fatal(err)
	}
	if err := k.Validate(spec); err != nil {
		t.Fatal(err)
	}
	w, err := schema.ReadWorkload(spec.OutDir)
	if err != nil {
		t.Fatal(err)
	}
	var got []int64
	for _, r := range w.Requests {
		got = append(got, r.ArrivalTimeNs)
	}
	if len(got) != 3 || got[0] != 0 || got[1] != 5e8 || got[2] != 7.5e8 {
		t.Fatalf("arrivals %v, want the trace shifted to start at 0", got)
	}
	if w.Meta.Model != "Qwen/Qwen3-0.6B" || w.Meta.Generator != "gsim workload v1" || w.Meta.CreatedAt == "" {
		t.Fatalf("meta %+v", w.Meta)
	}
	if !strings.Contains(log.String(), "wrote 3 requests") {
		t.Fatalf("log %q", log.String())
	}
	// It said "cannot read none.csv: open /…/none.csv: no such file or directory".
	for path, want := range map[string]string{
		"none.csv": "with.prefill.path: no such file none.csv (" + filepath.Join(base, "none.csv") + "); check the path",
		".":        "with.prefill.path: . (" + base + ") is a folder; name the CSV, JSON or JSONL file in it",
	} {
		bad := paramsFromYAML(t, "model: m\nseed: 3\nnum_requests: 2\narrival: {process: all-at-once}\nprefill: {dist: empirical, path: \""+path+"\"}\ndecode: {dist: fixed, value: 1}\n")
		if _, err := k.Fingerprint(bad, base); err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "open ") {
			t.Errorf("%s: got %v, want an error containing %q", path, err, want)
		}
	}
	// An edited file changes the fingerprint, so the stage reruns.
	os.WriteFile(filepath.Join(base, "t.csv"), []byte(trace+"3,1,1\n"), 0o644)
	fp2, _ := k.Fingerprint(params, base)
	if fp2["file:t.csv"] == fp["file:t.csv"] {
		t.Fatal("fingerprint ignores file content")
	}
}

func TestFileErrors(t *testing.T) {
	base := t.TempDir()
	files := map[string]string{
		"ok.csv":     "arrived_at,num_prefill_tokens,num_decode_tokens\n0,10,2\n1,20,3\n",
		"ns.csv":     "arrival_time_ns\n5\n7\n",
		"back.csv":   "arrived_at\n0\n2\n1\n",
		"nocol.csv":  "when\n0\n",
		"nan.csv":    "arrived_at\nsoon\n",
		"float.csv":  "num_prefill_tokens,num_decode_tokens\n10.5,2\n",
		"zero.csv":   "num_prefill_tokens,num_decode_tokens\n0,2\n",
		"bad.jsonl":  "{\"num_prefill_tokens\": 3}\nnot json\n",
		"short.csv":  "arrived_at,num_prefill_tokens,num_decode_tokens\n0,10,2\n1,20\n",
		"quote.csv":  "arrived_at,num_prefill_tokens\n0,10\n1,\"2\"0\n",
		"rows.jsonl": "[{\"num_prefill_tokens\": 3, \"num_decode_tokens\": 1}]",
	}
	for n, c := range files {
		os.WriteFile(filepath.Join(base, n), []byte(c), 0o644)
	}
	arrival := func(path string, n int) Params {
		return Params{Model: "m", NumRequests: n, Arrival: Arrival{Process: Trace, Path: path},
			Prefill: Lengths{Dist: Fixed, Value: ptr[int64](1)}, Decode: Lengths{Dist: Fixed, Value: ptr[int64](1)}}
	}
	lengths := func(path, col string) Params {
		return Params{Model: "m", NumRequests: 3, Arrival: Arrival{Process: AllAtOnce},
			Prefill: Lengths{Dist: Empirical, Path: path, Column: col}, Decode: Lengths{Dist: Fixed, Value: ptr[int64](1)}}
	}
	for _, c := range []struct {
		name string
		p    Params
		msg  string
	}{
		{"missing file", arrival("none.csv", 1), "no such file"},
		{"too few rows", arrival("ok.csv", 5), "has 2 arrivals, num_requests asks for 5"},
		{"decreasing", arrival("back.csv", 0), "row 3 (line 4), column arrived_at: 1 is before the previous arrival"},
		{"no time column", arrival("nocol.csv", 0), "no column arrival_time_ns or arrived_at"},
		{"not a time", arrival("nan.csv", 0), `row 1 (line 2), column arrived_at: "soon" is not a time`},
		{"no such column", lengths("ok.csv", "tokens"), `no column "tokens" (columns: arrived_at, num_decode_tokens, num_prefill_tokens)`},
		{"non-integer column", lengths("float.csv", ""), `column "num_prefill_tokens" is not all integers (line 2 has "10.5")`},
		{"zero length", lengths("zero.csv", ""), "row 1 is 0 (expected token counts >= 1)"},
		{"bad jsonl", lengths("bad.jsonl", ""), "line 2: expected a JSON object"},
		// encoding/csv said only "record on line 3: wrong number of fields".
		{"short row, trace", arrival("short.csv", 0), "short.csv: line 3: a different number of fields than the header's 3; fix or remove that row"},
		{"short row, empirical", lengths("short.csv", ""), "short.csv: line 3: a different number of fields than the header's 3; fix or remove that row"},
		{"bad quote", lengths("quote.csv", ""), "quote.csv: line 3, column 5: extraneous or missing \" in quoted-field; fix the row's quoting"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Generate(c.p, base)
			if err == nil || !strings.Contains(err.Error(), c.msg) {
				t.Fatalf("got %v, want an error containing %q", err, c.msg)
			}
		})
	}
	// Accepted: ns column, JSON array, duration over a trace.
	if w, err := Generate(arrival("ns.csv", 0), base); err != nil || w.Requests[1].ArrivalTimeNs != 2 {
		t.Fatalf("ns trace: %v", err)
	}
	if _, err := Generate(lengths("rows.jsonl", ""), base); err != nil {
		t.Fatalf("json array: %v", err)
	}
	p := arrival("ok.csv", 0)
	p.Duration = "500ms"
	if w, err := Generate(p, base); err != nil || len(w.Requests) != 1 {
		t.Fatalf("duration over a trace: %v", err)
	}
}

func TestKindIdentity(t *testing.T) {
	var k stage.Kind = Kind{}
	// Stored workloads are keyed by this version; the goldens fail first when
	// the output changes, and then this must move with them.
	if k.Name() != "workload" || k.Version() != "1" || k.Resources(nil) != nil {
		t.Fatalf("kind %s version %s", k.Name(), k.Version())
	}
}
