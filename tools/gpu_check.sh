#!/usr/bin/env bash
# One-shot check of the CUDA build on a GPU machine, with only this repository, a Caffe bundle
# and the kit tools/gpu_check_prepare.py made on the CPU (`make gpu-check-kit`): `make gpu-check`.
# Where no GPU is seen (nvidia-smi -L fails) it runs its CPU parts, smaller, so the same script
# is tested on every machine (tests/test_gpu_check.py).
#
# usage: tools/gpu_check.sh [--kit DIR] [--out DIR] [--bundle FILE|DIR] [--mode auto|gpu|cpu]
#                           [--device N] [--budget SECONDS]
#   --kit     the prepared kit (default dist/gpu-check)
#   --out     where the report goes (default $OUT, else results/gpu-check): gpu_check.json,
#             gpu_check.md and logs.tar.xz, three small files
#   --bundle  the Caffe to run: a bundle tarball or an unpacked bundle folder (default: the
#             bundle named in the kit's kit.json, inside the kit)
#   --mode    auto (default): gpu where nvidia-smi sees a GPU, else cpu
#   --budget  seconds for the whole run (default 450 on a GPU, 300 on a CPU): each step gets
#             at most what is left, the GTest cases last (they stop at the budget and are
#             counted as far as they got)
#
# Steps (GPU mode; CPU mode in brackets):
#   1. caffe --version; caffe device_query -gpu N                      [version only]
#   2. caffe time of the four variants' training nets, batch 24, with GFLOP/s from the kit's
#      FLOP counts, beside the SGEMM rate of one large InnerProduct under the same caffe time
#      (8192^3 on the GPU); DRI again with CAFFE_CONV_BATCH_GPU=64 (patch 14)
#                                                                      [1 iteration, 2048^3]
#   3. caffe train of DRI on the kit's synthetic LMDB, the short schedule stretched to 2,000
#      iterations, validation every 500                               [8 iterations]
#   4. caffe test of the trained weights on the kit's test LMDB on the CPU and on the GPU:
#      losses and accuracies within 1e-4, fused top-1 identical       [CPU only, checked
#                                                                      against the labels]
#   4b. exact resume: the training again from its half-way snapshot, final .caffemodel
#      byte-identical to step 3's (patch 12)                          [the same, 4 iterations]
#   5. Caffe's GTest cases of our layers: GPU cases (patch 12's SolverResumeTest among them)
#                                                                      [a quick CPU subset]
#   6. report: python3 tools/gpu_check_report.py (standard library only)
# Exit status 0 when every step passed.
set -uo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
kit=$repo/dist/gpu-check
out=${OUT:-$repo/results/gpu-check}
bundle=""
mode=auto
device=0
budget=""
usage() { sed -n '2,/^set -uo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
  case "$1" in
    --kit) kit=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --bundle) bundle=$2; shift 2 ;;
    --mode) mode=$2; shift 2 ;;
    --device) device=$2; shift 2 ;;
    --budget) budget=$2; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
  esac
done
say() { printf '[gpu_check %4ds] %s\n' "$(( $(date +%s) - t0 ))" "$*"; }
die() { printf '[gpu_check] error: %s\n' "$*" >&2; exit 1; }
t0=$(date +%s)

kit=$(cd "$kit" 2>/dev/null && pwd) || die "no kit at $kit: make it on a CPU machine with 'make gpu-check-kit'"
[ -f "$kit/kit.json" ] || die "$kit/kit.json missing: an unfinished kit; rerun 'make gpu-check-kit'"
# Plain python3 for JSON and the report; the GPU machine's may live in a venv only.
py=""
for p in python3 /opt/torch/.venv/bin/python python; do
  command -v "$p" >/dev/null && "$p" -c 'import json' 2>/dev/null && { py=$p; break; }
done
[ -n "$py" ] || die "no python3 found (needed for kit.json and the report)"
kitval() { "$py" -c 'import json,sys; v=json.load(open(sys.argv[1]))
for k in sys.argv[2].split("."): v=v[k]
print(" ".join(map(str, v)) if isinstance(v, list) else v)' "$kit/kit.json" "$1"; }

case "$mode" in
  auto) if nvidia-smi -L >/dev/null 2>&1; then mode=gpu; else mode=cpu; fi ;;
  gpu|cpu) ;;
  *) die "--mode must be auto, gpu or cpu (got '$mode')" ;;
