// Package pyprobe asks a Python interpreter, in one short subprocess, which
// modules it imports (with their versions) and whether torch sees a CUDA GPU.
// Kinds that run Python on the GPU or run Vidur use it to say what a machine
// lacks before any stage starts. Answers are cached per process, so a sweep
// of many instances probes each interpreter once per request.
package pyprobe

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"time"
)

// DefaultTimeout bounds one probe. Importing torch and transformers takes a
// few seconds on a warm disk; far longer means the interpreter is stuck.
const DefaultTimeout = 60 * time.Second

// Request is one probe: the interpreter, directories put first (Path) and
// last (After) on its sys.path, and the modules to import. CUDA asks torch
// (when it imports) whether it sees a GPU.
type Request struct {
	Python  string
	Path    []string
	After   []string
	Modules []string
	CUDA    bool
	Env     []string      // added to the inherited environment
	Timeout time.Duration // 0: DefaultTimeout
}

// Result is what the interpreter answered.
type Result struct {
	Executable string            `json:"executable"`
	Version    string            `json:"version"`
	Modules    map[string]Module `json:"modules"`
	// CUDA is set when CUDA was asked for and torch imports.
	CUDA *CUDA `json:"cuda,omitempty"`
}

// Module is one import's outcome.
type Module struct {
	OK      bool   `json:"ok"`
	Version string `json:"version,omitempty"`
	Error   string `json:"error,omitempty"`
}

// CUDA is torch's view of the GPUs.
type CUDA struct {
	Available bool   `json:"available"`
	Devices   int    `json:"devices"`
	Device    string `json:"device,omitempty"` // name of device 0
	Torch     string `json:"torch"`            // torch.__version__
	Runtime   string `json:"runtime"`          // torch.version.cuda
}

// Describe names the interpreter as a user would look for it.
func (r *Result) Describe(python string) string {
	if r.Executable == "" || r.Executable == python {
		return fmt.Sprintf("%s (Python %s)", python, r.Version)
	}
	return fmt.Sprintf("%s (%s, Python %s)", python, r.Executable, r.Version)
}

// script prints one JSON line: the interpreter, each module's import
// outcome, and torch's CUDA view. It must run on any Python 3.
const script = `
import importlib, json, sys
req = json.loads(sys.argv[1])
sys.path[:0] = req["path"]
sys.path += req["after"]
out = {"executable": sys.executable, "version": sys.version.split()[0], "modules": {}}
for name in req["modules"]:
    try:
        m = importlib.import_module(name)
        out["modules"][name] = {"ok": True, "version": str(getattr(m, "__version__", "") or "")}
    except BaseException as e:
        out["modules"][name] = {"ok": False, "error": "%s: %s" % (type(e).__name__, e)}
if req["cuda"]:
    try:
        import torch
        c = {"available": bool(torch.cuda.is_available()), "devices": 0, "torch": torch.__version__,
             "runtime": str(torch.version.cuda or "")}
        if c["available"]:
            c["devices"] = torch.cuda.device_count()
            c["device"] = torch.cuda.get_device_name(0)
        out["cuda"] = c
    except BaseException:
        pass
sys.stdout.write("\n##pyprobe " + json.dumps(out) + "\n")
`

const marker = "##pyprobe "

type entry struct {
	mu   sync.Mutex
	done bool
	res  *Result
	err  error
}

var (
	cacheMu sync.Mutex
	cache   = map[string]*entry{}
)

// Probe runs the request, or returns the answer an identical request got
// earlier in this process. Concurrent identical requests share one run.
func Probe(ctx context.Context, r Request) (*Result, error) {
	key, _ := json.Marshal(struct {
		P       string
		S, A, M []string
		C       bool
		E       []string
	}{r.Python, r.Path, r.After, r.Modules, r.CUDA, r.Env})
	cacheMu.Lock()
	e := cache[string(key)]
	if e == nil {
		e = &entry{}
		cache[string(key)] = e
	}
	cacheMu.Unlock()
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.done {
		return e.res, e.err
	}
	res, err := run(ctx, r)
	if ctx.Err() == nil { // a cancelled caller's answer is nobody else's
		e.done, e.res, e.err = true, res, err
	}
	return res, err
}

func run(ctx context.Context, r Request) (*Result, error) {
	py, err := exec.LookPath(r.Python)
	if err != nil {
		return nil, fmt.Errorf("cannot start %s: %w", r.Python, errors.Unwrap(err))
	}
	timeout := r.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	arg, _ := json.Marshal(map[string]any{"path": orEmpty(r.Path), "after": orEmpty(r.After), "modules": orEmpty(r.Modules), "cuda": r.CUDA})
	cmd := exec.CommandContext(ctx, py, "-c", script, string(arg))
	cmd.Env = append(append(cmd.Environ(), "PYTHONDONTWRITEBYTECODE=1"), r.Env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = time.Second
	err = cmd.Run()
	if ctx.Err() == context.DeadlineExceeded {
		return nil, fmt.Errorf("%s did not answer within %s (importing %s)", r.Python, timeout, strings.Join(r.Modules, ", "))
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	out := stdout.String()
	i := strings.LastIndex(out, marker)
	if err != nil || i < 0 {
		why := "printed no answer"
		if err != nil {
			why = err.Error()
		}
		return nil, fmt.Errorf("%s could not be asked what it imports (%s): %s", r.Python, why, lastLine(stderr.String()))
	}
	var res Result
	if err := json.Unmarshal([]byte(strings.TrimSpace(out[i+len(marker):])), &res); err != nil {
		return nil, fmt.Errorf("%s: unreadable probe answer: %w", r.Python, err)
	}
	return &res, nil
}

func orEmpty(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

// GPUModules are what the GPU runners (stages/real_bench, stages/profile)
// import. Each asks for all of them, so one interpreter is probed once for
// both kinds.
var GPUModules = []string{"torch", "transformers", "transformers.generation.continuous_batching", "transformers.models.qwen3"}

// CUDATorch says what python lacks to run a GPU runner that imports need (a
// subset of GPUModules): every problem, joined, or nil.
func CUDATorch(ctx context.Context, python string, need []string) error {
	res, err := Probe(ctx, Request{Python: python, Modules: GPUModules, CUDA: true})
	if err != nil {
		return err
	}
	var errs []error
	for _, m := range need {
		if mod, ok := res.Modules[m]; ok && !mod.OK {
			errs = append(errs, fmt.Errorf("%s cannot import %s (%s)", res.Describe(python), m, mod.Error))
		}
	}
	if res.Modules["torch"].OK && (res.CUDA == nil || !res.CUDA.Available) {
		torch := ""
		if res.CUDA != nil {
			torch = "torch " + res.CUDA.Torch + " "
		}
		errs = append(errs, fmt.Errorf("%sin %s sees no CUDA GPU (torch.cuda.is_available() is False)", torch, res.Describe(python)))
	}
	return errors.Join(errs...)
}
