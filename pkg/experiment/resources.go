package experiment

import (
	"fmt"
	"math"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/gsim-dev/gsim/internal/lazyre"
	"github.com/gsim-dev/gsim/pkg/plan"
)

// The executor: block and each stage's resources: say how stages run on a
// batch system. They are decoded like the rest of the file (every problem at
// its line and column) but never enter a key.

var (
	executorKeys = []string{"slurm"}
	// resourceKeys are shared by executor.slurm (the defaults) and a stage's
	// resources:.
	resourceKeys = []string{"partition", "account", "qos", "time", "mem", "cpus", "gpus", "gpu_type", "constraint", "sbatch"}
	slurmKeys    = append([]string{"submit", "retries", "poll", "gsim"}, resourceKeys...)
	stageResKeys = append([]string{"job"}, resourceKeys...)
)

// MinPoll is the shortest queue-polling interval accepted: gsim must never
// be the load on a cluster's controller.
const MinPoll = time.Second

// MaxRetries bounds executor.slurm.retries.
const MaxRetries = 10

func decodeExecutor(p *problems, v *yaml.Node) plan.Slurm {
	var out plan.Slurm
	if isNull(v) {
		return out
	}
	if v.Kind != yaml.MappingNode {
		p.add(posOf(v), "executor: expected a mapping (e.g. `slurm: {partition: gpu}`), got %s", describe(v))
		return out
	}
	entries(p, "executor", v, func(key string, k, vv *yaml.Node) {
		switch key {
		case "slurm":
			out = decodeSlurm(p, vv)
		default:
			p.add(posOf(k), "executor: unknown key %q%s; allowed keys: %s", key, didYouMean(key, executorKeys), quoteList(executorKeys))
		}
	})
	return out
}

func decodeSlurm(p *problems, v *yaml.Node) plan.Slurm {
	var out plan.Slurm
	if isNull(v) {
		return out
	}
	if v.Kind != yaml.MappingNode {
		p.add(posOf(v), "executor.slurm: expected a mapping (e.g. `{partition: gpu, time: 1h}`), got %s", describe(v))
		return out
	}
	const where = "executor.slurm"
	entries(p, where, v, func(key string, k, vv *yaml.Node) {
		switch key {
		case "submit":
			s, ok := scalarString(vv)
			if !ok || (s != plan.SubmitGPU && s != plan.SubmitAll) {
				p.add(posOf(vv), "%s.submit: expected %s (GPU stages become jobs, the rest run where gsim runs) or %s (every stage is a job), got %s%s", where, plan.SubmitGPU, plan.SubmitAll, describe(vv), fromSet(vv))
				return
			}
			out.Submit = s
		case "retries":
			n, ok := intValue(vv)
			if !ok || n < 0 || n > MaxRetries {
				p.add(posOf(vv), "%s.retries: expected a whole number from 0 to %d (resubmissions after PREEMPTED, NODE_FAIL or BOOT_FAIL), got %s%s", where, MaxRetries, describe(vv), fromSet(vv))
				return
			}
			out.Retries = &n
		case "poll":
			d, err := pollValue(vv)
			if err != nil {
				p.add(posOf(vv), "%s.poll: %v%s", where, err, fromSet(vv))
				return
			}
			out.Poll = d
		case "gsim":
			s, ok := scalarString(vv)
			if !ok || !filepath.IsAbs(s) {
				p.add(posOf(vv), "%s.gsim: expected the absolute path of the gsim binary as the compute nodes see it, got %s%s", where, describe(vv), fromSet(vv))
				return
			}
			out.Gsim = s
		default:
			if !decodeResource(p, where, key, vv, &out.Defaults) {
				p.add(posOf(k), "%s: unknown key %q%s; allowed keys: %s", where, key, didYouMean(key, slurmKeys), quoteList(slurmKeys))
			}
		}
	})
	return out
}

