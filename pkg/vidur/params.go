package vidur

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/gsim-dev/gsim/pkg/stage"
)

// Params are the `with:` of a `vidur` stage. The scheduler knobs share their
// names with the embedded simulator's (the sim kind) so one experiment can
// run both; the rest only Vidur has.
type Params struct {
	// Engine is refused: it was how a sim stage chose Vidur, and the kind
	// says that now.
	Engine string `json:"engine"`
	// Scheduler is Vidur's replica scheduler: vllm, sarathi, orca (also
	// lightllm, faster_transformer).
	Scheduler string `json:"scheduler"`
	// Predictor is Vidur's execution-time predictor: random_forest (Vidur
	// spells it random_forrest; both accepted) or linear_regression.
	Predictor string `json:"predictor"`

	BatchSizeCap   int      `json:"batch_size_cap"`
	MaxBatchTokens int      `json:"max_batch_tokens"` // vllm, lightllm: max_tokens_in_batch
	ChunkSize      int      `json:"chunk_size"`       // sarathi
	BlockSize      int      `json:"block_size"`
	NumBlocks      int      `json:"num_blocks"`
	Watermark      *float64 `json:"watermark"` // watermark_blocks_fraction
	// GPUMemoryGB overrides the device's memory (Vidur hard-codes it per SKU);
	// MemoryUtilization sets Vidur's memory_margin_fraction = 1 - it.
	GPUMemoryGB       float64 `json:"gpu_memory_gb"`
	MemoryUtilization float64 `json:"memory_utilization"`
	// Hardware is Vidur's device (a40, a100, h100; h200 runs as h100 with
	// 141 GB). Empty: the profile's device.
	Hardware      string `json:"hardware"`
	NetworkDevice string `json:"network_device"`
	Seed          *int64 `json:"seed"`
	// Model is the model name; empty: the workload's, else the profile's.
	Model string `json:"model"`
	// MaxTokens bounds prefill+decode of one request; Vidur clips longer
	// requests' prompts, so gsim refuses them instead.
	MaxTokens int `json:"max_tokens"`

	// Random forest grid. Vidur's default grid (3x3x3, 10-fold CV) takes ~25
	// min to train on 2 cores; one point takes ~1 min.
	NumEstimators   []int `json:"num_estimators"`
	MaxDepth        []int `json:"max_depth"`
	MinSamplesSplit []int `json:"min_samples_split"`
	TrainingThreads int   `json:"training_threads"`

	// Where Vidur and its interpreter are; empty: $GSIM_VIDUR,
	// $GSIM_VIDUR_PYTHON (default /usr/bin/python3), $GSIM_VIDUR_STUBS.
	VidurPath string `json:"vidur_path"`
	Python    string `json:"python"`
	Stubs     string `json:"stubs"`
	// CacheDir holds Vidur's trained predictor models; empty:
	// $GSIM_VIDUR_CACHE, else the user cache dir (~/.cache/gsim/vidur).
	CacheDir string `json:"cache_dir"`
	// Profile is a profile folder to use instead of a `profile` input.
	Profile string `json:"profile"`
	// Workload names the workload stage when several needs hold one.
	Workload string `json:"workload"`
	// ModelConfig is a Hugging Face config.json for a model Vidur does not
	// know; empty: stages/models/<name>/config.json.
	ModelConfig string `json:"model_config"`
	// KeepChromeTrace keeps Vidur's chrome trace (gzipped) in raw/; default true.
	KeepChromeTrace *bool `json:"keep_chrome_trace"`

	// Knobs of the embedded engine that Vidur has no equivalent for. They
	// are accepted so one `with:` block can serve both engines, and logged
	// as ignored.
	SafetyMargin        *float64 `json:"safety_margin"`
	TokenMetrics        *bool    `json:"token_metrics"`
	ActivationReserveGB float64  `json:"activation_reserve_gb"`
	// CPUOverhead and StepModel are refused: Vidur's CPU-overhead model needs
	// its own profiling files, and it has no step model.
	CPUOverhead bool   `json:"cpu_overhead"`
	StepModel   string `json:"step_model"`
}

