package workload

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/gsim-dev/gsim/pkg/schema"
	"github.com/gsim-dev/gsim/pkg/stage"
)

// Kind is the `workload` stage kind.
type Kind struct{ stage.Base }

// Name implements stage.Kind.
func (Kind) Name() string { return "workload" }

// Version must change whenever the same params could give different files.
func (Kind) Version() string { return "1" }

// CheckParams implements stage.Kind.
func (Kind) CheckParams(params map[string]any) error {
	_, err := DecodeParams(params)
	return err
}

// Fingerprint adds the content digest of every file the params name, so an
// edited trace reruns the stage even though its path did not change.
func (Kind) Fingerprint(params map[string]any, baseDir string) (map[string]string, error) {
	p, err := DecodeParams(params)
	if err != nil {
		return nil, err
	}
	fp := map[string]string{}
	add := func(field, path string) error {
		if path == "" {
			return nil
		}
		full := resolve(baseDir, path)
		where := path
		if full != path {
			where += " (" + full + ")"
		}
		if fi, err := os.Stat(full); errors.Is(err, os.ErrNotExist) {
			return &stage.ParamError{Path: field, Msg: fmt.Sprintf("no such file %s; check the path (relative paths start at the experiment file's folder)", where)}
		} else if err == nil && fi.IsDir() {
			return &stage.ParamError{Path: field, Msg: fmt.Sprintf("%s is a folder; name the CSV, JSON or JSONL file in it", where)}
		}
		d, err := stage.FileDigest(full)
		if err != nil {
			return &stage.ParamError{Path: field, Msg: fmt.Sprintf("cannot read %s: %v", path, err)}
		}
		fp["file:"+filepath.ToSlash(path)] = d
		return nil
	}
	if p.Arrival.Process == Trace {
		if err := add("arrival.path", p.Arrival.Path); err != nil {
			return nil, err
		}
	}
	if p.Source != nil {
		if err := add("source.path", p.Source.Path); err != nil {
			return nil, err
		}
	}
	if p.Prefill.Dist == Empirical {
		if err := add("prefill.path", p.Prefill.Path); err != nil {
			return nil, err
		}
	}
	if p.Decode.Dist == Empirical {
		if err := add("decode.path", p.Decode.Path); err != nil {
			return nil, err
		}
	}
	return fp, nil
}

// Run generates the workload into spec.OutDir.
func (Kind) Run(ctx context.Context, spec *stage.Spec, env stage.Env) error {
	p, err := DecodeParams(spec.Params)
	if err != nil {
		return err
	}
	env.Report(0, 1, "generating")
	var w *schema.Workload
	if p.Source != nil {
		var st TraceStats
		w, st, err = fromSource(p, spec.BaseDir)
		if err == nil && env.Log != nil {
			fmt.Fprintf(env.Log, "%s trace %s: %s\n", p.Source.Format, p.Source.Path, st)
		}
	} else {
		w, err = Generate(p, spec.BaseDir)
	}
	if err != nil {
		return fmt.Errorf("workload %s: %w", spec.Instance, err)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := schema.WriteWorkload(spec.OutDir, w); err != nil {
		return fmt.Errorf("workload %s: %w", spec.Instance, err)
	}
	if env.Log != nil {
		fmt.Fprintf(env.Log, "wrote %d requests, workload_id %s\n", len(w.Requests), w.Meta.WorkloadID)
	}
	env.Report(1, 1, fmt.Sprintf("%d requests", len(w.Requests)))
	return nil
}

// Validate implements stage.Kind.
func (Kind) Validate(spec *stage.Spec) error { return schema.ValidateWorkloadDir(spec.OutDir) }

// VolatileFiles keeps workload_meta.json (it holds created_at) out of the
// output digest: the CSVs are the workload, so regenerating identical CSVs
// must not invalidate recorded GPU runs downstream.
func (Kind) VolatileFiles() []string { return []string{schema.WorkloadMetaFile} }
