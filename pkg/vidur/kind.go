// Package vidur is the `vidur` stage kind: it runs real Vidur
// (github.com/microsoft/vidur) on a workload and a profile. It writes the workload as Vidur's trace_replay CSV,
// stages the profile where Vidur reads it, runs Vidur through the shim in
// stages/vidur (which registers Qwen3-0.6B with its true head_dim), finds and
// checks Vidur's output folder, and converts Vidur's outputs into gsim's
// canonical run schema. The conversion (Convert) is usable on its own.
package vidur

import (
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/gsim-dev/gsim/pkg/profile"
	"github.com/gsim-dev/gsim/pkg/schema"
	"github.com/gsim-dev/gsim/pkg/stage"
)

// Version is the engine's runner identity; bump it when the conversion or the
// flags gsim passes change for the same params and inputs.
const Version = "vidur/2"

// RawDir holds, inside the stage's output, the exact Vidur inputs and
// Vidur's own outputs the canonical files were converted from.
const RawDir = "raw"

// Files under RawDir.
const (
	RawTraceFile       = "trace.csv"            // the trace_replay CSV Vidur read
	RawResultFile      = "shim_result.json"     // what the shim recorded
	RawArgsFile        = "vidur_args.json"      // the command line
	RawChromeTraceFile = "chrome_trace.json.gz" // Vidur's chrome trace, gzipped
	RawRestartsFile    = "restarts.csv"         // the shim's log of Vidur's preemption restarts
	// RawPredictionsDir holds the prediction tables Vidur's predictor
	// looked its iterations up in (docs/vidur.md, "Exported predictions").
	RawPredictionsDir = "predictions"
)

// ShimFile is the shim's file name in the stages/vidur runner folder.
const ShimFile = "vidur_shim.py"

// exitNoVidur is the shim's exit code when Vidur cannot be imported.
const exitNoVidur = 3

// Kind is the `vidur` stage kind.
type Kind struct{}

// NewKind returns the vidur kind.
func NewKind() stage.Kind { return Kind{} }

func (Kind) Name() string    { return "vidur" }
func (Kind) Version() string { return Version }

func (Kind) CheckParams(params map[string]any) error {
	_, err := decodeParams(params)
	return err
}

// Fingerprint covers the shim's code, the Vidur tree's source (a digest of
// its vidur/ package, so an edit reruns the stage whether or not it is
// committed, and a tree that is no git checkout is identified too), the
// model cards and a profile or model_config named in params. Where Vidur
// cannot be located the source reads "unknown", so that validate and dag
// work without it.
func (Kind) Fingerprint(params map[string]any, baseDir string) (map[string]string, error) {
	p, err := decodeParams(params)
	if err != nil {
		return nil, err
	}
	fp := map[string]string{}
	dir, err := stage.RunnerDir("vidur", baseDir)
	if err != nil {
		return nil, err
	}
	if fp["runner:stages/vidur"], err = stage.DirDigest(dir); err != nil {
		return nil, err
	}
	if md, err := stage.RunnerDir("models", baseDir); err == nil {
		if fp["runner:stages/models"], err = stage.DirDigest(md); err != nil {
			return nil, err
		}
	}
	fp["vidur:source"] = "unknown"
	if loc, err := p.locate(baseDir); err == nil {
		id, err := TreeIdentity(loc.VidurPath)
		if err != nil {
			return nil, err
		}
		fp["vidur:source"] = id.Source
	}
	if p.ModelConfig != "" {
		if fp["file:model_config"], err = stage.ParamFileDigest("model_config", baseDir, p.ModelConfig); err != nil {
			return nil, err
		}
	}
	if p.Profile != "" {
		if fp["dir:profile"], err = stage.ParamDirDigest("profile", baseDir, p.Profile); err != nil {
			return nil, err
		}
	}
	return fp, nil
}

func (Kind) Resources(map[string]any) map[string]int { return nil }

