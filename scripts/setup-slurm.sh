#!/usr/bin/env bash
# A one-node Slurm on this host (slurmctld and slurmd on loopback, munge) for the Slurm executor's
# tests and for trying `executor: slurm` on a workstation. Idempotent: installs slurm-wlm and munge
# when missing, writes /etc/slurm/slurm.conf only if there is none (or it is the one this script
# wrote), starts munged, slurmctld and slurmd when they are not running, and waits for the node.
# Needs root (or sudo) and no systemd. Exit status 0: Slurm answers; 1: it could not be started
# (the Slurm tests then skip with the reason). Set SEMPLES_NO_SLURM=1 to skip it altogether.
set -uo pipefail

[ "${SEMPLES_NO_SLURM:-0}" = 1 ] && { echo "setup-slurm: SEMPLES_NO_SLURM=1, not starting Slurm"; exit 0; }
sudo=""
if [ "$(id -u)" -ne 0 ]; then
    if sudo -n true 2>/dev/null; then sudo="sudo -n"; else echo "setup-slurm: needs root or password-less sudo; Slurm tests will skip"; exit 1; fi
fi
state=/var/lib/semples-slurm
conf=/etc/slurm/slurm.conf
marker="# written by semples scripts/setup-slurm.sh"

if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
    echo "setup-slurm: installing slurm-wlm and munge"
    export DEBIAN_FRONTEND=noninteractive
    { $sudo apt-get update -qq && $sudo apt-get install -y -qq slurm-wlm munge >/dev/null; } || { echo "setup-slurm: apt-get failed"; exit 1; }
fi

host=$(hostname -s)
if [ ! -e "$conf" ] || grep -qF "$marker" "$conf"; then
    $sudo mkdir -p /etc/slurm "$state/ctld" "$state/d" "$state/log"
    cat <<CONF | $sudo tee "$conf.new" >/dev/null
$marker: a one-node cluster on loopback.
ClusterName=semples
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmctldPort=6817
SlurmdPort=6818
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
ReturnToService=2
MinJobAge=600
SchedulerParameters=sched_interval=2
StateSaveLocation=$state/ctld
SlurmdSpoolDir=$state/d
SlurmctldPidFile=$state/slurmctld.pid
SlurmdPidFile=$state/slurmd.pid
SlurmctldLogFile=$state/log/slurmctld.log
SlurmdLogFile=$state/log/slurmd.log
NodeName=$host NodeAddr=127.0.0.1 CPUs=$(nproc) State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
    if ! cmp -s "$conf.new" "$conf" 2>/dev/null; then $sudo mv "$conf.new" "$conf"; changed=1; else $sudo rm -f "$conf.new"; changed=0; fi
else
    echo "setup-slurm: $conf was not written by this script; using it as it is"
    changed=0
fi

alive() { [ -s "$1" ] && $sudo kill -0 "$(cat "$1")" 2>/dev/null; }

# munge: its key comes with the package; the socket folder must belong to munge.
$sudo mkdir -p /run/munge && $sudo chown munge:munge /run/munge && $sudo chmod 0755 /run/munge
[ -s /etc/munge/munge.key ] || $sudo -u munge /usr/sbin/mungekey --create 2>/dev/null || $sudo runuser -u munge -- /usr/sbin/mungekey --create
if ! munge -n </dev/null >/dev/null 2>&1; then
    $sudo runuser -u munge -- /usr/sbin/munged --force || { echo "setup-slurm: munged did not start"; exit 1; }
    sleep 0.5
fi

if [ "$changed" = 1 ] && alive "$state/slurmctld.pid"; then $sudo scontrol reconfigure >/dev/null 2>&1 || true; fi
alive "$state/slurmctld.pid" || $sudo /usr/sbin/slurmctld || { echo "setup-slurm: slurmctld did not start (see $state/log/slurmctld.log)"; exit 1; }
alive "$state/slurmd.pid" || $sudo /usr/sbin/slurmd || { echo "setup-slurm: slurmd did not start (see $state/log/slurmd.log)"; exit 1; }

for _ in $(seq 1 60); do
    node=$(sinfo -h -N -o %t 2>/dev/null | head -n 1)
    case "$node" in
        idle|mix|alloc|comp) echo "setup-slurm: Slurm is up (node $host $node)"; exit 0 ;;
        down*|drain*|drng*|fail*) $sudo scontrol update nodename="$host" state=resume >/dev/null 2>&1 || true ;;
    esac
    sleep 0.5
done
echo "setup-slurm: the node did not become ready (sinfo: '${node:-no answer}'; see $state/log/)"
exit 1
