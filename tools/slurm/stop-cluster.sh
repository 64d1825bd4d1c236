#!/usr/bin/env bash
# Stop the single-node cluster started by tools/slurm/start-cluster.sh (slurmd, slurmctld and
# munged, by their pid files). Jobs still running are left to be killed with their slurmd.
set -euo pipefail
state="${ACCORD_SLURM_STATE:-/var/lib/accord-slurm}"
for pidfile in "$state/slurmd.pid" "$state/slurmctld.pid" /run/munge/munged.pid; do
    if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
        echo "stop-cluster: stopping $(basename "$pidfile" .pid)"
        kill "$(cat "$pidfile")"
    fi
done
