// Package results says where an experiment's answer is: the reports its
// runs have left in a store (the sweep report and each cell's comparison),
// the verdict each states, and how to open one. It reads the store's
// friendly links and manifests; it writes nothing.
package results

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"

	"github.com/gsim-dev/gsim/pkg/store"
)

// HTMLFile is the self-contained page every report and comparison writes.
const HTMLFile = "report.html"

// VerdictFile is the file in which a report states its verdict, one line
// per candidate simulator. Reports written before it existed are read from
// their summary.md instead (see Verdict).
const VerdictFile = "verdict.txt"

// Kinds whose folders hold a report.html, in the order they are listed: the
// sweep report answers the question; each cell's comparison details it.
var Kinds = []string{"report", "compare"}

// Report is one report folder of an experiment.
type Report struct {
	// Instance is the stage instance id ("report", "compare[rate=2]").
	Instance string
	Kind     string
	// Dir is the folder through the friendly link
	// (runs/<experiment>/<link name>); HTML is its report.html.
	Dir  string
	HTML string
	Key  string
}

// At is the report of one instance, by its friendly link, whatever its kind.
func At(st *store.Store, experiment, instance, kind string) Report {
	dir := filepath.Join(st.LinkDir(experiment), store.LinkName(instance))
	key, _ := st.Linked(experiment, instance)
	return Report{Instance: instance, Kind: kind, Dir: dir, HTML: filepath.Join(dir, HTMLFile), Key: key}
}

// Find lists the reports linked under runs/<experiment>/: sweep reports
// first, then comparisons, each in natural order of their ids (rate=2
// before rate=10). Links whose object or report.html is gone are left out.
func Find(st *store.Store, experiment string) ([]Report, error) {
	dir := st.LinkDir(experiment)
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reports of %s: %w", experiment, err)
	}
	var out []Report
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".") {
			continue
		}
		p := filepath.Join(dir, e.Name())
		m, err := store.ReadManifest(p)
		if err != nil || !isReportKind(m.Kind) {
			continue
		}
		if _, err := os.Stat(filepath.Join(p, HTMLFile)); err != nil {
			continue
		}
		out = append(out, Report{Instance: m.Instance, Kind: m.Kind, Dir: p, HTML: filepath.Join(p, HTMLFile), Key: m.Key})
	}
	sort.SliceStable(out, func(i, j int) bool {
		a, b := kindRank(out[i].Kind), kindRank(out[j].Kind)
		if a != b {
			return a < b
		}
		return naturalLess(out[i].Instance, out[j].Instance)
	})
	return out, nil
}

// Experiments lists the experiments with friendly links in st, sorted.
func Experiments(st *store.Store) ([]string, error) {
	ents, err := os.ReadDir(filepath.Join(st.Root, "runs"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		if e.IsDir() && !strings.HasPrefix(e.Name(), ".") {
			out = append(out, e.Name())
		}
	}
	sort.Strings(out)
	return out, nil
}

func isReportKind(k string) bool { return kindRank(k) < len(Kinds) }

func kindRank(k string) int {
	for i, x := range Kinds {
		if x == k {
			return i
		}
	}
	return len(Kinds)
}

// Verdict is what a report folder concludes, one line per candidate:
// VerdictFile's non-empty lines when the report wrote one, else the
// bullets of summary.md's "## Verdict" section with their markdown
// emphasis removed. Nil when the folder states none.
func Verdict(dir string) []string {
	if b, err := os.ReadFile(filepath.Join(dir, VerdictFile)); err == nil {
		var out []string
		for _, l := range strings.Split(string(b), "\n") {
			if l = strings.TrimSpace(l); l != "" {
				out = append(out, l)
			}
		}
		return out
	}
	f, err := os.Open(filepath.Join(dir, "summary.md"))
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []string
	in := false
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		l := sc.Text()
		if strings.HasPrefix(l, "#") {
			if in {
				break
			}
			in = strings.EqualFold(strings.TrimSpace(strings.TrimLeft(l, "#")), "verdict")
			continue
		}
		if in && strings.HasPrefix(l, "- ") {
			out = append(out, strings.ReplaceAll(strings.TrimPrefix(l, "- "), "**", ""))
		}
	}
	return out
}

// FileURL is path as a file:// URL, each segment escaped, for terminals
// that make URLs clickable and for browsers.
func FileURL(path string) string {
	abs, err := filepath.Abs(path)
	if err != nil {
		abs = path
	}
	u := url.URL{Scheme: "file", Path: filepath.ToSlash(abs)}
	return u.String()
}

// Rel shows path relative to cwd when it lies under cwd (shorter, and what
// the user can paste), else absolute.
func Rel(cwd, path string) string {
	if r, err := filepath.Rel(cwd, path); err == nil && r != ".." && !strings.HasPrefix(r, "../") {
		return r
	}
	return path
}

// Opener is the command that shows a file in the user's browser:
// $BROWSER (its first entry, as a list separated by ':'), else the
// desktop's opener (xdg-open; open on macOS).
func Opener() ([]string, error) {
	if b := os.Getenv("BROWSER"); b != "" {
		first, _, _ := strings.Cut(b, ":")
		if f := strings.Fields(first); len(f) > 0 {
			return f, nil
		}
	}
	name := "xdg-open"
	if runtime.GOOS == "darwin" {
		name = "open"
	}
	if _, err := exec.LookPath(name); err != nil {
		return nil, fmt.Errorf("no browser to open it with: set $BROWSER (e.g. BROWSER=firefox) or open the file yourself")
	}
	return []string{name}, nil
}

// Open shows the report in the browser and returns once the opener has
// handed it over.
func Open(r Report) error {
	argv, err := Opener()
	if err != nil {
		return err
	}
	c := exec.Command(argv[0], append(argv[1:], FileURL(r.HTML))...)
	if out, err := c.CombinedOutput(); err != nil {
		// The opener's last line says why (xdg-open lists every browser it
		// tried); the rest is noise.
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		why := err.Error()
		if l := strings.TrimSpace(lines[len(lines)-1]); l != "" {
			why = l
		}
		return fmt.Errorf("could not open the report with %s: %s; set $BROWSER (e.g. BROWSER=chromium) or open %s yourself",
			strings.Join(argv, " "), why, r.HTML)
	}
	return nil
}

// naturalLess orders strings with numbers (digits, optionally a fraction)
// compared by value: rate=2 < rate=2.5 < rate=10.
func naturalLess(a, b string) bool {
	for a != "" && b != "" {
		if isDigit(a[0]) && isDigit(b[0]) {
			na, ra := number(a)
			nb, rb := number(b)
			x, _ := strconv.ParseFloat(na, 64)
			y, _ := strconv.ParseFloat(nb, 64)
			if x != y {
				return x < y
			}
			a, b = ra, rb
			continue
		}
		if a[0] != b[0] {
			return a[0] < b[0]
		}
		a, b = a[1:], b[1:]
	}
	return len(a) < len(b)
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// number splits s into its leading number and the rest.
func number(s string) (string, string) {
	i := 0
	for i < len(s) && isDigit(s[i]) {
		i++
	}
	if i+1 < len(s) && s[i] == '.' && isDigit(s[i+1]) {
		i++
		for i < len(s) && isDigit(s[i]) {
			i++
		}
	}
	return s[:i], s[i:]
}
