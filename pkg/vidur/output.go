package vidur

import (
	"bufio"
	"compress/gzip"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// Names of the files in Vidur's timestamped output folder.
const (
	VidurRequestMetricsFile = "request_metrics.csv"
	ChromeTraceFile         = "chrome_trace.json"
	VidurConfigFile         = "config.json"
)

// Request is one row of Vidur's request_metrics.csv, in Vidur's units
// (seconds). Only the columns gsim uses are kept.
type Request struct {
	ID int64 // "Request Id": Vidur's own numbering, 0.. in trace row order
	// E2E is request_e2e_time: completion - arrival.
	E2E float64
	// PrefillE2E is prefill_e2e_time: prefill completion - arrival, which is
	// when Vidur emits the first token, so it is Vidur's TTFT.
	PrefillE2E float64
	// SchedulingDelay is request_scheduling_delay: first schedule - arrival.
	SchedulingDelay  float64
	NumPrefillTokens int64
	NumDecodeTokens  int64
	NumRestarts      int64
}

// requestColumns are the columns ReadRequests needs.
var requestColumns = []string{
	"Request Id", "request_e2e_time", "prefill_e2e_time", "request_scheduling_delay",
	"request_num_prefill_tokens", "request_num_decode_tokens", "request_num_restarts",
}

// ReadRequests reads Vidur's request_metrics.csv and returns its rows sorted
// by request id: Vidur writes them in completion order (pandas 1.5's outer
// merge), newer pandas in id order, so order carries no meaning.
func ReadRequests(path string) ([]Request, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r := csv.NewReader(bufio.NewReader(f))
	r.ReuseRecord = true
	header, err := r.Read()
	if err != nil {
		return nil, fmt.Errorf("%s: no header: %w", path, err)
	}
	col := map[string]int{}
	for i, h := range header {
		col[strings.TrimSpace(h)] = i
	}
	for _, c := range requestColumns {
		if _, ok := col[c]; !ok {
			return nil, fmt.Errorf("%s: no column %q (expected Vidur's request_metrics.csv; was it written with --metrics_config_store_request_metrics?)", path, c)
		}
	}
	var out []Request
	for row := 2; ; row++ {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s: row %d: %w", path, row, err)
		}
		var perr error
		num := func(name string) float64 {
			s := strings.TrimSpace(rec[col[name]])
			v, err := strconv.ParseFloat(s, 64)
			if err != nil && perr == nil {
				perr = fmt.Errorf("%s: row %d, column %q: %q is not a number", path, row, name, s)
			}
			return v
		}
		integer := func(name string) int64 {
			v := num(name)
			if v != float64(int64(v)) && perr == nil {
				perr = fmt.Errorf("%s: row %d, column %q: %g is not an integer", path, row, name, v)
			}
			return int64(v)
		}
		q := Request{
			ID:               integer("Request Id"),
			E2E:              num("request_e2e_time"),
			PrefillE2E:       num("prefill_e2e_time"),
			SchedulingDelay:  num("request_scheduling_delay"),
			NumPrefillTokens: integer("request_num_prefill_tokens"),
			NumDecodeTokens:  integer("request_num_decode_tokens"),
			NumRestarts:      integer("request_num_restarts"),
		}
		if perr != nil {
			return nil, perr
		}
		out = append(out, q)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	for i := 1; i < len(out); i++ {
		if out[i].ID == out[i-1].ID {
			return nil, fmt.Errorf("%s: request id %d appears twice", path, out[i].ID)
		}
	}
	return out, nil
}

// Batch is one chrome-trace event: a batch stage on one replica and pipeline
// stage. Vidur writes ts = end - execution_time and dur = execution_time, in
// microseconds of simulated time.
type Batch struct {
	ID         int64
	Replica    int64 // pid
	Stage      int64 // tid: pipeline stage
	StartUs    float64
	DurUs      float64
	RequestIDs []int64
	// NumTokens[i] is what RequestIDs[i] processes in this batch: a prefill
	// chunk, or 1 for a decode step.
	NumTokens []int64
}

// EndUs is the batch stage's end in microseconds.
func (b *Batch) EndUs() float64 { return b.StartUs + b.DurUs }

type chromeEvent struct {
	Ph   string  `json:"ph"`
	Ts   float64 `json:"ts"`
	Dur  float64 `json:"dur"`
	Pid  int64   `json:"pid"`
	Tid  int64   `json:"tid"`
	Args struct {
		BatchID    *int64  `json:"batch_id"`
		RequestIDs []int64 `json:"request_ids"`
		// Floats: trace_replay reads lengths through pandas' iterrows, which
		// turns a row into float64s, so Vidur writes 314.0.
		NumTokens []float64 `json:"num_tokens"`
	} `json:"args"`
}

// ReadChromeTrace reads Vidur's chrome_trace.json (or .json.gz), streaming
// the events so a long run's trace is never held as text, and returns the
// batches sorted by end time (ties by batch id).
func ReadChromeTrace(path string) ([]Batch, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var rd io.Reader = bufio.NewReaderSize(f, 1<<20)
	if strings.HasSuffix(path, ".gz") {
		gz, err := gzip.NewReader(rd)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		defer gz.Close()
		rd = gz
	}
	batches, err := decodeChromeTrace(rd)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return batches, nil
}

func decodeChromeTrace(r io.Reader) ([]Batch, error) {
	dec := json.NewDecoder(r)
	if err := expectDelim(dec, '{'); err != nil {
		return nil, err
	}
	var out []Batch
	found := false
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		if key, _ := tok.(string); key != "traceEvents" {
			var skip json.RawMessage
			if err := dec.Decode(&skip); err != nil {
				return nil, err
			}
			continue
		}
		found = true
		if err := expectDelim(dec, '['); err != nil {
			return nil, err
		}
		for i := 0; dec.More(); i++ {
			var ev chromeEvent
			if err := dec.Decode(&ev); err != nil {
				return nil, fmt.Errorf("traceEvents[%d]: %w", i, err)
			}
			if ev.Ph != "X" || ev.Args.BatchID == nil {
				continue // not a batch stage
			}
			if len(ev.Args.RequestIDs) != len(ev.Args.NumTokens) {
				return nil, fmt.Errorf("traceEvents[%d] (batch %d): %d request_ids but %d num_tokens",
					i, *ev.Args.BatchID, len(ev.Args.RequestIDs), len(ev.Args.NumTokens))
			}
			toks := make([]int64, len(ev.Args.NumTokens))
			for k, f := range ev.Args.NumTokens {
				toks[k] = int64(f)
				if float64(toks[k]) != f {
					return nil, fmt.Errorf("traceEvents[%d] (batch %d): num_tokens %g is not a whole number", i, *ev.Args.BatchID, f)
				}
			}
			out = append(out, Batch{
				ID: *ev.Args.BatchID, Replica: ev.Pid, Stage: ev.Tid, StartUs: ev.Ts, DurUs: ev.Dur,
				RequestIDs: ev.Args.RequestIDs, NumTokens: toks,
			})
		}
		if _, err := dec.Token(); err != nil {
			return nil, err
		}
	}
	if !found {
		return nil, errors.New("no traceEvents (expected Vidur's chrome trace, written with --metrics_config_enable_chrome_trace)")
	}
	slices.SortStableFunc(out, func(a, b Batch) int {
		if ea, eb := a.EndUs(), b.EndUs(); ea != eb {
			if ea < eb {
				return -1
			}
			return 1
		}
		return int(a.ID - b.ID)
	})
	return out, nil
}