// VolatileFiles implements stage.Volatile: the files in raw/ that record
// where and how long Vidur ran (absolute paths of this machine, its time
// stamped output folder, wall seconds). They stay in the object but not in
// its digest, so identical results in two stores, or a forced rerun, have
// one digest. run_meta.json holds none of that.
func (Kind) VolatileFiles() []string {
	return []string{RawDir + "/" + RawArgsFile, RawDir + "/" + RawResultFile, RawDir + "/" + VidurConfigFile}
}

// Produces implements stage.Producer: a run folder (whose raw/ also holds
// Vidur's own outputs and prediction tables).
func (Kind) Produces() string { return stage.HoldsRun }

// The inputs a vidur stage reads, found by what the needs hold.
var (
	workloadRole = stage.Role{Name: "workload", Param: "workload", Holds: stage.HoldsWorkload, Hint: "a workload stage"}
	profileRole  = stage.Role{Name: "profile", Holds: stage.HoldsProfile,
		Hint: "a profile stage (or set with.profile to a profile folder, e.g. testdata/profile/h100)"}
)

func (p *Params) roles() []stage.Role {
	if p.Profile != "" {
		return []stage.Role{workloadRole}
	}
	return []stage.Role{workloadRole, profileRole}
}

// InputRoles implements stage.InputReader.
func (Kind) InputRoles(params map[string]any) []stage.Role {
	p, err := decodeParams(params)
	if err != nil {
		return nil // CheckParams reports it
	}
	return p.roles()
}

func (Kind) Validate(spec *stage.Spec) error {
	if err := schema.ValidateRun(spec.OutDir); err != nil {
		return err
	}
	for _, f := range []string{RawTraceFile, RawResultFile, VidurRequestMetricsFile, RawRestartsFile} {
		if _, err := os.Stat(filepath.Join(spec.OutDir, RawDir, f)); err != nil {
			return fmt.Errorf("vidur run %s: %w", spec.OutDir, err)
		}
	}
	return nil
}

// ShimResult is the shim's result.json.
type ShimResult struct {
	OutputDir      string             `json:"output_dir"`
	ModelName      string             `json:"model_name"`
	HeadDim        int                `json:"head_dim"`
	DerivedHeadDim int                `json:"derived_head_dim"`
	TotalMemoryGB  float64            `json:"total_memory_gb"`
	NumBlocks      float64            `json:"num_blocks"`
	MaxBatchSize   float64            `json:"max_batch_size"`
	BlockSize      int                `json:"block_size"`
	Seconds        map[string]float64 `json:"seconds"`
	Python         string             `json:"python"`
}