esac
[ -n "$budget" ] || budget=$([ $mode = gpu ] && echo 450 || echo 300)
deadline=$(( t0 + budget ))

work=$(mktemp -d "${TMPDIR:-/tmp}/gpu-check.XXXXXX")
trap 'rm -rf "$work"' EXIT
logs=$work/logs
mkdir -p "$logs" "$work/run/snapshots"
: > "$work/steps.tsv"

# --- the Caffe to run ----------------------------------------------------------------------------
[ -n "$bundle" ] || bundle=$kit/$(kitval bundle)
if [ -d "$bundle" ]; then
  cb=$(cd "$bundle" && pwd)
elif [ -f "$bundle" ]; then
  tar -C "$work" -xJf "$bundle" || die "cannot unpack $bundle"
  cb=$(ls -d "$work"/caffe-*/ | head -n1); cb=${cb%/}
else
  die "no bundle at $bundle: 'make bundle' (CUDA=1 CUDA_ARCH=90 for a GPU) and 'make gpu-check-kit'"
fi
[ -f "$cb/env.sh" ] || die "$cb is not a Caffe bundle (no env.sh)"
# shellcheck disable=SC1091
. "$cb/env.sh" 2> "$logs/env.log"
cat "$logs/env.log" >&2
export GLOG_logtostderr=1     # caffe logs to stderr only: no glog files left in /tmp
# CPU mode runs where other work shares few cores (CI, our 2-core machines): OpenBLAS's threads
# wait on each other there and a 2-second iteration took 70 s under load; one thread keeps the
# CPU parts predictable. A GPU machine's CPU `caffe test` keeps OpenBLAS's default.
[ $mode = cpu ] && export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1}
gpuflag=()
[ $mode = gpu ] && gpuflag=(-gpu "$device")
say "mode $mode, bundle $(basename "$cb"), kit $kit, budget ${budget}s, report to $out"

# step <name> <cap seconds> <command...>: run with at most min(cap, time left) seconds, log to
# logs/<name>.log, record name, exit status and seconds in steps.tsv.
step() {
  local name=$1 cap=$2 left rc start
  shift 2
  left=$(( deadline - $(date +%s) ))
  [ "$cap" -lt "$left" ] || cap=$left
  if [ "$cap" -le 5 ]; then
    say "$name: skipped, budget spent"
    printf '%s\t%s\t%s\n' "$name" skipped 0 >> "$work/steps.tsv"
    return 0
  fi
  say "$name (at most ${cap}s): $*"
  start=$(date +%s)
  timeout --kill-after=10 "$cap" "$@" > "$logs/$name.log" 2>&1
  rc=$?
  [ $rc = 124 ] && say "$name: stopped at ${cap}s"
  printf '%s\t%s\t%s\n' "$name" "$rc" "$(( $(date +%s) - start ))" >> "$work/steps.tsv"
  [ $rc = 0 ] || [ $rc = 124 ] || tail -n 5 "$logs/$name.log" | sed 's/^/    /'
  return 0
}

# --- 1. what runs where ----------------------------------------------------------------------------
step version 30 caffe --version
if [ $mode = gpu ]; then
  nvidia-smi > "$logs/nvidia-smi.log" 2>&1 || true
  step device_query 60 caffe device_query -gpu "$device"
fi

# --- 2. speed ---------------------------------------------------------------------------------------
iters=$([ $mode = gpu ] && echo 20 || echo 1)
for v in $(kitval variants); do
  step "time_$v" 120 caffe time -model "$kit/nets/${v}_time.prototxt" -iterations "$iters" "${gpuflag[@]}"
done
# Caffe patch 14, off by default until a GPU has measured it: DRI again with one strided-batched
# cuBLAS GEMM per group of images (tools/gpu_check_report.py: BATCHED_GPU_STEP).
if [ $mode = gpu ]; then
  CAFFE_CONV_BATCH_GPU=64 step time_dri_conv_batch_gpu 120 \
    caffe time -model "$kit/nets/dri_time.prototxt" -iterations "$iters" "${gpuflag[@]}"
