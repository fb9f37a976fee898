package e2e

import (
	"strings"
	"testing"
)

// TestValidateCatchesAtLine: mistakes that once passed `gsim validate` (and
// a dry run) and surfaced only when a stage ran, or never, are refused
// before anything runs, each at its file:line:col.
func TestValidateCatchesAtLine(t *testing.T) {
	cases := []struct {
		name string
		yaml string
		sets []string
		want []string // substrings of stderr
	}{{
		name: "shell env keys",
		yaml: `name: env
stages:
  s:
    uses: shell
    with:
      run: echo hi
      env:
        GSIM_OUT: /tmp
        "BAD;KEY": 1
        "A=B": 2
`,
		want: []string{
			"exp.yaml:8:9: s: with.env.GSIM_OUT: names starting with GSIM_ are gsim's own",
			`exp.yaml:9:9: s: with.env.BAD;KEY: "BAD;KEY" is not a variable name`,
			`exp.yaml:10:9: s: with.env.A=B: "A=B" is not a variable name`,
		},
	}, {
		name: "orca max_tokens below a block",
		yaml: `name: orca
stages:
  sim:
    uses: sim
    with:
      scheduler: orca
      max_tokens: 1
`,
		want: []string{"exp.yaml:7:7: sim: with.max_tokens: 1 is less than block_size 16"},
	}, {
		name: "replay of a folder that does not exist",
		yaml: `name: rp
stages:
  workload:
    uses: workload
    with:
      model: Qwen/Qwen3-0.6B
      num_requests: 5
      arrival: {process: constant, rate: 0.5}
      prefill: {dist: fixed, value: 8}
      decode: {dist: fixed, value: 8}
  real:
    uses: replay
    needs: [workload]
    with:
      path: nowhere/run
`,
		want: []string{"exp.yaml:15:7: real: with.path: recorded run folder nowhere/run", "does not exist"},
	}, {
		name: "second document",
		yaml: "name: a\nstages:\n  s: {uses: shell, with: {run: 'true'}}\n---\nname: b\n",
		want: []string{"exp.yaml:4:1: a second YAML document starts here"},
	}, {
		name: "name .. from --set",
		yaml: "name: a\nstages:\n  s: {uses: shell, with: {run: 'true'}}\n",
		sets: []string{"--set", "name=.."},
		want: []string{`exp.yaml:1:7: name: ".." may not start with '.'`, "(the value comes from --set name=..)"},
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, tc.yaml)
			for _, cmd := range [][]string{{"validate"}, {"run", "--dry-run"}} {
				r := e.gsim(append(append(cmd, e.exp), tc.sets...)...)
				if r.code != 2 {
					t.Errorf("gsim %s: want exit 2: %s", cmd[0], r)
					continue
				}
				for _, w := range tc.want {
					if !strings.Contains(r.stderr, w) {
						t.Errorf("gsim %s: stderr lacks %q:\n%s", cmd[0], w, r.stderr)
					}
				}
			}
		})
	}
}
