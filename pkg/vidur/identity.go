package vidur

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/gsim-dev/gsim/pkg/stage"
)

// Identity identifies the Vidur tree a run used.
type Identity struct {
	// Source is a digest of the tree's vidur/ package (every file but
	// Python's byte code): what Vidur runs, so it is what the stage key
	// holds. It changes with any edit, committed or not.
	Source string
	// Commit is the tree's git HEAD ("" when it is no git checkout) and
	// Dirty whether its vidur/ package differs from that commit: recorded
	// in run_meta.json so a reader can find the code again.
	Commit string
	Dirty  bool
}

// TreeIdentity identifies the Vidur tree at dir.
func TreeIdentity(dir string) (Identity, error) {
	src, err := stage.DirDigest(filepath.Join(dir, "vidur"))
	if err != nil {
		return Identity{}, fmt.Errorf("identify the Vidur tree %s: %w", dir, err)
	}
	id := Identity{Source: src}
	out, err := exec.Command("git", "-C", dir, "rev-parse", "HEAD").Output()
	if err != nil {
		return id, nil // no git, or not a checkout: the source digest alone
	}
	id.Commit = strings.TrimSpace(string(out))
	st, err := exec.Command("git", "-C", dir, "status", "--porcelain", "--", "vidur").Output()
	id.Dirty = err != nil || len(strings.TrimSpace(string(st))) > 0
	return id, nil
}
