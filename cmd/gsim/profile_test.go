package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// GSIM_CPUPROFILE and GSIM_MEMPROFILE write gzipped pprof files, one per
// process where the path holds %p.
func TestProfilesFromEnv(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("GSIM_CPUPROFILE", filepath.Join(dir, "cpu-%p.pprof"))
	t.Setenv("GSIM_MEMPROFILE", filepath.Join(dir, "mem.pprof"))
	stop := startProfiles()
	var sink []string
	for i := 0; i < 20000; i++ {
		sink = append(sink, strings.Repeat("x", i%100))
	}
	_ = sink
	stop()
	for _, name := range []string{fmt.Sprintf("cpu-%d.pprof", os.Getpid()), "mem.pprof"} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if len(b) < 2 || b[0] != 0x1f || b[1] != 0x8b {
			t.Fatalf("%s is not a gzipped pprof profile (%d bytes)", name, len(b))
		}
	}
}
