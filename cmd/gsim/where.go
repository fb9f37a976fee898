package main

import (
	"fmt"
	"os"

	"github.com/urfave/cli/v3"

	"github.com/gsim-dev/gsim/pkg/store"
)

// storeFlag is --store for every command that uses the store; its value is
// resolved by locateStore, not by urfave, so the order flag, $GSIM_STORE,
// found, default is gsim's own.
func storeFlag() cli.Flag {
	return &cli.StringFlag{Name: "store", Usage: "the store `DIR` (default: $GSIM_STORE, else the nearest tmp/ " +
		"holding a gsim store in this folder or above, else ./tmp)"}
}

// locateStore finds the command's store and says how; it creates nothing.
func locateStore(c *cli.Command) (store.Location, string, error) {
	cwd, err := os.Getwd()
	if err != nil {
		return store.Location{}, "", err
	}
	loc, err := store.Locate(c.String("store"), os.Getenv("GSIM_STORE"), cwd)
	if err != nil {
		return loc, cwd, usageError{err}
	}
	return loc, cwd, nil
}

// openStore returns the command's store as it is, making nothing, so a
// dry run or a status in the wrong folder leaves no trace (a missing store
// reads as empty).
func openStore(c *cli.Command) (*store.Store, store.Location, string, error) {
	loc, cwd, err := locateStore(c)
	if err != nil {
		return nil, loc, cwd, err
	}
	st, err := store.At(loc.Root)
	return st, loc, cwd, err
}

// printStore is the line run, status and the dry run start with.
func printStore(c *cli.Command, loc store.Location, cwd string, making bool) {
	fmt.Fprintf(c.Root().Writer, "store: %s\n", loc.Describe(cwd, making))
}
