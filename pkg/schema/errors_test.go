package schema

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Minimal consistent files; each case below breaks one thing.
const (
	reqHeader = "request_id,arrival_time_ns,first_token_time_ns,ttft_ns,completion_time_ns,num_prefill_tokens,num_decode_tokens,num_decode_tokens_actual,status"
	reqErrHdr = reqHeader + ",error_type,error_message"
	goodReqs  = reqHeader + "\n0,0,100,100,300,12,3,3,ok\n1,250,260,10,290,7,2,2,ok\n"
	tokHeader = "request_id,token_index,token_time_ns,token_latency_ns"
	goodToks  = tokHeader + "\n0,0,100,0\n0,1,200,100\n1,0,260,0\n0,2,300,100\n1,1,290,30\n"
	stepHdr   = "step,start_ns,end_ns,num_prefill_tokens,num_decode_tokens,num_requests,num_prefill_requests,num_decode_requests,num_context_tokens"
	goodSteps = stepHdr + "\n0,0,100,12,0,1,1,0,0\n1,100,200,0,1,1,0,1,13\n"
	goodMeta  = `{"schema_version":1,"run_id":"r","run_type":"sim","model":"m","workload_digest":"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"}`
)

func writeRunFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	base := map[string]string{
		RequestMetricsFile: goodReqs, TokenMetricsFile: goodToks, StepMetricsFile: goodSteps, RunMetaFile: goodMeta,
	}
	for k, v := range files {
		base[k] = v
	}
	for name, content := range base {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

type errCase struct {
	name     string
	file     string // file to replace
	content  string
	row      int
	col      string
	contains string
}

func checkErr(t *testing.T, err error, c errCase) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want %s row %d column %q: %s", c.file, c.row, c.col, c.contains)
	}
	se, ok := AsError(err)
	if !ok {
		t.Fatalf("error %q is not a *schema.Error", err)
	}
	if filepath.Base(se.File) != c.file || se.Row != c.row || se.Column != c.col || !strings.Contains(se.Msg, c.contains) {
		t.Fatalf("got %s row %d column %q msg %q\nwant %s row %d column %q msg containing %q",
			filepath.Base(se.File), se.Row, se.Column, se.Msg, c.file, c.row, c.col, c.contains)
	}
}

