#!/usr/bin/env bash
# Pack a built Caffe as a relocatable tarball that runs on another Linux machine with only its
# own glibc, libstdc++ and (for a CUDA build) an NVIDIA driver and CUDA 13 libraries:
# `make bundle` -> dist/caffe-<build id>.tar.xz (docs/gpu.md, "Bundle").
#
# usage: tools/bundle.sh [--caffe-home DIR] [--out DIR] [--force]
#   --caffe-home  the installed build to pack (default .caffe); its BUILD_OK names the id
#   --out         where the tarball goes (default dist/)
#   --force       repack even if the tarball is newer than the build and this script
#
# What goes in (caffe-<id>/ inside the tarball):
#   libexec/{caffe,test.testbin}  the real binaries, RUNPATH $ORIGIN/../lib
#   bin/{caffe,test.testbin}      wrappers: put the CUDA libraries env.sh found on
#                                 LD_LIBRARY_PATH for that one command, then exec libexec/
#   lib/libcaffe.so*              and every library the three need (NEEDED, walked down), except
#                                 glibc's, libstdc++, libgcc_s and CUDA's (the target's own, or
#                                 the driver's), each with RUNPATH $ORIGIN; OpenCV's imgcodecs
#                                 is a stub (no GDAL & co.: raw Datums only, see below)
#   env.sh                        `. env.sh`: bin/ on PATH; finds the CUDA libraries (CUDA
#                                 build) in a system CUDA or a Python environment holding
#                                 NVIDIA's cu13 wheels (PyTorch's), reports what is missing
#   BUILD_OK, cuda-libs.txt       the build stamp; the CUDA sonames the binaries need
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
home=$repo/.caffe
out=$repo/dist
force=0
while [ $# -gt 0 ]; do
  case "$1" in
    --caffe-home) home=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --force) force=1; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "usage: tools/bundle.sh [--caffe-home DIR] [--out DIR] [--force]" >&2; exit 2 ;;
  esac
done
say() { printf '[bundle] %s\n' "$*" >&2; }
die() { printf '[bundle] error: %s\n' "$*" >&2; exit 1; }

home=$(cd "$home" 2>/dev/null && pwd -P) || die "no Caffe build at $home: run 'make caffe' first"
[ -f "$home/BUILD_OK" ] || die "$home has no BUILD_OK stamp (an unfinished build): run 'make caffe'"
for f in bin/caffe bin/test.testbin; do
  [ -x "$home/$f" ] || die "$home/$f missing: this build predates the GTest binary; rebuild with 'make caffe'"
done
command -v patchelf >/dev/null || die "patchelf missing: apt-get install patchelf (tools/build_caffe.sh installs it)"
build_id=$(sed -n 's/^build_id=//p' "$home/BUILD_OK")
name=caffe-$build_id
tarball=$out/$name.tar.xz
if [ $force = 0 ] && [ -f "$tarball" ] && [ "$tarball" -nt "$home/BUILD_OK" ] \
   && [ "$tarball" -nt "${BASH_SOURCE[0]}" ]; then
  say "up to date: $tarball"
  echo "$tarball"
  exit 0
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/bundle.XXXXXX")
trap 'rm -rf "$work"' EXIT
root=$work/$name
mkdir -p "$root/bin" "$root/libexec" "$root/lib"

cp -L "$home/bin/caffe" "$home/bin/test.testbin" "$root/libexec/"
lib=$(cd "$home/lib" && ls libcaffe.so.* | head -n1)
cp -L "$home/lib/$lib" "$root/lib/$lib"
ln -s "$lib" "$root/lib/libcaffe.so"

# Libraries that stay the target's own: the C library family (tied to the kernel and the
# loader), the compiler runtime (every target has one at least as new), and CUDA's, which
# must match the driver (a 500 MB cuBLAS does not travel either).
keep_out='^(linux-vdso|ld-linux[-a-z0-9_]*|libc|libm|libdl|libpthread|librt|libresolv|libutil|libstdc\+\+|libgcc_s|libcuda|libcudart|libcublas|libcublasLt|libcurand|libnccl|libnvidia-ml)\.so'
# Libraries replaced by a stub, for the size of what they drag in, not used by our nets:
#   libopencv_imgcodecs  GDAL and some 120 libraries (170 MB) behind the three functions Caffe
#                        calls on *encoded* Datums and image files (cv::imread, imdecode,
#                        imencode); our LMDBs hold raw Datums
#   libcurl, libcrypto   HDF5's read-only S3 driver (curl, OpenSSL, GnuTLS, Kerberos, LDAP...)
#   libGLX               OpenCV core's OpenGL interop (X11, GL dispatch)
# A stub defines each function the bundle imports from the real library (same names, same
# symbol versions); called, it stops with a message naming it (ASSUMPTIONS.md B9). Only
# functions can be stubbed: a data symbol stops the bundle build.
stub_libs='^(libopencv_imgcodecs|libcurl|libcrypto|libGLX)\.so'
# OpenBLAS exports the whole BLAS and LAPACK: OpenCV's libblas.so.3 / liblapack.so.3 (7.7 MB,
# Debian's openblas-pthread alternatives) become links to the bundle's libopenblas.so.0.
alias_libs='^(libblas|liblapack)\.so\.3$'

