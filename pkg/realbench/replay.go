package realbench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/gsim-dev/gsim/pkg/schema"
	"github.com/gsim-dev/gsim/pkg/stage"
)

// ReplayParams are the `with:` of a replay stage.
type ReplayParams struct {
	// Path is a recorded run folder (request_metrics.csv, token_metrics.csv,
	// run_meta.json, optionally step_metrics.csv), relative to the
	// experiment file's folder.
	Path string `json:"path"`
	// Workload names the workload stage when several needs hold one.
	Workload string `json:"workload,omitempty"`
}

// ReplayKind is the `replay` stage kind: it stands in for real-bench where
// no GPU is at hand, with a run recorded earlier on the same workload.
type ReplayKind struct{}

var _ stage.Kind = ReplayKind{}

// runFiles are copied from a recorded folder; nothing else is adopted.
var runFiles = []string{schema.RequestMetricsFile, schema.TokenMetricsFile, schema.StepMetricsFile, schema.RunMetaFile, schema.StepDetailFile}

// Name implements stage.Kind.
func (ReplayKind) Name() string { return "replay" }

// Version implements stage.Kind.
func (ReplayKind) Version() string { return "1" }

// Produces implements stage.Producer: a run folder.
func (ReplayKind) Produces() string { return stage.HoldsRun }

// InputRoles implements stage.InputReader.
func (ReplayKind) InputRoles(map[string]any) []stage.Role { return []stage.Role{WorkloadRole} }

func decodeReplay(params map[string]any) (ReplayParams, error) {
	var p ReplayParams
	if err := stage.DecodeParams(params, &p); err != nil {
		return p, err
	}
	if p.Path == "" {
		return p, &stage.ParamError{Path: "path", Msg: "required: a recorded run folder (e.g. testdata/real/h100-qwen3-rate8/run)"}
	}
	return p, nil
}

// CheckParams implements stage.Kind.
func (ReplayKind) CheckParams(params map[string]any) error {
	_, err := decodeReplay(params)
	return err
}

// CheckPaths implements stage.PathChecker: the recorded folder exists and
// holds a run, so a wrong path fails validate, not the run.
func (ReplayKind) CheckPaths(params map[string]any, baseDir string) error {
	p, err := decodeReplay(params)
	if err != nil {
		return err
	}
	return checkRecordedDir(p.Path, stage.Resolve(baseDir, p.Path))
}

// Fingerprint is the digest of the recorded folder's run files, so an edited
// recording reruns everything downstream.
func (ReplayKind) Fingerprint(params map[string]any, baseDir string) (map[string]string, error) {
	p, err := decodeReplay(params)
	if err != nil {
		return nil, err
	}
	dir := stage.Resolve(baseDir, p.Path)
	if err := checkRecordedDir(p.Path, dir); err != nil {
		return nil, err
	}
	fp := map[string]string{}
	for _, name := range runFiles {
		path := filepath.Join(dir, name)
		if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
			if _, gerr := os.Stat(path + schema.GzipSuffix); gerr == nil {
				path, name = path+schema.GzipSuffix, name+schema.GzipSuffix
			} else if name == schema.StepMetricsFile || name == schema.StepDetailFile {
				continue
			}
		}
		d, err := stage.FileDigest(path)
		if err != nil {
			return nil, &stage.ParamError{Path: "path", Msg: fmt.Sprintf("recorded run %s: %v", p.Path, err)}
		}
		fp["recorded:"+filepath.ToSlash(filepath.Join(p.Path, name))] = d
	}
	return fp, nil
}

// checkRecordedDir says in the user's words why with.path is not a run
// folder, before any file in it is opened.
func checkRecordedDir(path, dir string) error {
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		where := path
		if dir != path {
			where += " (" + dir + ")"
		}
		return &stage.ParamError{Path: "path", Msg: fmt.Sprintf("recorded run folder %s does not exist; set it to a run folder holding %s, %s and %s (relative paths start at the experiment file's folder)",
			where, schema.RequestMetricsFile, schema.TokenMetricsFile, schema.RunMetaFile)}
	case err != nil:
		return &stage.ParamError{Path: "path", Msg: fmt.Sprintf("recorded run folder %s: %v", path, err)}
	case !fi.IsDir():
		return &stage.ParamError{Path: "path", Msg: fmt.Sprintf("%s is a file; name the run folder that holds it (%s)", path, filepath.Dir(path))}
	}
	for _, name := range []string{schema.RequestMetricsFile, schema.TokenMetricsFile, schema.RunMetaFile} {
		if !schema.Exists(filepath.Join(dir, name)) {
			return &stage.ParamError{Path: "path", Msg: fmt.Sprintf("recorded run folder %s has no %s; name a run folder holding %s, %s and %s",
				path, name, schema.RequestMetricsFile, schema.TokenMetricsFile, schema.RunMetaFile)}
		}
	}
	return nil
}

// Resources implements stage.Kind: a replay needs no GPU.
func (ReplayKind) Resources(map[string]any) map[string]int { return nil }

// Run checks the recorded run against the workload and copies it.
func (ReplayKind) Run(ctx context.Context, spec *stage.Spec, env stage.Env) error {
	p, err := decodeReplay(spec.Params)
	if err != nil {
		return err
	}
	src := stage.Resolve(spec.BaseDir, p.Path)
	wdir, err := workloadDir(spec)
	if err != nil {
		return err
	}
	for _, name := range []string{schema.RequestMetricsFile, schema.TokenMetricsFile, schema.RunMetaFile} {
		if !schema.Exists(filepath.Join(src, name)) {
			return fmt.Errorf("recorded run %s has no %s (with.path must name a run folder holding %s, %s and %s)",
				src, name, schema.RequestMetricsFile, schema.TokenMetricsFile, schema.RunMetaFile)
		}
	}
	// Progress in steps: the check of the recording, then one per file.
	steps := float64(1 + len(runFiles))
	env.Report(0, steps, "checking the recording")
	if err := checkDigest(src, wdir); err != nil {
		return err
	}
	// Checked here, not only in Validate, so a bad row is reported in the
	// user's recorded file rather than in the store's staging copy.
	if err := schema.ValidateRun(src); err != nil {
		return fmt.Errorf("recorded run %s is not a valid run folder (fix the file or record the run again): %w", p.Path, err)
	}
	var copied []string
	for i, name := range runFiles {
		env.Report(float64(1+i), steps, "copying "+name)
		from := filepath.Join(src, name)
		if !schema.Exists(from) {
			continue
		}
		// Recorded token files may be gzipped in the repository; the replayed
		// run is always the canonical plain layout.
		if err := schema.CopyPlain(from, filepath.Join(spec.OutDir, name)); err != nil {
			return fmt.Errorf("replay %s: %w", src, err)
		}
		copied = append(copied, name)
	}
	env.Report(steps, steps, "copied")
	sort.Strings(copied)
	if env.Log != nil {
		fmt.Fprintf(env.Log, "replay: copied %v from %s\n", copied, src)
	}
	return ctx.Err()
}

// Validate implements stage.Kind.
func (ReplayKind) Validate(spec *stage.Spec) error {
	if err := schema.ValidateRun(spec.OutDir); err != nil {
		return fmt.Errorf("replayed run: %w", err)
	}
	wdir, err := workloadDir(spec)
	if err != nil {
		return err
	}
	return checkDigest(spec.OutDir, wdir)
}
