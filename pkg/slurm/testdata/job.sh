#!/bin/sh
# gsim stage bench[rate=4] (key abc123)
dir='/store/staging/abc123-9-1'
gsim='/opt/gsim'\''s/bin/gsim'
if ! cd "$dir" 2>/dev/null || [ ! -f spec.json ]; then
  echo "gsim: $dir/spec.json is not visible on $(hostname): the store must be on a filesystem the compute nodes share, at the same path (or the attempt was abandoned)" >&2
  exit 98
fi
if [ ! -x "$gsim" ]; then
  echo "gsim: $gsim is not an executable on $(hostname): set executor.slurm.gsim (or --slurm gsim=PATH) to the gsim binary as the compute nodes see it" >&2
  exit 97
fi
# A resubmitted job starts clean, not on what an interrupted one left.
find . -mindepth 1 -maxdepth 1 ! -name spec.json ! -name stage.log -exec rm -rf {} +
echo "gsim: Slurm job ${SLURM_JOB_ID:-?} started on $(hostname) at $(date -u +%Y-%m-%dT%H:%M:%SZ)"
"$gsim" stage exec "$dir/spec.json"
rc=$?
echo "$rc" > .gsim-job-exit.tmp && mv .gsim-job-exit.tmp .gsim-job-exit
exit "$rc"
