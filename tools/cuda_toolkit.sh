#!/usr/bin/env bash
# Find or make the CUDA toolkit that tools/build_caffe.sh compiles Caffe with; print what it is.
#
# Two routes (docs/gpu.md):
#   system  a complete CUDA toolkit already on the machine: $CUDA_HOME, $CUDA_PATH, the toolkit
#           of the `nvcc` on PATH, or /usr/local/cuda. "Complete" means nvcc, cublas_v2.h,
#           curand.h, libcublas and libcurand: Caffe needs all five, and a partial install (an
#           nvcc from pip, say) would only fail half-way through the compile.
#   pypi    otherwise: NVIDIA's CUDA 13.0 wheels pinned with their sha256 in
#           tools/cuda-wheels.txt, downloaded once by pip (--require-hashes --no-deps) into
#           $CUDA_CACHE/13.0/wheels and laid out as a toolkit root in $CUDA_CACHE/13.0/root.
#           No NVIDIA apt repository and no Docker registry are needed (ASSUMPTIONS.md B5).
#
# Output (stdout, one key=value a line; messages go to stderr):
#   route=system|pypi  root=<CUDA_TOOLKIT_ROOT_DIR>  version=<nvcc release, e.g. 13.0.88>
#   major=<13>  archs=<checked arch list>  nccl=0|1  nccl_include=<dir>  nccl_library=<file>
#   toolkit_id=<hash of what the toolkit is: versions, wheel pins>
#
# Environment:
#   CUDA_ROUTE   auto (default) | system | pypi
#   CUDA_ARCH    compute capabilities, e.g. "80 90"; empty: the default of the toolkit's major
#                version (12: 60 61 70 75 80 86 89 90; 13: 75 80 86 89 90 100 120; B3)
#   CUDA_HOME    a system toolkit to use (checked for completeness like the others)
#   CUDA_CACHE   where the PyPI toolkit is kept (default ${XDG_CACHE_HOME:-~/.cache}/dri-hep2/cuda)
#   PYTHON       a Python with pip for the download (default .venv/bin/python, else python3)
#   CUDA_KEEP_WHEELS  1 (default) keeps the downloaded wheels beside the root; 0 deletes them
#                (the container image keeps only the root)
set -euo pipefail

usage() {
  sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//'
  echo "usage: tools/cuda_toolkit.sh [--route auto|system|pypi] [--arch \"80 90\"] [--help]"
}

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ROUTE=${CUDA_ROUTE:-auto}
ARCHS=${CUDA_ARCH:-}
while [ $# -gt 0 ]; do
  case "$1" in
    --route) ROUTE=$2; shift 2 ;;
    --arch) ARCHS=$2; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
  esac
done
CUDA_CACHE=${CUDA_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/dri-hep2/cuda}
WHEELS_TXT=$repo/tools/cuda-wheels.txt
PYPI_VERSION=13.0        # the CUDA release tools/cuda-wheels.txt pins
KEEP_WHEELS=${CUDA_KEEP_WHEELS:-1}

say() { printf '[cuda_toolkit] %s\n' "$*" >&2; }
die() { printf '[cuda_toolkit] error: %s\n' "$*" >&2; exit 1; }

# --- completeness of a toolkit root ------------------------------------------------------------
# Prints what is missing from root $1 (nothing when complete).
missing_in() {
  local r=$1 miss=() f d found
  [ -x "$r/bin/nvcc" ] || miss+=("bin/nvcc")
  for f in cublas_v2.h curand.h; do
    [ -f "$r/include/$f" ] || [ -f "$r/targets/x86_64-linux/include/$f" ] || miss+=("$f")
  done
  for f in libcublas libcurand; do
    found=0
    for d in lib64 lib targets/x86_64-linux/lib; do
      compgen -G "$r/$d/$f.so*" >/dev/null && found=1 && break
    done
    [ $found = 1 ] || miss+=("$f.so")
  done
  echo "${miss[*]}"
}

# The root of the nvcc on PATH, as nvcc itself reports it (`/usr/local/bin/nvcc` may be a
# wrapper script that execs the real one elsewhere).
nvcc_root() {
  command -v nvcc >/dev/null || return 0
  local top
  top=$(nvcc -dryrun -v -c /dev/null -x cu -o /dev/null 2>&1 | sed -n 's/^#\$ TOP=//p' | head -n1)
  [ -n "$top" ] && (cd "$top" 2>/dev/null && pwd -P) || true
}

find_system() {
  local c miss seen=" "
  for c in "${CUDA_HOME:-}" "${CUDA_PATH:-}" "$(nvcc_root)" /usr/local/cuda; do
    [ -n "$c" ] && [ -d "$c" ] || continue
    c=$(cd "$c" && pwd -P)
    case "$seen" in *" $c "*) continue ;; esac
    seen="$seen$c "
    miss=$(missing_in "$c")
    if [ -z "$miss" ]; then echo "$c"; return 0; fi
    say "system CUDA at $c is incomplete (no $miss): not used"
  done
  return 0
}