func (Kind) Run(ctx context.Context, spec *stage.Spec, env stage.Env) error {
	if env.Log == nil {
		env.Log = io.Discard
	}
	p, err := decodeParams(spec.Params)
	if err != nil {
		return err
	}
	loc, err := p.locate(spec.BaseDir)
	if err != nil {
		return err
	}
	id, err := TreeIdentity(loc.VidurPath)
	if err != nil {
		return err
	}
	win, _, err := stage.FindInput(spec, workloadRole)
	if err != nil {
		return fmt.Errorf("vidur %s: %w", spec.Instance, err)
	}
	workDir := win.Dir
	profDir := stage.Resolve(spec.BaseDir, p.Profile)
	if profDir == "" {
		in, _, err := stage.FindInput(spec, profileRole)
		if err != nil {
			return fmt.Errorf("vidur %s: %w", spec.Instance, err)
		}
		profDir = in.Dir
	}
	work, err := schema.ReadWorkload(workDir)
	if err != nil {
		return err
	}
	digest, err := schema.WorkloadDigest(workDir)
	if err != nil {
		return err
	}
	prof, err := resolveProfile(p, profDir, work)
	if err != nil {
		return err
	}
	for _, r := range work.Requests {
		if tot := r.NumPrefillTokens + r.NumDecodeTokens; tot > int64(p.MaxTokens) {
			return fmt.Errorf("%s: request %d has %d tokens, above max_tokens %d (Vidur would clip its prompt): raise with.max_tokens",
				filepath.Join(workDir, schema.TraceLengthsFile), r.ID, tot, p.MaxTokens)
		}
	}

	raw := filepath.Join(spec.OutDir, RawDir)
	if err := os.MkdirAll(raw, 0o755); err != nil {
		return err
	}
	tracePath := filepath.Join(raw, RawTraceFile)
	if err := WriteTraceFile(tracePath, work.Requests); err != nil {
		return err
	}
	rfCache := filepath.Join(loc.CacheDir, cacheSubdir(p))
	mlp, attn, err := stageProfile(prof, loc.CacheDir)
	if err != nil {
		return err
	}
	shimDir, err := stage.RunnerDir("vidur", spec.BaseDir)
	if err != nil {
		return err
	}
	vidurOut := filepath.Join(spec.OutDir, "vidur_out")
	resultPath := filepath.Join(raw, RawResultFile)
	vargs := vidurArgs(p, prof, tracePath, mlp, attn, vidurOut, rfCache)
	argv := []string{loc.Python, "-u", filepath.Join(shimDir, ShimFile), "--vidur", loc.VidurPath, "--result", resultPath,
		"--predictions", filepath.Join(raw, RawPredictionsDir), "--restarts", filepath.Join(raw, RawRestartsFile)}
	if loc.Stubs != "" {
		argv = append(argv, "--stubs", loc.Stubs)
	}
	hf := stage.Resolve(spec.BaseDir, p.ModelConfig)
	if hf == "" {
		hf = modelCard(spec.BaseDir, prof.model)
	}
	if hf != "" {
		argv = append(argv, "--hf-config", hf, "--model-name", prof.model)
	}
	if prof.memoryGB > 0 {
		argv = append(argv, "--total-memory-gb", strconv.FormatFloat(prof.memoryGB, 'g', -1, 64))
	}
	argv = append(argv, "--")
	argv = append(argv, vargs...)
	if err := writeJSON(filepath.Join(raw, RawArgsFile), argv); err != nil {
		return err
	}
	if ig := p.ignored(); len(ig) > 0 {
		fmt.Fprintf(env.Log, "vidur: ignoring %s (embedded-engine knobs Vidur has no equivalent for)\n", strings.Join(ig, ", "))
	}
	fmt.Fprintf(env.Log, "vidur: %s\n", strings.Join(argv, " "))
	fmt.Fprintf(env.Log, "vidur: predictor models cached in %s (outside gsim's store and key)\n", rfCache)
	err = stage.RunCommand(ctx, stage.Command{
		Argv: argv,
		Dir:  spec.OutDir,
		Env:  []string{"WANDB_MODE=disabled", "MPLBACKEND=Agg", "PYTHONDONTWRITEBYTECODE=1"},
	}, env)
	var ee *stage.ExitError
	if errors.As(err, &ee) && ee.ExitCode == exitNoVidur {
		return fmt.Errorf("cannot import Vidur from %s with %s: install Vidur's Python deps (docs/vidur.md) and set "+
			"$GSIM_VIDUR_STUBS, or use gsim's embedded simulator (uses: sim):\n%s", loc.VidurPath, loc.Python, ee.LogTail)
	}
	if err != nil {
		return err
	}

	var res ShimResult
	if err := readJSON(resultPath, &res); err != nil {
		return fmt.Errorf("vidur shim wrote no usable %s: %w", resultPath, err)
	}
	outDir, err := FindOutputDir(vidurOut)
	if err != nil {
		return err
	}
	vout, err := ReadOutput(outDir)
	if err != nil {
		return err
	}
	if vout.Restarts, err = ReadRestarts(filepath.Join(raw, RawRestartsFile)); err != nil {
		return fmt.Errorf("vidur shim wrote no usable restart log: %w", err)
	}
	vout.RestartsRecorded = true
	conv, err := Convert(work.Requests, vout)
	if err != nil {
		return fmt.Errorf("convert vidur output %s: %w", outDir, err)
	}
	if err := keepRaw(outDir, raw, *p.KeepChromeTrace); err != nil {
		return err
	}
	if err := os.RemoveAll(vidurOut); err != nil {
		return err
	}
	meta := &schema.RunMeta{
		RunID:          runID(spec),
		RunType:        schema.RunVidur,
		Model:          prof.model,
		Hardware:       map[string]any{"device": prof.vidurDevice, "profile_device": prof.device, "gpu_memory_gb": res.TotalMemoryGB, "simulated_by": "vidur"},
		Engine:         engineMeta(p, prof, id, &res, conv),
		WorkloadDigest: digest,
		Extra:          map[string]any{"python": res.Python},
	}
	return conv.WriteRun(spec.OutDir, meta)
}

