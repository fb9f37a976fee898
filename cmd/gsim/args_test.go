package main

import (
	"reflect"
	"strings"
	"testing"
)

func TestPermuteArgs(t *testing.T) {
	tests := []struct{ in, want string }{
		{"gsim run exp.yaml --force all -n", "gsim run --force all -n exp.yaml"},
		{"gsim run --set a=1 exp.yaml --set=b=2", "gsim run --set a=1 --set=b=2 exp.yaml"},
		{"gsim run exp.yaml --dry-run --jobs 3", "gsim run --dry-run --jobs 3 exp.yaml"},
		{"gsim stage exec spec.json", "gsim stage exec spec.json"},
		{"gsim status exp.yaml --verify", "gsim status --verify exp.yaml"},
		{"gsim run -- -odd.yaml", "gsim run -- -odd.yaml"},
		{"gsim run x.yaml -n -- -odd.yaml", "gsim run -n -- x.yaml -odd.yaml"},
		{"gsim nosuch x --y", "gsim nosuch x --y"},
		{"gsim", "gsim"},
	}
	app := newApp()
	for _, tt := range tests {
		got := strings.Join(permuteArgs(app, strings.Fields(tt.in)), " ")
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%q → %q, want %q", tt.in, got, tt.want)
		}
	}
}
