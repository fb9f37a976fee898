package main

import (
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
)

// Profiling hooks for finding where a run's time and memory go, without a
// special build: GSIM_CPUPROFILE=FILE writes a CPU profile of the whole
// command and GSIM_MEMPROFILE=FILE an allocation profile (go tool pprof
// reads both; -sample_index=alloc_space for bytes allocated). A "%p" in
// FILE becomes the process id, so the stage subprocesses of
// `gsim run --subprocess`, which inherit the variable, each write their own.

func profilePath(env string) string {
	p := os.Getenv(env)
	return strings.ReplaceAll(p, "%p", strconv.Itoa(os.Getpid()))
}

// startProfiles starts what the environment asks for and returns the
// function that writes the profiles out; it must run before exit.
func startProfiles() (stop func()) {
	var cpu *os.File
	if p := profilePath("GSIM_CPUPROFILE"); p != "" {
		f, err := os.Create(p)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "gsim: GSIM_CPUPROFILE: %v\n", err)
		} else {
			cpu = f
		}
	}
	mem := profilePath("GSIM_MEMPROFILE")
	if mem != "" {
		runtime.MemProfileRate = 64 << 10
	}
	return func() {
		if cpu != nil {
			pprof.StopCPUProfile()
			cpu.Close()
		}
		if mem != "" {
			f, err := os.Create(mem)
			if err == nil {
				err = pprof.Lookup("allocs").WriteTo(f, 0)
				if cerr := f.Close(); err == nil {
					err = cerr
				}
			}
			if err != nil {
				fmt.Fprintf(os.Stderr, "gsim: GSIM_MEMPROFILE: %v\n", err)
			}
		}
	}
}
