package executor

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/gsim-dev/gsim/pkg/stage"
	"github.com/gsim-dev/gsim/pkg/store"
)

// Resumer is implemented by a Launcher whose attempts outlive gsim: a batch
// job keeps running when the gsim that submitted it is killed. The executor
// asks it, under the key's lock, for such an attempt before making a new
// one, and tells it when the attempt is settled.
type Resumer interface {
	// Resumable returns the staging folder of an earlier attempt at key
	// that is still worth following (its job is queued or running, or ended
	// while no gsim watched it), or "" to start a new attempt. Launch is
	// then called with that folder as spec.OutDir and follows the job
	// rather than submitting it again.
	Resumable(key string) string
	// Settled says that the attempt in staging was committed or kept as
	// failed, so nothing needs to follow its job any more.
	Settled(key, staging string)
}

// newStaging returns the folder for n's attempt: the one of an earlier
// attempt the launcher still follows, or a new empty one.
func (g *graph) newStaging(n *node, opt *Options) (dir string, resumed bool, err error) {
	if r, ok := opt.Launcher.(Resumer); ok {
		if dir := r.Resumable(n.key); dir != "" {
			return dir, true, nil
		}
	} else if err := checkNoJob(n, opt); err != nil {
		return "", false, err
	}
	dir, err = opt.Store.NewStaging(n.key)
	return dir, false, err
}

// checkNoJob refuses, in a run that cannot follow batch jobs, a key that a
// batch job of an earlier run may still be computing: running it here too
// would do the work twice.
func checkNoJob(n *node, opt *Options) error {
	j, err := opt.Store.ReadJob(n.key)
	if err != nil || j == nil {
		return err
	}
	if _, err := os.Stat(opt.Store.JobStaging(j)); err != nil {
		// Its folder is gone: nothing that job writes can be adopted.
		return opt.Store.RemoveJob(n.key)
	}
	return fmt.Errorf("a %s job (%s) of an earlier gsim run may still be making this output: "+
		"run again with --executor %s to follow it, or, once that job is gone (scancel %s), remove %s",
		j.System, jobWords(j), j.System, j.ID, filepath.Join(opt.Store.JobsDir(), n.key+".json"))
}

func jobWords(j *store.Job) string {
	if j.ID == "" {
		return "being submitted as " + j.Name
	}
	return "job id " + j.ID
}

// settled tells a Resumer that n's attempt in staging is over.
func settled(n *node, opt *Options, staging string) {
	if r, ok := opt.Launcher.(Resumer); ok {
		r.Settled(n.key, staging)
	}
}

// writeSpec writes spec.json unless an earlier attempt being resumed left
// it: its job may be reading it at this moment.
func writeSpec(path string, spec *stage.Spec) error {
	if _, err := os.Stat(path); err == nil {
		return nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	tmp := filepath.Join(filepath.Dir(path), "."+store.SpecFile+".tmp")
	if err := stage.WriteSpec(tmp, spec); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
