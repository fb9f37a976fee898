package e2e

import (
	"bytes"
	"fmt"
	"os/exec"
	"testing"
)

type cmdOut struct {
	c      *exec.Cmd
	so, se bytes.Buffer
}

func (e *env) start(args ...string) *cmdOut {
	e.t.Helper()
	co := &cmdOut{c: e.cmd(args...)}
	co.c.Stdout, co.c.Stderr = &co.so, &co.se
	if err := co.c.Start(); err != nil {
		e.t.Fatal(err)
	}
	return co
}

func (co *cmdOut) wait(t *testing.T) result {
	t.Helper()
	err := co.c.Wait()
	r := result{stdout: co.so.String(), stderr: co.se.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return r
}

func fmtSscan(s string, v ...any) (int, error) { return fmt.Sscan(s, v...) }

// lines maps the first column of gsim's two-column output (status, dry run)
// to the rest of the line.
func lines(out string) map[string]string {
	m := map[string]string{}
	for _, l := range bytes.Split([]byte(out), []byte("\n")) {
		f := bytes.Fields(l)
		// The store: and gpus: header lines say where, not what.
		if len(f) < 2 || bytes.Equal(f[0], []byte("store:")) || bytes.Equal(f[0], []byte("gpus:")) {
			continue
		}
		m[string(f[0])] = string(bytes.TrimSpace(l[len(f[0]):]))
	}
	return m
}

var execCommand = exec.Command
