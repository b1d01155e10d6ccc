# syntax=docker/dockerfile:1
# DRI HEp-2 toolkit with its BVLC Caffe, CPU (default) or CUDA. docs/docker.md has the commands.
#
#   CPU : docker build -t dri-hep2:cpu .
#   CUDA: docker build -t dri-hep2:cuda --build-arg CUDA=1 .
#         (Debian 12 as well: NVIDIA's CUDA 13.0 wheels from PyPI, tools/cuda_toolkit.sh.
#          For Pascal/Volta GPUs, which CUDA 13 no longer compiles for, use a CUDA 12 base:
#          --build-arg BASE_IMAGE=nvidia/cuda:12.6.3-devel-ubuntu24.04, docs/docker.md.)
#
# Caffe is built by tools/build_caffe.sh, the same script `make setup` runs on a workstation and
# in CI: one build path. Layers are ordered so that editing the toolkit's sources rebuilds
# neither the Python dependencies nor Caffe.

# Pinned by date: Debian 12 as of 2025-11-17 (ASSUMPTIONS.md B2). `make docker-test` builds
# against a local debootstrap of the same suite under this name (no registry is reachable there).
ARG BASE_IMAGE=debian:bookworm-20251117-slim
FROM ${BASE_IMAGE}

# CUDA=1 builds Caffe for the GPU; CUDA_ARCH lists compute capabilities, empty for the toolkit's
# default (CUDA 13: 75 80 86 89 90 100 120, Turing to Blackwell; CUDA 12: 60 to 90; B3). cuDNN
# stays off (B1). Both are kept as ENV so that `make setup` inside the container finds the build
# it was made with, GPU attached or not. CUDA_CACHE: where the PyPI CUDA toolkit is unpacked.
ARG CUDA=0
ARG CUDA_ARCH=""
# uid of the non-root user: match the owner of the results folder you mount.
ARG DRI_UID=1000
ENV CUDA=${CUDA} \
    CUDA_ARCH=${CUDA_ARCH} \
    CAFFE_CACHE=/opt/caffe-cache \
    CUDA_CACHE=/opt/cuda-cache \
    DEBIAN_FRONTEND=noninteractive \
    LANG=C.UTF-8 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1

# The system Python (Debian 12: 3.11; Ubuntu 24.04: 3.12, B4) with venv and headers for pycaffe;
# make drives everything; git, because a training run asks it for the commit (the image has no
# history: the run records "unknown"). Caffe's own build dependencies are build_caffe.sh's.
RUN apt-get update -q \
 && apt-get install -y -q --no-install-recommends \
      python3 python3-venv python3-dev make git ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --create-home --uid "${DRI_UID}" --shell /bin/bash dri \
 && install -d -o dri -g dri /opt/dri-hep2 /data

WORKDIR /opt/dri-hep2
USER dri

# 1. The pinned Python dependencies, read from pyproject.toml (the one list of pins), with the
#    extras `make setup` installs (test, onnx).
#    hostca: optional build secret, a CA bundle for networks that re-sign TLS; it is mounted
#    for this step only and never stored in the image.
COPY --chown=dri:dri pyproject.toml ./
RUN --mount=type=secret,id=hostca,mode=0444 \
    if [ -s /run/secrets/hostca ]; then export PIP_CERT=/run/secrets/hostca; fi \
 && python3 -m venv .venv \
 && .venv/bin/python -c 'import tomllib; p = tomllib.load(open("pyproject.toml", "rb"))["project"]; \
print("\n".join(p["dependencies"] + p["optional-dependencies"]["test"] + p["optional-dependencies"]["onnx"]))' > /tmp/pins.txt \
 && .venv/bin/pip install -q -r /tmp/pins.txt \
 && rm /tmp/pins.txt

# 2. Caffe through the one build path. As root, because the script installs its Debian/Ubuntu
#    build dependencies with apt-get; the two links it leaves for the venv go to the user.
#    With CUDA=1 and no CUDA in the base, tools/cuda_toolkit.sh fetches NVIDIA's wheels with
#    pip (hence the CA secret again) and keeps only the unpacked toolkit (CUDA_KEEP_WHEELS=0).
USER root
COPY tools/build_caffe.sh tools/cuda_toolkit.sh tools/cuda-wheels.txt tools/
COPY tools/caffe-patches/ tools/caffe-patches/
RUN --mount=type=secret,id=hostca,mode=0444 \
    if [ -s /run/secrets/hostca ]; then export PIP_CERT=/run/secrets/hostca; fi \
 && PYTHON=/opt/dri-hep2/.venv/bin/python CUDA_KEEP_WHEELS=0 tools/build_caffe.sh \
 && rm -rf /var/lib/apt/lists/* \
 && chown -h dri:dri .caffe "$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/caffe-dri-hep2.pth"

# 3. The toolkit itself, installed by `make setup` as a user would (Caffe: "already built").
#    The package lists make the image say exactly what it holds.
USER dri
COPY --chown=dri:dri . .
RUN --mount=type=secret,id=hostca,mode=0444 \
    if [ -s /run/secrets/hostca ]; then export PIP_CERT=/run/secrets/hostca; fi \
 && make setup \
 && { dpkg-query -W; } > .image-debian-packages.txt \
 && .venv/bin/pip freeze > .image-python-packages.txt

# Data: mount I3A read-only at /data/I3A, where `make data` looks by default here; mount a
# results folder at /opt/dri-hep2/results (and, to keep the built LMDBs, one at
# /opt/dri-hep2/data). docs/docker.md.
ENV I3A=/data/I3A
CMD ["make", "help"]
