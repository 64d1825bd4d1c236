#!/usr/bin/env bash
# Start a single-node SLURM cluster on this machine (munged, slurmctld and slurmd as plain
# daemons, no systemd), for running the workflow with `--profile profiles/slurm` and for its
# test. Run as root. Idempotent: a cluster already up with the same configuration is left alone.
#
#   tools/slurm/start-cluster.sh          # installs slurm-wlm and munge with apt-get if missing
#
# Stop it with tools/slurm/stop-cluster.sh.
#
# Settings (environment): ACCORD_SLURM_STATE (state, logs and pid files; default
# /var/lib/accord-slurm), ACCORD_SLURM_PARTITION (default "main"), ACCORD_SLURM_WAIT (seconds to
# wait for the node to become idle; default 60).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
state="${ACCORD_SLURM_STATE:-/var/lib/accord-slurm}"
partition="${ACCORD_SLURM_PARTITION:-main}"
wait_seconds="${ACCORD_SLURM_WAIT:-60}"
conf=/etc/slurm/slurm.conf

say() { echo "start-cluster: $*"; }
die() { echo "start-cluster: $*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "run as root (the daemons and the packages need it)"

if ! command -v slurmctld >/dev/null 2>&1 || ! command -v munged >/dev/null 2>&1; then
    command -v apt-get >/dev/null 2>&1 || die "install slurm-wlm and munge (no apt-get here)"
    say "installing slurm-wlm and munge"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq slurm-wlm munge >/dev/null
fi

running() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

# munge: the key, then the daemon as the munge user.
mkdir -p /etc/munge /run/munge /var/lib/munge /var/log/munge
if [ ! -s /etc/munge/munge.key ]; then
    say "creating the munge key"
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
fi
if id munge >/dev/null 2>&1; then
    chown munge:munge /etc/munge /etc/munge/munge.key /run/munge /var/lib/munge /var/log/munge
fi
chmod 0700 /etc/munge
chmod 0400 /etc/munge/munge.key
chmod 0755 /run/munge
if ! running /run/munge/munged.pid; then
    say "starting munged"
    if id munge >/dev/null 2>&1; then
        runuser -u munge -- munged
    else
        munged --force
    fi
fi

# slurm.conf from the template, with this machine's name, CPUs and memory.
host="$(hostname -s)"
node="$(slurmd -C | head -n 1)"
case "$node" in NodeName=*) ;; *) die "could not read the node's hardware from 'slurmd -C'" ;; esac
node="NodeName=${host} ${node#NodeName=* }"
mkdir -p /etc/slurm "$state/ctld" "$state/d"
new="$(mktemp)"
sed -e "s|@HOST@|${host}|g" -e "s|@STATE@|${state}|g" -e "s|@NODE@|${node}|g" \
    -e "s|@NODENAME@|${host}|g" -e "s|@PARTITION@|${partition}|g" \
    "$here/slurm.conf.in" >"$new"
changed=0
if ! cmp -s "$new" "$conf"; then
    say "writing $conf"
    install -m 0644 "$new" "$conf"
    changed=1
fi
rm -f "$new"

if [ "$changed" -eq 1 ]; then
    for daemon in slurmd slurmctld; do
        if running "$state/$daemon.pid"; then
            say "stopping $daemon (the configuration changed)"
            kill "$(cat "$state/$daemon.pid")"
            for _ in $(seq 1 50); do running "$state/$daemon.pid" || break; sleep 0.2; done
        fi
    done
fi
if ! running "$state/slurmctld.pid"; then
    say "starting slurmctld"
    slurmctld
fi
if ! running "$state/slurmd.pid"; then
    say "starting slurmd"
    slurmd
fi

# Wait until the node takes jobs; a node left down or drained by an earlier run is resumed.
for _ in $(seq 1 "$wait_seconds"); do
    node_state="$(sinfo --noheader --nodes="$host" --format=%t 2>/dev/null | head -n 1 || true)"
    case "$node_state" in
        idle | mix | alloc) say "node $host is $node_state in partition $partition"; exit 0 ;;
        down* | drain* | drng*) scontrol update nodename="$host" state=resume 2>/dev/null || true ;;
    esac
    sleep 1
done
die "node $host did not become idle within ${wait_seconds}s; see $state/slurmctld.log and $state/slurmd.log"
