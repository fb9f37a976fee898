package schema

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const (
	lenHeader = "request_id,prompt_id,num_prefill_tokens,num_decode_tokens"
	goodLens  = lenHeader + "\n0,0,12,3\n1,1,7,2\n"
	ivHeader  = "request_id,inter_arrival_ns,arrival_time_ns"
	goodIvs   = ivHeader + "\n0,5,5\n1,0,5\n"
)

// writeWorkloadFiles writes a valid workload with WriteWorkload, then
// overwrites the given files verbatim.
func writeWorkloadFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	w := &Workload{Requests: []Request{
		{ID: 0, PromptID: 0, NumPrefillTokens: 12, NumDecodeTokens: 3, InterArrivalNs: 5, ArrivalTimeNs: 5},
		{ID: 1, PromptID: 1, NumPrefillTokens: 7, NumDecodeTokens: 2, InterArrivalNs: 0, ArrivalTimeNs: 5},
	}, Prompts: []Prompt{{0, "a"}, {1, "b"}}}
	if err := WriteWorkload(dir, w); err != nil {
		t.Fatal(err)
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestWriteWorkloadBytes(t *testing.T) {
	dir := writeWorkloadFiles(t, nil)
	for name, want := range map[string]string{TraceLengthsFile: goodLens, TraceIntervalsFile: goodIvs} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if string(b) != want {
			t.Errorf("%s:\n%s\nwant\n%s", name, b, want)
		}
	}
}

func TestWorkloadErrors(t *testing.T) {
	L, I, P, M := TraceLengthsFile, TraceIntervalsFile, PromptsFile, WorkloadMetaFile
	cases := []errCase{
		{"len missing file col", L, "request_id,prompt_id,num_prefill_tokens\n", 0, "num_decode_tokens", "missing column"},
		{"len misordered", L, "prompt_id,request_id,num_prefill_tokens,num_decode_tokens\n", 0, "prompt_id", "position 1"},
		{"len ids not increasing", L, lenHeader + "\n1,0,12,3\n0,1,7,2\n", 2, "request_id", "increasing order"},
		{"len duplicate id", L, lenHeader + "\n0,0,12,3\n0,1,7,2\n", 2, "request_id", "unique ids"},
		{"len neg id", L, lenHeader + "\n-1,0,12,3\n", 1, "request_id", "negative"},
		{"len neg prompt", L, lenHeader + "\n0,-1,12,3\n", 1, "prompt_id", "negative"},
		{"len zero prefill", L, lenHeader + "\n0,0,0,3\n1,1,7,2\n", 1, "num_prefill_tokens", ">= 1"},
		{"len zero decode", L, lenHeader + "\n0,0,12,0\n1,1,7,2\n", 1, "num_decode_tokens", ">= 1"},
		{"len not int", L, lenHeader + "\n0,0,12.0,3\n1,1,7,2\n", 1, "num_prefill_tokens", "not an integer"},
		{"iv header", I, "request_id,arrival_time_ns,inter_arrival_ns\n", 0, "arrival_time_ns", "position 2"},
		{"iv id mismatch", I, ivHeader + "\n0,5,5\n2,0,5\n", 2, "request_id", "same ids in the same order"},
		{"iv negative gap", I, ivHeader + "\n0,5,5\n1,-1,4\n", 2, "inter_arrival_ns", "negative"},
		{"iv not cumsum", I, ivHeader + "\n0,5,5\n1,1,5\n", 2, "arrival_time_ns", "expected 6 = cumulative sum"},
		{"iv first not gap", I, ivHeader + "\n0,0,5\n1,0,5\n", 1, "arrival_time_ns", "expected 0"},
		{"iv short", I, ivHeader + "\n0,5,5\n", 2, "request_id", "file ends after 1 rows"},
		{"iv long", I, goodIvs + "2,0,5\n", 3, "request_id", "has no row in trace_lengths.csv"},
		{"prompts json", P, "{\"prompt_id\":0,\"text\":\"a\"}\nnot json\n", 2, "", "not a JSON object"},
		{"prompts fields", P, "{\"prompt_id\":0}\n", 1, "", `expected {"prompt_id"`},
		{"prompts duplicate", P, "{\"prompt_id\":0,\"text\":\"a\"}\n{\"prompt_id\":0,\"text\":\"b\"}\n", 2, "prompt_id", "already on line 1"},
		{"prompts missing", L, lenHeader + "\n0,0,12,3\n1,7,7,2\n", 2, "prompt_id", "no line in prompts.jsonl"},
		{"meta json", M, "{", 0, "", "not valid JSON"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := writeWorkloadFiles(t, map[string]string{c.file: c.content})
			_, err := ReadWorkload(dir)
			checkErr(t, err, c)
			checkErr(t, ValidateWorkloadDir(dir), c)
		})
	}
}

func TestValidateWorkloadMeta(t *testing.T) {
	M := WorkloadMetaFile
	edit := func(dir string, from, to string) {
		p := filepath.Join(dir, M)
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		s := string(b)
		if !strings.Contains(s, from) {
			t.Fatalf("meta has no %q:\n%s", from, s)
		}
		if err := os.WriteFile(p, []byte(strings.Replace(s, from, to, 1)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cases := []struct {
		errCase
		mutate func(dir string)
	}{
		{errCase{"version", M, "", 0, "schema_version", "expected 1"}, func(d string) { edit(d, `"schema_version": 1`, `"schema_version": 3`) }},
		{errCase{"count", M, "", 0, "num_requests", "has 2 requests"}, func(d string) { edit(d, `"num_requests": 2`, `"num_requests": 5`) }},
		{errCase{"workload id", M, "", 0, "workload_id", "first 12 hex digits"}, func(d string) { edit(d, `"workload_id": "`, `"workload_id": "x`) }},
		{errCase{"digest entry", M, "", 0, "digests", "no entry for trace_lengths.csv"}, func(d string) { edit(d, `"trace_lengths.csv"`, `"other.csv"`) }},
		{errCase{"file changed", M, "", 0, "digests", "changed after it was written"}, func(d string) {
			os.WriteFile(filepath.Join(d, PromptsFile), []byte("{\"prompt_id\":0,\"text\":\"z\"}\n{\"prompt_id\":1,\"text\":\"b\"}\n"), 0o644)
		}},
		{errCase{"missing", M, "", 0, "", "missing"}, func(d string) { os.Remove(filepath.Join(d, M)) }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := writeWorkloadFiles(t, nil)
			c.mutate(dir)
			checkErr(t, ValidateWorkloadDir(dir), c.errCase)
		})
	}
}

func TestWorkloadDigestFormat(t *testing.T) {
	dir := writeWorkloadFiles(t, nil)
	got, err := WorkloadDigest(dir)
	if err != nil {
		t.Fatal(err)
	}
	// The documented construction, spelled out, so other languages can
	// reproduce it: name NUL size NUL bytes, lengths then intervals.
	h := sha256Hex(TraceLengthsFile + "\x00" + itoa(len(goodLens)) + "\x00" + goodLens +
		TraceIntervalsFile + "\x00" + itoa(len(goodIvs)) + "\x00" + goodIvs)
	if got != h {
		t.Fatalf("WorkloadDigest = %s, documented construction gives %s", got, h)
	}
}
