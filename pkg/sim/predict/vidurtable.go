package predict

import (
	"bufio"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// InterpVidurTable reads Vidur's own predictions, exported by gsim's Vidur
// shim after a real Vidur run (raw/predictions of a vidur-engine sim stage;
// docs/vidur.md), instead of interpolating a profile. With it the embedded
// simulator uses exactly the per-operation times Vidur used, so any
// remaining difference from that Vidur run is the scheduler's or the
// decomposition's.
const InterpVidurTable = "vidur-table"

// VidurTableIndexFile is the index the shim writes beside the tables.
const VidurTableIndexFile = "index.json"

// VidurTableSettings are the predictor settings Vidur combined its tables
// with; a table-fed VidurProfile takes them from the export, not from
// VidurOptions, so it cannot combine Vidur's numbers differently.
type VidurTableSettings struct {
	KVGranularity           int64   `json:"kv_cache_prediction_granularity"`
	PrefillBatchingOverhead float64 `json:"attention_prefill_batching_overhead_fraction"`
	DecodeBatchingOverhead  float64 `json:"attention_decode_batching_overhead_fraction"`
	SkipCPUOverhead         bool    `json:"skip_cpu_overhead_modeling"`
	NumLayers               int64   `json:"num_layers_per_pipeline_stage"`
	PostAttnNorm            bool    `json:"post_attn_norm"`
}

// VidurTableKey describes one key column's grid in the export.
type VidurTableKey struct {
	Name  string `json:"name"`
	Min   int64  `json:"min"`
	Max   int64  `json:"max"`
	Count int64  `json:"count"`
}

type vidurTableIndex struct {
	Settings VidurTableSettings `json:"settings"`
	Tables   map[string]struct {
		File    string          `json:"file"`
		Keys    []VidurTableKey `json:"keys"`
		NumKeys int64           `json:"num_keys"`
		Rows    int64           `json:"rows"`
	} `json:"tables"`
}

// VidurTables are the prediction tables of one Vidur run: per operation, a
// key (one or two integers, as Vidur's sklearn predictor keys its
// precomputed predictions) → milliseconds.
type VidurTables struct {
	Dir      string
	Settings VidurTableSettings
	tables   map[string]*vidurTable
}

// vidurTable holds one operation's runs of equal predictions, grouped by
// the leading key (0 for one-key tables) and sorted by the last key.
type vidurTable struct {
	name   string
	keys   int // 1 or 2
	groups map[int64][]vidurRun
	leads  []int64 // sorted
	misses int64
}

type vidurRun struct {
	lo, hi int64
	ms     float64
}

// ReadVidurTables reads a folder the Vidur shim exported (index.json and
// the <op>.csv.gz it names).
func ReadVidurTables(dir string) (*VidurTables, error) {
	idxPath := filepath.Join(dir, VidurTableIndexFile)
	b, err := os.ReadFile(idxPath)
	if err != nil {
		return nil, fmt.Errorf("vidur tables: %w; point at the raw/predictions folder of a vidur-engine sim stage (docs/vidur.md)", err)
	}
	var idx vidurTableIndex
	if err := json.Unmarshal(b, &idx); err != nil {
		return nil, fmt.Errorf("%s: %w", idxPath, err)
	}
	if idx.Settings.KVGranularity <= 0 || idx.Settings.NumLayers <= 0 {
		return nil, fmt.Errorf("%s: settings need kv_cache_prediction_granularity and num_layers_per_pipeline_stage above 0", idxPath)
	}
	t := &VidurTables{Dir: dir, Settings: idx.Settings, tables: map[string]*vidurTable{}}
	for op, e := range idx.Tables {
		if len(e.Keys) < 1 || len(e.Keys) > 2 {
			return nil, fmt.Errorf("%s: table %s has %d key columns; gsim reads 1 or 2", idxPath, op, len(e.Keys))
		}
		tb, err := readVidurTable(filepath.Join(dir, e.File), op, len(e.Keys))
		if err != nil {
			return nil, err
		}
		t.tables[op] = tb
	}
	return t, nil
}

func readVidurTable(path, op string, keys int) (*vidurTable, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("vidur table %s: %w", op, err)
	}
	defer f.Close()
	var r io.Reader = f
	if strings.HasSuffix(path, ".gz") {
		gz, err := gzip.NewReader(f)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		defer gz.Close()
		r = gz
	}
	t := &vidurTable{name: op, keys: keys, groups: map[int64][]vidurRun{}}
	sc := bufio.NewScanner(r)
	want := keys + 2 // leading key, last key's min and max, ms
	line := 0
	for sc.Scan() {
		line++
		if line == 1 {
			if n := len(strings.Split(sc.Text(), ",")); n != want {
				return nil, fmt.Errorf("%s:1: header has %d columns, want %d (key columns, <key>_min, <key>_max, time_ms)", path, n, want)
			}
			continue
		}
		cols := strings.Split(sc.Text(), ",")
		if len(cols) != want {
			return nil, fmt.Errorf("%s:%d: %d columns, want %d", path, line, len(cols), want)
		}
		ints := make([]int64, want-1)
		for i := range ints {
			v, err := strconv.ParseInt(cols[i], 10, 64)
			if err != nil {
				return nil, fmt.Errorf("%s:%d: column %d: %w", path, line, i+1, err)
			}
			ints[i] = v
		}
		ms, err := strconv.ParseFloat(cols[want-1], 64)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: column %d: %w", path, line, want, err)
		}
		var lead int64
		if keys == 2 {
			lead = ints[0]
		}
		run := vidurRun{lo: ints[keys-1], hi: ints[keys], ms: ms}
		g := t.groups[lead]
		if run.hi < run.lo || (len(g) > 0 && run.lo <= g[len(g)-1].hi) {
			return nil, fmt.Errorf("%s:%d: key range %d..%d is empty or not after the row before; the shim writes rows sorted", path, line, run.lo, run.hi)
		}
		t.groups[lead] = append(g, run)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(t.groups) == 0 {
		return nil, fmt.Errorf("%s: no rows", path)
	}
	for k := range t.groups {
		t.leads = append(t.leads, k)
	}
	slices.Sort(t.leads)
	return t, nil
}

