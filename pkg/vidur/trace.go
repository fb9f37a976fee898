package vidur

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"

	"github.com/gsim-dev/gsim/pkg/schema"
)

// TraceColumns is the header of Vidur's trace_replay CSV.
var TraceColumns = []string{"arrived_at", "num_prefill_tokens", "num_decode_tokens"}

// WriteTrace writes the workload as Vidur's trace_replay CSV, one row per
// request in workload order: Vidur numbers requests 0, 1, ... in row order, so
// row i is reqs[i]. arrived_at is seconds, written as the shortest decimal
// that parses back to the same float64, so Python reads exactly the double
// closest to arrival_time_ns / 1e9.
func WriteTrace(w io.Writer, reqs []schema.Request) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "%s,%s,%s\n", TraceColumns[0], TraceColumns[1], TraceColumns[2])
	var b []byte
	for _, r := range reqs {
		b = b[:0]
		b = strconv.AppendFloat(b, NsToSeconds(r.ArrivalTimeNs), 'g', -1, 64)
		b = append(b, ',')
		b = strconv.AppendInt(b, r.NumPrefillTokens, 10)
		b = append(b, ',')
		b = strconv.AppendInt(b, r.NumDecodeTokens, 10)
		b = append(b, '\n')
		if _, err := bw.Write(b); err != nil {
			return err
		}
	}
	return bw.Flush()
}

// WriteTraceFile writes WriteTrace's CSV to path.
func WriteTraceFile(path string, reqs []schema.Request) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := WriteTrace(f, reqs); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	return f.Close()
}

// NsToSeconds converts integer ns to Vidur's float seconds.
func NsToSeconds(ns int64) float64 { return float64(ns) / 1e9 }

// SecondsToNs rounds Vidur's float seconds to the nearest ns.
func SecondsToNs(s float64) int64 { return int64(math.Round(s * 1e9)) }

// MicrosToNs rounds Vidur's chrome-trace microseconds to the nearest ns.
func MicrosToNs(us float64) int64 { return int64(math.Round(us * 1e3)) }
