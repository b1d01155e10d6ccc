#!/usr/bin/env bash
# Run Caffe's own GTest cases for the layers our nets use (bin/test.testbin, built by
# tools/build_caffe.sh) and print pass/fail counts: `make caffe-test`.
#
# usage: tools/caffe_test.sh [cpu|gpu|auto] [--caffe-home DIR] [--device N] [--log FILE]
#   cpu   the CPU cases: typed tests /0 (float) and /1 (double) and patch 12's untyped case,
#         nothing that names a GPU
#   gpu   the GPU cases: typed tests /2 and /3, the *GPU* cases and PlatformTest, on --device
#   auto  (default) cpu, then gpu where the build is a CUDA one and nvidia-smi sees a GPU
#
# Nothing else is left out: all CPU cases take about 20 s on 2 cores. In a CUDA build without a
# GPU they run too (patch 04 keeps the Data layer's thread off CUDA in CPU mode).
# Environment: CAFFE_HOME (default .caffe), CAFFE_TEST_FILTER (extra negative patterns,
#   ':'-separated, e.g. 'DataLayerTest/*').
# Exit status: 0 when every case run passed; 1 otherwise (or when none ran).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
mode=auto
home=${CAFFE_HOME:-$repo/.caffe}
device=0
log=""
while [ $# -gt 0 ]; do
  case "$1" in
    cpu|gpu|auto) mode=$1; shift ;;
    --caffe-home) home=$2; shift 2 ;;
    --device) device=$2; shift 2 ;;
    --log) log=$2; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "usage: tools/caffe_test.sh [cpu|gpu|auto] [--caffe-home DIR] [--device N] [--log FILE]" >&2; exit 2 ;;
  esac
done
say() { printf '[caffe_test] %s\n' "$*"; }
die() { printf '[caffe_test] error: %s\n' "$*" >&2; exit 1; }

bin=$home/bin/test.testbin
[ -x "$bin" ] || die "no $bin: build Caffe with its tests ('make caffe', which runs tools/build_caffe.sh)"
stamp=$home/BUILD_OK
cuda_build=0
[ -f "$stamp" ] && grep -q '^mode=GPU' "$stamp" && cuda_build=1
have_gpu=0
nvidia-smi -L >/dev/null 2>&1 && have_gpu=1

cpu_filter() {
  local neg="*GPU*:PlatformTest.*"
  [ -n "${CAFFE_TEST_FILTER:-}" ] && neg="$neg:$CAFFE_TEST_FILTER"
  # Typed tests /0 and /1, and the untyped ones (patch 12's WriteProtoToBinaryFileTest).
  echo "*/0.*:*/1.*:WriteProtoToBinaryFileTest.*-$neg"
}
gpu_filter() { echo "*/2.*:*/3.*:*GPU*:PlatformTest.*"; }

total_failed=0
total_passed=0
run() {   # run <label> <filter> [device]
  local label=$1 filter=$2 out rc passed failed start
  out=${log:-$(mktemp "${TMPDIR:-/tmp}/caffe-test.XXXXXX")}
  [ -n "$log" ] && out="$log.$label"
  say "$label cases: $bin --gtest_filter='$filter' ${3:-}"
  start=$(date +%s)
  set +e
  # GLOG to stderr (no log files left in /tmp) at WARNING: INFO would bury gtest's report.
  GLOG_logtostderr=1 GLOG_minloglevel=1 "$bin" --gtest_filter="$filter" ${3:-} > "$out" 2>&1
  rc=$?
  set -e
  passed=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) tests\{0,1\}\..*/\1/p' "$out" | tail -n1)
  failed=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) tests\{0,1\}, listed below:.*/\1/p' "$out" | tail -n1)
  passed=${passed:-0}; failed=${failed:-0}
  if [ "$rc" != 0 ] && [ "$failed" = 0 ]; then
    # A crash (abort, signal) stops gtest before its summary: count it as a failure.
    tail -n 15 "$out" >&2
    say "$label: test.testbin exited $rc before its summary (log: $out)"
    failed=1
  fi
  grep '^\[  FAILED  \] .*\.' "$out" | sort -u | sed 's/^/    /' >&2 || true
  say "$label: $passed passed, $failed failed in $(( $(date +%s) - start )) s (log: $out)"
  total_passed=$(( total_passed + passed ))
  total_failed=$(( total_failed + failed ))
}

case "$mode" in
  cpu) run cpu "$(cpu_filter)" ;;
  gpu)
    [ $cuda_build = 1 ] || die "$home is a CPU-only build: it has no GPU cases ('make caffe CUDA=1')"
    [ $have_gpu = 1 ] || die "no GPU seen (nvidia-smi -L failed): the GPU cases need one"
    run gpu "$(gpu_filter)" "$device" ;;
  auto)
    run cpu "$(cpu_filter)"
    if [ $cuda_build = 1 ] && [ $have_gpu = 1 ]; then run gpu "$(gpu_filter)" "$device"
    else say "GPU cases skipped: $([ $cuda_build = 1 ] && echo 'no GPU seen' || echo 'CPU-only build')"; fi ;;
esac
echo "caffe-test: $total_passed passed, $total_failed failed"
[ "$total_failed" = 0 ] && [ "$total_passed" -gt 0 ]
