#!/usr/bin/env bash
# Build a local stand-in for the `debian:bookworm-slim` base image with
# debootstrap + `docker import`, for sites (and CI) that cannot pull from a
# registry.  Everything else builds from the Dockerfiles unchanged.
#
#   docker/build-base-image.sh [--force]
#
# Environment:
#   BASE_IMAGE     tag to produce                (default: debian:bookworm-slim)
#   DEBIAN_MIRROR  mirror for debootstrap        (default: the host's first
#                  Debian mirror from /etc/apt, else http://deb.debian.org/debian)
#   CA_BUNDLE      a PEM CA bundle to carry into the image, e.g. the bundle of
#                  a TLS-inspecting proxy (default: the host's
#                  /etc/ssl/certs/ca-certificates.crt when it exists; set it
#                  to "" to carry none).  It is installed as
#                  /usr/local/share/ca-certificates/site-bundle.crt, so
#                  `update-ca-certificates` keeps it, and as
#                  /etc/ssl/certs/ca-certificates.crt for tools used before
#                  the ca-certificates package is installed.
#
# If the tag already exists the script does nothing (pass --force to rebuild).
set -euo pipefail

BASE_IMAGE="${BASE_IMAGE:-debian:bookworm-slim}"
SUITE=bookworm
FORCE=0
[[ "${1:-}" == "--force" ]] && FORCE=1

log() { echo "build-base-image: $*" >&2; }

if [[ $FORCE == 0 ]] && docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
    log "$BASE_IMAGE already present, nothing to do (use --force to rebuild)"
    exit 0
fi

if [[ $FORCE == 0 ]] && [[ "${TRY_PULL:-0}" == 1 ]] && docker pull "$BASE_IMAGE" >/dev/null 2>&1; then
    log "pulled $BASE_IMAGE from the registry"
    exit 0
fi

command -v debootstrap >/dev/null || { log "debootstrap is not installed (apt-get install debootstrap)"; exit 1; }

host_mirror() {
    # the first non-security Debian URI configured for apt on this host
    local uri
    uri=$(grep -hsE '^(URIs:|deb )' /etc/apt/sources.list /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list 2>/dev/null \
        | grep -oE 'https?://[^ ]+/debian/?' | grep -v security | head -n1 || true)
    echo "${uri:-http://deb.debian.org/debian}"
}
DEBIAN_MIRROR="${DEBIAN_MIRROR:-$(host_mirror)}"
DEBIAN_MIRROR="${DEBIAN_MIRROR%/}"
if [[ -z "${CA_BUNDLE+set}" ]] && [[ -f /etc/ssl/certs/ca-certificates.crt ]]; then
    CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt
fi
CA_BUNDLE="${CA_BUNDLE:-}"

rootfs=$(mktemp -d /tmp/openbis-hub-rootfs.XXXXXX)
trap 'rm -rf "$rootfs"' EXIT

log "debootstrap --variant=minbase $SUITE from $DEBIAN_MIRROR"
debootstrap --variant=minbase "$SUITE" "$rootfs" "$DEBIAN_MIRROR" >"$rootfs.log" 2>&1 || {
    tail -n 30 "$rootfs.log" >&2; rm -f "$rootfs.log"; exit 1; }
rm -f "$rootfs.log"

# apt sources like the official image (deb822), pointing at the same mirror
rm -f "$rootfs/etc/apt/sources.list"
security_mirror="${DEBIAN_MIRROR%/debian}/debian-security"
cat >"$rootfs/etc/apt/sources.list.d/debian.sources" <<SOURCES
Types: deb
URIs: $DEBIAN_MIRROR
Suites: $SUITE $SUITE-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $security_mirror
Suites: $SUITE-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SOURCES

# slim it down the way the official -slim image does: no docs, man pages, locales
cat >"$rootfs/etc/dpkg/dpkg.cfg.d/docker-slim" <<'DPKG'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
DPKG
cat >"$rootfs/etc/apt/apt.conf.d/docker-clean" <<'APT'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
Acquire::Languages "none";
APT
find "$rootfs/usr/share/doc" -mindepth 2 -not -name copyright -not -type d -delete 2>/dev/null || true
rm -rf "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* "$rootfs"/usr/share/locale/* \
       "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/* "$rootfs"/var/log/*.log \
       "$rootfs"/tmp/* "$rootfs"/root/.cache
: >"$rootfs/etc/hostname"
: >"$rootfs/etc/resolv.conf"

if [[ -n "$CA_BUNDLE" ]]; then
    [[ -r "$CA_BUNDLE" ]] || { log "CA_BUNDLE=$CA_BUNDLE is not readable"; exit 1; }
    log "carrying CA bundle $CA_BUNDLE"
    install -D -m 0644 "$CA_BUNDLE" "$rootfs/usr/local/share/ca-certificates/site-bundle.crt"
    install -D -m 0644 "$CA_BUNDLE" "$rootfs/etc/ssl/certs/ca-certificates.crt"
fi

log "importing as $BASE_IMAGE"
tar -C "$rootfs" --numeric-owner -c . | docker import \
    --change 'CMD ["bash"]' \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --message "debootstrap --variant=minbase $SUITE ($DEBIAN_MIRROR)" \
    - "$BASE_IMAGE" >/dev/null
log "done: $(docker image inspect --format '{{.Size}}' "$BASE_IMAGE" | awk '{printf "%.0f MB", $1/1e6}')"