type resolvedProfile struct {
	root, dir     string // profile root; dir holding mlp.csv and attention.csv
	device, model string
	vidurDevice   string
	memoryGB      float64 // 0: Vidur's own for the device
	blockSize     int
	digest        string // of the folder holding mlp.csv and attention.csv
}

func resolveProfile(p *Params, root string, work *schema.Workload) (*resolvedProfile, error) {
	dir, device, model, err := profile.ModelDir(root)
	if err != nil {
		return nil, err
	}
	prof, err := profile.Read(root)
	if err != nil {
		return nil, err
	}
	r := &resolvedProfile{root: root, dir: dir, device: device, model: model}
	want := firstNonEmpty(p.Model, work.Meta.Model)
	if want != "" && want != model {
		return nil, fmt.Errorf("the profile %s is of %s, the run is of %s: profile the same model", dir, model, want)
	}
	if p.Hardware != "" && p.Hardware != device {
		return nil, fmt.Errorf("with.hardware is %s but the profile %s was measured on %s", p.Hardware, dir, device)
	}
	r.vidurDevice = device
	if device == "h200" {
		// Vidur has no H200 SKU; it runs as an H100 with H200's memory.
		r.vidurDevice, r.memoryGB = "h100", 141
	}
	if p.GPUMemoryGB > 0 {
		r.memoryGB = p.GPUMemoryGB
	}
	if len(prof.Attention) == 0 {
		return nil, fmt.Errorf("%s: no attention rows", filepath.Join(dir, profile.AttentionFile))
	}
	r.blockSize = prof.Attention[0].BlockSize
	if p.BlockSize != 0 && p.BlockSize != r.blockSize {
		return nil, fmt.Errorf("with.block_size is %d but %s was profiled with block_size %d; Vidur trains only on rows of its block size: drop with.block_size or re-profile",
			p.BlockSize, filepath.Join(dir, profile.AttentionFile), r.blockSize)
	}
	return r, nil
}

// stageProfile copies the profile's two CSVs into the cache under their
// content digest. Vidur's model cache key includes the profile's path, so a
// stable path lets runs on the same profile from different store folders
// share trained models.
func stageProfile(r *resolvedProfile, cacheDir string) (mlp, attn string, err error) {
	h, err := stage.DirDigest(r.dir)
	if err != nil {
		return "", "", err
	}
	r.digest = h
	dst := filepath.Join(cacheDir, "profiles", h[:16], r.device, filepath.FromSlash(r.model))
	mlp, attn = filepath.Join(dst, profile.MLPFile), filepath.Join(dst, profile.AttentionFile)
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return "", "", fmt.Errorf("stage profile for Vidur: %w", err)
	}
	for _, f := range []string{profile.MLPFile, profile.AttentionFile} {
		if err := copyAtomic(filepath.Join(r.dir, f), filepath.Join(dst, f)); err != nil {
			return "", "", fmt.Errorf("stage profile for Vidur: %w", err)
		}
	}
	return mlp, attn, nil
}

