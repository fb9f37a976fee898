package stage

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestDecodeParams(t *testing.T) {
	type arrival struct {
		Rate float64 `json:"rate"`
	}
	type cfg struct {
		Rate     float64          `json:"rate"`
		Name     string           `json:"name"`
		Seed     int64            `json:"seed"`
		Features []string         `json:"features"`
		Arrival  arrival          `json:"arrival"`
		Phases   []arrival        `json:"phases"`
		Train    map[string][]any `json:"train"`
	}
	tests := []struct {
		name     string
		params   map[string]any
		wantPath string
		wantMsg  string
	}{
		{"ok", map[string]any{"rate": 4, "name": "x"}, "", ""},
		// A typo gets the nearest name and the names allowed at that level.
		{"unknown", map[string]any{"rat": 4}, "rat", `unknown parameter (did you mean "rate"?); with: takes rate, name, seed, features, arrival, phases, train`},
		{"unknown far from all", map[string]any{"qqqqqqq": 4}, "qqqqqqq", "unknown parameter; with: takes rate, name,"},
		{"type", map[string]any{"rate": "fast"}, "rate", "expected a number, got a string"},
		// Go type names (int64, []string) mean nothing to a YAML user.
		{"int", map[string]any{"seed": 2.5}, "seed", "expected an integer, got a number 2.5"},
		{"list", map[string]any{"features": 7}, "features", "expected a list of strings, got a number"},
		{"list of any", map[string]any{"train": map[string]any{"rate": 2}}, "train", "expected a list of values, got a number"},
		// encoding/json names only the leaf of a nested unknown key.
		{"nested unknown", map[string]any{"arrival": map[string]any{"rat": 4}}, "arrival.rat", `unknown parameter (did you mean "rate"?); with.arrival: takes rate`},
		{"unknown in list", map[string]any{"phases": []any{map[string]any{"rate": 1}, map[string]any{"rat": 4}}}, "phases.1.rat", `unknown parameter (did you mean "rate"?); with.phases.1: takes rate`},
		{"case-folded known", map[string]any{"Rate": 1, "arrival": map[string]any{"rat": 4}}, "arrival.rat", "unknown parameter"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var c cfg
			err := DecodeParams(tc.params, &c)
			if tc.wantMsg == "" {
				if err != nil {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			var pe *ParamError
			if !errors.As(err, &pe) {
				t.Fatalf("want *ParamError, got %v", err)
			}
			if pe.Path != tc.wantPath || !strings.Contains(pe.Msg, tc.wantMsg) {
				t.Fatalf("got path %q msg %q", pe.Path, pe.Msg)
			}
		})
	}
}

func TestRunCommandProgressAndLog(t *testing.T) {
	var log bytes.Buffer
	var got []string
	env := Env{Log: &log, Progress: func(d, tot float64, msg string) {
		got = append(got, msg)
		if d != 1 || tot != 2 {
			t.Errorf("progress %v/%v", d, tot)
		}
	}}
	err := RunCommand(context.Background(), Command{Argv: []string{"sh", "-c",
		"echo hello; echo '##gsim progress 1 2 half way'; echo err >&2"}}, env)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(log.String(), "hello") || !strings.Contains(log.String(), "err") {
		t.Fatalf("log missing lines: %q", log.String())
	}
	if strings.Contains(log.String(), "##gsim") {
		t.Fatalf("progress line leaked into the log: %q", log.String())
	}
	if len(got) != 1 || got[0] != "half way" {
		t.Fatalf("progress messages %q", got)
	}
}

func TestRunCommandFailureCarriesTail(t *testing.T) {
	err := RunCommand(context.Background(), Command{Argv: []string{"sh", "-c",
		"for i in $(seq 1 100); do echo line$i; done; exit 7"}}, Env{})
	var ee *ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("want *ExitError, got %v", err)
	}
	if ee.ExitCode != 7 || !strings.Contains(ee.LogTail, "line100") || strings.Contains(ee.LogTail, "line1\n") {
		t.Fatalf("exit %d tail %q", ee.ExitCode, ee.LogTail)
	}
	if !strings.Contains(err.Error(), "exited with code 7") {
		t.Fatalf("message %q", err.Error())
	}
}