func TestRunErrors(t *testing.T) {
	R, T, S, M := RequestMetricsFile, TokenMetricsFile, StepMetricsFile, RunMetaFile
	cases := []errCase{
		// token_metrics.csv: header
		{"tok empty", T, "", 0, "", "empty file"},
		{"tok missing col", T, "request_id,token_index,token_time_ns\n", 0, "token_latency_ns", "missing column"},
		{"tok extra col", T, tokHeader + ",x\n", 0, "x", "unexpected column"},
		{"tok misordered", T, "token_index,request_id,token_time_ns,token_latency_ns\n", 0, "token_index", "position 1, expected request_id"},
		{"tok duplicate col", T, "request_id,request_id,token_time_ns,token_latency_ns\n", 0, "request_id", "twice"},
		// token_metrics.csv: values
		{"tok float", T, tokHeader + "\n0,0,1.5,0\n", 1, "token_time_ns", `"1.5" is not an integer`},
		{"tok empty value", T, tokHeader + "\n0,,100,0\n", 1, "token_index", "empty value"},
		{"tok few fields", T, tokHeader + "\n0,0,100\n", 1, "token_latency_ns", "3 fields, expected 4"},
		{"tok many fields", T, tokHeader + "\n0,0,100,0,5\n", 1, "token_latency_ns", "more than 4 fields"},
		{"tok overflow", T, tokHeader + "\n0,0,99999999999999999999,0\n", 1, "token_time_ns", "overflows"},
		{"tok neg request", T, tokHeader + "\n-1,0,100,0\n", 1, "request_id", "negative"},
		{"tok neg index", T, tokHeader + "\n0,-1,100,0\n", 1, "token_index", "negative"},
		{"tok neg time", T, tokHeader + "\n0,0,-100,0\n", 1, "token_time_ns", "negative"},
		{"tok index gap", T, tokHeader + "\n0,0,100,0\n0,2,200,100\n", 2, "token_index", "expected 1"},
		{"tok index start", T, tokHeader + "\n0,1,100,0\n", 1, "token_index", "expected 0"},
		{"tok latency first", T, tokHeader + "\n0,0,100,5\n", 1, "token_latency_ns", "expected 0"},
		{"tok latency gap", T, tokHeader + "\n0,0,100,0\n1,0,260,0\n0,1,200,99\n", 3, "token_latency_ns", "expected 100"},
		{"tok time back", T, tokHeader + "\n0,0,100,0\n0,1,50,0\n", 2, "token_time_ns", "before the previous token"},
		{"tok blank line", T, tokHeader + "\n0,0,100,0\n\n0,1,200,100\n", 2, "", "empty line"},
		{"tok orphan", T, goodToks + "9,0,5,0\n", 6, "request_id", "not in request_metrics.csv"},
		// request_metrics.csv
		{"req empty", R, "", 0, "", "empty file"},
		{"req missing col", R, strings.Replace(goodReqs, ",ttft_ns", "", 1), 0, "ttft_ns", "missing column"},
		{"req error col alone", R, reqHeader + ",error_type\n", 0, "error_message", "missing column"},
		{"req bad status", R, reqHeader + "\n0,0,100,100,300,12,3,3,done\n", 1, "status", `"done" (expected ok or failed)`},
		{"req failed no cols", R, reqHeader + "\n0,0,-1,-1,300,12,3,0,failed\n", 1, "status", "no error_type,error_message columns"},
		{"req failed no type", R, reqErrHdr + "\n0,0,-1,-1,300,12,3,0,failed,,boom\n", 1, "error_type", "empty for a failed request"},
		{"req failed below -1", R, reqErrHdr + "\n0,0,-2,-1,300,12,3,0,failed,x,y\n", 1, "first_token_time_ns", "-1 when it never happened"},
		{"req failed ttft", R, reqErrHdr + "\n0,0,100,7,300,12,3,3,failed,x,y\n", 1, "ttft_ns", "expected 100"},
		{"req ttft", R, reqHeader + "\n0,0,100,99,300,12,3,3,ok\n", 1, "ttft_ns", "expected 100 = first_token_time_ns - arrival_time_ns"},
		{"req first before arrival", R, reqHeader + "\n0,200,100,-100,300,12,3,3,ok\n", 1, "first_token_time_ns", "before arrival"},
		{"req completion before first", R, reqHeader + "\n0,0,100,100,50,12,3,3,ok\n", 1, "completion_time_ns", "before first_token_time_ns"},
		{"req ok no tokens", R, reqHeader + "\n0,0,100,100,300,12,3,0,ok\n", 1, "num_decode_tokens_actual", ">= 1"},
		{"req duplicate id", R, goodReqs + "1,250,260,10,290,7,2,2,ok\n", 3, "request_id", "already appeared in row 2"},
		{"req not int", R, reqHeader + "\n0,0,1e2,100,300,12,3,3,ok\n", 1, "first_token_time_ns", "not an integer"},
		{"req field count", R, reqHeader + "\n0,0,100,100,300,12,3,ok\n", 1, "", "8 fields, expected 9"},
		{"req malformed quote", R, reqErrHdr + "\n0,0,100,100,300,12,3,3,ok,,\"a\"b\n", 1, "", "malformed CSV"},
		{"req neg arrival", R, reqHeader + "\n0,-5,100,105,300,12,3,3,ok\n", 1, "arrival_time_ns", "negative"},
		{"req neg prefill", R, reqHeader + "\n0,0,100,100,300,-12,3,3,ok\n", 1, "num_prefill_tokens", "negative"},
		{"req neg id", R, reqHeader + "\n-3,0,100,100,300,12,3,3,ok\n", 1, "request_id", "negative"},
		// request_metrics.csv against token_metrics.csv
		{"cross actual", R, reqHeader + "\n0,0,100,100,300,12,3,2,ok\n1,250,260,10,290,7,2,2,ok\n", 1, "num_decode_tokens_actual", "has 3 tokens"},
		{"cross first", R, reqHeader + "\n0,0,110,110,300,12,3,3,ok\n1,250,260,10,290,7,2,2,ok\n", 1, "first_token_time_ns", "token 0 in token_metrics.csv (row 1) is at 100"},
		{"cross completion", R, reqHeader + "\n0,0,100,100,301,12,3,3,ok\n1,250,260,10,290,7,2,2,ok\n", 1, "completion_time_ns", "last token in token_metrics.csv is at 300"},
		{"cross failed first", R, reqErrHdr + "\n0,0,100,100,300,12,3,3,ok,,\n1,250,255,5,-1,7,2,2,failed,x,y\n", 2, "first_token_time_ns", "is at 260"},
		// step_metrics.csv
		{"step header", S, "step,start_ns\n", 0, "end_ns", "missing column"},
		{"step negative", S, stepHdr + "\n0,0,100,-1,0,1,1,0,0\n", 1, "num_prefill_tokens", "negative"},
		{"step order", S, stepHdr + "\n1,0,100,12,0,1,1,0,0\n1,100,200,0,1,1,0,1,13\n", 2, "step", "strictly increasing"},
		{"step start back", S, stepHdr + "\n0,50,100,12,0,1,1,0,0\n1,40,200,0,1,1,0,1,13\n", 2, "start_ns", "before the previous step"},
		{"step end", S, stepHdr + "\n0,100,99,12,0,1,1,0,0\n", 1, "end_ns", "before start_ns"},
		{"step requests", S, stepHdr + "\n0,0,100,12,0,3,1,1,0\n", 1, "num_requests", "between 1 and 2"},
		// run_meta.json
		{"meta json", M, "{", 0, "", "not valid JSON"},
		// encoding/json said only "unexpected end of JSON input" and
		// "cannot unmarshal number into Go struct field RunMeta.run_id of type string".
		{"meta cut short", M, "{\n  \"schema_version\": 1,\n", 0, "", "not valid JSON at line 3, column 1: unexpected end of JSON input; the file is cut short"},
		{"meta bad token", M, "{\"schema_version\": 1,\n \"model\": x}", 0, "", "not valid JSON at line 2, column 11: invalid character 'x'"},
		{"meta field type", M, strings.Replace(goodMeta, `"run_id":"r"`, `"run_id":5`, 1), 0, "run_id", "expected a string, got a JSON number"},
		{"meta version", M, strings.Replace(goodMeta, `"schema_version":1`, `"schema_version":2`, 1), 0, "schema_version", "expected 1"},
		{"meta run type", M, strings.Replace(goodMeta, `"sim"`, `"simulated"`, 1), 0, "run_type", "expected real, sim or vidur"},
		{"meta model", M, strings.Replace(goodMeta, `"model":"m"`, `"model":""`, 1), 0, "model", "empty"},
		{"meta digest", M, strings.Replace(goodMeta, `"0123456789abcdef0123`, `"0123`, 1), 0, "workload_digest", "64-hex-digit"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := writeRunFiles(t, map[string]string{c.file: c.content})
			checkErr(t, ValidateRun(dir), c)
			_, err := ReadRun(dir)
			checkErr(t, err, c)
		})
	}
}

