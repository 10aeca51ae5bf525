#!/usr/bin/env bash
# Install and start a single-node Slurm (Debian's slurm-wlm + munge) on this host, for the
# tests marked `slurm` (tests/slurm/). Idempotent: a second run finds everything installed
# and running and only checks that the node is idle.
#
# No systemd is needed: munged, slurmctld and slurmd are started directly as daemons.
# Must run as root (CI box). Exits non-zero with a message naming what failed.
#
# Accounting: there is no slurmdbd here, so `sacct` does NOT work (it answers "Slurm
# accounting storage is disabled"). The executor follows a job with `squeue`, then, once
# the job has left squeue, with `scontrol show job` (the controller keeps finished jobs
# for MinJobAge seconds, set to an hour below), then with the job completion log
# (JobCompType=jobcomp/filetxt, one line per finished job, at $SLURM_JOBCOMP_LOG). On a
# cluster with slurmdbd, `sacct` is used as well and gives ConsumedEnergyRaw.
#
# Settings (environment, all optional):
#   SLURM_PARTITION      partition name                      (debug)
#   SLURM_STATE_DIR      controller state, slurmd spool, pids (/var/lib/carbonshift-slurm)
#   SLURM_LOG_DIR        daemon logs and the jobcomp log      (/var/log/slurm)
#   SLURM_START_TIMEOUT  seconds to wait for the node to be idle (60)
set -euo pipefail

PARTITION="${SLURM_PARTITION:-debug}"
STATE_DIR="${SLURM_STATE_DIR:-/var/lib/carbonshift-slurm}"
LOG_DIR="${SLURM_LOG_DIR:-/var/log/slurm}"
START_TIMEOUT="${SLURM_START_TIMEOUT:-60}"
CONF_DIR=/etc/slurm
CONF="$CONF_DIR/slurm.conf"
JOBCOMP_LOG="$LOG_DIR/jobcomp.log"
NODE="$(hostname -s)"
T0=$(date +%s)

say() { printf 'slurm-setup: %s\n' "$*"; }
die() {
    printf 'slurm-setup: ERROR: %s\n' "$*" >&2
    for log in "$LOG_DIR/slurmctld.log" "$LOG_DIR/slurmd.log" /var/log/munge/munged.log; do
        if [ -s "$log" ]; then
            printf -- '--- last lines of %s ---\n' "$log" >&2
            tail -n 20 "$log" >&2 || true
        fi
    done
    exit 1
}

[ "$(id -u)" -eq 0 ] || die "must run as root (installs packages and starts daemons)"

# --- 1. packages -------------------------------------------------------------------------
PKGS=(munge slurmctld slurmd slurm-client slurm-wlm-basic-plugins)
missing=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
    say "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    APT=(apt-get -o DPkg::Lock::Timeout=600 -o Dpkg::Options::=--force-confold -y -q)
    "${APT[@]}" update >/dev/null || die "apt-get update failed"
    # Postinst scripts may try to start the daemons through init scripts; with no init
    # system they fail harmlessly, and we start them ourselves below.
    "${APT[@]}" install --no-install-recommends "${missing[@]}" >/dev/null \
        || die "apt-get install ${missing[*]} failed"
else
    say "packages already installed"
fi
for cmd in munged munge slurmctld slurmd sbatch squeue sinfo scontrol scancel; do
    command -v "$cmd" >/dev/null || die "$cmd not found after install"
done

# --- 2. munge ----------------------------------------------------------------------------
install -d -o munge -g munge -m 0700 /etc/munge /var/lib/munge /var/log/munge
install -d -o munge -g munge -m 0755 /run/munge
if [ ! -s /etc/munge/munge.key ]; then
    say "creating munge key"
    if command -v mungekey >/dev/null; then
        mungekey --create --keyfile=/etc/munge/munge.key --force
    else
        dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
    fi
fi
chown munge:munge /etc/munge/munge.key
chmod 0400 /etc/munge/munge.key

munge_ok() { munge -n 2>/dev/null | unmunge >/dev/null 2>&1; }
if munge_ok; then
    say "munged already running"
else
    say "starting munged"
    rm -f /run/munge/munged.pid
    runuser -u munge -- munged || die "munged failed to start"
    for _ in $(seq 50); do munge_ok && break; sleep 0.1; done
    munge_ok || die "munged started but munge -n | unmunge fails"
fi

