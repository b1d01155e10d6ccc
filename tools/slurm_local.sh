#!/usr/bin/env bash
# A one-node Slurm cluster on localhost, for `make sweep SCHEDULER=slurm` (job arrays) and for
# the tests that exercise it (tests/slurm_cluster.py). Everything it runs and writes lives in one
# STATE_DIR, so it never touches a system Slurm or munge (/etc/slurm, /etc/munge, /run/munge)
# and several such clusters can run side by side (each picks free ports of its own).
#
# Commands:
#   tools/slurm_local.sh up     [STATE_DIR]   install slurm-wlm and munge with apt-get if missing
#                                             (root; otherwise print the sudo command, exit 2),
#                                             write STATE_DIR/slurm.conf, start munged, slurmctld
#                                             and slurmd, wait (<= 60 s) for the node to be idle,
#                                             write STATE_DIR/env.sh. On a cluster that already
#                                             runs, say so and do nothing.
#   tools/slurm_local.sh down   [STATE_DIR]   cancel every job, stop slurmd, slurmctld, munged
#                                             (SIGTERM, up to 10 s, then SIGKILL), remove pid
#                                             files. Exit 0 also when nothing ran.
#   tools/slurm_local.sh status [STATE_DIR]   which daemons run, and sinfo. Exit 0 when all three
#                                             run, 1 otherwise.
# STATE_DIR defaults to $HOME/.cache/dri-hep2/slurm. Keep it short (<= 80 characters): munge's
# socket and slurmd's per-step sockets are unix sockets under it (about 108 bytes at most).
#
# Then, in a shell:  source STATE_DIR/env.sh   (that is: export SLURM_CONF=STATE_DIR/slurm.conf)
# and sbatch/squeue/scancel/sinfo/scontrol talk to this cluster; the munge socket is named in
# slurm.conf (AuthInfo=socket=...), so SLURM_CONF is the only variable a client needs.
#
# The configuration (slurm.conf(5) of Slurm 22.05, Debian 12): SlurmUser=root, no cgroups
# (proctrack/linuxproc, task/none), cons_tres with CR_Core, no accounting (sacct answers "Slurm
# accounting storage is disabled": use squeue for queued/running jobs), MinJobAge=300 (squeue
# still lists a finished job, state CD/CA/F/TO, for 5 minutes), KillWait=5.
# Files in STATE_DIR: slurm.conf env.sh munge.key munge.socket munge.seed *.pid *.log
# ctld-state/ (slurmctld's StateSaveLocation) slurmd-spool/.
set -euo pipefail

PATH="$PATH:/usr/sbin:/sbin"
PROG=slurm_local.sh
DAEMONS=(slurmd slurmctld munged)   # the order in which down stops them

die() { echo "$PROG: $*" >&2; exit 1; }
say() { echo "$PROG: $*" >&2; }

usage() {
    sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0" >&2
    exit 2
}

[[ $# -ge 1 && $# -le 2 ]] || usage
CMD=$1
STATE_DIR=${2:-$HOME/.cache/dri-hep2/slurm}
case $CMD in up|down|status) ;; -h|--help|help) usage ;; *) say "unknown command: $CMD"; usage ;; esac

