#!/usr/bin/env bash
# Stop the single-node cluster started by tools/slurm/start-cluster.sh (slurmd, slurmctld and
# munged, by their pid files). Jobs still running are left to be killed with their slurmd.
#
# The slurm.conf that start-cluster.sh wrote is moved into the state folder: with SLURM's
# commands installed, a configuration naming a controller that is not running makes every
# `scontrol` wait about ten seconds for it, and the SLURM executor plugin calls `scontrol` each
# time Snakemake starts, also for a local run. start-cluster.sh writes it again.
set -euo pipefail
state="${ACCORD_SLURM_STATE:-/var/lib/accord-slurm}"
conf=/etc/slurm/slurm.conf
for pidfile in "$state/slurmd.pid" "$state/slurmctld.pid" /run/munge/munged.pid; do
    if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
        echo "stop-cluster: stopping $(basename "$pidfile" .pid)"
        kill "$(cat "$pidfile")"
    fi
done
if [ -f "$conf" ] && grep -q "^# Written by tools/slurm/start-cluster.sh" "$conf"; then
    echo "stop-cluster: moving $conf to $state/slurm.conf"
    mkdir -p "$state"
    mv "$conf" "$state/slurm.conf"
fi
