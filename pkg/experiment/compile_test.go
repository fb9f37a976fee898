package experiment

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// TestCompileMatchesResolve: a stage's with: tree compiled once gives, for
// every cell, what resolving the YAML nodes gives: the same values or the
// same error; and no two instances share a map or a list.
func TestCompileMatchesResolve(t *testing.T) {
	trees := []string{
		`{a: 1, b: "x", c: 1.5, d: null, e: true, f: 2001-12-14, g: [1, "${{ matrix.r }}", {h: "${{ matrix.r }}"}]}`,
		`{rate: "${{ matrix.r }}", name: "run-${{ matrix.r }}-${{ experiment.name }}", id: "${{ repeat.id }}"}`,
		`{a: 1, a: 2}`,
		`{base: &b {x: 1, y: "${{ matrix.r }}"}, more: *b, m: {<<: *b, y: 3}}`,
		`{m: {<<: [{p: 1}, {p: 2, q: 3}], q: 4}}`,
		`{m: {<<: 1}}`,
		`{bad: "${{ matrix.r"}`,
		`{bad: "${{ nope.x }}"}`,
		`{big: 1e999}`,
		`{n: .nan}`,
		`{l: [[], {}, [{}]], s: !!str 12, i: !!int "7", f: !!float 3}`,
		`{deep: {a: {b: {c: ["${{ matrix.r }}", "${{ matrix.s }}x"]}}}}`,
	}
	var nodes []*yaml.Node
	for _, src := range trees {
		var doc yaml.Node
		if err := yaml.Unmarshal([]byte(src), &doc); err != nil {
			t.Fatalf("%s: %v", src, err)
		}
		nodes = append(nodes, doc.Content[0])
	}
	files, _ := filepath.Glob("../../experiments/*.yaml")
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var doc yaml.Node
		if err := yaml.Unmarshal(b, &doc); err != nil {
			t.Fatal(err)
		}
		nodes = append(nodes, withTrees(&doc)...)
	}
	cells := []map[string]any{
		{"r": 1, "s": "a", RepeatVar: 0},
		{"r": 2.5, "s": map[string]any{"k": 1}, RepeatVar: "x"},
		{"r": []any{1, 2}, "s": nil},
	}
	if len(nodes) < len(trees)+5 {
		t.Fatalf("found only %d trees", len(nodes))
	}
	for _, n := range nodes {
		src := fmt.Sprintf("line %d: %s", n.Line, n.Value)
		tm, cerr := compile(n)
		for _, cell := range cells {
			want, rerr := resolve(n, cell, "exp")
			if fmt.Sprint(cerr) != fmt.Sprint(rerr) {
				t.Fatalf("%s: compile error %v, resolve error %v", src, cerr, rerr)
			}
			if cerr != nil {
				continue
			}
			got := tm.value(cell, "exp")
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("%s in %v:\ncompiled %#v\nresolved %#v", src, cell, got, want)
			}
			again := tm.value(cell, "exp")
			if m, ok := again.(map[string]any); ok {
				m["mutated"] = true
				if _, shared := got.(map[string]any)["mutated"]; shared {
					t.Fatalf("%s: two instances share one map", src)
				}
			}
		}
	}
}

// withTrees finds every stage's with: mapping in an experiment document.
func withTrees(n *yaml.Node) []*yaml.Node {
	var out []*yaml.Node
	var walk func(*yaml.Node)
	walk = func(n *yaml.Node) {
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Kind == yaml.MappingNode && n.Content[i].Value == "with" {
				out = append(out, n.Content[i+1])
			}
		}
		for _, c := range n.Content {
			walk(c)
		}
	}
	walk(n)
	return out
}

// TestExpandBigMatrix: a matrix big enough to build params on every core
// gives each instance what resolving its cell gives (run with -race).
func TestExpandBigMatrix(t *testing.T) {
	var vs []string
	for i := 0; i < 19; i++ {
		vs = append(vs, []string{fmt.Sprint(i), fmt.Sprintf("%d.5", i), fmt.Sprintf("x%d", i)}[i%3])
	}
	vals := "[" + strings.Join(vs, ", ") + "]"
	src := "name: big\nmatrix:\n  a: " + vals + "\n  b: " + vals + "\nstages:\n  s:\n    uses: shell\n    with:\n" +
		"      base: &b {k: \"${{ matrix.a }}\", l: [1, \"${{ matrix.b }}-${{ experiment.name }}\"]}\n" +
		"      m: {<<: *b, k: 2}\n      run: \"echo ${{ matrix.a }} ${{ matrix.b }}\"\n"
	path := filepath.Join(t.TempDir(), "big.yaml")
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	p, err := Load(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Instances) != 19*19 {
		t.Fatalf("%d instances", len(p.Instances))
	}
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(src), &doc); err != nil {
		t.Fatal(err)
	}
	with := withTrees(&doc)[0]
	for _, in := range p.Instances {
		want, err := resolve(with, in.Cell, "big")
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(in.Params, want) {
			t.Fatalf("%s: %#v, want %#v", in.ID, in.Params, want)
		}
	}
}
