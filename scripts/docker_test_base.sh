#!/usr/bin/env bash
# What tests/test_docker.py builds on where Docker Hub and package indexes are out of a build container's reach:
#   1. a stand-in for python:3.11-slim: a Debian bookworm minimal root (python3 = 3.11, python3-venv, passwd)
#      made with debootstrap, cached as $DIR/bookworm-py311.tar and imported as $LOPT_TEST_BASE;
#   2. a wheel folder, $DIR/wheels, filled with `pip download` by this machine's own pip configuration
#      (the same sources `pip install torch==2.13.0` uses here, so torch is the same CPU build).
# Both are skipped when already there, so a second run costs seconds. Exit 1: the LAST line says why.
# $DIR is LOPT_DOCKER_CACHE (default ~/.cache/lopt-docker): outside the checkout, so a fresh clone on the same
# machine (CI) finds them too.
# Env: LOPT_TEST_BASE (default lopt-test-base:bookworm), PY (default .venv/bin/python), DEBIAN_MIRROR.
set -uo pipefail
cd "$(dirname "$0")/.."
BASE=${LOPT_TEST_BASE:-lopt-test-base:bookworm}
PY=${PY:-.venv/bin/python}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
DIR=${LOPT_DOCKER_CACHE:-$HOME/.cache/lopt-docker}
TAR=$DIR/bookworm-py311.tar
WHEELS=$DIR/wheels
fail() { echo "$*"; exit 1; }
mkdir -p "$DIR"

if ! docker image inspect "$BASE" >/dev/null 2>&1; then
  if [ ! -s "$TAR" ]; then
    command -v debootstrap >/dev/null 2>&1 || fail "debootstrap is not installed"
    ROOT=$(mktemp -d /tmp/lopt-bookworm.XXXXXX)
    echo "debootstrap bookworm into $ROOT ..."
    debootstrap --variant=minbase --include=python3,python3-venv,passwd \
      bookworm "$ROOT" "$MIRROR" >"$DIR/debootstrap.log" 2>&1 \
      || { rm -rf "$ROOT"; fail "debootstrap failed: $(tail -1 "$DIR/debootstrap.log")"; }
    ver=$(chroot "$ROOT" python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')
    [ "$ver" = 3.11 ] || { rm -rf "$ROOT"; fail "debootstrap's python3 is $ver, the wheels need 3.11"; }
    rm -rf "$ROOT"/var/cache/apt/archives/*.deb "$ROOT"/var/lib/apt/lists/*
    ln -sf python3 "$ROOT/usr/bin/python"       # python:3.11-slim answers to `python` too
    chmod 755 "$ROOT"                           # mktemp made it 0700: uid 1000 could not reach /bin/sh
    tar -C "$ROOT" -cf "$TAR.tmp" . && mv "$TAR.tmp" "$TAR"
    rm -rf "$ROOT"
  fi
  docker import -c 'CMD ["python3"]' "$TAR" "$BASE" >/dev/null || fail "docker import of $TAR failed"
  echo "imported $BASE"
fi

STAMP=$(cat requirements.txt requirements-offline.txt | sha256sum | cut -c1-16)
if [ "$(cat "$WHEELS/.complete" 2>/dev/null)" != "$STAMP" ]; then
  echo "pip download into $WHEELS ..."
  "$PY" -m pip download -q -d "$WHEELS" --only-binary=:all: -r requirements.txt >"$DIR/pip-download.log" 2>&1 \
    && "$PY" -m pip download -q -d "$WHEELS" --no-deps -r requirements-offline.txt >>"$DIR/pip-download.log" 2>&1 \
    || fail "pip download failed: $(tail -1 "$DIR/pip-download.log")"
  ls "$WHEELS" | grep -q '^torch-.*+cpu' || fail "pip download did not take torch's CPU build: $(ls "$WHEELS" | grep '^torch-')"
  echo "$STAMP" >"$WHEELS/.complete"
fi
echo "base $BASE and wheels $WHEELS ready"
