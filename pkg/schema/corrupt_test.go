package schema

import (
	"bytes"
	"compress/gzip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func gzipBytes(t *testing.T, s string) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write([]byte(s)); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestCorruptGzipNamesFile: a damaged .gz run file once failed with
// gzip's bare "invalid checksum" or "unexpected EOF", naming no file.
func TestCorruptGzipNamesFile(t *testing.T) {
	var rows strings.Builder
	rows.WriteString(tokHeader + "\n")
	for i := range 2000 {
		lat := 100
		if i == 0 {
			lat = 0
		}
		rows.WriteString("0," + itoa(i) + "," + itoa(100*i+100) + "," + itoa(lat) + "\n")
	}
	good := gzipBytes(t, rows.String())
	flipped := bytes.Clone(good)
	flipped[len(flipped)-6] ^= 0xff // inside the CRC-32 trailer
	garbled := bytes.Clone(good)
	for i := 20; i < 60; i++ {
		garbled[i] ^= 0x5a // inside the deflate stream
	}
	cases := map[string][]byte{
		"checksum": flipped,
		"cut":      good[:len(good)/2],
		"garbled":  garbled,
		"header":   []byte("\x1f\x8b\x08garbage"),
	}
	for name, data := range cases {
		t.Run(name, func(t *testing.T) {
			dir := writeRunFiles(t, nil)
			os.Remove(filepath.Join(dir, TokenMetricsFile))
			gz := filepath.Join(dir, TokenMetricsFile+GzipSuffix)
			if err := os.WriteFile(gz, data, 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := ReadTokenMetrics(filepath.Join(dir, TokenMetricsFile))
			if err == nil {
				t.Fatal("read a damaged gzip file without error")
			}
			msg := err.Error()
			if !strings.Contains(msg, gz) || !strings.Contains(msg, "damaged") {
				t.Errorf("error does not name %s and say it is damaged: %v", gz, err)
			}
			if name != "header" && !strings.Contains(msg, "after row ") && !strings.Contains(msg, ": header: ") {
				t.Errorf("error does not say which row it reached: %v", err)
			}
			for _, f := range []func() error{
				func() error { _, err := ReadRun(dir); return err },
				func() error { return ValidateRun(dir) },
				func() error {
					return CopyPlain(filepath.Join(dir, TokenMetricsFile), filepath.Join(t.TempDir(), "x.csv"))
				},
			} {
				if err := f(); err == nil || !strings.Contains(err.Error(), gz) {
					t.Errorf("want an error naming %s, got %v", gz, err)
				}
			}
		})
	}
}

// TestErrorsQuoteShortExcerpts: a value quoted in an error is a short,
// printable excerpt, never a whole line of whatever file was named.
func TestErrorsQuoteShortExcerpts(t *testing.T) {
	secret := "root:$6$saltsalt$" + strings.Repeat("HASH", 40) + ":19000:0:99999:7:::"
	cases := map[string]map[string]string{
		"token value": {TokenMetricsFile: tokHeader + "\n" + secret + "\n"},
		"header":      {TokenMetricsFile: secret + "\n"},
		"request":     {RequestMetricsFile: reqHeader + "\n0,0,100,100,300,12,3,3," + secret + "\n"},
		"control":     {TokenMetricsFile: tokHeader + "\n\x1b[2J\x1b[31m" + secret + "\n"},
	}
	for name, files := range cases {
		t.Run(name, func(t *testing.T) {
			err := ValidateRun(writeRunFiles(t, files))
			if err == nil {
				t.Fatal("no error")
			}
			msg := err.Error()
			if strings.Contains(msg, "HASHHASHHASH") || strings.ContainsAny(msg, "\x1b\r") {
				t.Errorf("error copies the file's content: %q", msg)
			}
		})
	}
}

func TestExcerpt(t *testing.T) {
	for in, want := range map[string]string{
		"short":                 `"short"`,
		"a\x00b\nc":             `"a?b?c"`,
		strings.Repeat("x", 50): `"` + strings.Repeat("x", 24) + `…" (50 bytes)`,
		"héllo wörld":           `"héllo wörld"`,
		"\xff\xfe":              `"??"`,
	} {
		if got := Excerpt(in); got != want {
			t.Errorf("Excerpt(%q) = %s, want %s", in, got, want)
		}
	}
}
