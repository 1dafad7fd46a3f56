#!/usr/bin/env bash
# A single-node SLURM (slurmctld + slurmd + munge, Debian packages) on this machine, for
# tests/test_slurm.py and for trying profiles/slurm without a cluster.
#
#   scripts/local_slurm.sh start    install (once) and start; waits until `sinfo` shows the node idle
#   scripts/local_slurm.sh stop     stop the daemons this script started (by their PID files)
#   scripts/local_slurm.sh status   exit 0 when the node is up and accepts jobs
#
# The node has two partitions on the same host, `cpu` (default) and `gpu`, so profiles/slurm
# submits unchanged; it has no GPUs (GresTypes empty), so GPU requests must be overridden to 0.
# Accounting is disabled (no slurmdbd): submit with --slurm-no-account and query job states
# with --slurm-status-command squeue (README.md, "On a SLURM cluster").
# Needs root and apt-get (exit 3 otherwise: the test skips). Idempotent: start on a running
# cluster only checks it. It writes /etc/slurm/slurm.conf and refuses to replace one it did not write.
set -euo pipefail

STATE=${BALANCEBENCH_SLURM_STATE:-/var/lib/balancebench-slurm}
CONF=/etc/slurm/slurm.conf
MARKER="# written by balancebench scripts/local_slurm.sh"
NODE=$(hostname -s)
CANNOT=3

log() { echo "local_slurm: $*" >&2; }

cannot() { log "cannot run SLURM here: $*"; exit "$CANNOT"; }

install_packages() {
    local missing=()
    for bin in slurmctld slurmd munged sinfo sbatch squeue scancel; do
        command -v "$bin" >/dev/null 2>&1 || missing+=("$bin")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    [ "$(id -u)" -eq 0 ] || cannot "not root (missing: ${missing[*]})"
    command -v apt-get >/dev/null 2>&1 || cannot "no apt-get (missing: ${missing[*]})"
    log "installing slurmctld slurmd slurm-client munge (apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    # the package lists are refreshed once per machine (an existing list is reused)
    if ! compgen -G "/var/lib/apt/lists/*Packages*" >/dev/null; then
        apt-get update -qq || cannot "apt-get update failed"
    fi
    apt-get install -y -qq --no-install-recommends slurmctld slurmd slurm-client munge >"$STATE/apt.log" 2>&1 \
        || { apt-get update -qq && apt-get install -y -qq --no-install-recommends slurmctld slurmd slurm-client munge \
             >"$STATE/apt.log" 2>&1; } || cannot "apt-get install failed (see $STATE/apt.log)"
}

write_config() {
    if [ -f "$CONF" ] && ! grep -qF "$MARKER" "$CONF"; then
        log "$CONF exists and was not written by this script; not replacing it"
        exit 1
    fi
    local cpus mem
    cpus=$(nproc)
    mem=$(awk '/MemTotal/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)
    mkdir -p /etc/slurm "$STATE/ctld" "$STATE/d" "$STATE/log"
    cat >"$CONF.tmp" <<EOF
$MARKER
ClusterName=balancebench
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/d
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
# no cgroups (containers): plain process tracking, no task binding, no accounting daemon
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
# no GresTypes: the node has no GPUs (GPU requests must be overridden to gpu=0)
ReturnToService=2
# finished jobs stay visible to squeue for 5 minutes: the executor plugin's squeue status
# queries need MinJobAge >= 3 x its first status-check interval
MinJobAge=300
SchedulerParameters=sched_interval=2
MessageTimeout=20
SlurmdTimeout=60
InactiveLimit=0
KillWait=5
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=cpu Nodes=$NODE Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
PartitionName=gpu Nodes=$NODE MaxTime=INFINITE State=UP OverSubscribe=NO
EOF
    mv "$CONF.tmp" "$CONF"
}

running() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

node_idle() { sinfo -h -N -o '%T' 2>/dev/null | grep -qE '^(idle|mixed|allocated)'; }

start() {
    mkdir -p "$STATE"
    install_packages
    if node_idle && running "$STATE/slurmctld.pid" && running "$STATE/slurmd.pid"; then
        log "already running"; sinfo; return 0
    fi
    [ "$(id -u)" -eq 0 ] || cannot "not root: slurmctld, slurmd and munged are started as root"
    write_config
    # munge: a key (the package creates one; create it if a minimal install did not)
    if [ ! -s /etc/munge/munge.key ]; then
        mkdir -p /etc/munge
        dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
        chown munge:munge /etc/munge/munge.key 2>/dev/null || true
        chmod 400 /etc/munge/munge.key
    fi
    mkdir -p /run/munge /var/log/munge /var/lib/munge
    chown munge:munge /run/munge /var/log/munge /var/lib/munge /etc/munge 2>/dev/null || true
    if ! running "$STATE/munged.pid"; then
        rm -f /run/munge/munge.socket.2 /run/munge/munge.socket.2.lock
        if id munge >/dev/null 2>&1; then
            runuser -u munge -- munged --pid-file=/run/munge/munged.pid
        else
            munged --force --pid-file=/run/munge/munged.pid
        fi
        for _ in $(seq 50); do [ -s /run/munge/munged.pid ] && break; sleep 0.1; done
        cp /run/munge/munged.pid "$STATE/munged.pid"
    fi
    munge -n | unmunge >/dev/null || { log "munge does not work"; exit 1; }
    running "$STATE/slurmctld.pid" || slurmctld
    for _ in $(seq 100); do scontrol ping 2>/dev/null | grep -q UP && break; sleep 0.2; done
    running "$STATE/slurmd.pid" || slurmd -N "$NODE"
    for _ in $(seq 150); do
        if node_idle; then log "node $NODE up"; sinfo; return 0; fi
        sleep 0.2
    done
    log "node did not come up; last lines of the logs:"
    tail -n 20 "$STATE/log/slurmctld.log" "$STATE/log/slurmd.log" >&2 || true
    exit 1
}

stop_pid() {
    local pidfile=$1
    if running "$pidfile"; then
        local pid
        pid=$(cat "$pidfile")
        kill "$pid"
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
    fi
    rm -f "$pidfile"
}

stop() {
    # cancel what is left, then the daemons in reverse order
    command -v scancel >/dev/null 2>&1 && node_idle && scancel --user root 2>/dev/null || true
    stop_pid "$STATE/slurmd.pid"
    stop_pid "$STATE/slurmctld.pid"
    stop_pid "$STATE/munged.pid"
    log "stopped"
}

status() {
    if command -v sinfo >/dev/null 2>&1 && node_idle; then sinfo; return 0; fi
    log "not running"; return 1
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) status ;;
    *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
