package executor

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/gsim-dev/gsim/pkg/plan"
	"github.com/gsim-dev/gsim/pkg/stage"
)

// PreflightError is everything the instances a run was about to start lack
// on this machine, found before any of them started. It is an impossible
// request (errors.As finds a *UsageError): exit 2.
type PreflightError struct {
	Problems []PreflightProblem
}

// PreflightProblem is one kind's answer for one distinct need.
type PreflightProblem struct {
	Kind      string
	Instances []string
	Err       error
}

// maxNamed bounds the instance ids a problem lists.
const maxNamed = 6

func (e *PreflightError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "this machine lacks what the planned stages need; nothing was started:")
	for _, p := range e.Problems {
		ids := p.Instances
		more := ""
		if len(ids) > maxNamed {
			ids, more = ids[:maxNamed], fmt.Sprintf(" and %d more", len(p.Instances)-maxNamed)
		}
		for i, line := range strings.Split(p.Err.Error(), "\n") {
			if i == 0 {
				fmt.Fprintf(&b, "\n  - %s (%s%s): %s", p.Kind, strings.Join(ids, ", "), more, line)
			} else {
				fmt.Fprintf(&b, "\n    %s", line)
			}
		}
	}
	b.WriteString("\nRun those stages where they can run (gsim run --only STAGE runs a part), or start anyway with --no-preflight.")
	return b.String()
}

// As lets errors.As see a preflight failure as a *UsageError.
func (e *PreflightError) As(target any) bool {
	if u, ok := target.(**UsageError); ok {
		*u = &UsageError{Msg: e.Error()}
		return true
	}
	return false
}

// preflight asks each Preflighter kind, once per distinct need, whether this
// machine has what the instances that are going to run need, and fails with
// all the answers before any stage starts. Up-to-date and unselected
// instances need nothing. With a Launcher, stages run elsewhere, so this
// machine's answer would be beside the point.
func preflight(ctx context.Context, p *plan.Plan, g *graph, opt *Options) error {
	if opt.SkipPreflight || opt.Launcher != nil {
		return nil
	}
	asks := false
	for _, n := range g.nodes {
		if _, ok := n.kind.(stage.Preflighter); ok && n.selected {
			asks = true
			break
		}
	}
	if !asks {
		return nil
	}
	// Decide on a graph of its own: decide marks up-to-date nodes done,
	// which the run must find out (and record) itself. Fingerprints are
	// shared, so nothing is hashed twice. Verify is left out: rehashing
	// every object twice costs more than a corrupt object rerun without
	// a check.
	pg, err := newGraph(p, opt)
	if err != nil {
		return err
	}
	pg.fp = g.fp
	o := *opt
	o.Verify = false
	type need struct {
		pf        stage.Preflighter
		kind, key string
		params    map[string]any
		ids       []string
	}
	var needs []*need
	byKey := map[[2]string]*need{}
	for _, n := range pg.nodes {
		if !n.selected {
			continue
		}
		if d := pg.decide(n, &o); !d.Run {
			continue
		}
		pf, ok := n.kind.(stage.Preflighter)
		if !ok {
			continue
		}
		key := pf.PreflightKey(n.inst.Params, p.BaseDir)
		if key == "" {
			continue
		}
		k := [2]string{n.kind.Name(), key}
		nd := byKey[k]
		if nd == nil {
			nd = &need{pf: pf, kind: n.kind.Name(), key: key, params: n.inst.Params}
			byKey[k] = nd
			needs = append(needs, nd)
		}
		nd.ids = append(nd.ids, n.inst.ID)
	}
	errs := make([]error, len(needs))
	var wg sync.WaitGroup
	for i, nd := range needs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = nd.pf.Preflight(ctx, nd.params, p.BaseDir)
		}()
	}
	wg.Wait()
	if ctx.Err() != nil {
		return &InterruptedError{Cause: ctx.Err()}
	}
	pe := &PreflightError{}
	for i, nd := range needs {
		if errs[i] != nil {
			pe.Problems = append(pe.Problems, PreflightProblem{Kind: nd.kind, Instances: nd.ids, Err: errs[i]})
		}
	}
	if len(pe.Problems) > 0 {
		return pe
	}
	return nil
}
