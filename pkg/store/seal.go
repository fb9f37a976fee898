package store

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// readOnly is the mode of every file of a committed object. Folders stay
// writable, so that removing a store (rm -rf, a test's temporary folder)
// needs no chmod; a file replaced or removed in one is still caught by Check.
const readOnly = 0o444

// sealFiles makes every regular file under dir read-only.
func sealFiles(dir string) error {
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		return os.Chmod(p, readOnly)
	})
}

// checkLink refuses an output that is a symbolic link reaching out of the
// attempt's folder: an object must hold its own bytes, or the target could
// change or vanish (or the folder move into objects/) while gsim trusts the
// link's text. A relative link to another file of the output is fine.
func checkLink(root string, f FileEntry) error {
	copyHint := "copy the file into the output folder instead (cp -L, or cp --dereference, copies what a link points at)"
	if filepath.IsAbs(f.Link) {
		if rel, err := filepath.Rel(root, f.Link); err == nil && rel != ".." && !strings.HasPrefix(rel, "../") {
			return fmt.Errorf("output %s is a symbolic link to %s, inside the attempt's folder by absolute path; it would dangle once the folder moves into objects/: make the link relative (ln -sr)", f.Path, f.Link)
		}
		return fmt.Errorf("output %s is a symbolic link to %s, outside the stage's output folder; %s", f.Path, f.Link, copyHint)
	}
	// Walk the target from the link's folder: any step above the output's
	// root leaves it, even if a later step comes back under another name.
	depth := strings.Count(f.Path, "/")
	for _, c := range strings.Split(filepath.ToSlash(f.Link), "/") {
		switch c {
		case "", ".":
		case "..":
			depth--
			if depth < 0 {
				return fmt.Errorf("output %s is a symbolic link to %s, outside the stage's output folder; %s", f.Path, f.Link, copyHint)
			}
		default:
			depth++
		}
	}
	return nil
}
