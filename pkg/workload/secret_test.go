package workload

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestFileErrorsQuoteNoContent: a param that names the wrong file (a
// password file, say) must not copy its lines into the error, which ends up
// in stage.log and CI logs. Inside the experiment's folder an error quotes at
// most a short excerpt; from a file outside it, nothing.
func TestFileErrorsQuoteNoContent(t *testing.T) {
	root := t.TempDir()
	base := filepath.Join(root, "exp")
	os.MkdirAll(filepath.Join(base, "data"), 0o755)
	os.MkdirAll(filepath.Join(root, "etc"), 0o755)
	secret := "root:$6$saltsalt$" + strings.Repeat("HASH", 30) + ":19000:0:99999:7:::\ndaemon:*:19000:0:99999:7:::\n"
	for _, p := range []string{filepath.Join(base, "data", "shadow"), filepath.Join(root, "etc", "shadow")} {
		if err := os.WriteFile(p, []byte(secret), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	os.Symlink(filepath.Join(root, "etc", "shadow"), filepath.Join(base, "data", "link"))
	values := "arrived_at,num_prefill_tokens\n0,5\n" + strings.Repeat("SECRET", 20) + ",\x1b[31m7\n"
	os.WriteFile(filepath.Join(base, "data", "values.csv"), []byte(values), 0o644)
	os.WriteFile(filepath.Join(root, "etc", "values.csv"), []byte(values), 0o600)
	os.WriteFile(filepath.Join(root, "etc", "public.csv"), []byte(values), 0o644)
	os.WriteFile(filepath.Join(base, "data", "values.jsonl"), []byte(`{"num_prefill_tokens": 3}`+"\n"+`{"num_prefill_tokens": "`+strings.Repeat("SECRET", 20)+`"}`+"\n"), 0o644)

	arrival := func(path string) Params {
		return Params{Model: "m", NumRequests: 1, Arrival: Arrival{Process: Trace, Path: path},
			Prefill: Lengths{Dist: Fixed, Value: ptr[int64](1)}, Decode: Lengths{Dist: Fixed, Value: ptr[int64](1)}}
	}
	lengths := func(path, col string) Params {
		return Params{Model: "m", NumRequests: 1, Arrival: Arrival{Process: AllAtOnce},
			Prefill: Lengths{Dist: Empirical, Path: path, Column: col}, Decode: Lengths{Dist: Fixed, Value: ptr[int64](1)}}
	}
	for _, c := range []struct {
		name    string
		p       Params
		outside bool   // nothing of the file may be quoted
		want    string // the error still says what is wrong
	}{
		{"trace header, inside", arrival("data/shadow"), false, "no column arrival_time_ns or arrived_at"},
		{"trace header, outside", arrival("../etc/shadow"), true, "no column arrival_time_ns or arrived_at"},
		{"trace header, absolute", arrival(filepath.Join(root, "etc", "shadow")), true, "no column arrival_time_ns or arrived_at"},
		{"trace header, link out", arrival("data/link"), true, "no column arrival_time_ns or arrived_at"},
		{"trace value, inside", arrival("data/values.csv"), false, "row 2 (line 3), column arrived_at"},
		{"trace value, outside", arrival("../etc/values.csv"), true, "row 2 (line 3), column arrived_at"},
		{"length columns, inside", lengths("data/shadow", ""), false, `has no column "num_prefill_tokens"`},
		{"length columns, outside", lengths("../etc/shadow", ""), true, `has no column "num_prefill_tokens"`},
		{"length value, inside", lengths("data/values.csv", ""), false, `column "num_prefill_tokens" is not all integers (line 3`},
		{"length value, outside", lengths("../etc/values.csv", ""), true, `column "num_prefill_tokens" is not all integers (line 3`},
		{"length json value", lengths("data/values.jsonl", ""), false, `column "num_prefill_tokens" is not all integers (record 2`},
		// Outside but readable by anyone: nothing to protect, so the
		// usual short excerpt helps find the row.
		{"trace value, outside, world-readable", arrival("../etc/public.csv"), false, `column arrived_at: "SECRETSECRETSECRETSECRET…" (120 bytes) is not a time`},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Generate(c.p, base)
			if err == nil {
				t.Fatal("no error")
			}
			msg := err.Error()
			if !strings.Contains(msg, c.want) {
				t.Errorf("error %q lacks %q", msg, c.want)
			}
			if strings.Contains(msg, "HASHHASHHASH") || strings.Contains(msg, strings.Repeat("SECRET", 5)) || strings.ContainsAny(msg, "\x1b") {
				t.Errorf("error copies the file: %q", msg)
			}
			if c.outside && (strings.Contains(msg, "root:") || strings.Contains(msg, "SECRET") || strings.Contains(msg, "daemon")) {
				t.Errorf("error quotes a file outside the experiment folder: %q", msg)
			}
		})
	}
}
