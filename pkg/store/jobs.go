package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Job records one attempt at a key that runs as a batch job (Slurm), from
// just before it is submitted until the attempt is settled (committed or
// moved to failed/). A job outlives the gsim that submitted it: a gsim that
// later takes the key's lock finds the record and follows the job instead of
// submitting the key again. The staging folder it names is kept by Clean.
type Job struct {
	Key        string `json:"key"`
	Instance   string `json:"instance"`
	Experiment string `json:"experiment"`
	// System is the batch system ("slurm").
	System string `json:"system"`
	// ID is the job id; empty while the submission is under way (then
	// Name finds the job if the submission got through).
	ID   string `json:"job_id,omitempty"`
	Name string `json:"job_name"`
	// Staging is the attempt's folder, which the job writes into.
	Staging string `json:"staging"`
	// Attempt counts submissions of this attempt: 1, then one more per
	// resubmission after a preemption or node failure; Previous lists the
	// ids those replaced.
	Attempt   int       `json:"attempt"`
	Previous  []string  `json:"previous_job_ids,omitempty"`
	Submitted time.Time `json:"submitted_at"`
	// Host and PID are the gsim that submitted it.
	Host string `json:"host"`
	PID  int    `json:"pid"`
}

// JobsDir holds the job records, one per key.
func (s *Store) JobsDir() string { return filepath.Join(s.Root, "jobs") }

func (s *Store) jobPath(key string) string { return filepath.Join(s.JobsDir(), key+".json") }

// WriteJob records j, replacing key's previous record atomically and
// durably: a record must survive a crash of gsim (or of the machine) right
// after sbatch returned. Call it holding j.Key's lock.
func (s *Store) WriteJob(j *Job) error {
	if !validKey(j.Key) {
		return fmt.Errorf("job record: bad key %q", j.Key)
	}
	if err := os.MkdirAll(s.JobsDir(), 0o755); err != nil {
		return fmt.Errorf("job record of %s: %w", j.Key, err)
	}
	b, err := json.MarshalIndent(j, "", "  ")
	if err != nil {
		return fmt.Errorf("job record of %s: %w", j.Key, err)
	}
	tmp := filepath.Join(s.JobsDir(), fmt.Sprintf(".%s.tmp-%d-%d", j.Key, os.Getpid(), stagingSeq.Add(1)))
	if err := writeFileSync(tmp, append(b, '\n')); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("job record of %s: %w", j.Key, err)
	}
	if err := os.Rename(tmp, s.jobPath(j.Key)); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("job record of %s: %w", j.Key, err)
	}
	return syncDir(s.JobsDir())
}

// ReadJob returns key's job record, or nil when there is none.
func (s *Store) ReadJob(key string) (*Job, error) {
	if !validKey(key) {
		return nil, nil
	}
	b, err := os.ReadFile(s.jobPath(key))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("job record of %s: %w", key, err)
	}
	var j Job
	if err := json.Unmarshal(b, &j); err != nil || j.Key != key {
		return nil, fmt.Errorf("job record %s is damaged (%v); remove it after checking that its job no longer runs", s.jobPath(key), err)
	}
	return &j, nil
}

// RemoveJob drops key's record once its attempt is settled.
func (s *Store) RemoveJob(key string) error {
	if !validKey(key) {
		return nil
	}
	if err := os.Remove(s.jobPath(key)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("job record of %s: %w", key, err)
	}
	return nil
}

// Jobs returns every job record, for status and for a launcher that cancels
// or reports them. Damaged records are skipped.
func (s *Store) Jobs() ([]*Job, error) {
	names, err := readDirNames(s.JobsDir())
	if err != nil {
		return nil, err
	}
	var out []*Job
	for _, n := range names {
		key, ok := strings.CutSuffix(n, ".json")
		if !ok || !validKey(key) {
			continue
		}
		if j, err := s.ReadJob(key); err == nil && j != nil {
			out = append(out, j)
		}
	}
	return out, nil
}

// JobStaging is the folder j's job writes into, as this machine sees it: the
// store may be mounted at another path here than where the job was
// submitted (a symbolic link in a home folder), so only the folder's name,
// unique in staging/, is taken from the record.
func (s *Store) JobStaging(j *Job) string {
	return filepath.Join(s.Root, "staging", filepath.Base(j.Staging))
}

// jobStaging lists the staging folders (base names) that job records name:
// a batch job may still be writing into them while no gsim holds their key.
func (s *Store) jobStaging() map[string]bool {
	out := map[string]bool{}
	jobs, _ := s.Jobs()
	for _, j := range jobs {
		out[filepath.Base(j.Staging)] = true
	}
	return out
}

// staleJobs lists records whose staging folder is gone: nothing can adopt
// their job's output any more.
func (s *Store) staleJobs() []*Job {
	var out []*Job
	jobs, _ := s.Jobs()
	for _, j := range jobs {
		if _, err := os.Stat(s.JobStaging(j)); errors.Is(err, fs.ErrNotExist) {
			out = append(out, j)
		}
	}
	return out
}

// validKey accepts what Key produces (lowercase hex), so a record's name
// never escapes the jobs folder.
func validKey(k string) bool {
	if len(k) < 8 || len(k) > 128 {
		return false
	}
	for _, c := range k {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}
