#!/usr/bin/env bash
# Build BVLC Caffe from Debian's source package and install it where the toolkit finds it.
#
# One build path for every place the toolkit runs (`make setup`, CI, the Dockerfile):
#   1. Debian build dependencies (apt-get as root; otherwise print the exact command and stop).
#   2. Source: Debian 11's package `caffe` (BVLC master of Aug 2018 plus Debian's patches),
#      fetched by `apt-get source` through a private apt configuration, so the system's own
#      sources stay untouched. apt checks it against bullseye's signed Release file.
#   3. Our patches (tools/caffe-patches/*.patch): 0x fixes for Debian 12, NumPy 2 and CUDA 13,
#      always; 1x the engine's speed (OpenMP loops, batched convolution; docs/engine.md),
#      unless CAFFE_STOCK=1.
#   4. CMake build: CPU-only, or CUDA when asked for (or, under CUDA=auto, where a GPU is seen).
#      The CUDA toolkit comes from tools/cuda_toolkit.sh: a complete system CUDA, or NVIDIA's
#      CUDA 13.0 wheels from PyPI laid out as a toolkit root (docs/gpu.md). Caffe's own GTest
#      binary for the layers our nets use is built too and installed as bin/test.testbin.
#   5. Install into a cache folder named by a hash of everything that changes the binary
#      (source version, patches, options, compilers, Python, CUDA toolkit and archs). `.caffe`
#      in the repo links to it, so a second `make setup`, a fresh clone on the same machine,
#      or CI, rebuilds nothing.
#
# Environment (all optional; the Makefile passes them):
#   PYTHON      Python whose pycaffe is built (default .venv/bin/python)
#   CUDA        auto | 0 | 1    (auto: CUDA only where `nvidia-smi -L` sees a GPU)
#   CUDA_ARCH   compute capabilities, e.g. "80 90"; empty: the toolkit's default list
#               (tools/cuda_toolkit.sh; CUDA_HOME, CUDA_ROUTE and CUDA_CACHE are read there)
#   CAFFE_LINK  1 (default) links the build as .caffe and puts pycaffe on the venv's path;
#               0 only builds (CI's CUDA check, which must not replace the CPU build in use)
#   CAFFE_PREFIX_FILE  if set, the install prefix is written there (for scripts)
#   CAFFE_CACHE where builds are kept (default ${XDG_CACHE_HOME:-~/.cache}/dri-hep2/caffe)
#   JOBS        parallel compile jobs (default: nproc)
#   CAFFE_STOCK 1 leaves out the speed patches 1x-*.patch: BVLC's own layer code, for
#               comparisons (tools/bench_engine.py) and as a fallback (ASSUMPTIONS.md B11)
#   CAFFE_BLAS  openmp | pthread: which of Debian's two OpenBLAS 0.3.21 builds Caffe links
#               (default openmp; pthread with CAFFE_STOCK=1, the build as BVLC's users had it).
#               openmp: libopenblas0-openmp, whose GEMMs run on libgomp's team, the pool that
#               patch 10's loops use, so one pool of threads serves both (issue 20, docs/
#               engine.md section 6). Linked by path and found through the RUNPATH, so the
#               system's libopenblas.so.0 alternative (pthread, priority 100) stays as it is.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"