func TestRunCommandCancelKillsTree(t *testing.T) {
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "child.pid")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- RunCommand(ctx, Command{Argv: []string{"sh", "-c",
			"sleep 30 & echo $! > " + pidFile + "; wait"}}, Env{})
	}()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if b, err := os.ReadFile(pidFile); err == nil && len(bytes.TrimSpace(b)) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("child never started")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("want context.Canceled, got %v", err)
	}
	b, _ := os.ReadFile(pidFile)
	pid := strings.TrimSpace(string(b))
	deadline = time.Now().Add(5 * time.Second)
	for {
		st, err := os.ReadFile("/proc/" + pid + "/stat")
		if err != nil || strings.Contains(string(st), ") Z ") {
			return // gone or a zombie awaiting its reaper: killed
		}
		if time.Now().After(deadline) {
			t.Fatalf("grandchild %s survived cancellation", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestParamDigestErrors(t *testing.T) {
	base := t.TempDir()
	if err := os.WriteFile(filepath.Join(base, "f.json"), []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		dir  bool
		path string
		want string // empty: no error
	}{
		{"file ok", false, "f.json", ""},
		{"folder ok", true, ".", ""},
		// It said "cannot read x: open /abs/x: no such file or directory" or,
		// for a folder, "hash runner /abs/x: lstat /abs/x: no such file or directory".
		{"missing file", false, "nope.json", "with.p: no such file nope.json (" + filepath.Join(base, "nope.json") + "); check the path"},
		{"missing folder", true, "nope", "with.p: no such folder nope (" + filepath.Join(base, "nope") + "); check the path"},
		{"folder for a file", false, ".", "is a folder; name a file"},
		{"file for a folder", true, "f.json", "is a file; name a folder"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var err error
			if tt.dir {
				_, err = ParamDirDigest("p", base, tt.path)
			} else {
				_, err = ParamFileDigest("p", base, tt.path)
			}
			if tt.want == "" {
				if err != nil {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			var pe *ParamError
			if !errors.As(err, &pe) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want a *ParamError containing %q", err, tt.want)
			}
		})
	}
}

func TestRunnerDirListsEachPlaceOnce(t *testing.T) {
	t.Setenv("GSIM_STAGES_DIR", "")
	exe, err := os.Executable()
	if err != nil {
		t.Skip(err)
	}
	// From beside the binary, the walk up reaches the binary's parent, which
	// is also where the binary's own stages/ would be: it was listed twice.
	_, err = RunnerDir("no-such-runner", filepath.Dir(exe))
	if err == nil {
		t.Fatal("found a runner that does not exist")
	}
	_, list, _ := strings.Cut(err.Error(), "(looked in ")
	list, _, _ = strings.Cut(list, ")")
	seen := map[string]bool{}
	for _, p := range strings.Split(list, ", ") {
		if seen[p] {
			t.Errorf("%s listed twice: %v", p, err)
		}
		seen[p] = true
	}
}

func TestRunnerDirFindsCheckoutStages(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "stages", "x"), 0o755); err != nil {
		t.Fatal(err)
	}
	sub := filepath.Join(root, "experiments", "deep")
	os.MkdirAll(sub, 0o755)
	t.Setenv("GSIM_STAGES_DIR", "")
	got, err := RunnerDir("x", sub)
	if err != nil || got != filepath.Join(root, "stages", "x") {
		t.Fatalf("got %q, %v", got, err)
	}
	if _, err := RunnerDir("missing-runner", sub); err == nil || !strings.Contains(err.Error(), "GSIM_STAGES_DIR") {
		t.Fatalf("want a hint at GSIM_STAGES_DIR, got %v", err)
	}
}

func TestDirDigestFollowsContent(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "run.py"), []byte("a"), 0o644)
	os.MkdirAll(filepath.Join(dir, "__pycache__"), 0o755)
	d1, err := DirDigest(dir)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "__pycache__", "run.pyc"), []byte("junk"), 0o644)
	if d2, _ := DirDigest(dir); d2 != d1 {
		t.Fatal("bytecode caches changed the runner identity")
	}
	os.WriteFile(filepath.Join(dir, "run.py"), []byte("b"), 0o644)
	if d3, _ := DirDigest(dir); d3 == d1 {
		t.Fatal("a code change did not change the runner identity")
	}
}

// A runner's fingerprint follows its own folder and the shared one its code
// imports (stages/common), and does without the shared one where a tree
// has none.
func TestRunnerFingerprintFollowsSharedCode(t *testing.T) {
	root := t.TempDir()
	for _, d := range []string{"stages/x", "stages/common"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, d, "a.py"), []byte("1"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("GSIM_STAGES_DIR", filepath.Join(root, "stages"))
	dir, fp1, err := RunnerFingerprint("x", root)
	if err != nil || dir != filepath.Join(root, "stages", "x") || fp1["runner:x"] == "" || fp1["runner:common"] == "" {
		t.Fatalf("RunnerFingerprint = %q, %v, %v", dir, fp1, err)
	}
	os.WriteFile(filepath.Join(root, "stages", "common", "a.py"), []byte("2"), 0o644)
	_, fp2, _ := RunnerFingerprint("x", root)
	if fp2["runner:common"] == fp1["runner:common"] || fp2["runner:x"] != fp1["runner:x"] {
		t.Errorf("shared code edited: %v -> %v", fp1, fp2)
	}
	os.RemoveAll(filepath.Join(root, "stages", "common"))
	_, fp3, err := RunnerFingerprint("x", root)
	if err != nil || fp3["runner:common"] != "" || fp3["runner:x"] != fp1["runner:x"] {
		t.Errorf("without stages/common: %v, %v", fp3, err)
	}
}
