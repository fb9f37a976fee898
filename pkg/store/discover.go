package store

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// DefaultName is the folder a store is made in when none is named or found:
// tmp/ under the current folder, git-ignored in a gsim checkout, where the
// quickstart's documented paths (tmp/runs/quickstart/...) point.
const DefaultName = "tmp"

// Location is where a command's store is and how it was chosen.
type Location struct {
	// Root is the store's absolute path.
	Root string
	// Source says how Root was chosen: "--store", "$GSIM_STORE", "found"
	// (an existing store in the current folder or above) or "default".
	Source string
	// Exists tells whether Root already holds a store.
	Exists bool
}

// Sources of a Location.
const (
	FromFlag    = "--store"
	FromEnv     = "$GSIM_STORE"
	FromSearch  = "found"
	FromDefault = "default"
)

// Describe says where the store is in one line for run, status and dry-run
// output: "/home/me/gsim/tmp", "/x/tmp (from $GSIM_STORE)",
// "/home/me/gsim/tmp (found above the current folder)", plus a note
// when there is no store there yet ("new" if the command makes it).
func (l Location) Describe(cwd string, making bool) string {
	var notes []string
	switch l.Source {
	case FromFlag, FromEnv:
		notes = append(notes, "from "+l.Source)
	case FromSearch:
		if filepath.Dir(l.Root) != cwd && l.Root != cwd {
			notes = append(notes, "found above the current folder")
		}
	}
	switch {
	case !l.Exists && making:
		notes = append(notes, "new")
	case !l.Exists:
		notes = append(notes, "no store there yet")
	}
	if len(notes) == 0 {
		return l.Root
	}
	return l.Root + " (" + strings.Join(notes, "; ") + ")"
}

// Locate finds the store the way git finds its repository: the --store
// flag, then $GSIM_STORE, then the nearest folder at or above cwd that is a
// store or holds one named DefaultName, then DefaultName under cwd. flag and
// env are the raw values ("" when unset); relative paths are against cwd.
// It creates nothing.
func Locate(flag, env, cwd string) (Location, error) {
	abs := func(p string) string {
		if filepath.IsAbs(p) {
			return filepath.Clean(p)
		}
		return filepath.Join(cwd, p)
	}
	var loc Location
	switch {
	case flag != "":
		loc = Location{Root: abs(flag), Source: FromFlag}
	case env != "":
		loc = Location{Root: abs(env), Source: FromEnv}
	default:
		if root, ok := search(cwd); ok {
			return Location{Root: root, Source: FromSearch, Exists: true}, nil
		}
		loc = Location{Root: filepath.Join(cwd, DefaultName), Source: FromDefault}
	}
	fi, err := os.Stat(loc.Root)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return loc, fmt.Errorf("store %s: %w", loc.Root, err)
	case !fi.IsDir():
		return loc, fmt.Errorf("store %s (%s) is a file; name a folder, e.g. --store tmp", loc.Root, loc.Source)
	default:
		loc.Exists = IsStore(loc.Root)
	}
	return loc, nil
}

// search walks from dir up to the filesystem root for a store: dir itself
// (a command run inside a store) or dir/DefaultName.
func search(dir string) (string, bool) {
	for {
		if IsStore(dir) {
			return dir, true
		}
		if p := filepath.Join(dir, DefaultName); IsStore(p) {
			return p, true
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", false
		}
		dir = parent
	}
}

// storeMarker is the file a store's top holds to say it is one (written by
// Open in gsims that have it); older stores are known by their layout.
const storeMarker = "gsim-store.json"

// IsStore tells whether dir already is a gsim store: it holds the marker
// file, or every folder of gsim's layout as a real folder.
func IsStore(dir string) bool {
	if fi, err := os.Lstat(filepath.Join(dir, storeMarker)); err == nil && fi.Mode().IsRegular() {
		return true
	}
	for _, d := range subdirs {
		fi, err := os.Lstat(filepath.Join(dir, d))
		if err != nil || !fi.IsDir() {
			return false
		}
	}
	return true
}

// At returns the store at root without making anything, for commands that
// only read (status, a dry run, open): a missing store reads as empty.
func At(root string) (*Store, error) {
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("store %s: %w", root, err)
	}
	return &Store{Root: abs}, nil
}