# --- the PyPI route ----------------------------------------------------------------------------
pypi_root() {
  local base=$CUDA_CACHE/$PYPI_VERSION root want py tmp w
  root=$base/root
  want=$(grep -v '^#' "$WHEELS_TXT" | sha256sum | cut -c1-16)
  if [ -f "$root/TOOLKIT_OK" ] && grep -qx "wheels=$want" "$root/TOOLKIT_OK"; then
    echo "$root"; return 0
  fi
  py=${PYTHON:-}
  [ -n "$py" ] || { [ -x "$repo/.venv/bin/python" ] && py=$repo/.venv/bin/python || py=python3; }
  "$py" -m pip --version >/dev/null 2>&1 \
    || die "no pip for $py: run 'make venv' (or set PYTHON= to a Python with pip) to fetch CUDA from PyPI"
  mkdir -p "$base"
  # One maker at a time (CI and an image build may share a cache); the loser finds it made.
  exec 9>"$base/.lock"
  flock 9
  if [ -f "$root/TOOLKIT_OK" ] && grep -qx "wheels=$want" "$root/TOOLKIT_OK"; then
    echo "$root"; return 0
  fi
  say "fetching NVIDIA's CUDA $PYPI_VERSION wheels from PyPI (about 840 MB, pinned by sha256 in tools/cuda-wheels.txt)"
  "$py" -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: \
      --require-hashes -r "$WHEELS_TXT" -d "$base/wheels" >&2 \
    || die "pip download of tools/cuda-wheels.txt failed (network? a proxy's CA: set PIP_CERT); nothing was installed"
  say "unpacking into $root"
  tmp=$(mktemp -d "$base/root.tmp.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  for w in $(grep -v '^#' "$WHEELS_TXT" | sed -n 's/^\([A-Za-z0-9_.-]*\)==\([^ ]*\).*/\1 \2/p' | tr ' ' '@'); do
    # pip normalises names in file names: nvidia-cuda-nvcc 13.0.88 -> nvidia_cuda_nvcc-13.0.88-*.whl
    f=$(compgen -G "$base/wheels/$(echo "${w%@*}" | tr '-' '_')-${w#*@}-*.whl" | head -n1)
    [ -n "$f" ] || die "wheel ${w%@*}==${w#*@} not found in $base/wheels after the download"
    "$py" -m zipfile -e "$f" "$tmp/unpacked"
  done
  # CUDA 13's wheels share one tree, nvidia/cu13/{bin,include,lib,nvvm}; NCCL has its own.
  mv "$tmp/unpacked/nvidia/cu13" "$tmp/root"
  if [ -d "$tmp/unpacked/nvidia/nccl" ]; then
    cp -a "$tmp/unpacked/nvidia/nccl/include/." "$tmp/root/include/"
    cp -a "$tmp/unpacked/nvidia/nccl/lib/." "$tmp/root/lib/"
  fi
  rm -rf "$tmp/unpacked"
  (
    cd "$tmp/root"
    # zip files keep no modes: the tools must be executable.
    find bin nvvm/bin -maxdepth 1 -type f -exec chmod 0755 {} +
    # nvcc.profile looks for headers and libraries under targets/x86_64-linux; CMake's FindCUDA
    # looks in lib64; the linker wants unversioned names, and the wheels ship only sonames.
    ln -s lib lib64
    mkdir -p targets/x86_64-linux
    ln -s ../../include targets/x86_64-linux/include
    ln -s ../../lib targets/x86_64-linux/lib
    for so in lib/libcudart.so.13 lib/libcublas.so.13 lib/libcublasLt.so.13 \
              lib/libcurand.so.10 lib/libnccl.so.2 lib/libnvvm.so.4; do
      [ -e "$so" ] && ln -sf "$(basename "$so")" "${so%.so.*}.so"
    done
  )
  local miss
  miss=$(missing_in "$tmp/root")
  [ -z "$miss" ] || die "the unpacked wheels lack $miss: tools/cuda-wheels.txt is not a complete toolkit"
  # A two-line program through nvcc, cudart, cuBLAS and cuRAND: a wrong layout fails here in
  # seconds rather than minutes into Caffe's build.
  printf '#include <cublas_v2.h>\n#include <curand.h>\n__global__ void k(float *x) { x[0] = 1; }\nint main() { cublasHandle_t h; curandGenerator_t g; (void)h; (void)g; k<<<1, 1>>>(0); return 0; }\n' > "$tmp/smoke.cu"
  "$tmp/root/bin/nvcc" -arch=sm_90 -o "$tmp/smoke" "$tmp/smoke.cu" -lcublas -lcurand >"$tmp/smoke.log" 2>&1 \
    || { cat "$tmp/smoke.log" >&2; die "the PyPI toolkit in $tmp/root cannot compile and link a CUDA program"; }
  rm -f "$tmp/smoke" "$tmp/smoke.cu" "$tmp/smoke.log"
  # The stamp last, then one rename: a root without TOOLKIT_OK is never used.
  printf 'wheels=%s\nversion=%s\nmade=%s\n' "$want" "$PYPI_VERSION" "$(date -u +%FT%TZ)" > "$tmp/root/TOOLKIT_OK"
  rm -rf "$root"
  mv "$tmp/root" "$root"
  rm -rf "$tmp"
  trap - EXIT
  [ "$KEEP_WHEELS" = 1 ] || rm -rf "$base/wheels"
  say "CUDA $PYPI_VERSION toolkit ready: $root ($(du -sh "$root" | cut -f1))"
  echo "$root"
}

# --- choose ------------------------------------------------------------------------------------
root=""; route=""
case "$ROUTE" in
  auto|system)
    root=$(find_system)
    if [ -n "$root" ]; then route=system
    elif [ "$ROUTE" = system ]; then
      die "CUDA_ROUTE=system but no complete CUDA toolkit was found (set CUDA_HOME, or use CUDA_ROUTE=pypi)"
    fi ;;
  pypi) ;;
  *) die "CUDA_ROUTE must be auto, system or pypi (got '$ROUTE')" ;;
