package stage

// PathChecker is implemented by kinds whose params name files or folders
// (a recorded run, a trace), so that a path that does not exist, or is the
// wrong type, is reported by gsim validate and dry runs at its YAML line
// rather than when the stage runs. baseDir is the experiment file's folder.
// It must only look (stat, list), never hash or read whole files. Errors
// are *ParamError where they concern one param.
type PathChecker interface {
	CheckPaths(params map[string]any, baseDir string) error
}
