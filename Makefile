# DRI HEp-2 reproduction toolkit: every target runs real Caffe through the tools/ entry points.
# `make help` lists the targets and the variables that steer them.

SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON_SYS ?= python3
VENV       ?= .venv
PY         := $(VENV)/bin/python
CAFFE_HOME ?= .caffe
CAFFE      ?= $(CAFFE_HOME)/bin/caffe
# Caffe build: CUDA=auto builds for the GPU only where nvidia-smi sees a GPU; CUDA=1 forces it.
# CUDA_ARCH empty: the toolkit's own default list (CUDA 12: 60-90, CUDA 13: 75-120; docs/gpu.md).
CUDA       ?= auto
CUDA_ARCH  ?=
export CAFFE CUDA CUDA_ARCH

# Experiment knobs (README, "Running the paper").
NET        ?= dri
GPU        ?=
SCHEDULE   ?= paper
DATA_DIR   ?= data
RUN_DIR    ?= results/$(NET)
I3A        ?=
WEIGHTS    ?=
PYTEST_ARGS ?=

VENV_STAMP  := $(VENV)/.installed
CAFFE_STAMP := $(CAFFE_HOME)/BUILD_OK

.PHONY: help setup venv caffe doctor test test-fast

help:  ## list targets
	@grep -hE '^[a-z][a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | \
	  awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'
	@echo "Variables: NET=$(NET) GPU=$(GPU) SCHEDULE=$(SCHEDULE) DATA_DIR=$(DATA_DIR) RUN_DIR=$(RUN_DIR) I3A=$(I3A) CUDA=$(CUDA)"

# --- setup -------------------------------------------------------------------------------
setup: venv caffe  ## create .venv and build Caffe (idempotent; a prerequisite of every target)

venv: $(VENV_STAMP)  ## virtual environment with the pinned Python dependencies
$(VENV_STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON_SYS) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -e '.[test]'
	touch $@

caffe: $(VENV_STAMP)  ## build BVLC Caffe from Debian's source (cached by build id)
	PYTHON=$(abspath $(PY)) tools/build_caffe.sh

doctor: setup  ## report Caffe, BLAS, Python and library versions; fail if a piece is missing
	$(PY) tools/doctor.py

# --- tests ---------------------------------------------------------------------------------
test: setup  ## the whole test suite, slow end-to-end tests included (what CI runs)
	$(PY) -m pytest $(PYTEST_ARGS)

test-fast: setup  ## the test suite without the slow end-to-end tests
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

# --- data (issue 4) ------------------------------------------------------------------------
SYNTH_DIR  ?= $(DATA_DIR)/synthetic_i3a
SCALE      ?= 1.0
SEED       ?=
PROTOCOL   ?= cell
DATA_ARGS  ?=

.PHONY: synthetic data bench-data

synthetic: setup  ## synthetic I3A replica in contest layout in SYNTH_DIR (SCALE=1.0: 13,596 cells)
	$(PY) tools/make_synthetic.py --out $(SYNTH_DIR) --scale $(SCALE) $(if $(SEED),--seed $(SEED))

data: setup  ## LMDBs + mean + splits + manifest in DATA_DIR from I3A=<dir> (PROTOCOL=cell|specimen)
	@if [ -z "$(I3A)" ]; then \
	  echo "make data needs I3A=<folder of your I3A copy>; without one: make synthetic && make data I3A=$(SYNTH_DIR)"; \
	  exit 2; fi
	$(PY) tools/make_data.py --i3a $(I3A) --data-dir $(DATA_DIR) --protocol $(PROTOCOL) $(if $(SEED),--seed $(SEED)) $(DATA_ARGS)

bench-data: setup  ## time our build against rotated PNGs + convert_imageset on the same cells
	$(PY) tools/bench_data.py --scale $(SCALE)

# --- container (issue 6) ----------------------------------------------------------------------
# Builds ./Dockerfile's CPU image here (no Docker engine: buildah, debootstrapped base), then runs
# DOCKER_TEST_TARGETS inside it. docs/docker.md.
# VARIANT=cuda: the CUDA image (docs/docker.md), its fast suite inside (no GPU needed).
VARIANT             ?= cpu
DOCKER_IMAGE        ?= dri-hep2:$(VARIANT)
DOCKER_TEST_TARGETS ?= $(if $(filter cuda,$(VARIANT)),test-fast,test demo)
export VARIANT DOCKER_IMAGE DOCKER_TEST_TARGETS
.PHONY: docker-test

docker-test:  ## build the image (VARIANT=cpu|cuda) with buildah, run DOCKER_TEST_TARGETS inside it
	tools/docker_test.sh

# --- nets (issue 3) ------------------------------------------------------------------------
# prototxt/, solver/ and results/nets/*.png are generated and committed; docs/nets.md.
BENCH_ARGS ?=
.PHONY: nets describe bench-nets

nets: setup  ## regenerate prototxt/, solver/ (all four variants) and results/nets/*.png
	$(PY) tools/make_nets.py

describe: setup  ## Table 1, blob shapes, parameters and FLOPs re-derived from NET's net in Caffe
	$(PY) tools/describe_net.py --net $(NET)