esac
if [ -z "$root" ]; then
  root=$(pypi_root)
  route=pypi
fi
nvcc=$root/bin/nvcc
version=$("$nvcc" --version | sed -n 's/.*release [0-9.]*, V\([0-9.]*\).*/\1/p')
[ -n "$version" ] || die "cannot read the CUDA version from '$nvcc --version'"
major=${version%%.*}

# --- the architecture list ----------------------------------------------------------------------
if [ -z "$ARCHS" ]; then
  case "$major" in
    11|12) ARCHS="60 61 70 75 80 86 89 90" ;;
    *)     ARCHS="75 80 86 89 90 100 120" ;;
  esac
  [ "$major" = 11 ] && ARCHS="60 61 70 75 80 86"
fi
# Refuse what this nvcc cannot compile before Caffe's build starts (CUDA 13 dropped 60-72,
# CUDA 12 knows nothing above 90).
if supported=$("$nvcc" --list-gpu-arch 2>/dev/null) && [ -n "$supported" ]; then
  bad=()
  for a in $ARCHS; do
    [[ "$a" =~ ^[0-9]+$ ]] || die "CUDA_ARCH entry '$a': give compute capabilities as digits, e.g. CUDA_ARCH=\"80 90\""
    grep -qx "compute_$a" <<<"$supported" || bad+=("$a")
  done
  [ ${#bad[@]} -eq 0 ] || die "CUDA $version cannot compile for CUDA_ARCH=${bad[*]}; it knows: $(sed 's/compute_//' <<<"$supported" | tr '\n' ' ')(set CUDA_ARCH= to a subset, or use a CUDA 12 toolkit via CUDA_HOME for older GPUs)"
else
  say "nvcc $version has no --list-gpu-arch: CUDA_ARCH=\"$ARCHS\" not checked"
fi

# --- NCCL: in when the toolkit root has it (the PyPI route brings it) ---------------------------
nccl=0; nccl_inc=""; nccl_lib=""
if [ -f "$root/include/nccl.h" ] && [ -e "$root/lib/libnccl.so" ]; then
  nccl=1; nccl_inc=$root/include; nccl_lib=$root/lib/libnccl.so
fi

id_src="$route $version $("$nvcc" --version | tail -n1)"
[ "$route" = pypi ] && id_src="$id_src $(grep -v '^#' "$WHEELS_TXT")"
[ "$route" = system ] && id_src="$id_src $(grep -h '#define CUBLAS_VER_\(MAJOR\|MINOR\|PATCH\)' "$root"/include/cublas_api.h "$root"/targets/x86_64-linux/include/cublas_api.h 2>/dev/null | sort -u | tr '\n' ' ')"
toolkit_id=$(sha256sum <<<"$id_src" | cut -c1-16)

[ "$route" = pypi ] && say "using CUDA $version from PyPI wheels at $root" || say "using the system CUDA $version at $root"
printf 'route=%s\nroot=%s\nversion=%s\nmajor=%s\narchs=%s\nnccl=%s\nnccl_include=%s\nnccl_library=%s\ntoolkit_id=%s\n' \
  "$route" "$root" "$version" "$major" "$ARCHS" "$nccl" "$nccl_inc" "$nccl_lib" "$toolkit_id"
