package kinds

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gsim-dev/gsim/pkg/experiment"
)

// load writes yaml as exp.yaml in a temp folder and loads it with the
// built-in kinds, as `gsim validate` does.
func load(t *testing.T, yaml string) (string, error) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "exp.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := experiment.Load(path, experiment.Options{Registry: Registry()})
	return path, err
}

// An experiment written when real Vidur was `uses: sim` with `engine: vidur`
// must fail at validate, at the engine line, saying how to write it now.
func TestOldVidurEngineSaysHowToMigrate(t *testing.T) {
	path, err := load(t, `name: old
stages:
  workload:
    uses: workload
    with: {model: Qwen/Qwen3-0.6B, num_requests: 4, arrival: {process: poisson, rate: 1}, prefill: {dist: fixed, value: 8}, decode: {dist: fixed, value: 8}}
  vidur:
    uses: sim
    needs: [workload]
    with:
      scheduler: vllm
      engine: vidur
`)
	if err == nil {
		t.Fatal("loaded an experiment with uses: sim + engine: vidur")
	}
	want := path + ":11:7: vidur: with.engine: real Vidur is its own kind now: write `uses: vidur` instead of `uses: sim` and drop `engine: vidur`"
	if !strings.Contains(err.Error(), want) {
		t.Fatalf("error:\n%v\nwant it to contain:\n%s", err, want)
	}
}

// Every built-in kind is registered once under its own name; sim and vidur
// are separate kinds with separate versions, so bumping one never
// invalidates the other's runs.
func TestRegistryHasSimAndVidur(t *testing.T) {
	reg := Registry()
	s, ok1 := reg.Lookup("sim")
	v, ok2 := reg.Lookup("vidur")
	if !ok1 || !ok2 {
		t.Fatalf("kinds: %v", reg.Names())
	}
	if s.Version() == v.Version() {
		t.Errorf("sim and vidur share version %q", s.Version())
	}
}
