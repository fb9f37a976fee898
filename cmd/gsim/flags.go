package main

import (
	"context"
	"fmt"

	"github.com/urfave/cli/v3"
)

// atLeast refuses a count flag below min before the command does anything:
// -j 0 or -j -1 would otherwise run with a silently chosen value.
func atLeast(flag string, min int, what string) func(context.Context, *cli.Command, int) error {
	return func(_ context.Context, _ *cli.Command, v int) error {
		if v < min {
			return usageError{fmt.Errorf("--%s %d: give %s", flag, v, what)}
		}
		return nil
	}
}