fi
step sgemm 60 caffe time -model "$kit/nets/sgemm_$mode.prototxt" -iterations "$([ $mode = gpu ] && echo 20 || echo 3)" "${gpuflag[@]}"

# --- 3. training ------------------------------------------------------------------------------------
tar -C "$work/run" -xJf "$kit/data.tar.xz" || die "cannot unpack $kit/data.tar.xz"
cp "$kit"/nets/*.prototxt "$work/run/"
(cd "$work/run" && step train $([ $mode = gpu ] && echo 300 || echo 150) \
   caffe train -solver "dri_solver_$mode.prototxt" "${gpuflag[@]}")

# --- 4. CPU / GPU agreement on the newest snapshot ----------------------------------------------------
weights=$(ls -t "$work"/run/snapshots/dri_iter_*.caffemodel 2>/dev/null | head -n1)
if [ -n "$weights" ]; then
  echo "$(basename "$weights")" > "$logs/weights.txt"
  titers=$(kitval test_iterations)
  (cd "$work/run" && step test_cpu 120 caffe test -model dri_test.prototxt -weights "$weights" -iterations "$titers")
  [ $mode = gpu ] && (cd "$work/run" && step test_gpu 60 caffe test -model dri_test.prototxt -weights "$weights" -iterations "$titers" -gpu "$device")
else
  say "no snapshot: training did not get far enough, no agreement check"
fi

# --- 4b. exact resume (patch 12): the training resumed from its half-way snapshot ends with the
# same final .caffemodel, byte for byte (docs/training.md) -------------------------------------------
final=$(ls "$work"/run/snapshots/dri_iter_*.caffemodel 2>/dev/null | sort -t_ -k3 -n | tail -n1)
half=$(ls "$work"/run/snapshots/dri_iter_*.solverstate 2>/dev/null | sort -t_ -k3 -n | tail -n2 | head -n1)
if [ -n "$final" ] && [ -n "$half" ] && [ "${half%.solverstate}.caffemodel" != "$final" ]; then
  rm -rf "$work/resume"
  cp -r "$work/run" "$work/resume"
  rm -f "$work/resume/snapshots/$(basename "$final")"
  (cd "$work/resume" && step resume $([ $mode = gpu ] && echo 200 || echo 100) \
     caffe train -solver "dri_solver_$mode.prototxt" -snapshot "snapshots/$(basename "$half")" "${gpuflag[@]}")
  again="$work/resume/snapshots/$(basename "$final")"
  if [ -f "$again" ] && cmp -s "$final" "$again"; then same=identical; else same=differs; fi
  printf 'resumed_from=%s\nfinal=%s\nresult=%s\n' "$(basename "$half")" "$(basename "$final")" \
    "$same" > "$logs/resume.txt"
else
  say "fewer than two snapshots: no resume check"
fi

# --- 5. Caffe's GTest cases -------------------------------------------------------------------------
if [ $mode = gpu ]; then
  step gtest 300 test.testbin --gtest_filter='*/2.*:*/3.*:*GPU*:PlatformTest.*' "$device"
else
  # A quick CPU sample (make caffe-test runs them all): small layers, float and double.
  step gtest 60 test.testbin --gtest_filter='ConcatLayerTest/0.*:ConcatLayerTest/1.*:SliceLayerTest/0.*:SliceLayerTest/1.*:EltwiseLayerTest/0.*:SoftmaxLayerTest/0.*:AccuracyLayerTest/0.*:ScaleLayerTest/0.TestForward*'
fi

# --- 6. report ----------------------------------------------------------------------------------------
mkdir -p "$out" || die "cannot create $out"
"$py" "$repo/tools/gpu_check_report.py" --work "$work" --kit "$kit" --mode "$mode" \
  --bundle "$(basename "$cb")" --seconds "$(( $(date +%s) - t0 ))" --out "$out"
rc=$?
tar -C "$work" -cJf "$out/logs.tar.xz.tmp" logs steps.tsv && mv "$out/logs.tar.xz.tmp" "$out/logs.tar.xz"
say "done in $(( $(date +%s) - t0 ))s: $out/gpu_check.md"
exit $rc
