package stage

// ParseProgress reads one line of a stage's log: ok when it is a progress
// line (ProgressPrefix). Launchers that see a stage's log only as a file (a
// batch job's) use it to drive the progress display.
func ParseProgress(line string) (done, total float64, msg string, ok bool) {
	return parseProgress(line)
}
