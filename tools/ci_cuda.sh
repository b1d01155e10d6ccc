#!/usr/bin/env bash
# CI's CUDA step (`make ci-cuda`): build the CUDA variant of Caffe for one architecture on a
# machine without a GPU, then prove the binaries are whole: every library resolves (`ldd`, the
# CUDA ones through the toolkit root the build recorded), `caffe --version` answers, and
# Caffe's own CPU GTest cases pass in that CUDA build.
#
# usage: tools/ci_cuda.sh        (environment: CI_CUDA_ARCH, default 90; PYTHON; JOBS)
# The build is cached by build id like every other (tools/build_caffe.sh), with the same options
# as `make setup CUDA=1 CUDA_ARCH=90`, so either reuses the other's. It never relinks .caffe:
# the rest of CI tests the CPU build.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
case "${1:-}" in -h|--help) sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;; esac
arch=${CI_CUDA_ARCH:-90}
say() { printf '[ci_cuda] %s\n' "$*"; }
die() { printf '[ci_cuda] error: %s\n' "$*" >&2; exit 1; }

t0=$(date +%s)
prefix_file=$(mktemp)
trap 'rm -f "$prefix_file"' EXIT
CUDA=1 CUDA_ARCH=$arch CAFFE_LINK=0 CAFFE_PREFIX_FILE=$prefix_file \
  PYTHON=${PYTHON:-$repo/.venv/bin/python} "$repo/tools/build_caffe.sh"
prefix=$(cat "$prefix_file")
t1=$(date +%s)
grep -q '^mode=GPU' "$prefix/BUILD_OK" || die "$prefix/BUILD_OK says this is not a CUDA build"

# Link check: nothing "not found", and the CUDA libraries come from the toolkit root.
root=$(sed -n 's/^cuda_root=//p' "$prefix/BUILD_OK")
for f in bin/caffe bin/test.testbin "$(cd "$prefix" && ls lib/libcaffe.so.*)"; do
  ldd "$prefix/$f" > "$prefix_file.ldd" || die "ldd $prefix/$f failed"
  if grep 'not found' "$prefix_file.ldd"; then die "$f: libraries not found (above)"; fi
  for so in libcudart libcublas libcurand; do
    grep -q "$so\.so.* => $root/" "$prefix_file.ldd" \
      || die "$f: $so does not resolve into the toolkit root $root: $(grep "$so" "$prefix_file.ldd" || echo 'not linked')"
  done
done
rm -f "$prefix_file.ldd"
say "ldd: caffe, test.testbin and libcaffe resolve every library; CUDA's from $root"
GLOG_logtostderr=1 "$prefix/bin/caffe" --version
say "stamp: $(grep -E '^(cuda|cuda_arch|nccl)=' "$prefix/BUILD_OK" | tr '\n' ' ')"

"$repo/tools/caffe_test.sh" cpu --caffe-home "$prefix"
say "build $(( t1 - t0 )) s, checks $(( $(date +%s) - t1 )) s"