# An absolute path without creating anything (down/status must not make folders).
case $STATE_DIR in /*) ;; *) STATE_DIR="$PWD/$STATE_DIR" ;; esac
STATE_DIR=${STATE_DIR%/}
CONF="$STATE_DIR/slurm.conf"
SOCKET="$STATE_DIR/munge.socket"
export SLURM_CONF="$CONF"

pidfile() { echo "$STATE_DIR/$1.pid"; }

# The pid of daemon $1 if its pid file names a live process of that name, else nothing.
alive_pid() {
    local f pid comm
    f=$(pidfile "$1")
    [[ -s $f ]] || return 1
    pid=$(tr -dc '0-9' <"$f")
    [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || return 1
    comm=$(cat "/proc/$pid/comm" 2>/dev/null || true)
    [[ -z $comm || $comm == "$1"* ]] || return 1   # a recycled pid of another program
    echo "$pid"
}

sinfo_ok() { [[ -f $CONF ]] && timeout 10 sinfo -h >/dev/null 2>&1; }

node_state() { timeout 10 sinfo -h -N -n "$NODE" -o %T 2>/dev/null | head -n1; }

# ---------------------------------------------------------------------------------------- down
stop_daemon() {   # $1: name. SIGTERM, up to 10 s, then SIGKILL.
    local pid i
    if pid=$(alive_pid "$1"); then
        kill -TERM "$pid" 2>/dev/null || true
        for ((i = 0; i < 100; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
            say "$1 (pid $pid) still runs after 10 s: SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
            sleep 0.2
        fi
        say "stopped $1 (pid $pid)"
    fi
    rm -f "$(pidfile "$1")"
}

cancel_all_jobs() {   # every job of this cluster, then up to 10 s for them to leave the queue
    local users u i
    alive_pid slurmctld >/dev/null && sinfo_ok || return 0
    users=$(timeout 10 squeue -h -o %u 2>/dev/null | sort -u) || return 0
    [[ -n $users ]] || return 0
    for u in $users; do timeout 10 scancel --quiet -u "$u" || true; done
    for ((i = 0; i < 20; i++)); do
        [[ -z $(timeout 10 squeue -h -t PD,R,CG,S,CF,RS,RQ,SO,ST 2>/dev/null) ]] && break
        sleep 0.5
    done
    say "cancelled the jobs of: $(echo $users)"
}

do_down() {
    local d
    [[ -d $STATE_DIR ]] || return 0
    cancel_all_jobs
    for d in "${DAEMONS[@]}"; do stop_daemon "$d"; done
    rm -f "$SOCKET" "$SOCKET.lock"
}

# -------------------------------------------------------------------------------------- status
do_status() {
    local d pid all=0
    for d in munged slurmctld slurmd; do
        if pid=$(alive_pid "$d"); then
            echo "$d: running (pid $pid)"
        else
            echo "$d: not running"; all=1
        fi
    done
    if [[ -f $CONF ]] && alive_pid slurmctld >/dev/null; then
        echo "SLURM_CONF=$CONF"
        timeout 10 sinfo || all=1
    fi
    return $all
}

# ------------------------------------------------------------------------------------------ up
install_packages() {
    local missing=() c
    for c in slurmctld slurmd sbatch munged; do
        command -v "$c" >/dev/null 2>&1 || missing+=("$c")
    done
    [[ ${#missing[@]} -eq 0 ]] && return 0
    local pkgs=(slurm-wlm munge)
    if [[ $(id -u) -ne 0 ]]; then
        echo "$PROG: ${missing[*]} missing; install Debian 12's Slurm and munge as root:" >&2
        echo "sudo apt-get install -y ${pkgs[*]}" >&2
        echo "(if apt-get cannot find them: sudo apt-get update -q first)" >&2
        exit 2
    fi
    say "${missing[*]} missing: apt-get install ${pkgs[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # Wait for dpkg's lock rather than fail: on a fresh machine `make setup` may be installing
    # Caffe's build packages at the same moment (apt-get's default is to give up at once).
    local apt=(apt-get -o DPkg::Lock::Timeout=600)
    if ! "${apt[@]}" install -y -q "${pkgs[@]}"; then
        say "apt-get install failed; apt-get update -q, then again"
        "${apt[@]}" update -q || die "apt-get update failed"
        "${apt[@]}" install -y -q "${pkgs[@]}" || die "apt-get install -y ${pkgs[*]} failed"
    fi
    for c in slurmctld slurmd sbatch munged; do
        command -v "$c" >/dev/null 2>&1 || die "$c still missing after apt-get install"
    done
}

port_in_use() {   # listening (ss) or accepting (bash /dev/tcp) on localhost
    if command -v ss >/dev/null 2>&1 && ss -Hltn "( sport = :$1 )" 2>/dev/null | grep -q .; then
        return 0
    fi
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

pick_ports() {   # CTLD_PORT and SLURMD_PORT = CTLD_PORT + 1, both free; 16817/16818 first
    local p
    for ((p = 16817; p < 17817; p += 2)); do
        if ! port_in_use "$p" && ! port_in_use $((p + 1)); then
            CTLD_PORT=$p; SLURMD_PORT=$((p + 1)); return 0
        fi
    done
    die "no two free TCP ports in 16817-17817"
}

write_conf() {
    local cpus mem_mb
    cpus=$(nproc)
    # RealMemory a bit below the machine's total (free's "total"), so slurmd never finds less
    # memory than configured (which would make the node INVALID/drained).
    mem_mb=$(awk '/^MemTotal:/ {printf "%d", $2 / 1024 * 0.95}' /proc/meminfo)
    pick_ports
    cat >"$CONF.tmp" <<EOF
# Written by tools/slurm_local.sh up on $(date -u +%FT%TZ); rewritten by every fresh \`up\`.
# A one-node cluster on localhost; every path lives in $STATE_DIR.
ClusterName=drihep2
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=$(id -un)
SlurmdUser=root
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$SOCKET
StateSaveLocation=$STATE_DIR/ctld-state
SlurmdSpoolDir=$STATE_DIR/slurmd-spool
SlurmctldPidFile=$(pidfile slurmctld)
SlurmdPidFile=$(pidfile slurmd)
SlurmctldLogFile=$STATE_DIR/slurmctld.log
SlurmdLogFile=$STATE_DIR/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
MailProg=/bin/true
MpiDefault=none
SwitchType=switch/none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobContainerType=job_container/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
ReturnToService=2
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MinJobAge=300
KillWait=5
InactiveLimit=0
Waittime=0
NodeName=$NODE NodeAddr=127.0.0.1 NodeHostname=$NODE CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=debug Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
    mv "$CONF.tmp" "$CONF"
}

start_munged() {
    local key="$STATE_DIR/munge.key"
    if [[ ! -s $key ]]; then
        (umask 077; head -c 1024 /dev/urandom >"$key")
    fi
    chmod 400 "$key"
    rm -f "$SOCKET" "$SOCKET.lock"
    # --force: a leftover socket of ours, or a state dir whose parents munged finds too open
    # (a test's tmp dir), must not stop it.
    munged --force --socket="$SOCKET" --key-file="$key" --pid-file="$(pidfile munged)" \
        --log-file="$STATE_DIR/munged.log" --seed-file="$STATE_DIR/munge.seed" \
        </dev/null >>"$STATE_DIR/munged.log" 2>&1 \
        || { tail -n 20 "$STATE_DIR/munged.log" >&2; die "munged did not start"; }
    local i
    for ((i = 0; i < 50; i++)); do
        munge -S "$SOCKET" -n 2>/dev/null | unmunge -S "$SOCKET" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    tail -n 20 "$STATE_DIR/munged.log" >&2
    die "munged runs but munge -n | unmunge fails on $SOCKET"
}

show_logs() {
    local f
    for f in munged slurmctld slurmd; do
        [[ -f $STATE_DIR/$f.log ]] || continue
        echo "---- last lines of $STATE_DIR/$f.log" >&2
        tail -n 25 "$STATE_DIR/$f.log" >&2
    done
}

too_long() {
    if ((${#STATE_DIR} > 80)); then
        say "STATE_DIR is too long for unix sockets (${#STATE_DIR} characters; keep it <= 80): $STATE_DIR"
        exit 2
    fi
}

do_up() {
    install_packages
    NODE=$(hostname -s)
    too_long   # before mkdir: a refused STATE_DIR is not left behind
    mkdir -p "$STATE_DIR"
    STATE_DIR=$(cd "$STATE_DIR" && pwd -P)
    CONF="$STATE_DIR/slurm.conf"; SOCKET="$STATE_DIR/munge.socket"; export SLURM_CONF="$CONF"
    too_long   # again: the real path (symlinks resolved) may be longer

    local running=0 d
    for d in munged slurmctld slurmd; do alive_pid "$d" >/dev/null && running=$((running + 1)); done
    if ((running == 3)) && sinfo_ok; then
        say "already running in $STATE_DIR (slurm_local.sh status $STATE_DIR); nothing done"
        echo "export SLURM_CONF=$CONF"
        return 0
    fi
    if ((running > 0)); then
        say "partly running in $STATE_DIR: stopping it, then a fresh start"
        do_down
    fi
    mkdir -p "$STATE_DIR/ctld-state" "$STATE_DIR/slurmd-spool"
    chmod 755 "$STATE_DIR"
    write_conf
    start_munged

    slurmctld -f "$CONF" </dev/null >>"$STATE_DIR/slurmctld.log" 2>&1 \
        || { show_logs; do_down; die "slurmctld did not start"; }
    slurmd -f "$CONF" </dev/null >>"$STATE_DIR/slurmd.log" 2>&1 \
        || { show_logs; do_down; die "slurmd did not start"; }

    local t0=$SECONDS state=""
    while ((SECONDS - t0 < 60)); do
        state=$(node_state || true)
        [[ $state == idle ]] && break
        sleep 0.5
    done
    if [[ $state != idle ]]; then
        show_logs
        do_down
        die "node $NODE not idle after 60 s (sinfo says: ${state:-nothing}); stopped again"
    fi
    printf 'export SLURM_CONF=%q\n' "$CONF" >"$STATE_DIR/env.sh"
    say "up: node $NODE idle, $(nproc) CPUs, ports $CTLD_PORT/$SLURMD_PORT, in $STATE_DIR"
    echo "export SLURM_CONF=$CONF   # or: source $STATE_DIR/env.sh"
}

case $CMD in
    up) do_up ;;
    down) NODE=$(hostname -s); do_down; say "down: nothing of $STATE_DIR runs" ;;
    status) do_status ;;
esac