# --- 3. slurm.conf -----------------------------------------------------------------------
install -d -m 0755 "$CONF_DIR" "$LOG_DIR" "$STATE_DIR" "$STATE_DIR/slurmctld" \
    "$STATE_DIR/slurmd" "$STATE_DIR/run"
CPUS="$(nproc)"
MEM_MIB=$(($(awk '/^MemTotal:/ {print $2}' /proc/meminfo) / 1024))
# A bit under the real memory: slurmd drains a node that reports less than RealMemory.
REAL_MEM=$((MEM_MIB * 90 / 100))

NEW_CONF="$(mktemp)"
trap 'rm -f "$NEW_CONF"' EXIT
cat >"$NEW_CONF" <<EOF
# Written by .ci/slurm-setup.sh (carbonshift CI): a single-node cluster on $NODE.
ClusterName=carbonshift
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
MpiDefault=none
SwitchType=switch/none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=30
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$JOBCOMP_LOG
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
# Jobs held with --begin are started by the scheduler's next pass once eligible: short
# intervals make them start within seconds of the planned time (defaults: 30 s / 60 s).
SchedulerParameters=bf_interval=5,sched_interval=10
ReturnToService=2
MinJobAge=3600
KillWait=10
SlurmctldTimeout=60
SlurmdTimeout=120
StateSaveLocation=$STATE_DIR/slurmctld
SlurmdSpoolDir=$STATE_DIR/slurmd
SlurmctldPidFile=$STATE_DIR/run/slurmctld.pid
SlurmdPidFile=$STATE_DIR/run/slurmd.pid
SlurmctldLogFile=$LOG_DIR/slurmctld.log
SlurmdLogFile=$LOG_DIR/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$REAL_MEM State=UNKNOWN
PartitionName=$PARTITION Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF

CONF_CHANGED=0
if ! cmp -s "$NEW_CONF" "$CONF" 2>/dev/null; then
    say "writing $CONF (node $NODE: $CPUS CPUs, RealMemory=$REAL_MEM MiB)"
    install -m 0644 "$NEW_CONF" "$CONF"
    CONF_CHANGED=1
fi

# --- 4. daemons --------------------------------------------------------------------------
pid_alive() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
stop_pidfile() {
    local pidfile=$1
    if pid_alive "$pidfile"; then
        local pid
        pid=$(cat "$pidfile")
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    fi
    rm -f "$pidfile"
}
CTLD_PID="$STATE_DIR/run/slurmctld.pid"
SLURMD_PID="$STATE_DIR/run/slurmd.pid"
if [ "$CONF_CHANGED" -eq 1 ]; then
    # A running Slurm with another configuration is restarted, not half-reconfigured.
    stop_pidfile "$SLURMD_PID"
    stop_pidfile "$CTLD_PID"
fi
if pid_alive "$CTLD_PID"; then
    say "slurmctld already running (pid $(cat "$CTLD_PID"))"
else
    say "starting slurmctld"
    slurmctld || die "slurmctld failed to start (see $LOG_DIR/slurmctld.log)"
fi
for _ in $(seq 100); do scontrol ping 2>/dev/null | grep -q 'is UP' && break; sleep 0.2; done
scontrol ping 2>/dev/null | grep -q 'is UP' || die "slurmctld does not answer scontrol ping"
if pid_alive "$SLURMD_PID"; then
    say "slurmd already running (pid $(cat "$SLURMD_PID"))"
else
    say "starting slurmd"
    slurmd || die "slurmd failed to start (see $LOG_DIR/slurmd.log)"
fi

# --- 5. wait for the node to be idle -----------------------------------------------------
deadline=$(($(date +%s) + START_TIMEOUT))
state=""
while :; do
    state="$(sinfo -h -n "$NODE" -o '%t' 2>/dev/null | head -n1 || true)"
    case "$state" in
        idle | mix | alloc) break ;;
        down | drain | drng | drained | fail | failg)
            # The node answered but is marked unusable (an old state, a first start):
            # give it back to service.
            scontrol update NodeName="$NODE" State=RESUME >/dev/null 2>&1 || true ;;
    esac
    if [ "$(date +%s)" -ge "$deadline" ]; then
        reason="$(sinfo -h -n "$NODE" -o '%E' 2>/dev/null || true)"
        die "node $NODE is '${state:-absent}' after ${START_TIMEOUT}s, not idle (reason: ${reason:-none})"
    fi
    sleep 1
done
say "node $NODE is $state; partition $PARTITION ready in $(($(date +%s) - T0))s"
sinfo
