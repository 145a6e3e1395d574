#!/usr/bin/env bash
# Make a Docker daemon answer for tests/test_docker.py: use the one already running, else (as root) install
# Debian's docker.io + debootstrap when missing and start dockerd with the settings that work on a machine
# without a bridge or iptables (--iptables=false --bridge=none: builds use the host's network, containers none).
# Storage: overlay2 where the daemon accepts it (the image's layers are shared, not copied: measured 17 min for
# the test on vfs under load), else vfs, which works everywhere. LOPT_DOCKER_STORAGE=vfs forces one.
# Exit 0: `docker info` answers. Exit 1: the LAST line of output says why (the test's skip message).
# Env: LOPT_DOCKER_LOG (default ~/.cache/lopt-docker/dockerd.log), LOPT_DOCKER_WAIT_S (default 60).
set -uo pipefail
cd "$(dirname "$0")/.."
LOG=${LOPT_DOCKER_LOG:-${LOPT_DOCKER_CACHE:-$HOME/.cache/lopt-docker}/dockerd.log}
WAIT=${LOPT_DOCKER_WAIT_S:-60}
fail() { echo "$*"; exit 1; }

docker info >/dev/null 2>&1 && { echo "docker daemon: already running"; exit 0; }

if ! command -v dockerd >/dev/null 2>&1 || ! command -v debootstrap >/dev/null 2>&1; then
  [ "$(id -u)" = 0 ] || fail "docker.io/debootstrap not installed and not root to install them"
  command -v apt-get >/dev/null 2>&1 || fail "docker.io/debootstrap not installed and no apt-get to install them"
  echo "installing docker.io debootstrap with apt-get ..."
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io debootstrap) \
    >/tmp/lopt-apt-docker.log 2>&1 \
    || fail "apt-get install docker.io debootstrap failed: $(tail -1 /tmp/lopt-apt-docker.log)"
fi
command -v dockerd >/dev/null 2>&1 || fail "dockerd not found after installing docker.io"
[ "$(id -u)" = 0 ] || fail "dockerd is not running and starting it needs root"

mkdir -p "$(dirname "$LOG")"
PIDFILE="$(dirname "$LOG")/dockerd.pid"
start() {  # start dockerd with storage driver $1; 0 once `docker info` answers
  # setsid: the daemon outlives this script and the test process; the test stops it by the pid printed here
  setsid dockerd --storage-driver="$1" --iptables=false --bridge=none >"$LOG" 2>&1 </dev/null &
  echo $! >"$PIDFILE"
  for _ in $(seq "$WAIT"); do
    docker info >/dev/null 2>&1 && { echo "docker daemon: started (pid $(cat "$PIDFILE"), $1)"; return 0; }
    kill -0 "$(cat "$PIDFILE")" 2>/dev/null || return 1
    sleep 1
  done
  kill "$(cat "$PIDFILE")" 2>/dev/null; sleep 2; return 1
}
for driver in ${LOPT_DOCKER_STORAGE:-overlay2 vfs}; do
  start "$driver" && exit 0
  echo "dockerd --storage-driver=$driver did not start: $(grep -iE 'level=(error|fatal)|failed' "$LOG" | tail -1 | cut -c1-300)"
done
fail "dockerd did not start: $(grep -iE 'level=(error|fatal)|failed' "$LOG" | tail -1 | cut -c1-300)"
