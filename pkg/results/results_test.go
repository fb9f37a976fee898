package results

import (
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/gsim-dev/gsim/pkg/store"
)

// commit makes an object of kind with the given files and links it.
func commit(t *testing.T, st *store.Store, exp, instance, kind, key string, files map[string]string) {
	t.Helper()
	dir, err := st.NewStaging(key)
	if err != nil {
		t.Fatal(err)
	}
	for name, body := range files {
		p := filepath.Join(dir, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.Commit(dir, &store.Manifest{Key: key, Kind: kind, Instance: instance, Experiment: exp}); err != nil {
		t.Fatal(err)
	}
	if err := st.Link(exp, instance, key); err != nil {
		t.Fatal(err)
	}
}

const summary = `# Title

Intro.

## Verdict

- **gsim step-model** vs H100: P50 TTFT -4.2% (rate=6) to +14.8% (rate=10).
- **gsim vidur-profile** vs H100: P50 TTFT -90.9% (rate=14).

## Latency against rate

- not a verdict
`

func TestFind(t *testing.T) {
	st, err := store.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	html := map[string]string{HTMLFile: "<html>"}
	commit(t, st, "q", "compare[rate=10]", "compare", "k10", html)
	commit(t, st, "q", "compare[rate=2]", "compare", "k2", html)
	commit(t, st, "q", "compare[rate=2.5]", "compare", "k25", html)
	commit(t, st, "q", "report", "report", "kr", map[string]string{HTMLFile: "<html>", "summary.md": summary})
	commit(t, st, "q", "sim[rate=2]", "sim", "ks", map[string]string{"x": "1"})
	commit(t, st, "q", "broken", "report", "kb", map[string]string{"summary.md": "no html"})
	commit(t, st, "other", "report", "report", "ko", nil)
	rs, err := Find(st, "q")
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, r := range rs {
		ids = append(ids, r.Instance)
		if _, err := os.Stat(r.HTML); err != nil {
			t.Errorf("%s: %v", r.Instance, err)
		}
	}
	want := []string{"report", "compare[rate=2]", "compare[rate=2.5]", "compare[rate=10]"}
	if !reflect.DeepEqual(ids, want) {
		t.Errorf("Find = %v, want %v", ids, want)
	}
	if got := rs[1].Dir; filepath.Base(got) != "compare.rate@2" {
		t.Errorf("dir %s is not the friendly link", got)
	}
	if exps, _ := Experiments(st); !reflect.DeepEqual(exps, []string{"other", "q"}) {
		t.Errorf("Experiments = %v", exps)
	}
	if rs, err := Find(st, "none"); err != nil || rs != nil {
		t.Errorf("Find of an experiment with no runs: %v %v", rs, err)
	}
	at := At(st, "q", "report", "report")
	if at.HTML != rs0(t, st).HTML || at.Key != "kr" {
		t.Errorf("At = %+v", at)
	}
}

func rs0(t *testing.T, st *store.Store) Report {
	rs, _ := Find(st, "q")
	return rs[0]
}

func TestVerdict(t *testing.T) {
	dir := t.TempDir()
	if v := Verdict(dir); v != nil {
		t.Errorf("empty folder: %v", v)
	}
	os.WriteFile(filepath.Join(dir, "summary.md"), []byte(summary), 0o644)
	want := []string{"gsim step-model vs H100: P50 TTFT -4.2% (rate=6) to +14.8% (rate=10).", "gsim vidur-profile vs H100: P50 TTFT -90.9% (rate=14)."}
	if v := Verdict(dir); !reflect.DeepEqual(v, want) {
		t.Errorf("from summary.md: %q", v)
	}
	// The report's own verdict file wins.
	os.WriteFile(filepath.Join(dir, VerdictFile), []byte("sim within band at 5 of 6 rates\n\n"), 0o644)
	if v := Verdict(dir); !reflect.DeepEqual(v, []string{"sim within band at 5 of 6 rates"}) {
		t.Errorf("from %s: %q", VerdictFile, v)
	}
}

func TestFileURL(t *testing.T) {
	got := FileURL("/s/runs/q/compare[rate=2]/a b/report.html")
	if got != "file:///s/runs/q/compare%5Brate=2%5D/a%20b/report.html" {
		t.Errorf("got %s", got)
	}
	if got := FileURL("/s/runs/q/compare.rate@2/report.html"); got != "file:///s/runs/q/compare.rate@2/report.html" {
		t.Errorf("a link name changed in its URL: %s", got)
	}
}

func TestRel(t *testing.T) {
	if got := Rel("/a/b", "/a/b/tmp/x"); got != "tmp/x" {
		t.Errorf("got %s", got)
	}
	if got := Rel("/a/b", "/a/c/x"); got != "/a/c/x" {
		t.Errorf("got %s", got)
	}
}

func TestOpen(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "opened")
	script := filepath.Join(dir, "browser")
	os.WriteFile(script, []byte("#!/bin/sh\necho \"$@\" > "+log+"\n"), 0o755)
	t.Setenv("BROWSER", script+":firefox")
	r := Report{HTML: "/s/runs/q/report/report.html"}
	if err := Open(r); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(log)
	if strings.TrimSpace(string(b)) != "file:///s/runs/q/report/report.html" {
		t.Errorf("browser got %q", b)
	}
	t.Setenv("BROWSER", filepath.Join(dir, "missing"))
	if err := Open(r); err == nil {
		t.Error("a missing browser did not fail")
	}
}

func TestNaturalLess(t *testing.T) {
	in := []string{"c[rate=10]", "c[rate=2.5]", "c[rate=2]", "b", "c[rate=0.5]", "c[rate=14]"}
	sort.Slice(in, func(i, j int) bool { return naturalLess(in[i], in[j]) })
	want := []string{"b", "c[rate=0.5]", "c[rate=2]", "c[rate=2.5]", "c[rate=10]", "c[rate=14]"}
	if !reflect.DeepEqual(in, want) {
		t.Errorf("got %v", in)
	}
}
