#!/usr/bin/env bash
# Build the openbis-hub images: the base (if it cannot be had otherwise), the
# hub and the single-user image.  Used by admins and by CI.
#
#   docker/build.sh [hub|singleuser|base]...     (default: all)
#
# Environment:
#   OPENBIS_HUB_IMAGE           hub image tag         (default openbis-hub:latest)
#   OPENBIS_HUB_NOTEBOOK_IMAGE  single-user image tag (default openbis-hub-singleuser:latest)
#   BASE_IMAGE                  base image            (default debian:bookworm-slim)
#   DOCKER_BUILD_ARGS           extra `docker build` arguments, e.g. "--no-cache"
#   DOCKER_BUILD_NETWORK        network for RUN steps (default host: reaches the
#                               package mirrors the way the host does)
#   BUILD_LOG_DIR               where the build logs go (default /tmp)
set -euo pipefail
cd "$(dirname "$0")/.."

HUB_IMAGE="${OPENBIS_HUB_IMAGE:-openbis-hub:latest}"
NOTEBOOK_IMAGE="${OPENBIS_HUB_NOTEBOOK_IMAGE:-openbis-hub-singleuser:latest}"
BASE_IMAGE="${BASE_IMAGE:-debian:bookworm-slim}"
NETWORK="${DOCKER_BUILD_NETWORK:-host}"
targets=("$@")
[[ ${#targets[@]} -eq 0 ]] && targets=(base hub singleuser)

log() { echo "build.sh: $*" >&2; }

build() {  # build <dockerfile> <tag>
    local start=$SECONDS logfile
    logfile="${BUILD_LOG_DIR:-/tmp}/openbis-hub-build-$(basename "$(dirname "$1")").log"
    log "building $2 from $1 (log: $logfile)"
    # shellcheck disable=SC2086
    if ! docker build --force-rm --network "$NETWORK" --build-arg BASE_IMAGE="$BASE_IMAGE" \
        -f "$1" -t "$2" ${DOCKER_BUILD_ARGS:-} . >"$logfile" 2>&1; then
        tail -n 60 "$logfile" >&2
        log "building $2 failed; the whole log is in $logfile"
        exit 1
    fi
    log "$2: $(docker image inspect --format '{{.Size}}' "$2" | awk '{printf "%.0f MB", $1/1e6}') in $((SECONDS - start)) s"
}

for target in "${targets[@]}"; do
    case "$target" in
        base)
            if ! docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
                if docker pull "$BASE_IMAGE" >/dev/null 2>&1; then
                    log "pulled $BASE_IMAGE"
                else
                    log "cannot pull $BASE_IMAGE: making it with debootstrap"
                    BASE_IMAGE="$BASE_IMAGE" docker/build-base-image.sh
                fi
            fi ;;
        hub) build docker/hub/Dockerfile "$HUB_IMAGE" ;;
        singleuser) build docker/singleuser/Dockerfile "$NOTEBOOK_IMAGE" ;;
        *) log "unknown target $target (hub, singleuser or base)"; exit 2 ;;
    esac
done