// ignored lists the set params that Vidur has no use for.
func (p *Params) ignored() []string {
	var out []string
	if p.SafetyMargin != nil {
		out = append(out, "safety_margin")
	}
	if p.TokenMetrics != nil && !*p.TokenMetrics {
		out = append(out, "token_metrics") // Vidur's tokens cost nothing next to Vidur itself
	}
	if p.ActivationReserveGB != 0 {
		out = append(out, "activation_reserve_gb")
	}
	return out
}

// Defaults follow Vidur's own, except the random-forest grid.
const (
	defaultScheduler    = "vllm"
	defaultPredictor    = "random_forrest"
	defaultBatchSizeCap = 128
	defaultMaxTokens    = 4096
	defaultChunkSize    = 512
	defaultNetwork      = "h100_pairwise_nvlink"
	defaultPython       = "/usr/bin/python3"
)

var (
	defaultNumEstimators   = []int{250}
	defaultMaxDepth        = []int{16}
	defaultMinSamplesSplit = []int{2}
)

var (
	schedulers = []string{"vllm", "sarathi", "orca", "lightllm", "faster_transformer"}
	devices    = []string{"a40", "a100", "h100", "h200"}
	networks   = []string{"a40_pairwise_nvlink", "a100_pairwise_nvlink", "h100_pairwise_nvlink", "a100_dgx", "h100_dgx"}
)

// decodeParams decodes and checks params, filling defaults.
func decodeParams(raw map[string]any) (*Params, error) {
	var p Params
	if err := stage.DecodeParams(raw, &p); err != nil {
		return nil, err
	}
	var errs []error
	bad := func(path, format string, args ...any) {
		errs = append(errs, &stage.ParamError{Path: path, Msg: fmt.Sprintf(format, args...)})
	}
	if p.Engine != "" {
		bad("engine", "drop engine: (%q); the vidur kind always runs real Vidur, and gsim's embedded simulator is `uses: sim`", p.Engine)
	}
	if p.Scheduler == "" {
		p.Scheduler = defaultScheduler
	}
	if !slices.Contains(schedulers, p.Scheduler) {
		bad("scheduler", "%q is not a Vidur scheduler (use one of %s)", p.Scheduler, strings.Join(schedulers, ", "))
	}
	switch p.Predictor {
	case "", "random_forest", "random_forrest":
		p.Predictor = defaultPredictor
	case "linear_regression":
	default:
		bad("predictor", "%q is not a Vidur predictor (use random_forest or linear_regression; vidur-profile and step-model are the sim kind's)", p.Predictor)
	}
	positive := func(path string, v *int, def int) {
		if *v < 0 {
			bad(path, "%d is negative (expected > 0)", *v)
		}
		if *v == 0 {
			*v = def
		}
	}
	positive("batch_size_cap", &p.BatchSizeCap, defaultBatchSizeCap)
	positive("max_tokens", &p.MaxTokens, defaultMaxTokens)
	positive("max_batch_tokens", &p.MaxBatchTokens, p.MaxTokens)
	positive("chunk_size", &p.ChunkSize, defaultChunkSize)
	positive("block_size", &p.BlockSize, 0) // 0: the profile's
	positive("num_blocks", &p.NumBlocks, 0) // 0: Vidur derives it from memory
	if p.MaxBatchTokens < p.MaxTokens && (p.Scheduler == "vllm" || p.Scheduler == "lightllm") {
		bad("max_batch_tokens", "%d is below max_tokens %d: a request of max_tokens could never be scheduled", p.MaxBatchTokens, p.MaxTokens)
	}
	if p.Watermark != nil && (*p.Watermark < 0 || *p.Watermark >= 1) {
		bad("watermark", "%g (expected a fraction of the blocks in [0, 1))", *p.Watermark)
	}
	if p.GPUMemoryGB < 0 {
		bad("gpu_memory_gb", "%g is negative", p.GPUMemoryGB)
	}
	if p.MemoryUtilization < 0 || p.MemoryUtilization > 1 {
		bad("memory_utilization", "%g (expected a fraction in (0, 1])", p.MemoryUtilization)
	}
	if p.Hardware != "" && !slices.Contains(devices, p.Hardware) {
		bad("hardware", "%q has no Vidur device (use one of %s)", p.Hardware, strings.Join(devices, ", "))
	}
	if p.NetworkDevice == "" {
		p.NetworkDevice = defaultNetwork
	}
	if !slices.Contains(networks, p.NetworkDevice) {
		bad("network_device", "%q is not a Vidur network device (use one of %s)", p.NetworkDevice, strings.Join(networks, ", "))
	}
	grid := func(path string, v *[]int, def []int, min int) {
		if len(*v) == 0 {
			*v = def
		}
		for _, x := range *v {
			if x < min {
				bad(path, "%d (expected >= %d)", x, min)
			}
		}
	}
	grid("num_estimators", &p.NumEstimators, defaultNumEstimators, 1)
	grid("max_depth", &p.MaxDepth, defaultMaxDepth, 1)
	grid("min_samples_split", &p.MinSamplesSplit, defaultMinSamplesSplit, 2)
	if p.TrainingThreads == 0 {
		p.TrainingThreads = -1 // all cores, as Vidur
	}
	if p.CPUOverhead {
		bad("cpu_overhead", "not supported by Vidur here (Vidur's CPU-overhead model reads its own profiling files); use the sim kind")
	}
	if p.StepModel != "" {
		bad("step_model", "Vidur has no step model; use the sim kind with predictor: step-model")
	}
	t := true
	if p.KeepChromeTrace == nil {
		p.KeepChromeTrace = &t
	}

	return &p, errors.Join(errs...)
}

