package sim

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/gsim-dev/gsim/pkg/sim/kv"
	"github.com/gsim-dev/gsim/pkg/sim/predict"
	"github.com/gsim-dev/gsim/pkg/stage"
)

// vidurTableProfile builds vidur-profile fed with a real Vidur run's
// prediction tables (interpolation: vidur-table): from with.vidur_tables,
// else from the one input stage whose output holds raw/predictions (an
// engine: vidur sim stage under needs:).
func vidurTableProfile(p *Params, spec *stage.Spec, m *kv.Model) (*predict.VidurProfile, error) {
	dir := resolve(spec.BaseDir, p.VidurTables)
	if dir == "" {
		var found, names []string
		for name, ins := range spec.Inputs {
			names = append(names, name)
			for _, in := range ins {
				d := filepath.Join(in.Dir, "raw", "predictions")
				if _, err := os.Stat(filepath.Join(d, predict.VidurTableIndexFile)); err == nil {
					found = append(found, d)
				}
			}
		}
		slices.Sort(names)
		switch len(found) {
		case 0:
			return nil, fmt.Errorf("interpolation %s needs Vidur's prediction tables: put an engine: vidur sim stage under needs: (inputs here: %s) or set with.vidur_tables",
				predict.InterpVidurTable, strings.Join(names, ", "))
		case 1:
			dir = found[0]
		default:
			slices.Sort(found)
			return nil, fmt.Errorf("interpolation %s: several inputs hold Vidur's prediction tables (%s); name one with with.vidur_tables",
				predict.InterpVidurTable, strings.Join(found, ", "))
		}
	}
	o := predict.NewVidurOptions()
	o.Interpolation, o.TablesDir = predict.InterpVidurTable, dir
	return predict.NewVidurProfile(nil, predict.VidurModel{NumLayers: m.NumLayers, NumQHeads: m.NumHeads,
		NumKVHeads: m.NumKVHeads, Hidden: m.HiddenSize, PostAttnNorm: true}, o)
}