// decodeStageResources reads a stage's resources: mapping.
func decodeStageResources(p *problems, stage string, v *yaml.Node) plan.Resources {
	var out plan.Resources
	if isNull(v) {
		return out
	}
	where := "stages." + stage + ".resources"
	if v.Kind != yaml.MappingNode {
		p.add(posOf(v), "%s: expected a mapping (e.g. `{time: 30m, mem: 16G}`), got %s", where, describe(v))
		return out
	}
	entries(p, where, v, func(key string, k, vv *yaml.Node) {
		if key == "job" {
			if vv.Kind != yaml.ScalarNode || vv.ShortTag() != "!!bool" {
				p.add(posOf(vv), "%s.job: expected true (submit this stage as a batch job) or false (run it where gsim runs), got %s%s", where, describe(vv), fromSet(vv))
				return
			}
			b := strings.EqualFold(vv.Value, "true")
			out.Job = &b
			return
		}
		if !decodeResource(p, where, key, vv, &out) {
			p.add(posOf(k), "%s: unknown key %q%s; allowed keys: %s", where, key, didYouMean(key, stageResKeys), quoteList(stageResKeys))
		}
	})
	return out
}

var (
	slurmWordRE = lazyre.New(`^[A-Za-z0-9_.,:+-]+$`)
	gpuTypeRE   = lazyre.New(`^[A-Za-z0-9_.-]+$`)
	memRE       = lazyre.New(`^([0-9]+)\s*(?:([KMGT])(?:I?B)?)?$`)
)

// gsimOwned are sbatch options gsim sets itself to track a job; a user's
// value would break that.
var gsimOwned = []string{"--parsable", "-J", "--job-name", "-o", "--output", "-e", "--error", "-D", "--chdir", "--open-mode", "--wrap", "-W", "--wait", "-a", "--array", "-d", "--dependency"}

// decodeResource decodes one resource key into r; false when key is not one.
func decodeResource(p *problems, where, key string, v *yaml.Node, r *plan.Resources) bool {
	bad := func(format string, args ...any) {
		p.add(posOf(v), "%s.%s: %s%s", where, key, fmt.Sprintf(format, args...), fromSet(v))
	}
	word := func(dst *string, what string) {
		s, ok := scalarString(v)
		if !ok || !slurmWordRE.MatchString(s) {
			bad("expected %s (letters, digits and . , : + - _), got %s", what, describe(v))
			return
		}
		*dst = s
	}
	switch key {
	case "partition":
		word(&r.Partition, "a partition name, or several separated by commas")
	case "account":
		word(&r.Account, "an account name")
	case "qos":
		word(&r.QOS, "a QOS name")
	case "constraint":
		s, ok := scalarString(v)
		if !ok || s == "" || strings.IndexFunc(s, isSpaceOrControl) >= 0 {
			bad("expected a node feature expression without spaces (e.g. h100 or \"a100|h100\"), got %s", describe(v))
			return true
		}
		r.Constraint = s
	case "gpu_type":
		s, ok := scalarString(v)
		if !ok || !gpuTypeRE.MatchString(s) {
			bad("expected a GPU type as the cluster's gres.conf names it (e.g. h100), got %s", describe(v))
			return true
		}
		r.GPUType = s
	case "time":
		t, err := slurmTime(v)
		if err != nil {
			bad("%v", err)
			return true
		}
		r.Time = t
	case "mem":
		m, err := slurmMem(v)
		if err != nil {
			bad("%v", err)
			return true
		}
		r.Mem = m
	case "cpus":
		n, ok := intValue(v)
		if !ok || n < 1 {
			bad("expected a whole number of CPUs, at least 1, got %s", describe(v))
			return true
		}
		r.CPUs = &n
	case "gpus":
		n, ok := intValue(v)
		if !ok || n < 0 {
			bad("expected a whole number of GPUs (0 asks for none), got %s", describe(v))
			return true
		}
		r.GPUs = &n
	case "sbatch":
		r.Sbatch = sbatchArgs(p, where+".sbatch", v)
	default:
		return false
	}
	return true
}

