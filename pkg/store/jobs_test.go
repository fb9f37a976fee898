package store

import (
	"errors"

	"golang.org/x/sys/unix"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const jobKey = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func TestJobRecordRoundTrip(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if j, err := s.ReadJob(jobKey); j != nil || err != nil {
		t.Fatalf("no record yet: got %v, %v", j, err)
	}
	j := &Job{Key: jobKey, Instance: "bench[rate=4]", System: "slurm", Name: "gsim-bench-0123", Staging: filepath.Join(s.Root, "staging", jobKey+"-1-1"),
		Attempt: 1, Submitted: time.Now().UTC().Truncate(time.Second), Host: "login1", PID: 42}
	if err := s.WriteJob(j); err != nil {
		t.Fatal(err)
	}
	j.ID = "1234"
	if err := s.WriteJob(j); err != nil {
		t.Fatal(err)
	}
	got, err := s.ReadJob(jobKey)
	if err != nil || got == nil || got.ID != "1234" || got.Staging != j.Staging || !got.Submitted.Equal(j.Submitted) {
		t.Fatalf("read back %+v, %v", got, err)
	}
	all, err := s.Jobs()
	if err != nil || len(all) != 1 {
		t.Fatalf("Jobs() = %v, %v", all, err)
	}
	// No temporary files are left beside the record.
	names, _ := os.ReadDir(s.JobsDir())
	if len(names) != 1 {
		t.Errorf("jobs/ holds %d entries", len(names))
	}
	if err := s.RemoveJob(jobKey); err != nil {
		t.Fatal(err)
	}
	if j, _ := s.ReadJob(jobKey); j != nil {
		t.Error("record still there after RemoveJob")
	}
	if err := s.WriteJob(&Job{Key: "../escape"}); err == nil {
		t.Error("a key that is not hex was accepted")
	}
}

func TestJobRecordDamaged(t *testing.T) {
	s, _ := Open(t.TempDir())
	os.MkdirAll(s.JobsDir(), 0o755)
	os.WriteFile(s.jobPath(jobKey), []byte("{half"), 0o644)
	if _, err := s.ReadJob(jobKey); err == nil || !strings.Contains(err.Error(), "damaged") {
		t.Errorf("want a damaged-record error, got %v", err)
	}
}

// TestCleanKeepsJobStaging: a job that outlives its gsim writes into a
// staging folder whose key no process holds; clean must keep it, and drop
// records whose folder is gone.
func TestCleanKeepsJobStaging(t *testing.T) {
	s, _ := Open(t.TempDir())
	live := filepath.Join(s.Root, "staging", jobKey+"-7-1")
	dead := filepath.Join(s.Root, "staging", jobKey+"-7-2")
	for _, d := range []string{live, dead} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.WriteJob(&Job{Key: jobKey, System: "slurm", ID: "5", Staging: live}); err != nil {
		t.Fatal(err)
	}
	rep, err := s.Clean(false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(live); err != nil {
		t.Errorf("clean removed the folder a job writes into: %v", err)
	}
	if _, err := os.Stat(dead); err == nil {
		t.Errorf("clean kept an unfinished attempt no job names")
	}
	if len(rep.Items) != 1 {
		t.Errorf("clean removed %v", rep.Items)
	}
	// Once the folder is gone, the record is a leftover.
	os.RemoveAll(live)
	if _, err := s.Clean(false); err != nil {
		t.Fatal(err)
	}
	if j, _ := s.ReadJob(jobKey); j != nil {
		t.Error("clean kept the record of a job whose folder is gone")
	}
}

func TestCheckLocksHere(t *testing.T) {
	s, _ := Open(t.TempDir())
	if err := s.CheckLocks(); err != nil {
		t.Fatalf("locks on this machine's temp folder: %v", err)
	}
	// The probe leaves nothing behind.
	names, _ := os.ReadDir(filepath.Join(s.Root, "locks"))
	if len(names) != 0 {
		t.Errorf("probe left %d files", len(names))
	}
	m, err := MountOf(s.Root)
	if err != nil {
		t.Fatal(err)
	}
	if m.Point == "" || m.FSType == "" {
		t.Errorf("mount of %s: %+v", s.Root, m)
	}
}

func TestMountinfo(t *testing.T) {
	tests := []struct {
		line      string
		point, fs string
		crossNode string // "" ok, else a word the error must hold
		local     bool
	}{
		{"36 25 0:32 / /home rw,relatime shared:1 - nfs4 fs1:/export/home rw,vers=4.2,rsize=1048576,hard,proto=tcp,local_lock=none,addr=10.0.0.1", "/home", "nfs4", "", false},
		{"36 25 0:32 / /scratch rw,relatime - nfs fs1:/scratch rw,vers=3,nolock,local_lock=all", "/scratch", "nfs", "local_lock=all", false},
		{"36 25 0:32 / /scratch rw - nfs4 fs1:/s rw,vers=4.1,local_lock=flock", "/scratch", "nfs4", "local_lock=flock", false},
		{"40 25 0:40 / /lustre rw - lustre 10.0.0.2@o2ib:/fs rw,flock,lazystatfs", "/lustre", "lustre", "", false},
		{"40 25 0:40 / /lustre rw - lustre 10.0.0.2@o2ib:/fs rw,localflock", "/lustre", "lustre", "localflock", false},
		{"40 25 0:40 / /lustre rw - lustre 10.0.0.2@o2ib:/fs rw,lazystatfs", "/lustre", "lustre", "without -o flock", false},
		{"22 1 253:1 / / rw,relatime - ext4 /dev/vda rw", "/", "ext4", "", true},
		{`50 22 0:50 / /mnt/my\040disk rw - xfs /dev/sdb rw`, "/mnt/my disk", "xfs", "", true},
	}
	for _, tt := range tests {
		m, ok := parseMountinfo(tt.line)
		if !ok || m.Point != tt.point || m.FSType != tt.fs {
			t.Errorf("%q: got %+v", tt.line, m)
			continue
		}
		err := m.CrossNodeLocks()
		switch {
		case tt.crossNode == "" && err != nil:
			t.Errorf("%s: %v", tt.point, err)
		case tt.crossNode != "" && (err == nil || !strings.Contains(err.Error(), tt.crossNode)):
			t.Errorf("%s: want an error about %s, got %v", tt.point, tt.crossNode, err)
		}
		if m.Local() != tt.local {
			t.Errorf("%s: Local() = %v", tt.point, m.Local())
		}
	}
}

// TestCheckLocksRefuses plays the two ways a filesystem's locks fail: flock
// refused (Lustre without -o flock: ENOSYS; NFS without lockd: ENOLCK) and
// one lock granted to two open files.
func TestCheckLocksRefuses(t *testing.T) {
	s, _ := Open(t.TempDir())
	defer func(f func(int, int) error) { flockFn = f }(flockFn)
	flockFn = func(int, int) error { return unix.ENOLCK }
	err := s.CheckLocks()
	var le *LockError
	if !errors.As(err, &le) || !strings.Contains(err.Error(), "file locks do not work") || !strings.Contains(err.Error(), "--store") {
		t.Errorf("refused flock: %v", err)
	}
	flockFn = func(int, int) error { return nil }
	err = s.CheckLocks()
	if !errors.As(err, &le) || !strings.Contains(err.Error(), "granted twice") {
		t.Errorf("lock granted twice: %v", err)
	}
}

// TestJobStagingOtherMount: the gsim that submitted a job may have seen the
// store at another path; the record's folder is found by its name.
func TestJobStagingOtherMount(t *testing.T) {
	s, _ := Open(t.TempDir())
	name := jobKey + "-9-1"
	os.MkdirAll(filepath.Join(s.Root, "staging", name), 0o755)
	j := &Job{Key: jobKey, System: "slurm", ID: "5", Staging: "/mnt/elsewhere/store/staging/" + name}
	if err := s.WriteJob(j); err != nil {
		t.Fatal(err)
	}
	if got := s.JobStaging(j); got != filepath.Join(s.Root, "staging", name) {
		t.Errorf("JobStaging = %s", got)
	}
	if _, err := s.Clean(false); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(s.Root, "staging", name)); err != nil {
		t.Error("clean removed the folder of a job recorded under another mount path")
	}
	if r, _ := s.ReadJob(jobKey); r == nil {
		t.Error("clean removed the record of a job recorded under another mount path")
	}
}
