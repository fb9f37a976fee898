package sim

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/gsim-dev/gsim/pkg/sim/kv"
	"github.com/gsim-dev/gsim/pkg/sim/predict"
	"github.com/gsim-dev/gsim/pkg/stage"
)

// vidurTableProfile builds vidur-profile fed with a real Vidur run's
// prediction tables (interpolation: vidur-table): from with.vidur_tables,
// else from the raw/predictions of the vidur stage under needs:. label
// names the tables without a path of this machine, for run_meta.json.
func vidurTableProfile(p *Params, spec *stage.Spec, m *kv.Model) (vp *predict.VidurProfile, label string, err error) {
	dir, label := resolve(spec.BaseDir, p.VidurTables), p.VidurTables
	if dir == "" {
		in, _, err := stage.FindInput(spec, tablesRole)
		if err != nil {
			return nil, "", err
		}
		dir = filepath.Join(in.Dir, "raw", "predictions")
		label = in.Instance + ":raw/predictions"
		if _, err := os.Stat(filepath.Join(dir, predict.VidurTableIndexFile)); err != nil {
			return nil, "", fmt.Errorf("interpolation %s: input %s has no Vidur prediction tables (%s): rerun it with this gsim, or set with.vidur_tables",
				predict.InterpVidurTable, in.Instance, filepath.Join(dir, predict.VidurTableIndexFile))
		}
	}
	o := predict.NewVidurOptions()
	o.Interpolation, o.TablesDir = predict.InterpVidurTable, dir
	vp, err = predict.NewVidurProfile(nil, predict.VidurModel{NumLayers: m.NumLayers, NumQHeads: m.NumHeads,
		NumKVHeads: m.NumKVHeads, Hidden: m.HiddenSize, PostAttnNorm: true}, o)
	return vp, label, err
}
