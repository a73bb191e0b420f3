#!/usr/bin/env bash
# A real one-node SLURM on this machine, for the SLURM launcher's tests (tests/test_slurm.py) and
# for trying sweeps by hand. Debian's slurm-wlm + munge, run as root: no cgroups, no systemd
# (ProctrackType=proctrack/linuxproc, TaskPlugin=task/none), no accounting database.
#
#   scripts/slurm_local.sh start    install (apt, once), configure, start munged/slurmctld/slurmd
#   scripts/slurm_local.sh stop     cancel its jobs, stop the daemons it started (by pid files)
#   scripts/slurm_local.sh status   one line: running or not
#
# Every step is idempotent: `start` twice leaves one set of daemons; `stop` when nothing runs is
# a no-op. Logs: /var/log/slurm/. The partition is `local` (every CPU of this machine).
set -euo pipefail

CONF_DIR=/etc/slurm
CONF=$CONF_DIR/slurm.conf
RUN=/run/lipnet_slurm
LOG=/var/log/slurm
SPOOL=/var/spool/lipnet_slurm
NODE=$(hostname -s)

die() { echo "error: $*" >&2; exit 2; }

need_root() {
    [[ $(id -u) -eq 0 ]] || die "scripts/slurm_local.sh must run as root (it installs and starts daemons)"
}

install() {
    if command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v munged >/dev/null; then
        return
    fi
    command -v apt-get >/dev/null || die "no apt-get: install slurm-wlm and munge with your package manager"
    echo "installing slurm-wlm and munge (apt)..."
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null
}

configure() {
    local cpus mem_mb
    # the CPUs this machine gives us: nproc without the OpenMP limits it would honour
    # (OMP_NUM_THREADS=1 in the caller's shell would make a 1-CPU node that never runs DDP jobs)
    cpus=$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc)
    mem_mb=$(awk '/MemTotal/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)
    mkdir -p "$CONF_DIR" "$RUN" "$LOG" "$SPOOL/ctld" "$SPOOL/d" /run/munge /var/lib/munge /var/log/munge
    chown munge:munge /run/munge /var/lib/munge /var/log/munge
    if [[ ! -s /etc/munge/munge.key ]]; then
        mungekey --create --keyfile=/etc/munge/munge.key >/dev/null
    fi
    chown munge:munge /etc/munge/munge.key
    chmod 400 /etc/munge/munge.key
    cat >"$CONF.new" <<EOF
# written by lipnet_pl scripts/slurm_local.sh: one node, no cgroups, no accounting
ClusterName=lipnet
SlurmctldHost=$NODE
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
JobRequeue=1
ReturnToService=2
KillWait=30
SlurmctldTimeout=30
SlurmdTimeout=30
StateSaveLocation=$SPOOL/ctld
SlurmdSpoolDir=$SPOOL/d
SlurmctldPidFile=$RUN/slurmctld.pid
SlurmdPidFile=$RUN/slurmd.pid
SlurmctldLogFile=$LOG/slurmctld.log
SlurmdLogFile=$LOG/slurmd.log
NodeName=$NODE CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=local Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
    if cmp -s "$CONF.new" "$CONF"; then
        rm "$CONF.new"
    else
        mv "$CONF.new" "$CONF"
        CONF_CHANGED=1
    fi
}

alive() {  # alive PIDFILE: the process named in PIDFILE runs
    [[ -s $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null
}

start_daemons() {
    if ! alive /run/munge/munged.pid; then
        runuser -u munge -- /usr/sbin/munged --pid-file=/run/munge/munged.pid
    fi
    if [[ ${CONF_CHANGED:-0} == 1 ]] && alive "$RUN/slurmctld.pid"; then
        stop_slurm  # restart with the new configuration
    fi
    alive "$RUN/slurmctld.pid" || slurmctld
    alive "$RUN/slurmd.pid" || slurmd
    local i state
    for i in $(seq 1 60); do
        state=$(sinfo -h -N -o '%t' 2>/dev/null | head -1 || true)
        case $state in
            idle | mix | alloc) echo "slurm: running (node $NODE $state, partition local)"; return ;;
            down* | drain* | drng*) scontrol update nodename="$NODE" state=resume 2>/dev/null || true ;;
        esac
        sleep 1
    done
    die "slurm did not come up within 60 s: see $LOG/slurmctld.log and $LOG/slurmd.log"
}

stop_pidfiles() {  # stop_pidfiles PIDFILE...: TERM the processes they name at once, wait for all
    local f pid i pids=()
    for f in "$@"; do
        if alive "$f"; then
            pid=$(cat "$f")
            kill "$pid" 2>/dev/null || true
            pids+=("$pid")
        fi
    done
    for pid in ${pids[@]+"${pids[@]}"}; do
        for i in $(seq 1 100); do
            kill -0 "$pid" 2>/dev/null || continue 2
            sleep 0.1
        done
        kill -9 "$pid" 2>/dev/null || true
    done
}

cancel_jobs() {  # a job left running would outlive slurmd (its steps are plain processes here)
    local jobs i
    alive "$RUN/slurmctld.pid" || return 0
    jobs=$(squeue -h -o %i 2>/dev/null || true)
    [[ -n $jobs ]] || return 0
    echo "cancelling SLURM jobs: $(echo $jobs)"
    scancel $jobs 2>/dev/null || true
    for i in $(seq 1 60); do
        [[ -z $(squeue -h -o %i 2>/dev/null) ]] && return 0
        sleep 1
    done
}

stop_slurm() {  # both daemons at once: each takes 1-2 s to save its state and go
    stop_pidfiles "$RUN/slurmd.pid" "$RUN/slurmctld.pid"
}

case ${1:-} in
    start) need_root; install; configure; start_daemons ;;
    stop) need_root; cancel_jobs; stop_slurm; stop_pidfiles /run/munge/munged.pid; echo "slurm: stopped" ;;
    status)
        if alive "$RUN/slurmctld.pid" && alive "$RUN/slurmd.pid"; then echo "slurm: running"; else echo "slurm: not running"; exit 1; fi ;;
    *) die "usage: scripts/slurm_local.sh start|stop|status" ;;
esac
