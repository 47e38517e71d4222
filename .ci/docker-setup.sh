#!/usr/bin/env bash
# Make a Docker engine and the openbis-hub images available, for the `docker`
# tests (tests/test_docker.py).  Called by .ci/run; safe to run again (every
# step is skipped when already done, and image builds reuse Docker's layer cache).
#
# Prints one line per step on stderr; exits non-zero when there is no engine
# in the end.  Environment:
#   DOCKERD_LOG   where a dockerd started here logs (default /tmp/openbis-hub-dockerd.log)
#   SKIP_BUILD=1  only install and start the engine
set -euo pipefail
cd "$(dirname "$0")/.."

log() { echo "docker-setup: $*" >&2; }
DOCKERD_LOG="${DOCKERD_LOG:-/tmp/openbis-hub-dockerd.log}"
start=$SECONDS

# 1. packages: the engine, compose (Debian bookworm has compose 1.29, used
#    when the v2 plugin is not there) and debootstrap for the base image
need=()
command -v dockerd >/dev/null || need+=(docker.io)
command -v docker >/dev/null || need+=(docker.io)
{ docker compose version >/dev/null 2>&1 || command -v docker-compose >/dev/null; } || need+=(docker-compose)
command -v debootstrap >/dev/null || need+=(debootstrap)
if [[ ${#need[@]} -gt 0 ]]; then
    log "apt-get install ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# 2. the engine
if ! docker version >/dev/null 2>&1; then
    log "starting dockerd (log: $DOCKERD_LOG)"
    # a fresh process group, so it outlives this script and CI can stop it by pid
    setsid dockerd >"$DOCKERD_LOG" 2>&1 < /dev/null &
    echo $! >/tmp/openbis-hub-dockerd.pid
    for _ in $(seq 1 60); do
        docker version >/dev/null 2>&1 && break
        sleep 1
    done
fi
if ! docker version >/dev/null 2>&1; then
    log "no Docker engine answers; last lines of $DOCKERD_LOG:"
    tail -n 20 "$DOCKERD_LOG" >&2 || true
    exit 1
fi
log "Docker engine $(docker version --format '{{.Server.Version}}') answers"

# 3. the images (base from debootstrap when it cannot be pulled)
if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
    docker/build.sh base hub singleuser
fi
log "done in $((SECONDS - start)) s"