// lookup is Vidur's dict lookup. Vidur raises KeyError for a key outside
// its grid; gsim answers with the nearest key's prediction and counts the
// miss (VidurProfile.Describe reports them), so a run that needed keys
// Vidur never would is visible rather than fatal.
func (t *vidurTable) lookup(lead, key int64) float64 {
	g, ok := t.groups[lead]
	if !ok {
		t.misses++
		i, _ := slices.BinarySearch(t.leads, lead)
		switch {
		case i == len(t.leads):
			i--
		case i > 0 && lead-t.leads[i-1] < t.leads[i]-lead:
			i--
		}
		g = t.groups[t.leads[i]]
	}
	i, _ := slices.BinarySearchFunc(g, key, func(r vidurRun, k int64) int {
		switch {
		case r.hi < k:
			return -1
		case r.lo > k:
			return 1
		}
		return 0
	})
	if i < len(g) && g[i].lo <= key {
		return g[i].ms
	}
	if ok {
		t.misses++
	}
	switch {
	case i == len(g):
		return g[len(g)-1].ms
	case i > 0 && key-g[i-1].hi < g[i].lo-key:
		return g[i-1].ms
	}
	return g[i].ms
}

// table1 and table2 adapt a table to the one- and two-key lookups.
type table1 struct{ t *vidurTable }

func (f table1) at(x float64) float64 { return f.t.lookup(0, int64(x)) }

type table2 struct{ t *vidurTable }

func (f table2) at(a, b float64) float64 { return f.t.lookup(int64(a), int64(b)) }

// newVidurTableProfile is NewVidurProfile for InterpVidurTable: the
// operations come from o.Tables, the settings from the export.
func newVidurTableProfile(m VidurModel, o VidurOptions) (*VidurProfile, error) {
	t := o.Tables
	if t == nil {
		if o.TablesDir == "" {
			return nil, fmt.Errorf("interpolation %s needs Vidur's exported predictions: set the tables folder (raw/predictions of a vidur-engine sim stage)", InterpVidurTable)
		}
		var err error
		if t, err = ReadVidurTables(o.TablesDir); err != nil {
			return nil, err
		}
	}
	s := t.Settings
	if m.NumLayers != s.NumLayers {
		return nil, fmt.Errorf("%s: Vidur's tables were made for %d layers per stage, the model has %d; export them from a Vidur run of this model",
			filepath.Join(t.Dir, VidurTableIndexFile), s.NumLayers, m.NumLayers)
	}
	m.PostAttnNorm = s.PostAttnNorm
	o.KVGranularity = s.KVGranularity
	o.PrefillBatchingOverhead = s.PrefillBatchingOverhead
	o.DecodeBatchingOverhead = s.DecodeBatchingOverhead
	o.CPUOverhead = !s.SkipCPUOverhead
	o.TablesDir = t.Dir
	o.Tables = t
	need := func(op string) (*vidurTable, error) {
		tb, ok := t.tables[op]
		if !ok {
			return nil, fmt.Errorf("%s: no %s table; re-export from the Vidur run", filepath.Join(t.Dir, VidurTableIndexFile), op)
		}
		return tb, nil
	}
	p := &VidurProfile{m: m, o: o, ops: map[string]fn1{},
		gqa: m.NumQHeads > m.NumKVHeads}
	for _, op := range append(slices.Clone(computeOps), "attn_kv_cache_save") {
		tb, err := need(op)
		if err != nil {
			return nil, err
		}
		p.ops[op] = table1{tb}
	}
	p.kvSave = p.ops["attn_kv_cache_save"]
	delete(p.ops, "attn_kv_cache_save")
	for _, op := range []string{"attn_prefill", "attn_decode"} {
		tb, err := need(op)
		if err != nil {
			return nil, err
		}
		if tb.keys != 2 {
			return nil, fmt.Errorf("%s: %s needs two key columns", filepath.Join(t.Dir, VidurTableIndexFile), op)
		}
	}
	p.prefill = table2{t.tables["attn_prefill"]}
	p.decode = table2{t.tables["attn_decode"]}
	if o.CPUOverhead {
		p.cpu = map[string]fn1{}
		for _, op := range cpuOps {
			tb, err := need(op)
			if err != nil {
				return nil, err
			}
			p.cpu[op] = table1{tb}
		}
	}
	return p, nil
}

// TableMisses is how many lookups fell outside Vidur's tables (0 when the
// simulation only asked what Vidur could have answered).
func (p *VidurProfile) TableMisses() int64 {
	if p.o.Tables == nil {
		return 0
	}
	var n int64
	for _, tb := range p.o.Tables.tables {
		n += tb.misses
	}
	return n
}