func TestRunFilesAccepted(t *testing.T) {
	for name, files := range map[string]map[string]string{
		"baseline":                 {},
		"crlf and bom":             {TokenMetricsFile: "\ufeff" + strings.ReplaceAll(goodToks, "\n", "\r\n")},
		"no final newline":         {TokenMetricsFile: strings.TrimSuffix(goodToks, "\n")},
		"error columns on ok rows": {RequestMetricsFile: reqErrHdr + "\n0,0,100,100,300,12,3,3,ok,,\n1,250,260,10,290,7,2,2,ok,,\n"},
		"extra meta keys":          {RunMetaFile: strings.Replace(goodMeta, "{", `{"gpu_note":"x",`, 1)},
	} {
		t.Run(name, func(t *testing.T) {
			if err := ValidateRun(writeRunFiles(t, files)); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestErrorFormat(t *testing.T) {
	for _, c := range []struct {
		e    Error
		want string
	}{
		{Error{"a.csv", 3, "ttft_ns", "bad"}, "a.csv: row 3 (line 4), column ttft_ns: bad"},
		{Error{"a.csv", 2, "", "bad"}, "a.csv: row 2 (line 3): bad"},
		{Error{"a.csv", 0, "x", "bad"}, "a.csv: header, column x: bad"},
		{Error{"run_meta.json", 0, "model", "bad"}, "run_meta.json: field model: bad"},
		{Error{"a.csv", 0, "", "bad"}, "a.csv: bad"},
	} {
		if got := c.e.Error(); got != c.want {
			t.Errorf("got %q, want %q", got, c.want)
		}
	}
}
