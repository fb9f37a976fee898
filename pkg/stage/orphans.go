package stage

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
)

// TagVar names the environment variable every process of a stage attempt
// inherits. gsim's own death takes its direct child with it (PDEATHSIG), but
// not that child's children (a shell stage's pipeline, a runner's workers):
// they are reparented and keep running. The tag lets a later gsim find and
// end them.
const TagVar = "GSIM_STAGE_TAG"

// KillTagged sends SIGKILL to every process whose environment carries
// TagVar=tag and returns how many it signalled. Call it only while holding the
// key's lock: then no live gsim owns such a process, so each is a leftover of
// an attempt whose gsim was killed. Processes it cannot read are skipped.
func KillTagged(tag string) int {
	if tag == "" {
		return 0
	}
	n := 0
	for pid, t := range Tagged(tag) {
		if t == tag && syscall.Kill(pid, syscall.SIGKILL) == nil {
			n++
		}
	}
	return n
}

// Tagged returns the processes (other than this one) whose TagVar starts
// with prefix, with their tags.
func Tagged(prefix string) map[int]string {
	out := map[int]string{}
	if prefix == "" {
		return out
	}
	want := []byte(TagVar + "=" + prefix)
	self := os.Getpid()
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		pid, err := strconv.Atoi(filepath.Base(d))
		if err != nil || pid == self {
			continue
		}
		env, err := os.ReadFile(filepath.Join(d, "environ"))
		if err != nil {
			continue
		}
		for _, kv := range bytes.Split(env, []byte{0}) {
			if bytes.HasPrefix(kv, want) {
				out[pid] = string(kv[len(TagVar)+1:])
				break
			}
		}
	}
	return out
}
