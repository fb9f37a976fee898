#!/usr/bin/env bash
# slurm-up.sh: a real single-node Slurm cluster for gsim's Slurm tests, from
# Debian's packages, started without systemd (CI containers have none). Run as
# root. Used by .ci/run, and by developers who want to run the Slurm tests:
#
#   sudo .ci/slurm-up.sh up      # install if needed, start, wait until usable
#   go test ./pkg/slurm/ ./internal/slurmtest/
#   sudo .ci/slurm-up.sh down    # cancel jobs, stop what this script started
#   sudo .ci/slurm-up.sh status
#
# What it starts: munged, MariaDB + slurmdbd (so that `sacct` answers; without
# slurmdbd it says "Slurm accounting storage is disabled"), slurmctld and one
# slurmd. Daemons are tracked by PID files under $GSIM_SLURM_DIR; `down` stops
# only those. The node declares fake GPUs in gres.conf (plain files under
# $GSIM_SLURM_DIR stand for the device files), because Slurm refuses
# --gres=gpu:1 on a node that declares none. Jobs then get the GRES but no
# usable GPU: it is a stand-in for scheduling tests, not a GPU.
#
# Environment (optional):
#   GSIM_SLURM_DIR=/tmp/gsim-slurm  state, spool, logs, PID files
#   GSIM_SLURM_CPUS=16              CPUs the node advertises (may exceed real cores,
#                                   so trivial test jobs run side by side)
#   GSIM_SLURM_GPUS=2               fake GPUs the node declares
#   GSIM_SLURM_ACCOUNTING=1         0: no MariaDB/slurmdbd (sacct then fails)
#   GSIM_SLURM_TIMEOUT=90           seconds each wait may take
#
# Caveats worth knowing when reading test failures:
# - Slurm restarts with empty state (slurmctld -c), so job ids start at 1 again;
#   the accounting database is dropped at the same time, or sacct would return
#   the previous cluster's job N.
# - Finished jobs stay visible to `squeue -t all` for MinJobAge (1 h here), then
#   only sacct knows them.
# - A job that depends on another with afterok stays PENDING forever when the
#   other fails (gsim never submits dependencies: it submits a stage once its
#   inputs are committed).
set -euo pipefail

DIR=${GSIM_SLURM_DIR:-/tmp/gsim-slurm}
CPUS=${GSIM_SLURM_CPUS:-16}
GPUS=${GSIM_SLURM_GPUS:-2}
ACCOUNTING=${GSIM_SLURM_ACCOUNTING:-1}
TIMEOUT=${GSIM_SLURM_TIMEOUT:-90}
ETC=/etc/slurm
MARK="# written by gsim .ci/slurm-up.sh"
DBPASS=gsimci