bench-nets: setup  ## caffe time of each variant (batch 24) beside the machine's sgemm GFLOP/s
	$(PY) tools/bench_nets.py $(BENCH_ARGS)

# --- experiment (issue 5) ------------------------------------------------------------------
# Runs go in RUN_DIR (default results/$(NET)); docs/training.md.
DEMO_DATA_DIR ?= data/demo
DEMO_RUN_DIR  ?= results/demo
.PHONY: train eval report ablation demo

train: setup  ## caffe train NET with SCHEDULE (paper|short) on DATA_DIR into RUN_DIR; GPU=0 or 0,1; reruns resume
	$(PY) tools/train.py --net $(NET) --schedule $(SCHEDULE) --data-dir $(DATA_DIR) --run-dir $(RUN_DIR) --gpu "$(GPU)"

eval: setup  ## RUN_DIR's newest snapshot (or WEIGHTS=) on the test split: eval.json, eval.md, confusion.png
	$(PY) tools/evaluate.py --run-dir $(RUN_DIR) --data-dir $(DATA_DIR) $(if $(WEIGHTS),--weights $(WEIGHTS)) --gpu "$(GPU)"

report: setup  ## rewrite RUN_DIR's log.csv, curves.png, eval.md and results page README.md
	$(PY) tools/report.py --run-dir $(RUN_DIR)

ablation: setup  ## Table 3(a): train + eval the four variants with SCHEDULE into results/<variant>, results/ablation.md
	$(PY) tools/ablation.py --schedule $(SCHEDULE) --data-dir $(DATA_DIR) --results results --gpu "$(GPU)"

demo: setup  ## the main job on a CPU: synthetic replica, data, short DRI training, eval, report in results/demo
	$(PY) tools/demo.py --data-dir $(DEMO_DATA_DIR) --run-dir $(DEMO_RUN_DIR)

# --- GPU build, Caffe tests, bundle (issue 9) ------------------------------------------------
# docs/gpu.md. `make setup CUDA=1 CUDA_ARCH=90` builds the CUDA Caffe (a complete system CUDA,
# else NVIDIA's CUDA 13.0 wheels from PyPI, tools/cuda_toolkit.sh). BUNDLE_* below pick the
# build that `bundle` packs and `gpu-check-kit` carries, without relinking .caffe.
DIST_DIR       ?= dist
# The kit for the GPU machine (GPU_KIT_CUDA=1, the default where a GPU is seen) holds the CUDA
# bundle for sm_90 (H100/H200) in dist/gpu-check, the folder to carry; without a GPU,
# gpu-check runs its CPU parts with the CPU bundle and a smaller kit in dist/gpu-check-cpu.
GPU_KIT_CUDA   ?= $(if $(shell nvidia-smi -L 2>/dev/null),1,0)
GPU_KIT_ARCH   ?= 90
GPU_KIT_SCALE  ?= $(if $(filter 1,$(GPU_KIT_CUDA)),0.05,0.01)
GPU_CHECK_KIT  ?= $(DIST_DIR)/gpu-check$(if $(filter 1,$(GPU_KIT_CUDA)),,-cpu)
GPU_CHECK_OUT  ?= results/gpu-check
GPU_CHECK_ARGS ?=
.PHONY: caffe-test bundle gpu-check-kit gpu-check ci-cuda

# Builds (or finds) Caffe for CUDA=$(1) CUDA_ARCH=$(2) without touching .caffe, then packs it;
# the tarball's path is the recipe's last output line.
define bundle_of
prefix=$$(mktemp) && trap 'rm -f '$$prefix EXIT && \
CUDA=$(1) CUDA_ARCH="$(2)" CAFFE_LINK=0 CAFFE_PREFIX_FILE=$$prefix PYTHON=$(abspath $(PY)) \
  tools/build_caffe.sh >&2 && tools/bundle.sh --caffe-home "$$(cat $$prefix)" --out $(DIST_DIR)
endef

caffe-test: setup  ## Caffe's own GTest cases of our layers: CPU cases, and GPU cases where a GPU is
	tools/caffe_test.sh auto

bundle: venv  ## relocatable Caffe of the CUDA= / CUDA_ARCH= build in dist/caffe-<build id>.tar.xz
	@$(call bundle_of,$(CUDA),$(CUDA_ARCH))

gpu-check-kit: setup  ## what tools/gpu_check.sh needs on a GPU machine: bundle, small LMDB, nets, FLOPs
	@bundle=$$($(call bundle_of,$(GPU_KIT_CUDA),$(if $(filter 1,$(GPU_KIT_CUDA)),$(GPU_KIT_ARCH)))) && \
	  $(PY) tools/gpu_check_prepare.py --bundle "$$bundle" --out $(GPU_CHECK_KIT) --scale $(GPU_KIT_SCALE)

gpu-check: gpu-check-kit  ## device query, GTest, caffe time, training, CPU/GPU agreement; CPU parts without a GPU
	tools/gpu_check.sh --kit $(GPU_CHECK_KIT) --out $(GPU_CHECK_OUT) $(GPU_CHECK_ARGS)

ci-cuda: venv  ## CI: CUDA build for sm_90 (cached), ldd link check, its CPU GTest cases
	PYTHON=$(abspath $(PY)) tools/ci_cuda.sh