# soname -> path, as the loader resolves them on this machine.
declare -A where=()
for b in "$home/bin/caffe" "$home/bin/test.testbin" "$home/lib/$lib"; do
  ldd "$b" > "$work/ldd" || die "ldd $b failed"
  if grep -q 'not found' "$work/ldd"; then
    grep 'not found' "$work/ldd" >&2
    die "ldd cannot resolve every library of $b (above): fix the build machine first"
  fi
  while read -r soname _ path _; do
    [ -n "$path" ] && where[$soname]=$path
  done < <(grep '=>' "$work/ldd")
done

# Walk the NEEDED entries from the three binaries down, so that a stubbed library's own
# dependencies stay behind.
: > "$work/cuda-libs"
queue=("$home/bin/caffe" "$home/bin/test.testbin" "$home/lib/$lib")
declare -A seen=()
stubs=()
while [ ${#queue[@]} -gt 0 ]; do
  f=${queue[0]}; queue=("${queue[@]:1}")
  for soname in $(readelf -d "$f" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
    [ -z "${seen[$soname]:-}" ] || continue
    seen[$soname]=1
    case "$soname" in libcudart*|libcublas*|libcurand*|libnccl*) echo "$soname" >> "$work/cuda-libs" ;; esac
    [[ "$soname" =~ $keep_out ]] && continue
    [ "${soname%%.so*}" = libcaffe ] && continue
    [ -n "${where[$soname]:-}" ] || die "$soname (needed by $f) was not resolved by ldd"
    if [[ "$soname" =~ $stub_libs ]]; then stubs+=("$soname"); continue; fi
    cp -L "${where[$soname]}" "$root/lib/$soname"
    queue+=("${where[$soname]}")
  done
done
sort -u "$work/cuda-libs" > "$root/cuda-libs.txt"

# name -> version of the symbols a library defines (functions only: type T, W or i).
functions_of() {
  nm -D --defined-only "$1" | awk '$2 ~ /^[TWi]$/ {n=$3; v=""; if (i = index(n, "@")) {v=substr(n, i); gsub(/@/, "", v); n=substr(n, 1, i-1)} print n, v}' | sort -u
}
# Every symbol (name version) the bundled binaries and libraries leave undefined.
imports_of_bundle() {
  for b in "$root"/libexec/* "$root"/lib/*.so*; do
    [ -L "$b" ] || nm -D --undefined-only "$b" 2>/dev/null
  done | awk '{n=$2; v=""; if (i = index(n, "@")) {v=substr(n, i); gsub(/@/, "", v); n=substr(n, 1, i-1)} print n, v}' | sort -u
}
imports_of_bundle > "$work/imports.all"

for soname in "${stubs[@]}"; do
  real=${where[$soname]}
  nm -D --defined-only "$real" | awk '{n=$3; sub(/@.*/, "", n); print n}' | sort -u > "$work/defined"
  functions_of "$real" > "$work/functions"
  # The bundle's imports that this library defines.
  awk 'NR == FNR {d[$1] = 1; next} ($1 in d)' "$work/defined" "$work/imports.all" > "$work/imports"
  bad=$(awk 'NR == FNR {f[$1] = 1; next} !($1 in f) {print $1}' "$work/functions" "$work/imports")
  [ -z "$bad" ] || die "cannot stub $soname: the bundle uses its data symbols $bad"
  {
    echo '#include <stdio.h>'
    echo '#include <stdlib.h>'
    echo "static void missing(const char *f) { fprintf(stderr, \"caffe bundle: %s is not in this bundle: $soname is a stub (tools/bundle.sh). Caffe needs it only for encoded images, HDF5 on S3 or OpenGL; use the full build for those.\\n\", f); abort(); }"
    while read -r sym _; do echo "void $sym(void) { missing(\"$sym\"); }"; done < "$work/imports"
  } > "$work/stub.c"
  # The importers ask for versioned names (curl_easy_init@CURL_OPENSSL_4): give them the
  # same versions.
  vs=()
  if awk '$2 != "" {found = 1} END {exit !found}' "$work/imports"; then
    awk '$2 != "" {s[$2] = s[$2] " " $1 ";"} END {for (v in s) printf "%s { global:%s };\n", v, s[v]}' \
      "$work/imports" > "$work/stub.map"
    vs=(-Wl,--version-script="$work/stub.map")
  fi
  gcc -shared -fPIC -O1 -Wl,-soname,"$soname" "${vs[@]}" -o "$root/lib/$soname" "$work/stub.c" \
    || die "cannot build the stub of $soname"
  say "stub $soname: $(wc -l < "$work/imports") functions ($(cut -d' ' -f1 "$work/imports" | tr '\n' ' '))"
done

for f in "$root"/lib/*; do
  soname=$(basename "$f")
  [[ "$soname" =~ $alias_libs ]] && [ -f "$root/lib/libopenblas.so.0" ] || continue
  functions_of "$root/lib/libopenblas.so.0" | cut -d' ' -f1 > "$work/openblas"
  nm -D --defined-only "$f" | awk '{n=$3; sub(/@.*/, "", n); print n}' | sort -u > "$work/defined"
  awk 'NR == FNR {d[$1] = 1; next} ($1 in d) {print $1}' "$work/defined" "$work/imports.all" > "$work/imports"
  bad=$(grep -vxFf "$work/openblas" "$work/imports" || true)
  [ -z "$bad" ] || { say "keeping $soname: libopenblas.so.0 lacks $bad"; continue; }
  rm "$f"
  ln -s libopenblas.so.0 "$f"
  say "$soname -> libopenblas.so.0 ($(wc -l < "$work/imports") functions used)"
