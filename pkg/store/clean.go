package store

import (
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
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
	// Links are store folders that are symbolic links; Clean never follows
	// them, so what they point at was left alone.
	Links []string
}

// Clean removes staging leftovers whose key no live process holds, failed
// attempts, objects that no runs/ link references and links whose object is
// gone. With dryRun it only reports. While a run holds the store (Use) it
// removes only staging leftovers and sets InUse: a live run's staging
// folders are locked, but an object it has just committed is not linked
// yet, and one it skipped is linked only after it was found complete.
//
// It removes only what gsim makes: folders named like a key (or a staging
// attempt of one) and runs/ links to objects/, never anything else a user
// put in the store, and it never follows a symbolic link out of it.
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
	// dir lists a store folder's entries, or nothing if the folder is a link.
	dir := func(p string) ([]fs.DirEntry, error) {
		fi, err := os.Lstat(p)
		if err != nil {
			if os.IsNotExist(err) {
				return nil, nil
			}
			return nil, err
		}
		if !fi.IsDir() {
			if fi.Mode()&fs.ModeSymlink != 0 {
				rel, _ := filepath.Rel(s.Root, p)
				rep.Links = append(rep.Links, rel)
			}
			return nil, nil
		}
		return readDir(p)
	}

	staging, err := dir(filepath.Join(s.Root, "staging"))
	if err != nil {
		return nil, err
	}
	// A batch job outlives the gsim that submitted it: the folder it
	// writes into stays until a run settles its record.
	jobStaging := s.jobStaging()
	for _, e := range staging {
		key, ok := StagingKey(e.Name())
		if !ok || !e.IsDir() || jobStaging[e.Name()] {
			continue
		}
		l, ok, err := s.TryLock(key)
		if err != nil {
			return nil, err
		}
		if !ok {
			continue // a live gsim is working on it
		}
		err = add(filepath.Join(s.Root, "staging", e.Name()), "unfinished attempt")
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

	failed, err := dir(filepath.Join(s.Root, "failed"))
	if err != nil {
		return nil, err
	}
	for _, e := range failed {
		if !IsKey(e.Name()) || !e.IsDir() {
			continue
		}
		if err := add(filepath.Join(s.Root, "failed", e.Name()), "failed attempt"); err != nil {
			return nil, err
		}
	}

	referenced := map[string]bool{}
	runs := filepath.Join(s.Root, "runs")
	exps, err := dir(runs)
	if err != nil {
		return nil, err
	}
	for _, exp := range exps {
		if !exp.IsDir() {
			continue
		}
		links, err := dir(filepath.Join(runs, exp.Name()))
		if err != nil {
			continue
		}
		for _, l := range links {
			p := filepath.Join(runs, exp.Name(), l.Name())
			if l.Type()&fs.ModeSymlink == 0 {
				continue
			}
			key, ok := linkedKey(p)
			if !ok {
				continue // not a link gsim made
			}
			if isLinkTmp(l.Name()) {
				// No run holds the store, so no one is making it.
				if err := add(p, "unfinished link"); err != nil {
					return nil, err
				}
				continue
			}
			if _, err := os.Lstat(s.ObjectDir(key)); err != nil {
				if err := add(p, "link to a removed object"); err != nil {
					return nil, err
				}
				continue
			}
			referenced[key] = true
		}
	}
	objects, err := dir(filepath.Join(s.Root, "objects"))
	if err != nil {
		return nil, err
	}
	for _, e := range objects {
		key := e.Name()
		if referenced[key] || !IsKey(key) || !e.IsDir() {
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

// IsKey tells whether name has the shape of a key: 64 lowercase hex digits.
func IsKey(name string) bool {
	if len(name) != 64 {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// StagingKey returns the key of a staging folder's name (<key>-<pid>-<n>).
func StagingKey(name string) (string, bool) {
	key, rest, ok := strings.Cut(name, "-")
	if !ok || !IsKey(key) {
		return "", false
	}
	pid, n, ok := strings.Cut(rest, "-")
	if !ok || !isNumber(pid) || !isNumber(n) {
		return "", false
	}
	return key, true
}

func isNumber(s string) bool {
	_, err := strconv.ParseUint(s, 10, 64)
	return err == nil
}

func isLinkTmp(name string) bool {
	rest, ok := strings.CutPrefix(name, linkTmpPrefix)
	if !ok {
		return false
	}
	pid, n, ok := strings.Cut(rest, "-")
	return ok && isNumber(pid) && isNumber(n)
}

// linkedKey returns the key a runs/ link made by Link points at.
func linkedKey(p string) (string, bool) {
	t, err := os.Readlink(p)
	if err != nil {
		return "", false
	}
	rest, ok := strings.CutPrefix(t, filepath.Join("..", "..", "objects")+string(filepath.Separator))
	if !ok || !IsKey(rest) {
		return "", false
	}
	return rest, true
}

func readDir(dir string) ([]fs.DirEntry, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		if os.IsNotExist(err) {
			return nil, nil
		}
		return nil, err
	}
	sort.Slice(ents, func(i, j int) bool { return ents[i].Name() < ents[j].Name() })
	return ents, nil
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

func readDirNames(dir string) ([]string, error) {
	ents, err := readDir(dir)
	if err != nil {
		return nil, err
	}
	out := make([]string, len(ents))
	for i, e := range ents {
		out[i] = e.Name()
	}
	return out, nil
}