say() { echo "slurm-up: $*"; }
fail() {
  echo "slurm-up: ERROR: $*" >&2
  for f in "$DIR"/log/*.log; do
    [ -s "$f" ] && { echo "---- tail of $f" >&2; tail -n 20 "$f" >&2; }
  done
  exit 1
}

# until_ok SECONDS CMD...: retry CMD every 0.25 s; false after SECONDS.
until_ok() {
  local end=$(( $(date +%s) + $1 )); shift
  until "$@" >/dev/null 2>&1; do
    [ "$(date +%s)" -lt "$end" ] || return 1
    sleep 0.25
  done
}

# running NAME: the PID in $DIR/NAME.pid is alive and is the program NAME.
running() {
  local pid
  pid=$(cat "$DIR/$1.pid" 2>/dev/null) || return 1
  [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$1" ]
}

# halt NAME: TERM the daemon this script started, KILL it after 10 s.
halt() {
  local pid
  if running "$1"; then
    pid=$(cat "$DIR/$1.pid")
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    kill -KILL "$pid" 2>/dev/null || true
    say "stopped $1 (pid $pid)"
  fi
  rm -f "$DIR/$1.pid"
}

install_packages() {
  local want=(munge slurmctld slurmd slurm-client) missing=()
  [ "$ACCOUNTING" = 1 ] && want+=(slurmdbd mariadb-server)
  for p in "${want[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return
  say "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # Keep the packages' maintainer scripts from starting daemons themselves:
  # this script starts and tracks them.
  local policy=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d
    policy=1
  fi
  apt-get update -q >"$DIR/log/apt.log" 2>&1 || fail "apt-get update failed (see $DIR/log/apt.log)"
  apt-get install -y -q --no-install-recommends "${missing[@]}" >>"$DIR/log/apt.log" 2>&1 \
    || fail "apt-get install ${missing[*]} failed (see $DIR/log/apt.log)"
  [ "$policy" = 1 ] && rm -f /usr/sbin/policy-rc.d
  return 0
}

munge_works() { munge -n | unmunge; }

start_munge() {
  munge_works >/dev/null 2>&1 && return
  install -d -o munge -g munge -m 0700 /etc/munge /var/log/munge
  install -d -o munge -g munge -m 0711 /var/lib/munge
  install -d -o munge -g munge -m 0755 /run/munge
  [ -s /etc/munge/munge.key ] || mungekey --create --keyfile=/etc/munge/munge.key
  chown munge:munge /etc/munge/munge.key && chmod 600 /etc/munge/munge.key
  runuser -u munge -- /usr/sbin/munged >"$DIR/log/munged.log" 2>&1 || fail "munged did not start"
  until_ok "$TIMEOUT" munge_works || fail "munge does not answer"
  cp /run/munge/munged.pid "$DIR/munged.pid"
  say "munged started"
}

start_accounting() {
  if ! mariadb-admin ping >/dev/null 2>&1; then
    install -d -o mysql -g root -m 0755 /run/mysqld "$DIR/mariadb"
    [ -d /var/lib/mysql/mysql ] || mariadb-install-db --user=mysql --datadir=/var/lib/mysql >"$DIR/log/mariadb-install.log" 2>&1 \
      || fail "mariadb-install-db failed"
    setsid /usr/sbin/mariadbd --user=mysql --log-error="$DIR/mariadb/mariadb.log" --pid-file="$DIR/mariadb/mariadbd.pid" </dev/null >/dev/null 2>&1 &
    until_ok "$TIMEOUT" mariadb-admin ping || fail "MariaDB did not start (see $DIR/mariadb/mariadb.log)"
    cp "$DIR/mariadb/mariadbd.pid" "$DIR/mariadbd.pid"
    say "MariaDB started"
  fi
  mariadb -e "CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY '$DBPASS';
    GRANT ALL ON gsim_slurm_acct.* TO 'slurm'@'localhost';
    DROP DATABASE IF EXISTS gsim_slurm_acct; FLUSH PRIVILEGES;" || fail "cannot prepare the accounting database"
  cat >"$ETC/slurmdbd.conf" <<EOF
$MARK
AuthType=auth/munge
DbdHost=localhost
SlurmUser=root
LogFile=$DIR/log/slurmdbd.log
PidFile=$DIR/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=slurm
StoragePass=$DBPASS
StorageLoc=gsim_slurm_acct
EOF
  chmod 600 "$ETC/slurmdbd.conf"
  slurmdbd >"$DIR/log/slurmdbd.stderr" 2>&1 || fail "slurmdbd did not start"
  until_ok "$TIMEOUT" sacctmgr -n list cluster || fail "slurmdbd does not answer"
  say "slurmdbd started"
}

write_conf() {
  local node line cpus mem acct gather
  node=$(hostname -s)
  line=$(slurmd -C | head -n1)   # NodeName=vm CPUs=2 Boards=1 ... RealMemory=24000
  mem=$(sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' <<<"$line")
  [ -n "$mem" ] || fail "cannot read RealMemory from: $line"
  cpus="CPUs=$CPUS"
  if [ "$ACCOUNTING" = 1 ]; then
    acct="AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost"
    gather=jobacct_gather/linux
  else
    acct="AccountingStorageType=accounting_storage/none"
    gather=jobacct_gather/none
  fi
  cat >"$ETC/slurm.conf" <<EOF
$MARK
ClusterName=gsimci
SlurmctldHost=$node(127.0.0.1)
SlurmUser=root
AuthType=auth/munge
CredType=cred/munge
MailProg=/bin/true
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
# no cgroups in a container
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
ReturnToService=2
SlurmdParameters=config_overrides
SchedulerType=sched/backfill
# start jobs as soon as they are submitted (the default waits up to 3 s)
SchedulerParameters=batch_sched_delay=0,sched_min_interval=100000
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
# refuse impossible requests at submission instead of leaving them PENDING
EnforcePartLimits=ALL
MinJobAge=3600
# time limits are enforced within seconds of expiring
OverTimeLimit=0
KillWait=5
$acct
JobAcctGatherType=$gather
GresTypes=gpu
NodeName=$node NodeAddr=127.0.0.1 $cpus RealMemory=$mem Gres=gpu:$GPUS State=UNKNOWN
PartitionName=debug Nodes=$node Default=YES MaxTime=INFINITE State=UP
EOF
  # slurmd drops a GPU GRES without File= from the node; plain files serve,
  # as nothing opens them (no cgroup device constraint here).
  mkdir -p "$DIR/fakegpu"
  local files=() i
  for ((i = 0; i < GPUS; i++)); do : >"$DIR/fakegpu/gpu$i"; files+=("$DIR/fakegpu/gpu$i"); done
  cat >"$ETC/gres.conf" <<EOF
$MARK
NodeName=$node Name=gpu File=$(IFS=,; echo "${files[*]}")
EOF
}

node_up() {
  case "$(sinfo -h -n "$(hostname -s)" -o %T)" in idle|mixed|allocated) return 0 ;; esac
  return 1
}

start_slurm() {
  rm -rf "$DIR/state" "$DIR/spool"
  mkdir -p "$DIR/state" "$DIR/spool"
  slurmctld -c >"$DIR/log/slurmctld.stderr" 2>&1 || fail "slurmctld did not start"
  until_ok "$TIMEOUT" running slurmctld || fail "slurmctld exited"
  slurmd -N "$(hostname -s)" >"$DIR/log/slurmd.stderr" 2>&1 || fail "slurmd did not start"
  until_ok "$TIMEOUT" running slurmd || fail "slurmd exited"
  until_ok "$TIMEOUT" node_up || fail "node $(hostname -s) not usable: $(sinfo -h -o %T)"
  say "slurmctld and slurmd started; node $(hostname -s) $(sinfo -h -o '%T, %c CPUs, %G')"
}

smoke() {
  local id st
  id=$(sbatch --parsable -J gsim-smoke -o /dev/null --gres=gpu:1 --wrap true) || fail "sbatch refused the smoke job"
  # shellcheck disable=SC2016
  until_ok "$TIMEOUT" sh -c "squeue -h -t all -j $id -o %T | grep -qx COMPLETED" \
    || fail "smoke job $id did not complete: $(squeue -h -t all -j "$id" -o %T)"
  if [ "$ACCOUNTING" = 1 ]; then
    until_ok "$TIMEOUT" sh -c "sacct -n -X -P -j $id -o State | grep -qx COMPLETED" || fail "sacct does not know job $id"
  fi
  say "smoke job $id completed"
}

stop_all() {
  if running slurmctld; then
    scancel --quiet --user=root 2>/dev/null || true
  fi
  halt slurmd
  halt slurmctld
  halt slurmdbd
  halt mariadbd
  halt munged
}

up() {
  mkdir -p "$DIR/log"
  install_packages
  start_munge
  halt slurmd; halt slurmctld; halt slurmdbd
  if [ -f "$ETC/slurm.conf" ] && ! grep -qF "$MARK" "$ETC/slurm.conf"; then
    cp -p "$ETC/slurm.conf" "$ETC/slurm.conf.before-gsim"
    say "kept the existing $ETC/slurm.conf as slurm.conf.before-gsim"
  fi
  write_conf
  [ "$ACCOUNTING" = 1 ] && start_accounting
  start_slurm
  smoke
  say "ready"
}

[ "$(id -u)" = 0 ] || { echo "slurm-up: run as root" >&2; exit 1; }
case "${1:-up}" in
  up) up ;;
  down) stop_all ;;
  status)
    for d in munged mariadbd slurmdbd slurmctld slurmd; do
      if running "$d"; then echo "$d: running"; else echo "$d: not started by this script"; fi
    done
    sinfo 2>&1 || true
    squeue 2>&1 || true
    ;;
  *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