done

# Strip first (strip after patchelf can undo its section moves), then RUNPATH rather than the
# loader's environment: each library finds its neighbours beside itself.
chmod u+w "$root"/libexec/*
for f in "$root"/lib/*.so*; do [ -L "$f" ] || chmod u+w "$f"; done
strip --strip-unneeded "$root"/libexec/* $(find "$root/lib" -name '*.so*' -type f)
for f in "$root"/lib/*.so*; do
  [ -L "$f" ] || patchelf --set-rpath '$ORIGIN' "$f"
done
for f in "$root"/libexec/*; do patchelf --set-rpath '$ORIGIN/../lib' "$f"; done

cp "$home/BUILD_OK" "$root/BUILD_OK"
printf 'bundled=%s\nbundled_from=%s\n' "$(date -u +%FT%TZ)" "$home" >> "$root/BUILD_OK"

cat > "$root/env.sh" <<'ENV'
# Source me (bash or sh): `. caffe-<id>/env.sh`. Puts this Caffe's bin/ on PATH. For a CUDA
# build it also finds the CUDA libraries its binaries need (cuda-libs.txt) on this machine and
# exports CAFFE_BUNDLE_LIBS; bin/caffe and bin/test.testbin put that on LD_LIBRARY_PATH for
# themselves only, so a Python run from the same shell keeps its own library path.
# Where it looks, first match per library: $CAFFE_CUDA_LIBS (':'-separated dirs), $CUDA_HOME,
# /usr/local/cuda, the Python environments $VIRTUAL_ENV, $CAFFE_CUDA_PYTHON_ENV and
# /opt/torch/.venv (site-packages/nvidia/{cu13,nccl}/lib: NVIDIA's cu13 wheels, as PyTorch
# cu130 installs them), the PyPI toolkit of tools/cuda_toolkit.sh ($CUDA_CACHE or the user's
# cache), then the loader's own cache.
# bash and zsh know where a sourced file is; from another sh set CAFFE_BUNDLE=<this folder> first.
if [ -n "${BASH_SOURCE:-}" ]; then CAFFE_BUNDLE=$(cd "$(dirname "${BASH_SOURCE}")" && pwd)
elif [ -n "${ZSH_VERSION:-}" ]; then CAFFE_BUNDLE=$(cd "$(dirname "$0")" && pwd)
elif [ -z "${CAFFE_BUNDLE:-}" ] || [ ! -f "$CAFFE_BUNDLE/env.sh" ]; then
  echo "env.sh: cannot tell where I am from this shell; run: CAFFE_BUNDLE=/path/to/caffe-<id> . /path/to/caffe-<id>/env.sh" >&2
  return 1 2>/dev/null || exit 1
fi
export CAFFE_BUNDLE
case ":$PATH:" in *":$CAFFE_BUNDLE/bin:"*) ;; *) PATH="$CAFFE_BUNDLE/bin:$PATH"; export PATH ;; esac
CAFFE_BUNDLE_LIBS=""
_cb_missing=""
for _cb_so in $(cat "$CAFFE_BUNDLE/cuda-libs.txt" 2>/dev/null); do
  _cb_found=""
  for _cb_dir in $(echo "${CAFFE_CUDA_LIBS:-}" | tr ':' ' ') \
      ${CUDA_HOME:+$CUDA_HOME/lib64 $CUDA_HOME/lib $CUDA_HOME/targets/x86_64-linux/lib} \
      /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib \
      ${VIRTUAL_ENV:+$VIRTUAL_ENV/lib/python3*/site-packages/nvidia/cu13/lib $VIRTUAL_ENV/lib/python3*/site-packages/nvidia/nccl/lib} \
      ${CAFFE_CUDA_PYTHON_ENV:+$CAFFE_CUDA_PYTHON_ENV/lib/python3*/site-packages/nvidia/cu13/lib $CAFFE_CUDA_PYTHON_ENV/lib/python3*/site-packages/nvidia/nccl/lib} \
      /opt/torch/.venv/lib/python3*/site-packages/nvidia/cu13/lib \
      /opt/torch/.venv/lib/python3*/site-packages/nvidia/nccl/lib \
      /usr/local/lib/python3*/dist-packages/nvidia/cu13/lib \
      /usr/local/lib/python3*/dist-packages/nvidia/nccl/lib \
      ${CUDA_CACHE:+$CUDA_CACHE/13.0/root/lib} \
      "${XDG_CACHE_HOME:-$HOME/.cache}/dri-hep2/cuda/13.0/root/lib"; do
    if [ -e "$_cb_dir/$_cb_so" ]; then _cb_found=$_cb_dir; break; fi
  done
  if [ -z "$_cb_found" ] && ldconfig -p 2>/dev/null | grep -q " $_cb_so "; then _cb_found=system; fi
  if [ -z "$_cb_found" ]; then _cb_missing="$_cb_missing $_cb_so"
  elif [ "$_cb_found" != system ]; then
    case ":$CAFFE_BUNDLE_LIBS:" in *":$_cb_found:"*) ;; *) CAFFE_BUNDLE_LIBS="${CAFFE_BUNDLE_LIBS:+$CAFFE_BUNDLE_LIBS:}$_cb_found" ;; esac
  fi
