package executor

import (
	"os"
	"path/filepath"
	"strings"

	"github.com/gsim-dev/gsim/pkg/stage"
	"github.com/gsim-dev/gsim/pkg/store"
)

// attemptTag identifies processes of attempts at key in this store (by its
// real path, so two spellings of one store agree).
func attemptTag(s *store.Store, key string) string { return tagPrefix(s) + key }

func tagPrefix(s *store.Store) string {
	root := s.Root
	if r, err := filepath.EvalSymlinks(root); err == nil {
		root = r
	}
	return root + "#"
}

// orphansEnded marks a dead attempt's staging folder whose leftover
// processes were ended, so later runs do not look for them again.
const orphansEnded = ".gsim-orphans-ended"

// EndOrphans ends every process that an attempt of a killed gsim left
// running in this store, whatever its key: a process tagged with the store
// whose key's lock no live gsim holds. With always false it looks (a scan of
// /proc) only if a killed attempt left a staging folder it has not handled
// yet, which keeps a no-op run free of the scan. It returns how many
// processes it ended.
func EndOrphans(s *store.Store, always bool) int {
	var dead []string
	if !always {
		ents, _ := os.ReadDir(filepath.Join(s.Root, "staging"))
		var jobs map[string]bool
		for _, e := range ents {
			if _, ok := store.StagingKey(e.Name()); !ok || !e.IsDir() {
				continue
			}
			if _, err := os.Lstat(filepath.Join(s.Root, "staging", e.Name(), orphansEnded)); err == nil {
				continue
			}
			if jobs == nil {
				jobs = jobStaging(s)
			}
			// A batch job's folder is alive without a gsim holding its key;
			// what it writes there is adopted later, so it gets no marker.
			if !jobs[e.Name()] {
				dead = append(dead, e.Name())
			}
		}
		if len(dead) == 0 {
			return 0
		}
	}
	prefix := tagPrefix(s)
	keys := map[string]bool{}
	for _, tag := range stage.Tagged(prefix) {
		keys[strings.TrimPrefix(tag, prefix)] = true
	}
	n := 0
	for key := range keys {
		if !store.IsKey(key) {
			continue
		}
		l, ok, err := s.TryLock(key)
		if err != nil || !ok {
			continue // a live gsim runs it
		}
		n += stage.KillTagged(prefix + key)
		l.Unlock()
	}
	for _, name := range dead {
		key, _ := store.StagingKey(name)
		l, ok, err := s.TryLock(key)
		if err != nil || !ok {
			continue // a live attempt, not a dead one
		}
		f, err := os.Create(filepath.Join(s.Root, "staging", name, orphansEnded))
		if err == nil {
			f.Close()
		}
		l.Unlock()
	}
	return n
}

// otherAttempts tells whether staging holds a folder of key other than
// ours: with key's lock held, one of a killed gsim.
func otherAttempts(s *store.Store, key, ours string) bool {
	ms, _ := filepath.Glob(filepath.Join(s.Root, "staging", key+"-*"))
	for _, m := range ms {
		if m != ours {
			return true
		}
	}
	return false
}

// jobStaging names the staging folders batch jobs of this store write into.
func jobStaging(s *store.Store) map[string]bool {
	out := map[string]bool{}
	jobs, _ := s.Jobs()
	for _, j := range jobs {
		out[filepath.Base(s.JobStaging(j))] = true
	}
	return out
}