func expectDelim(dec *json.Decoder, d json.Delim) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if got, ok := tok.(json.Delim); !ok || got != d {
		return fmt.Errorf("expected %q, found %v", d, tok)
	}
	return nil
}

// FindOutputDir returns the single timestamped folder Vidur created under
// root (Vidur appends a time stamp to --metrics_config_output_dir) and checks
// that the files gsim converts are there: Vidur writes them from an atexit
// hook, so exit code 0 does not prove they exist.
func FindOutputDir(root string) (string, error) {
	ents, err := os.ReadDir(root)
	if err != nil {
		return "", fmt.Errorf("vidur output: %w", err)
	}
	var dirs []string
	for _, e := range ents {
		if e.IsDir() {
			dirs = append(dirs, filepath.Join(root, e.Name()))
		}
	}
	if len(dirs) != 1 {
		return "", fmt.Errorf("vidur output: expected one timestamped folder under %s, found %d", root, len(dirs))
	}
	d := dirs[0]
	for _, f := range []string{VidurRequestMetricsFile, ChromeTraceFile} {
		if _, err := os.Stat(filepath.Join(d, f)); err != nil {
			return "", fmt.Errorf("vidur output %s has no %s: Vidur exited without writing its outputs (see the stage log)", d, f)
		}
	}
	return d, nil
}

// Restart is one preemption restart (Vidur's Request.restart()) as the
// shim logs it in raw/restarts.csv.
type Restart struct {
	// BatchID is the batch Vidur was forming when it restarted the
	// request: the restart comes after every earlier batch and before it.
	BatchID   int64
	RequestID int64
	// Processed is the request's num_processed_tokens when restarted:
	// what its new prefill computes again.
	Processed int64
}

// restartColumns is the header of the shim's restarts.csv.
var restartColumns = []string{"batch_id", "request_id", "num_processed_tokens"}

// ReadRestarts reads the shim's restarts.csv.
func ReadRestarts(path string) ([]Restart, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r := csv.NewReader(bufio.NewReader(f))
	header, err := r.Read()
	if err != nil {
		return nil, fmt.Errorf("%s: no header: %w", path, err)
	}
	if !slices.Equal(header, restartColumns) {
		return nil, fmt.Errorf("%s: header %q, expected %q (the vidur shim's restart log)", path, strings.Join(header, ","), strings.Join(restartColumns, ","))
	}
	var out []Restart
	for row := 2; ; row++ {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s: row %d: %w", path, row, err)
		}
		var v [3]int64
		for i, s := range rec {
			if v[i], err = strconv.ParseInt(s, 10, 64); err != nil || v[i] < 0 {
				return nil, fmt.Errorf("%s: row %d, column %q: %q is not a non-negative integer", path, row, restartColumns[i], s)
			}
		}
		out = append(out, Restart{BatchID: v[0], RequestID: v[1], Processed: v[2]})
	}
}