// cacheSubdir separates predictor settings that Vidur leaves out of its own
// model cache key (the random-forest grid), so a model trained on one grid is
// never reused for another. "seeded" keeps apart the caches of runs made
// before the shim seeded every forest (their forests drew from the shared
// random stream and must never be loaded by a seeded run).
func cacheSubdir(p *Params) string {
	join := func(v []int) string {
		s := make([]string, len(v))
		for i, x := range v {
			s[i] = strconv.Itoa(x)
		}
		return strings.Join(s, "_")
	}
	if p.Predictor == "linear_regression" {
		return "seeded-linear_regression"
	}
	return fmt.Sprintf("seeded-rf-e%s-d%s-s%s", join(p.NumEstimators), join(p.MaxDepth), join(p.MinSamplesSplit))
}

// vidurArgs maps params to Vidur's command-line flags.
func vidurArgs(p *Params, prof *resolvedProfile, trace, mlp, attn, outDir, cacheDir string) []string {
	itoa := strconv.Itoa
	ints := func(v []int) []string {
		s := make([]string, len(v))
		for i, x := range v {
			s[i] = itoa(x)
		}
		return s
	}
	a := []string{
		"--replica_config_model_name", prof.model,
		"--replica_config_device", prof.vidurDevice,
		"--replica_config_network_device", p.NetworkDevice,
		"--replica_config_tensor_parallel_size", "1",
		"--replica_config_num_pipeline_stages", "1",
		"--cluster_config_num_replicas", "1",
		"--request_generator_config_type", "trace_replay",
		"--trace_request_generator_config_trace_file", trace,
		"--trace_request_generator_config_max_tokens", itoa(p.MaxTokens),
		"--replica_scheduler_config_type", p.Scheduler,
	}
	if p.Seed != nil {
		a = append(a, "--seed", strconv.FormatInt(*p.Seed, 10))
	}
	if p.MemoryUtilization > 0 {
		a = append(a, "--replica_config_memory_margin_fraction", strconv.FormatFloat(1-p.MemoryUtilization, 'g', -1, 64))
	}
	s := "--" + p.Scheduler + "_scheduler_config_"
	a = append(a, s+"batch_size_cap", itoa(p.BatchSizeCap), s+"block_size", itoa(prof.blockSize))
	if p.NumBlocks > 0 {
		a = append(a, s+"num_blocks", itoa(p.NumBlocks))
	}
	if p.Watermark != nil {
		a = append(a, s+"watermark_blocks_fraction", strconv.FormatFloat(*p.Watermark, 'g', -1, 64))
	}
	switch p.Scheduler {
	case "vllm", "lightllm":
		a = append(a, s+"max_tokens_in_batch", itoa(p.MaxBatchTokens))
	case "sarathi":
		a = append(a, s+"chunk_size", itoa(p.ChunkSize))
	}
	e := "--" + p.Predictor + "_execution_time_predictor_config_"
	a = append(a,
		"--execution_time_predictor_config_type", p.Predictor,
		e+"compute_input_file", mlp,
		e+"attention_input_file", attn,
		e+"prediction_max_tokens_per_request", itoa(p.MaxTokens),
		e+"prediction_max_prefill_chunk_size", itoa(p.MaxTokens),
		e+"prediction_max_batch_size", itoa(p.BatchSizeCap),
		e+"num_training_job_threads", itoa(p.TrainingThreads),
	)
	if p.Predictor == "random_forrest" {
		a = append(a, e+"num_estimators")
		a = append(a, ints(p.NumEstimators)...)
		a = append(a, e+"max_depth")
		a = append(a, ints(p.MaxDepth)...)
		a = append(a, e+"min_samples_split")
		a = append(a, ints(p.MinSamplesSplit)...)
	}
	a = append(a,
		"--metrics_config_output_dir", outDir,
		"--metrics_config_cache_dir", cacheDir,
		"--metrics_config_enable_chrome_trace",
		"--metrics_config_store_request_metrics",
		"--no-metrics_config_store_plots",
	)
	return a
}