func sbatchArgs(p *problems, where string, v *yaml.Node) []string {
	if v.Kind != yaml.SequenceNode {
		p.add(posOf(v), "%s: expected a list of sbatch options (e.g. [\"--exclusive\", \"--mail-type=FAIL\"]), got %s%s", where, describe(v), fromSet(v))
		return nil
	}
	var out []string
	for _, item := range v.Content {
		item = deref(item)
		s, ok := scalarString(item)
		if !ok || !strings.HasPrefix(s, "-") {
			p.add(posOf(item), "%s: each item must be one option starting with '-' (write --opt=value as one item), got %s%s", where, describe(item), fromSet(v))
			continue
		}
		name, _, _ := strings.Cut(s, "=")
		for _, own := range gsimOwned {
			// Short options may carry their value attached (-ofile).
			if name == own || len(own) == 2 && strings.HasPrefix(name, own) && !strings.HasPrefix(name, "--") {
				p.add(posOf(item), "%s: %s is set by gsim, which tracks the job through it; remove it", where, own)
				ok = false
				break
			}
		}
		if ok {
			out = append(out, s)
		}
	}
	return out
}

// fromSet says that a value came from the command line.
func fromSet(v *yaml.Node) string {
	if c, ok := strings.CutPrefix(v.LineComment, setMark); ok {
		return " (the value comes from --set " + c + ")"
	}
	return ""
}

func intValue(v *yaml.Node) (int, bool) {
	v = deref(v)
	if v.Kind != yaml.ScalarNode || v.ShortTag() != "!!int" {
		return 0, false
	}
	n, err := strconv.Atoi(v.Value)
	return n, err == nil
}

func pollValue(v *yaml.Node) (time.Duration, error) {
	var d time.Duration
	switch {
	case v.Kind == yaml.ScalarNode && (v.ShortTag() == "!!int" || v.ShortTag() == "!!float"):
		f, err := strconv.ParseFloat(v.Value, 64)
		if err != nil {
			return 0, fmt.Errorf("cannot read %s", describe(v))
		}
		d = time.Duration(f * float64(time.Second))
	case v.Kind == yaml.ScalarNode && v.ShortTag() == "!!str":
		var err error
		if d, err = time.ParseDuration(v.Value); err != nil {
			return 0, fmt.Errorf("expected seconds or a duration such as 10s or 1m, got %q", v.Value)
		}
	default:
		return 0, fmt.Errorf("expected seconds or a duration such as 10s or 1m, got %s", describe(v))
	}
	if d < MinPoll {
		return 0, fmt.Errorf("%s is shorter than %s: gsim queries the queue once per interval and must not load the controller", d, MinPoll)
	}
	return d, nil
}

var (
	clockRE = lazyre.New(`^(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?$`)
	unitsRE = lazyre.New(`^(?:\d+[dhms])+$`)
)

// slurmTime reads a time limit in Slurm's forms (minutes; MM:SS; HH:MM:SS;
// D-HH; D-HH:MM; D-HH:MM:SS), or with units (90m, 2h, 1h30m, 1d), or
// "unlimited", and writes it as Slurm's [D-]HH:MM:SS.
func slurmTime(v *yaml.Node) (string, error) {
	v = deref(v)
	if v.Kind != yaml.ScalarNode || v.ShortTag() == "!!null" || v.ShortTag() == "!!bool" {
		return "", fmt.Errorf("expected a time limit such as 30m, 2h, 1-12:00:00 or 90 (minutes), got %s", describe(v))
	}
	s := strings.ToLower(strings.TrimSpace(v.Value))
	if v.ShortTag() == "!!float" {
		return "", fmt.Errorf("expected whole minutes or a time limit such as 30m or 1:30:00, got %s", v.Value)
	}
	if s == "unlimited" || s == "infinite" {
		return "UNLIMITED", nil
	}
	var secs int64
	switch {
	case unitsRE.MatchString(s):
		for _, m := range regexp.MustCompile(`(\d+)([dhms])`).FindAllStringSubmatch(s, -1) {
			n, _ := strconv.ParseInt(m[1], 10, 64)
			secs += n * map[string]int64{"d": 86400, "h": 3600, "m": 60, "s": 1}[m[2]]
		}
	case clockRE.MatchString(s):
		m := clockRE.FindStringSubmatch(s)
		num := func(x string) int64 { n, _ := strconv.ParseInt(x, 10, 64); return n }
		var parts []int64
		for _, x := range m[2:] {
			if x != "" {
				parts = append(parts, num(x))
			}
		}
		if m[1] != "" {
			// D-HH[:MM[:SS]]
			secs = num(m[1]) * 86400
			mul := []int64{3600, 60, 1}
			for i, x := range parts {
				secs += x * mul[i]
			}
			for _, x := range parts[1:] {
				if x >= 60 {
					return "", fmt.Errorf("%q: minutes and seconds must be below 60", v.Value)
				}
			}
			break
		}
		switch len(parts) {
		case 1: // minutes
			secs = parts[0] * 60
		case 2: // MM:SS
			secs = parts[0]*60 + parts[1]
			if parts[1] >= 60 {
				return "", fmt.Errorf("%q: seconds must be below 60", v.Value)
			}
		case 3: // HH:MM:SS
			secs = parts[0]*3600 + parts[1]*60 + parts[2]
			if parts[1] >= 60 || parts[2] >= 60 {
				return "", fmt.Errorf("%q: minutes and seconds must be below 60", v.Value)
			}
		}
	default:
		return "", fmt.Errorf("expected a time limit such as 30m, 2h, 1h30m, 1-12:00:00 or 90 (minutes), got %q", v.Value)
	}
	if secs <= 0 {
		return "", fmt.Errorf("%q is no time at all; give a positive limit or leave it out for the partition's default", v.Value)
	}
	if secs > 365*86400 {
		return "", fmt.Errorf("%q is more than a year; use unlimited if that is meant", v.Value)
	}
	return formatSlurmTime(secs), nil
}

