package stage

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// A command sees only the devices its attempt holds, whatever it inherited
// or asked for itself.
func TestRunCommandSetsDevices(t *testing.T) {
	t.Setenv("CUDA_VISIBLE_DEVICES", "0,1,2,3")
	var log bytes.Buffer
	err := RunCommand(context.Background(), Command{
		Argv: []string{"sh", "-c", `echo "v=$CUDA_VISIBLE_DEVICES o=$CUDA_DEVICE_ORDER"`},
		Env:  []string{"CUDA_VISIBLE_DEVICES=0"},
	}, Env{Log: &log, GPUs: []string{"2", "3"}})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(log.String()); got != "v=2,3 o=PCI_BUS_ID" {
		t.Errorf("got %q", got)
	}
	// Without devices the environment is left as it is.
	log.Reset()
	if err := RunCommand(context.Background(), Command{Argv: []string{"sh", "-c", `echo "v=$CUDA_VISIBLE_DEVICES"`}}, Env{Log: &log}); err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(log.String()); got != "v=0,1,2,3" {
		t.Errorf("got %q", got)
	}
}
