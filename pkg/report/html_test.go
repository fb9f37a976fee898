package report

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// checkScript runs after the page loads and writes what it found into the
// DOM, which --dump-dom then prints: how many images, how many decoded, and
// how many network resources the page fetched (a self-contained page: 0).
const checkScript = `<script>
window.addEventListener("load", function () {
  var imgs = Array.from(document.images);
  var ok = imgs.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length;
  var res = performance.getEntriesByType("resource").map(function (e) { return e.name; });
  var d = document.createElement("pre");
  d.id = "gsim-check";
  d.textContent = "images=" + imgs.length + " loaded=" + ok + " resources=" + res.length + " " + res.join(" ");
  document.body.appendChild(d);
});
</script>`

func findChromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("chromium is not installed; CI must run `apt-get install -y chromium`")
	}
	t.Skip("SKIPPED: chromium not installed (apt-get install -y chromium); report.html is not checked in a browser")
	return ""
}

// browserCheck loads page in headless Chromium and returns the check line.
func browserCheck(t *testing.T, page string) string {
	t.Helper()
	bin := findChromium(t)
	b, err := os.ReadFile(page)
	if err != nil {
		t.Fatal(err)
	}
	html := strings.Replace(string(b), "</body>", checkScript+"</body>", 1)
	probe := filepath.Join(t.TempDir(), "probe.html")
	if err := os.WriteFile(probe, []byte(html), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir="+t.TempDir(), "--virtual-time-budget=10000", "--dump-dom", "file://"+probe)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("chromium: %v\n%s", err, stderr.String())
	}
	m := regexp.MustCompile(`<pre id="gsim-check">([^<]*)</pre>`).FindStringSubmatch(string(out))
	if m == nil {
		t.Fatalf("the check script did not run; chromium printed %d bytes, stderr:\n%s", len(out), stderr.String())
	}
	return m[1]
}

func TestReportHTMLInBrowser(t *testing.T) {
	ensureFixtures(t)
	findChromium(t)
	out := t.TempDir()
	if _, err := runCompare(t, compareSpec(out, map[string]string{"workload": fixtureDir("workload"), "bench": fixtureDir("bench"), "sim": fixtureDir("sim")},
		map[string]any{"reference": "bench", "workload": "workload"})); err != nil {
		t.Fatal(err)
	}
	sweep, err := runSweep(t, sweepCells(t, []map[string]any{{"rate": 1.0}, {"rate": 2.0}}), map[string]any{"x": "rate", "slo": map[string]any{"ttft_p99_ms": 40}})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		page string
		imgs string
	}{{filepath.Join(out, "report.html"), "6"}, {filepath.Join(sweep, "report.html"), "10"}} { // 5 figures + latency over time
		got := browserCheck(t, c.page)
		want := "images=" + c.imgs + " loaded=" + c.imgs + " resources=0 "
		if got != want {
			t.Errorf("%s in Chromium: %q, want %q (every <img> decoded, no network request)", c.page, got, want)
		}
	}
}