// formatSlurmTime writes seconds as [D-]HH:MM:SS.
func formatSlurmTime(secs int64) string {
	d, rest := secs/86400, secs%86400
	hms := fmt.Sprintf("%02d:%02d:%02d", rest/3600, rest%3600/60, rest%60)
	if d > 0 {
		return fmt.Sprintf("%d-%s", d, hms)
	}
	return hms
}

// slurmMem reads memory as Slurm writes it (16G, 500M; a bare integer is
// megabytes) and accepts GB/GiB spellings, writing Slurm's form.
func slurmMem(v *yaml.Node) (string, error) {
	v = deref(v)
	if v.Kind != yaml.ScalarNode || (v.ShortTag() != "!!int" && v.ShortTag() != "!!str") {
		return "", fmt.Errorf("expected memory such as 16G, 500M or 4000 (megabytes), got %s", describe(v))
	}
	m := memRE.FindStringSubmatch(strings.ToUpper(strings.TrimSpace(v.Value)))
	if m == nil {
		return "", fmt.Errorf("expected memory such as 16G, 500M or 4000 (megabytes), got %q", v.Value)
	}
	n, err := strconv.ParseInt(m[1], 10, 64)
	if err != nil || n <= 0 || n > math.MaxInt32 {
		return "", fmt.Errorf("%q is not a usable amount of memory", v.Value)
	}
	unit := m[2]
	if unit == "" {
		unit = "M"
	}
	return strconv.FormatInt(n, 10) + unit, nil
}

// setExecutor applies --set executor.slurm.KEY=VALUE (gsim run --slurm
// KEY=VALUE), making the executor and slurm mappings if the file has none.
func setExecutor(p *problems, root *yaml.Node, path string, parts []string, v *yaml.Node) {
	if len(parts) != 3 || parts[1] != "slurm" {
		p.add(posOf(root), "--set %s: expected executor.slurm.KEY=VALUE (keys: %s)", path, quoteList(slurmKeys))
		return
	}
	cur, anchor := root, root
	for _, part := range parts[1:2] {
		k, next := lookupEntry(cur, "executor")
		if k == nil || isNull(next) {
			next = &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Line: root.Line, Column: root.Column}
			setKey(root, root, "executor", next)
			k = root
		}
		if next.Kind != yaml.MappingNode {
			p.add(posOf(next), "--set %s: executor is %s, not a mapping", path, describe(next))
			return
		}
		cur, anchor = next, k
		k, next = lookupEntry(cur, part)
		if k == nil || isNull(next) {
			next = &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Line: anchor.Line, Column: anchor.Column}
			setKey(anchor, cur, part, next)
			k = anchor
		}
		if next.Kind != yaml.MappingNode {
			p.add(posOf(next), "--set %s: executor.%s is %s, not a mapping", path, part, describe(next))
			return
		}
		cur, anchor = next, k
	}
	setKey(anchor, cur, parts[2], v)
}