done
export CAFFE_BUNDLE_LIBS
if [ -n "$_cb_missing" ]; then
  echo "caffe bundle: CUDA libraries not found:$_cb_missing. Install NVIDIA's cu13 wheels (pip install nvidia-cuda-runtime nvidia-cublas nvidia-curand nvidia-nccl-cu13) or a CUDA 13 toolkit, or name their folder: CAFFE_CUDA_LIBS=/path/to/lib . $CAFFE_BUNDLE/env.sh" >&2
fi
unset _cb_so _cb_dir _cb_found _cb_missing
ENV

for b in caffe test.testbin; do
  sed "s/@BIN@/$b/" > "$root/bin/$b" <<'WRAP'
#!/bin/sh
# Runs libexec/@BIN@ with the CUDA libraries env.sh finds (it is sourced here if it was not),
# on LD_LIBRARY_PATH for this command only.
here=$(cd "$(dirname "$0")/.." && pwd)
if [ "${CAFFE_BUNDLE:-}" != "$here" ]; then CAFFE_BUNDLE=$here; . "$here/env.sh"; fi
LD_LIBRARY_PATH="${CAFFE_BUNDLE_LIBS:-}${CAFFE_BUNDLE_LIBS:+${LD_LIBRARY_PATH:+:}}${LD_LIBRARY_PATH:-}" \
  exec "$here/libexec/@BIN@" "$@"
WRAP
  chmod 0755 "$root/bin/$b"
done

mkdir -p "$out"
say "packing $(du -sh "$root" | cut -f1) ($(ls "$root/lib" | wc -l) files in lib/) with xz"
tar -C "$work" --owner=0 --group=0 --sort=name -cf - "$name" | xz -6 -T0 > "$work/out.tar.xz"
mv "$work/out.tar.xz" "$tarball.tmp"
mv "$tarball.tmp" "$tarball"   # one rename: a half-written tarball never has the final name
say "wrote $tarball ($(du -h "$tarball" | cut -f1))"
echo "$tarball"
