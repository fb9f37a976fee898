// Package plan holds the expanded experiment: stage instances and the edges
// between them. The experiment loader builds it; the executor, status and dag
// commands read it. It is plain data so that each side can be tested alone.
package plan

// Plan is an experiment after matrix expansion and interpolation.
type Plan struct {
	Name        string
	Description string
	File        string // absolute path of the experiment YAML
	BaseDir     string // directory relative params resolve against
	// MatrixOrder lists the matrix variables in declaration order.
	MatrixOrder []string
	// Instances are in a deterministic topological order.
	Instances []*Instance
	// Slurm is the executor.slurm block, used only by the Slurm executor.
	Slurm Slurm
}

// Instance is one node of the graph.
type Instance struct {
	ID     string         // "stage" or "stage[rate=4,policy=vllm]"
	Stage  string         // stage name in the YAML
	Kind   string         // `uses:`
	Params map[string]any // resolved `with:`
	Cell   map[string]any // the matrix values this instance is bound to
	Needs  []Dep
	// Repeat is the 1-based repeat of a stage with `repeat:` (0 when the
	// stage does not repeat) and RepeatID its id (also Cell["repeat"]).
	// Repeats after the first enter the key, so each is a run of its own;
	// the first keeps the key the stage would have without `repeat:`.
	Repeat   int
	RepeatID string
	// Pos is where the stage is declared, for error messages.
	Line, Col int
	// Resources are the stage's resources: as written (not merged with
	// the experiment's defaults).
	Resources Resources
}

// Dep is an edge: the instances of Stage this instance reads, in cell order.
// A fan-in dep lists every cell; an ordinary dep lists exactly one.
type Dep struct {
	Stage     string
	FanIn     bool
	Instances []string
}

// Lookup returns the instance with the given id.
func (p *Plan) Lookup(id string) *Instance {
	for _, in := range p.Instances {
		if in.ID == id {
			return in
		}
	}
	return nil
}