// modelCard returns the Hugging Face config.json gsim ships for model
// (stages/models/<name>/config.json), or "" when there is none.
func modelCard(baseDir, model string) string {
	dir, err := stage.RunnerDir("models", baseDir)
	if err != nil {
		return ""
	}
	p := filepath.Join(dir, filepath.Base(model), "config.json")
	if _, err := os.Stat(p); err != nil {
		return ""
	}
	return p
}

func engineMeta(p *Params, prof *resolvedProfile, id Identity, res *ShimResult, conv *Converted) map[string]any {
	m := map[string]any{
		"name":                 "vidur",
		"version":              Version,
		"vidur_commit":         id.Commit,
		"vidur_dirty":          id.Dirty,
		"vidur_source":         id.Source,
		"scheduler":            p.Scheduler,
		"predictor":            p.Predictor,
		"batch_size_cap":       p.BatchSizeCap,
		"block_size":           prof.blockSize,
		"num_blocks":           int64(res.NumBlocks),
		"num_blocks_given":     p.NumBlocks > 0,
		"max_batch_size":       int64(res.MaxBatchSize),
		"max_tokens":           p.MaxTokens,
		"network_device":       p.NetworkDevice,
		"head_dim":             res.HeadDim,
		"restarts":             conv.Restarts,
		"prefill_cut_restarts": conv.PrefillCut,
		"vidur_derived_head":   res.DerivedHeadDim,
		"profile_digest":       prof.digest,
		"tensor_parallel_size": 1,
		"pipeline_stages":      1,
	}
	switch p.Scheduler {
	case "vllm", "lightllm":
		m["max_batch_tokens"] = p.MaxBatchTokens
	case "sarathi":
		m["chunk_size"] = p.ChunkSize
	}
	if p.Predictor == "random_forrest" {
		m["num_estimators"], m["max_depth"], m["min_samples_split"] = p.NumEstimators, p.MaxDepth, p.MinSamplesSplit
	}
	if p.Watermark != nil {
		m["watermark"] = *p.Watermark
	}
	if p.MemoryUtilization > 0 {
		m["memory_utilization"] = p.MemoryUtilization
	}
	if p.Seed != nil {
		m["seed"] = *p.Seed
	}
	return m
}

func runID(spec *stage.Spec) string {
	if spec.Key != "" && len(spec.Key) >= 12 {
		return spec.Instance + "@" + spec.Key[:12]
	}
	return spec.Instance
}

// keepRaw copies Vidur's request_metrics.csv and config.json, and gzips its
// chrome trace, into raw/.
func keepRaw(outDir, raw string, chrome bool) error {
	for _, f := range []string{VidurRequestMetricsFile, VidurConfigFile} {
		if err := copyAtomic(filepath.Join(outDir, f), filepath.Join(raw, f)); err != nil {
			return err
		}
	}
	if !chrome {
		return nil
	}
	return gzipFile(filepath.Join(outDir, ChromeTraceFile), filepath.Join(raw, RawChromeTraceFile))
}

func copyAtomic(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp, err := os.CreateTemp(filepath.Dir(dst), ".tmp-"+filepath.Base(dst)+"-*")
	if err != nil {
		return err
	}
	if _, err := io.Copy(tmp, in); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return os.Rename(tmp.Name(), dst)
}

func gzipFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	zw, _ := gzip.NewWriterLevel(out, gzip.BestSpeed)
	if _, err := io.Copy(zw, in); err != nil {
		out.Close()
		return fmt.Errorf("gzip %s: %w", src, err)
	}
	if err := zw.Close(); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}