CAFFE_DEB_VERSION="1.0.0+git20180821.99bd997-8"
# sha256 of Debian's orig tarball, as listed in bullseye's signed Sources index.
CAFFE_ORIG_SHA256="e0eb3f06794f7402c77b7dec8e8480273ee1a1bb192e9122b621a69d4147ad0c"
PYTHON=${PYTHON:-$repo/.venv/bin/python}
CUDA=${CUDA:-auto}
CUDA_ARCH=${CUDA_ARCH:-}
CAFFE_LINK=${CAFFE_LINK:-1}
CAFFE_CACHE=${CAFFE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/dri-hep2/caffe}
# Test files (src/caffe/test/test_<name>.cpp/.cu) of every layer type in our nets: Convolution,
# BatchNorm, Scale, PReLU and Dropout (neuron_layer), Pooling, Concat, Slice, Eltwise,
# InnerProduct, Softmax, SoftmaxWithLoss, Accuracy, Data on LMDB; platform prints the device;
# exact_resume is patch 12's own (absent from the stock build's source, so not built there).
GTEST_LAYERS="convolution_layer,batch_norm_layer,scale_layer,neuron_layer,pooling_layer,concat_layer,slice_layer,eltwise_layer,inner_product_layer,softmax_layer,softmax_with_loss_layer,accuracy_layer,data_layer,platform,exact_resume"
JOBS=${JOBS:-$(nproc)}
CAFFE_STOCK=${CAFFE_STOCK:-0}
case "$CAFFE_STOCK" in 0|1) ;; *) echo "CAFFE_STOCK must be 0 or 1 (got '$CAFFE_STOCK')" >&2; exit 1 ;; esac
CAFFE_BLAS=${CAFFE_BLAS:-$([ "$CAFFE_STOCK" = 1 ] && echo pthread || echo openmp)}
case "$CAFFE_BLAS" in openmp|pthread) ;; *) echo "CAFFE_BLAS must be openmp or pthread (got '$CAFFE_BLAS')" >&2; exit 1 ;; esac
# The patches this build applies, in order: the fixes always, the speed patches unless stock.
patches=()
for p in tools/caffe-patches/*.patch; do
  case "$(basename "$p")" in 1[0-9]-*) [ "$CAFFE_STOCK" = 1 ] && continue ;; esac
  patches+=("$p")
done

say() { printf '[build_caffe] %s\n' "$*"; }
die() { printf '[build_caffe] error: %s\n' "$*" >&2; exit 1; }

[ -x "$PYTHON" ] || die "no Python at $PYTHON (run 'make venv' first, or set PYTHON=)"

# --- 1. Debian build dependencies -------------------------------------------------------
deps=(build-essential cmake dpkg-dev patch ca-certificates debian-archive-keyring
      libboost-filesystem-dev libboost-system-dev libboost-thread-dev libboost-python-dev
      libgflags-dev libgoogle-glog-dev libhdf5-dev liblmdb-dev libopenblas-dev
      libprotobuf-dev protobuf-compiler libsnappy-dev graphviz
      # libopenblas-dev brings the pthread build and cblas.h; the OpenMP build is a library only
      # (its cblas.h declares the same functions).
      libopenblas0-$CAFFE_BLAS
      libopencv-dev
      # patchelf: bin/test.testbin is copied out of the build tree and needs the installed
      # binaries' RPATH; `make bundle` uses it too.
      patchelf)
missing=()
for p in "${deps[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  cmd="apt-get install -y --no-install-recommends ${missing[*]}"
  if [ "$(id -u)" -eq 0 ]; then
    say "installing Debian packages: ${missing[*]}"
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive $cmd
  else
    die "missing Debian packages. Run as root:  sudo apt-get update && sudo $cmd"
  fi
fi

# --- decide CPU or CUDA -------------------------------------------------------------------
case "$CUDA" in
  # A GPU decides, not an nvcc: without a complete system CUDA the PyPI toolkit is used.
  auto) if nvidia-smi -L >/dev/null 2>&1; then CUDA=1; else CUDA=0; fi ;;
  0|1) ;;
  *) die "CUDA must be auto, 0 or 1 (got '$CUDA')" ;;
esac

# --- the CMake options and the build id: everything that changes the installed binary -------
cmake_opts=(-DCMAKE_BUILD_TYPE=Release
            -DBLAS=Open -DUSE_LEVELDB=OFF -DUSE_LMDB=ON
            # OpenCV for Caffe's own image tools (convert_imageset, compute_image_mean):
            # the route users know, and the baseline of tools/bench_data.py.
            -DUSE_OPENCV=ON
            -DBUILD_python=ON -Dpython_version=3 -DBUILD_python_layer=ON
            -DBUILD_docs=OFF -DBUILD_matlab=OFF
            # Caffe's GTest binary with only the layers the DRI nets use (make caffe-test).
            -DBUILD_only_tests="$GTEST_LAYERS"
            # Caffe's FindOpenBLAS takes the library it is given; the build's RUNPATH gets its
            # folder (CMAKE_INSTALL_RPATH_USE_LINK_PATH), so libcaffe, caffe and pycaffe load
            # this build of libopenblas.so.0 whatever the system's alternative says.
            -DOpenBLAS_LIB="/usr/lib/$(gcc -print-multiarch)/openblas-$CAFFE_BLAS/libopenblas.so.0")
nccl=0
if [ "$CUDA" = 1 ]; then
  # The toolkit: a complete system CUDA, or the PyPI one (made on first use); it also checks
  # CUDA_ARCH against what its nvcc can compile, before anything is compiled.
  cuda_info=$(PYTHON="$PYTHON" CUDA_ARCH="$CUDA_ARCH" "$repo/tools/cuda_toolkit.sh") \
    || die "no usable CUDA toolkit (tools/cuda_toolkit.sh said why, above)"
  cuda_get() { sed -n "s/^$1=//p" <<<"$cuda_info"; }
  cuda_root=$(cuda_get root); CUDA_ARCH=$(cuda_get archs); nccl=$(cuda_get nccl)
  # cuDNN stays off: BVLC Caffe's cuDNN code predates cuDNN 8's API (ASSUMPTIONS.md B1).
  cmake_opts+=(-DCPU_ONLY=OFF -DUSE_CUDNN=OFF -DCUDA_TOOLKIT_ROOT_DIR="$cuda_root"
               -DCUDA_ARCH_NAME=Manual -DCUDA_ARCH_BIN="$CUDA_ARCH" -DCUDA_ARCH_PTX="")
  if [ "$nccl" = 1 ]; then
    # Multi-GPU training (`caffe train -gpu 0,1`) needs NCCL (ASSUMPTIONS.md B6).
    cmake_opts+=(-DUSE_NCCL=ON -DNCCL_INCLUDE_DIR="$(cuda_get nccl_include)"
                 -DNCCL_LIBRARIES="$(cuda_get nccl_library)")
  fi
else
  cmake_opts+=(-DCPU_ONLY=ON)
fi
# The base interpreter, not the venv's path: a fresh clone's venv reuses the same build.
pyver=$("$PYTHON" -c 'import sys; print("%d.%d %s" % (*sys.version_info[:2], sys.base_prefix))')
npver=$("$PYTHON" -c 'import numpy; print(numpy.__version__.split(".")[0])')
toolchain="gcc $(gcc -dumpfullversion) $(protoc --version) boost $(dpkg-query -W -f='${Version}' libboost-python-dev)"
[ "$CUDA" = 1 ] && toolchain="$toolchain cuda=$(cuda_get version) toolkit=$(cuda_get toolkit_id)"
build_id=$( { echo "$CAFFE_DEB_VERSION py=$pyver numpy=$npver $toolchain ${cmake_opts[*]}";
              cat "${patches[@]}"; } | sha256sum | cut -c1-16)
prefix="$CAFFE_CACHE/$build_id"
cmake_opts+=(-DCMAKE_INSTALL_PREFIX="$prefix" -DPYTHON_EXECUTABLE="$PYTHON")
mode=$([ "$CUDA" = 1 ] && echo "GPU (CUDA)" || echo "CPU")
[ -z "${CAFFE_PREFIX_FILE:-}" ] || echo "$prefix" > "$CAFFE_PREFIX_FILE"

link_caffe() {
  [ "$CAFFE_LINK" = 1 ] || return 0
  ln -sfn "$prefix" "$repo/.caffe"
  # pycaffe on the venv's path without any PYTHONPATH step by the user.
  site=$("$PYTHON" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  echo "$repo/.caffe/lib/python3/dist-packages" > "$site/caffe-dri-hep2.pth"
}

if [ -f "$prefix/BUILD_OK" ]; then
  say "Caffe $CAFFE_DEB_VERSION ($mode) already built: $prefix"
  link_caffe
  exit 0
fi

# --- 2. source through a private apt configuration -----------------------------------------
work=$(mktemp -d "${TMPDIR:-/tmp}/caffe-build.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/apt/lists/partial" "$work/apt/parts" "$work/src"
# signed-by: the Debian keyring by name, so that an Ubuntu base (the CUDA image), whose apt does
# not trust Debian's keys by default, checks the same signatures.
echo "deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian bullseye main" \
  > "$work/apt/sources.list"
apt_opts=(-o "Dir::Etc::SourceList=$work/apt/sources.list"
          -o "Dir::Etc::SourceParts=$work/apt/parts"
          -o "Dir::State::Lists=$work/apt/lists"
          -o "APT::Sandbox::User=root")
say "fetching Debian source caffe=$CAFFE_DEB_VERSION"
apt-get "${apt_opts[@]}" -q update >/dev/null
(cd "$work/src" && apt-get "${apt_opts[@]}" -q source "caffe=$CAFFE_DEB_VERSION" >/dev/null)
echo "$CAFFE_ORIG_SHA256  $(ls "$work"/src/caffe_*.orig.tar.gz)" | sha256sum -c --quiet - \
  || die "Caffe source tarball does not match the pinned sha256"
src=$(ls -d "$work"/src/caffe-*/)

