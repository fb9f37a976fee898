package store

import (
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// CleanItem is one thing Clean removed (or would remove).
type CleanItem struct {
	Path  string
	Bytes int64
	Why   string
}

// CleanReport lists what Clean found.
type CleanReport struct {
	Items []CleanItem
	Bytes int64
	// InUse is true when a run held the store: only staging folders of dead
	// attempts were removed.
	InUse bool
}

// Clean removes staging leftovers whose key no live process holds, failed
// attempts, objects that no runs/ link references and links whose object is
// gone. With dryRun it only reports. While a run holds the store (Use) it
// removes only staging leftovers and sets InUse: a live run's staging
// folders are locked, but an object it has just committed is not linked
// yet, and one it skipped is linked only after it was found complete.
func (s *Store) Clean(dryRun bool) (*CleanReport, error) {
	rep := &CleanReport{}
	excl, ok, err := s.tryExclusive()
	if err != nil {
		return nil, err
	}
	if ok {
		defer excl.Unlock()
	}
	rep.InUse = !ok
	add := func(p, why string) error {
		n := duSize(p)
		rep.Items = append(rep.Items, CleanItem{Path: p, Bytes: n, Why: why})
		rep.Bytes += n
		if dryRun {
			return nil
		}
		return os.RemoveAll(p)
	}

	staging, err := readDirNames(filepath.Join(s.Root, "staging"))
	if err != nil {
		return nil, err
	}
	// A batch job outlives the gsim that submitted it: the folder it
	// writes into stays until a run settles its record.
	jobStaging := s.jobStaging()
	for _, name := range staging {
		if jobStaging[name] {
			continue
		}
		key, _, _ := strings.Cut(name, "-")
		l, ok, err := s.TryLock(key)
		if err != nil {
			return nil, err
		}
		if !ok {
			continue // a live gsim is working on it
		}
		err = add(filepath.Join(s.Root, "staging", name), "unfinished attempt")
		l.Unlock()
		if err != nil {
			return nil, err
		}
	}

	for _, j := range s.staleJobs() {
		l, ok, err := s.TryLock(j.Key)
		if err != nil {
			return nil, err
		}
		if !ok {
			continue
		}
		err = add(s.jobPath(j.Key), "record of a batch job whose attempt folder is gone")
		l.Unlock()
		if err != nil {
			return nil, err
		}
	}

	if rep.InUse {
		return rep, nil
	}

	failed, err := readDirNames(filepath.Join(s.Root, "failed"))
	if err != nil {
		return nil, err
	}
	for _, name := range failed {
		if err := add(filepath.Join(s.Root, "failed", name), "failed attempt"); err != nil {
			return nil, err
		}
	}

	referenced := map[string]bool{}
	runs := filepath.Join(s.Root, "runs")
	exps, err := readDirNames(runs)
	if err != nil {
		return nil, err
	}
	for _, exp := range exps {
		links, err := readDirNames(filepath.Join(runs, exp))
		if err != nil {
			continue
		}
		for _, l := range links {
			p := filepath.Join(runs, exp, l)
			if strings.HasPrefix(l, linkTmpPrefix) {
				// No run holds the store, so no one is making it.
				if err := add(p, "unfinished link"); err != nil {
					return nil, err
				}
				continue
			}
			t, err := os.Readlink(p)
			if err != nil {
				continue
			}
			key := filepath.Base(t)
			if _, err := os.Stat(s.ObjectDir(key)); err != nil {
				if err := add(p, "link to a removed object"); err != nil {
					return nil, err
				}
				continue
			}
			referenced[key] = true
		}
	}
	objects, err := readDirNames(filepath.Join(s.Root, "objects"))
	if err != nil {
		return nil, err
	}
	for _, key := range objects {
		if referenced[key] {
			continue
		}
		// Its key's holder (a status recording mtimes) writes into it.
		l, ok, err := s.TryLock(key)
		if err != nil {
			return nil, err
		}
		if !ok {
			continue
		}
		err = add(s.ObjectDir(key), "no runs/ link references it")
		l.Unlock()
		if err != nil {
			return nil, err
		}
	}
	return rep, nil
}

func readDirNames(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		if os.IsNotExist(err) {
			return nil, nil
		}
		return nil, err
	}
	out := make([]string, 0, len(ents))
	for _, e := range ents {
		out = append(out, e.Name())
	}
	sort.Strings(out)
	return out, nil
}

// duSize is the allocated size, so sparse files count what they really hold.
func duSize(p string) int64 {
	var n int64
	_ = filepath.WalkDir(p, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if info, err := d.Info(); err == nil && !d.IsDir() {
			n += allocated(info)
		}
		return nil
	})
	return n
}
