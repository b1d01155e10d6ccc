#!/usr/bin/env bash
# Build the CPU (or CUDA) image from ./Dockerfile and run make targets inside it, on a machine
# with no Docker engine and no image registry (this project's machines and CI): `make docker-test`
# (`make docker-test VARIANT=cuda`: the CUDA image, Debian 12 with NVIDIA's CUDA 13.0 wheels from
# PyPI, Caffe compiled for DOCKER_CUDA_ARCH; no GPU is needed to build it or to run its CPU tests).
#
#   1. base  : the Dockerfile's pinned Debian 12 name, made here by debootstrap of the same suite
#              and imported into podman's image store (kept: made once per machine).
#   2. build : buildah bud --isolation=chroot --pull=never, with build-layer caching, so a rebuild
#              after a change to the toolkit's sources reuses the Caffe layer.
#   3. run   : a working container of the image (buildah from), then each target of
#              DOCKER_TEST_TARGETS through `buildah run` (podman run cannot set rlimits here).
#              A target the image's Makefile lacks is reported and skipped.
#
# Environment (all optional; the Makefile passes them):
#   VARIANT               cpu (default) | cuda
#   DOCKER_IMAGE          tag to build (default dri-hep2:$VARIANT)
#   DOCKER_CUDA_ARCH      CUDA_ARCH of the CUDA image (default 90: one arch keeps the test build
#                         short; the image's own default is the toolkit's list)
#   DOCKER_TEST_TARGETS   make targets to run inside (default "test demo")
#   DOCKER_CA             CA bundle passed as the build secret `hostca`, for networks that
#                         re-sign TLS (default: the system bundle, when it exists)
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"

VARIANT=${VARIANT:-cpu}
IMAGE=${DOCKER_IMAGE:-dri-hep2:$VARIANT}
TARGETS=${DOCKER_TEST_TARGETS:-test demo}
case "$VARIANT" in
  cpu) build_args=() ;;
  cuda) build_args=(--build-arg CUDA=1 --build-arg "CUDA_ARCH=${DOCKER_CUDA_ARCH:-90}") ;;
  *) echo "[docker_test] error: VARIANT must be cpu or cuda (got '$VARIANT')" >&2; exit 2 ;;
esac
CA=${DOCKER_CA:-/etc/ssl/certs/ca-certificates.crt}

say() { printf '[docker_test] %s\n' "$*"; }
die() { printf '[docker_test] error: %s\n' "$*" >&2; exit 1; }
declare -a timings=()
phase_start=0
begin() { say "$1"; phase_start=$(date +%s); }
end() { timings+=("$(printf '%-28s %5d s' "$1" $(( $(date +%s) - phase_start )))"); }
report() {
  [ ${#timings[@]} -gt 0 ] || return 0
  say "timings:"
  printf '    %s\n' "${timings[@]}"
}

# The container tools, installed as build_caffe.sh installs Caffe's dependencies: by apt-get
# as root (CI on a fresh machine), otherwise the exact command is printed.
missing=()
for tool in buildah podman debootstrap; do command -v "$tool" >/dev/null || missing+=("$tool"); done
if [ ${#missing[@]} -gt 0 ]; then
  cmd="apt-get install -y --no-install-recommends ${missing[*]}"
  [ "$(id -u)" -eq 0 ] || die "missing ${missing[*]}. Run as root:  sudo apt-get update && sudo $cmd"
  say "installing ${missing[*]}"
  apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive $cmd >/dev/null
fi

# The base named by the Dockerfile's default BASE_IMAGE, fully qualified as Docker would pull it.
base=$(sed -n 's/^ARG BASE_IMAGE=//p' Dockerfile)
[ -n "$base" ] || die "no 'ARG BASE_IMAGE=' in Dockerfile"
case "$base" in */*) ;; *) base="docker.io/library/$base" ;; esac
suite=${base##*:}; suite=${suite%%-*}        # debian:bookworm-20251117-slim -> bookworm

ctr=""
rootfs=""
cleanup() {
  [ -z "$ctr" ] || buildah rm "$ctr" >/dev/null 2>&1 || true
  [ -z "$rootfs" ] || rm -rf "$rootfs"
  report
}
trap cleanup EXIT

# --- 1. base ---------------------------------------------------------------------------------
if podman image exists "$base"; then
  say "base $base: present"
else
  begin "base $base: debootstrap --variant=minbase $suite"
  rootfs=$(mktemp -d "${TMPDIR:-/var/tmp}/dri-base.XXXXXX")
  debootstrap --variant=minbase "$suite" "$rootfs" http://deb.debian.org/debian > "$rootfs.log" 2>&1 \
    || { tail -n 20 "$rootfs.log" >&2; die "debootstrap failed"; }
  rm -f "$rootfs.log"
  # The same apt sources as Debian's published image: the suite, its updates and security.
  rm -f "$rootfs/etc/apt/sources.list"
  cat > "$rootfs/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: http://deb.debian.org/debian
Suites: $suite $suite-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: $suite-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  tar -C "$rootfs" -c . | podman import -q - "$base" >/dev/null
  end "base (debootstrap + import)"
fi

# --- 2. build --------------------------------------------------------------------------------
secret=()
[ -s "$CA" ] && secret=(--secret "id=hostca,src=$CA")
begin "build $IMAGE (buildah bud --isolation=chroot)"
buildah bud --isolation=chroot --pull=never --layers "${secret[@]}" "${build_args[@]}" -t "$IMAGE" . \
  || die "image build failed"
end "image build"
say "image size: $(podman image inspect --format '{{.Size}}' "$IMAGE" | numfmt --to=iec)"

# --- 3. run the targets inside ------------------------------------------------------------------
ctr=$(buildah from --pull=never "$IMAGE")
for target in $TARGETS; do
  if ! buildah run --isolation=chroot "$ctr" -- grep -q "^$target:" Makefile; then
    say "make $target: no such target in the image's Makefile, skipped"
    continue
  fi
  begin "make $target (inside $IMAGE)"
  buildah run --isolation=chroot "$ctr" -- make "$target" || die "make $target failed inside $IMAGE"
  end "make $target in container"
done
say "ok: $IMAGE built and passed: $TARGETS"
