package experiment_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/gsim-dev/gsim/pkg/stage"
)

// fakeKind stands in for real kinds, which this package must not depend on.
type fakeKind struct {
	stage.Base
	name  string
	check func(map[string]any) error
}

func (k fakeKind) Name() string    { return k.name }
func (k fakeKind) Version() string { return "test" }
func (k fakeKind) Run(context.Context, *stage.Spec, stage.Env) error {
	return errors.New("fake kinds do not run")
}
func (k fakeKind) CheckParams(p map[string]any) error {
	if k.check == nil {
		return nil
	}
	return k.check(p)
}

// benchParams is what the strict "checked" kind accepts.
type benchParams struct {
	Rate    float64 `json:"rate"`
	Arrival struct {
		Process string  `json:"process"`
		Rate    float64 `json:"rate"`
	} `json:"arrival"`
	Models []struct {
		Name string `json:"name"`
	} `json:"models"`
}

func checkBench(params map[string]any) error {
	var errs []error
	var p benchParams
	if err := stage.DecodeParams(params, &p); err != nil {
		errs = append(errs, err)
	}
	rate, ok := params["rate"]
	if !ok {
		errs = append(errs, &stage.ParamError{Path: "rate", Msg: "required: set the request rate in requests/s"})
	} else if r, isNum := rate.(int); isNum && r <= 0 {
		errs = append(errs, &stage.ParamError{Path: "rate", Msg: fmt.Sprintf("must be > 0, got %v", r)})
	}
	if arr, ok := params["arrival"].(map[string]any); ok {
		if proc, _ := arr["process"].(string); proc != "poisson" && proc != "gamma" {
			errs = append(errs, &stage.ParamError{Path: "arrival.process", Msg: fmt.Sprintf("unknown process %q: use poisson or gamma", proc)})
		}
	}
	models, _ := params["models"].([]any)
	for i, m := range models {
		if mm, _ := m.(map[string]any); mm["name"] == nil {
			errs = append(errs, &stage.ParamError{Path: fmt.Sprintf("models.%d.name", i), Msg: "required"})
		}
	}
	return errors.Join(errs...)
}

func testRegistry() *stage.Registry {
	return stage.NewRegistry(
		fakeKind{name: "workload"},
		fakeKind{name: "real-bench"},
		fakeKind{name: "sim"},
		fakeKind{name: "profile"},
		fakeKind{name: "compare"},
		fakeKind{name: "report"},
		fakeKind{name: "shell"},
		fakeKind{name: "checked", check: checkBench},
		namedKind{fakeKind{name: "named"}},
	)
}

// namedKind names a need in with.ref and a matrix variable in with.x, as
// compare and report do.
type namedKind struct{ fakeKind }

func (namedKind) CheckNeeds(p map[string]any, needs []string, matrix map[string][]any) error {
	var errs []error
	if r, _ := p["ref"].(string); r != "" && !slices.Contains(needs, r) {
		errs = append(errs, &stage.ParamError{Path: "ref", Msg: fmt.Sprintf("%q is not under needs: (%v)", r, needs)})
	}
	if x, _ := p["x"].(string); x != "" && matrix[x] == nil {
		errs = append(errs, &stage.ParamError{Path: "x", Msg: fmt.Sprintf("%q is not a matrix variable (%v)", x, slices.Sorted(maps.Keys(matrix)))})
	}
	return errors.Join(errs...)
}