# --- 3. our fixes ---------------------------------------------------------------------------
for p in "${patches[@]}"; do
  say "applying $(basename "$p")"
  patch -s -d "$src" -p1 < "$p"
done

# --- 4. configure and build ------------------------------------------------------------------
say "configuring ($mode) in $work/build"
mkdir -p "$work/build"
(cd "$work/build" && cmake "${cmake_opts[@]}" "$src" > "$work/cmake.log" 2>&1) \
  || { tail -n 40 "$work/cmake.log" >&2; die "cmake failed (log above)"; }
say "compiling with $JOBS jobs (on 2 cores about 4-6 minutes for the CPU, 10-15 for CUDA and one arch)"
start=$(date +%s)
rm -rf "$prefix"   # a build that stopped half-way left no stamp: start it clean
(cd "$work/build" && make -j"$JOBS" > "$work/make.log" 2>&1 && make install > "$work/install.log" 2>&1) \
  || { tail -n 40 "$work/make.log" >&2; die "compile failed (log above)"; }
say "compiled in $(( $(date +%s) - start )) s; now Caffe's GTest binary ($GTEST_LAYERS)"
# test.testbin is EXCLUDE_FROM_ALL in Caffe's CMake and never installed: build it, put it
# beside caffe, and give it the installed binaries' RPATH (its own points into the build tree).
(cd "$work/build" && make -j"$JOBS" test.testbin >> "$work/make.log" 2>&1) \
  || { tail -n 40 "$work/make.log" >&2; die "compile of test.testbin failed (log above)"; }