// location is where Vidur runs from, resolved from params and environment.
type location struct {
	VidurPath, Python, Stubs, CacheDir string
}

func (p *Params) locate(baseDir string) (location, error) {
	l := location{
		VidurPath: firstNonEmpty(p.VidurPath, os.Getenv("GSIM_VIDUR")),
		Python:    firstNonEmpty(p.Python, os.Getenv("GSIM_VIDUR_PYTHON"), defaultPython),
		Stubs:     firstNonEmpty(p.Stubs, os.Getenv("GSIM_VIDUR_STUBS")),
		CacheDir:  firstNonEmpty(p.CacheDir, os.Getenv("GSIM_VIDUR_CACHE")),
	}
	if l.VidurPath == "" {
		return l, errors.New("where is Vidur? set with.vidur_path or $GSIM_VIDUR to a checkout of " +
			"github.com/microsoft/vidur (its Python deps installed; see docs/vidur.md), or use gsim's embedded simulator (uses: sim)")
	}
	l.VidurPath = stage.Resolve(baseDir, l.VidurPath)
	if _, err := os.Stat(filepath.Join(l.VidurPath, "vidur", "main.py")); err != nil {
		return l, fmt.Errorf("%s is not a Vidur checkout (no vidur/main.py); point with.vidur_path or $GSIM_VIDUR "+
			"at a checkout of github.com/microsoft/vidur, or use gsim's embedded simulator (uses: sim)", l.VidurPath)
	}
	if l.Stubs != "" {
		l.Stubs = stage.Resolve(baseDir, l.Stubs)
	}
	if l.CacheDir == "" {
		uc, err := os.UserCacheDir()
		if err != nil {
			return l, fmt.Errorf("no cache dir for Vidur's predictor models: set with.cache_dir or $GSIM_VIDUR_CACHE (%w)", err)
		}
		l.CacheDir = filepath.Join(uc, "gsim", "vidur")
	}
	l.CacheDir = stage.Resolve(baseDir, l.CacheDir)
	return l, nil
}

func firstNonEmpty(v ...string) string {
	for _, s := range v {
		if s != "" {
			return s
		}
	}
	return ""
}