install -m 0755 "$work/build/test/test.testbin" "$prefix/bin/test.testbin"
patchelf --set-rpath "$(patchelf --print-rpath "$prefix/bin/caffe")" "$prefix/bin/test.testbin"
say "compiled in $(( $(date +%s) - start )) s in all"

# --- 5. publish atomically -------------------------------------------------------------------
# `make install` wrote straight into $prefix; only the stamp makes it count as built, so an
# interrupted build is redone, never reused.
{
  printf 'version=%s\nmode=%s\nbuild_id=%s\nbuilt=%s\n' "$CAFFE_DEB_VERSION" "$mode" "$build_id" \
    "$(date -u +%FT%TZ)"
  # What GPU code is in: tools/doctor.py reports it, the train tool refuses GPU=0,1 when nccl=0.
  if [ "$CUDA" = 1 ]; then
    printf 'cuda=%s\ncuda_route=%s\ncuda_root=%s\ncuda_arch=%s\n' "$(cuda_get version)" \
      "$(cuda_get route)" "$cuda_root" "$CUDA_ARCH"
  fi
  printf 'nccl=%s\ngtest=bin/test.testbin\nstock=%s\nblas=openblas-%s\n' "$nccl" "$CAFFE_STOCK" "$CAFFE_BLAS"
} > "$prefix/BUILD_OK.tmp"
mv "$prefix/BUILD_OK.tmp" "$prefix/BUILD_OK"
link_caffe
say "installed Caffe ($mode) into $prefix"
