# DRI HEp-2 reproduction toolkit: every target runs real Caffe through the tools/ entry points.
# `make help` lists the targets and the variables that steer them. Sections follow the
# pipeline: setup, data, nets, train, eval, report, whole experiments, container, tests.

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
NET_ARGS   ?=
# MAX_ITER= / SNAPSHOT=: a schedule's iteration count and snapshot interval overridden, for
# every target that trains (recorded in each run's manifest).
MAX_ITER   ?=
SNAPSHOT   ?=
OVERRIDES   = $(if $(MAX_ITER),--max-iter $(MAX_ITER)) $(if $(SNAPSHOT),--snapshot $(SNAPSHOT))
PYTEST_ARGS ?=

VENV_STAMP  := $(VENV)/.installed

.PHONY: help
help:  ## list targets
	@grep -hE '^[a-z][a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | \
	  awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'
	@echo "Variables: NET=$(NET) GPU=$(GPU) SCHEDULE=$(SCHEDULE) DATA_DIR=$(DATA_DIR) RUN_DIR=$(RUN_DIR) I3A=$(I3A) CUDA=$(CUDA)"
	@echo "Using a trained model: IMAGES=$(IMAGES) BACKEND=$(BACKEND) MODEL=$(MODEL) SPLIT=$(SPLIT) OUT=$(OUT) WEIGHTS=$(WEIGHTS) LAYER=$(LAYER)"

# --- setup -------------------------------------------------------------------------------------
.PHONY: setup venv caffe doctor
setup: venv caffe  ## create .venv and build Caffe (idempotent; a prerequisite of every target)

venv: $(VENV_STAMP)  ## virtual environment with the pinned Python dependencies
$(VENV_STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON_SYS) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -e '.[test,onnx]'
	touch $@

caffe: $(VENV_STAMP)  ## build BVLC Caffe from Debian's source (cached by build id)
	PYTHON=$(abspath $(PY)) tools/build_caffe.sh

doctor: setup  ## report Caffe, BLAS, Python and library versions; fail if a piece is missing
	$(PY) tools/doctor.py

# --- GPU build, Caffe's own tests, bundle ---------------------------------------------------
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

# --- data --------------------------------------------------------------------------------------
FORMAT     ?=
SYNTH_DIR  ?= $(DATA_DIR)/synthetic_$(or $(FORMAT),i3a)
SCALE      ?= 1.0
SEED       ?=
PROTOCOL   ?= cell
K          ?=
FOLD       ?=
DATA_ARGS  ?=
.PHONY: synthetic data bench-data

synthetic: setup  ## synthetic I3A replica in contest layout in SYNTH_DIR (SCALE=1.0: 13,596 cells); FORMAT=icpr2012|i3a-task2|folders: another layout
	$(PY) tools/make_synthetic.py --out $(SYNTH_DIR) --scale $(SCALE) $(if $(SEED),--seed $(SEED)) $(if $(FORMAT),--format $(FORMAT))

data: setup  ## LMDBs + mean + splits + manifest in DATA_DIR from I3A=<dir> (PROTOCOL=cell|specimen|kfold|loso, K=, FOLD=; FORMAT= forces a layout)
	@if [ -z "$(I3A)" ]; then \
	  echo "make data needs I3A=<folder of your I3A copy>; without one: make synthetic && make data I3A=$(SYNTH_DIR)"; \
	  exit 2; fi
	$(PY) tools/make_data.py --i3a $(I3A) --data-dir $(DATA_DIR) --protocol $(PROTOCOL) $(if $(SEED),--seed $(SEED)) $(if $(FORMAT),--format $(FORMAT)) $(if $(K),--folds $(K)) $(if $(FOLD),--fold $(FOLD)) $(DATA_ARGS)

bench-data: setup  ## time our build against rotated PNGs + convert_imageset on the same cells
	$(PY) tools/bench_data.py --scale $(SCALE)

# --- nets --------------------------------------------------------------------------------------
# prototxt/, solver/ and results/nets/*.png are generated and committed; docs/nets.md.
BENCH_ARGS ?=
.PHONY: nets describe bench-nets bench-engine bench-predict bench-peer

nets: setup  ## regenerate prototxt/, solver/ (all four variants) and results/nets/*.png
	$(PY) tools/make_nets.py

describe: setup  ## Table 1, blob shapes, parameters and FLOPs re-derived from NET's net in Caffe
	$(PY) tools/describe_net.py --net $(NET)

bench-nets: setup  ## caffe time of each variant (batch 24) beside the machine's best sgemm; DRI per layer type and stage
	$(PY) tools/bench_nets.py $(BENCH_ARGS)

bench-engine: setup  ## the engine patches in one run: stock Caffe (CAFFE_STOCK=1), ours on the pthread OpenBLAS, ours; caffe train vs caffe time
	@stock=$$(mktemp) && pthread=$$(mktemp) && trap 'rm -f '$$stock' '$$pthread EXIT && \
	  CAFFE_STOCK=1 CAFFE_LINK=0 CAFFE_PREFIX_FILE=$$stock PYTHON=$(abspath $(PY)) tools/build_caffe.sh >&2 && \
	  CAFFE_BLAS=pthread CAFFE_LINK=0 CAFFE_PREFIX_FILE=$$pthread PYTHON=$(abspath $(PY)) tools/build_caffe.sh >&2 && \
	  $(PY) tools/bench_engine.py --caffe stock=$$(cat $$stock) --caffe both-pthread=$$(cat $$pthread) --caffe both=$$(readlink -f $(CAFFE_HOME)) $(BENCH_ARGS)

bench-predict: setup  ## make predict's cells/s: the Caffe backend against onnxruntime on the same cells and model, one run, and their ratio
	$(PY) tools/bench_predict.py $(BENCH_ARGS)

# Optional: PyTorch is not in CI's default path (the CPU wheel of torch 2.13.0, about 190 MB).
bench-peer: setup  ## one DRI training iteration in our Caffe against PyTorch (CPU) on the same net and batch, one run
	$(PY) -c 'import torch' 2>/dev/null || $(PY) -m pip install -q --disable-pip-version-check -e '.[peer]'
	$(PY) tools/bench_peer.py $(BENCH_ARGS)

# --- train, eval, report -----------------------------------------------------------------------
# Runs go in RUN_DIR (default results/$(NET)); docs/training.md.
.PHONY: train eval report

train: setup  ## caffe train NET with SCHEDULE (paper|short) on DATA_DIR into RUN_DIR; GPU=0 or 0,1; reruns resume
	$(PY) tools/train.py --net $(NET) --schedule $(SCHEDULE) --data-dir $(DATA_DIR) --run-dir $(RUN_DIR) --gpu "$(GPU)" $(OVERRIDES) $(NET_ARGS)

eval: setup  ## RUN_DIR's newest snapshot (or WEIGHTS=) on the test split: eval.json, eval.md, confusion.png
	$(PY) tools/evaluate.py --run-dir $(RUN_DIR) --data-dir $(DATA_DIR) $(if $(WEIGHTS),--weights $(WEIGHTS)) --gpu "$(GPU)"

report: setup  ## rewrite RUN_DIR's log.csv, curves.png, eval.md and results page README.md
	$(PY) tools/report.py --run-dir $(RUN_DIR)

# --- whole experiments -------------------------------------------------------------------------
DEMO_DATA_DIR ?= data/demo
DEMO_RUN_DIR  ?= results/demo
N          ?= 5
SEEDS      ?=
VARY_SPLIT ?=
CV_DIR     ?= results/$(NET)-$(PROTOCOL)
RESUME_CHECK_DIR ?= results/resume-check
TRIALS     ?= 3
.PHONY: demo demo-seeds seeds ablation cv resume-check

demo: setup  ## the main job on a CPU: synthetic replica, data, short DRI training, eval, report in results/demo
	$(PY) tools/demo.py --data-dir $(DEMO_DATA_DIR) --run-dir $(DEMO_RUN_DIR)

seeds: setup  ## N runs of NET/SCHEDULE differing only in Caffe's seed (VARY_SPLIT=1: the split too) into RUN_DIR-seeds, summary page
	$(PY) tools/seeds.py --net $(NET) --schedule $(SCHEDULE) --data-dir $(DATA_DIR) --run-dir $(RUN_DIR) -n $(N) $(if $(VARY_SPLIT),--vary-split) --gpu "$(GPU)" $(OVERRIDES) $(NET_ARGS)

resume-check: setup  ## NET (default shallow_inception) SCHEDULE=short MAX_ITER SNAPSHOT on DEMO_DATA_DIR: TRIALS runs killed twice with SIGKILL, resumed, byte-identical to a straight run?
	$(PY) tools/resume_check.py --net $(if $(filter command line,$(origin NET)),$(NET),shallow_inception) --schedule $(if $(filter command line,$(origin SCHEDULE)),$(SCHEDULE),short) --data-dir $(DEMO_DATA_DIR) --check-dir $(RESUME_CHECK_DIR) --trials $(TRIALS) $(OVERRIDES) $(if $(DURING_WRITE),--during-write)

demo-seeds: demo  ## the demo's figure as a range: N seeds of the demo into results/demo-seeds (its page shows them)
	$(MAKE) seeds NET=dri SCHEDULE=short DATA_DIR=$(DEMO_DATA_DIR) RUN_DIR=$(DEMO_RUN_DIR) N=$(N)

ablation: setup  ## Table 3(a): the four variants with SCHEDULE (SEEDS=N: seed series) into results/, results/ablation.md
	$(PY) tools/ablation.py --schedule $(SCHEDULE) --data-dir $(DATA_DIR) --results results --gpu "$(GPU)" $(if $(SEEDS),--seeds $(SEEDS)) $(OVERRIDES)

cv: setup  ## cross-validation of NET from I3A=<dir> (PROTOCOL=kfold K=5 | PROTOCOL=loso) with SCHEDULE into CV_DIR/fold-K, summary CV_DIR/README.md; reruns resume
	@if [ -z "$(I3A)" ]; then echo "make cv needs I3A=<input folder> (any layout of make data)"; exit 2; fi
	$(PY) tools/cv.py --source $(I3A) --protocol $(PROTOCOL) $(if $(K),--folds $(K)) --net $(NET) --schedule $(SCHEDULE) --cv-dir $(CV_DIR) --data-root $(DATA_DIR)/cv/$(notdir $(CV_DIR)) $(if $(SEED),--seed $(SEED)) $(if $(FORMAT),--format $(FORMAT)) --gpu "$(GPU)" $(OVERRIDES) $(DATA_ARGS) $(NET_ARGS)

# --- sweeps: grids of runs, here or on a Slurm cluster ----------------------------------------
# docs/sweeps.md. SCHEDULER=local trains the grid here; SCHEDULER=slurm submits it as one job
# array (and a summary job after it) and returns. SLURM_* or a SLURM_CONFIG file of
# `key = value` lines (partition, account, time, mem, cpus_per_task, max_parallel,
# signal_seconds, gres) say how; MAX_PARALLEL throttles the array. SLURM_STATE: the folder of
# make slurm-up's one-node cluster (keep it short: unix sockets live in it).
NETS           ?= dri
SCHEDULER      ?= local
SWEEP_DIR      ?= results/sweep
SLURM_CONFIG   ?=
SLURM_PARTITION ?=
SLURM_ACCOUNT  ?=
SLURM_TIME     ?=
SLURM_MEM      ?=
SLURM_CPUS     ?=
MAX_PARALLEL   ?=
SLURM_SIGNAL_SECONDS ?=
SLURM_GRES     ?=
SLURM_STATE    ?= $(HOME)/.cache/dri-hep2/slurm
SLURM_ARGS = $(foreach v,partition:SLURM_PARTITION account:SLURM_ACCOUNT time:SLURM_TIME \
  mem:SLURM_MEM cpus-per-task:SLURM_CPUS max-parallel:MAX_PARALLEL slurm-config:SLURM_CONFIG \
  signal-seconds:SLURM_SIGNAL_SECONDS gres:SLURM_GRES,\
  $(if $($(word 2,$(subst :, ,$(v)))),--$(word 1,$(subst :, ,$(v))) $($(word 2,$(subst :, ,$(v))))))
.PHONY: sweep sweep-status slurm-up slurm-down

sweep: setup  ## NETS=dri,sri x SEEDS=N (x PROTOCOL=kfold K= folds of I3A=) in SWEEP_DIR; SCHEDULER=local|slurm; reruns go on
	$(PY) tools/sweep.py run --sweep-dir $(SWEEP_DIR) --nets $(NETS) --seeds $(or $(SEEDS),1) --protocol $(PROTOCOL) $(if $(K),--folds $(K)) \
	  --schedule $(SCHEDULE) --data-dir $(DATA_DIR) $(if $(I3A),--source $(I3A)) --scheduler $(SCHEDULER) --gpu "$(GPU)" $(OVERRIDES) $(SLURM_ARGS) $(NET_ARGS)

sweep-status: venv  ## one line per run of SWEEP_DIR: pending, running at iteration K, finished with MCA, failed
	$(PY) tools/sweep.py status --sweep-dir $(SWEEP_DIR)

slurm-up:  ## a one-node Slurm cluster on this machine (munge, slurmctld, slurmd) to try SCHEDULER=slurm
	tools/slurm_local.sh up $(SLURM_STATE)

slurm-down:  ## stop the cluster of make slurm-up
	tools/slurm_local.sh down $(SLURM_STATE)

# --- use a trained model -----------------------------------------------------------------------
# A run (RUN_DIR) applied to new cells, exported to ONNX, explained and packaged; docs/using.md.
# These read the data folder the run was trained on (its manifest says which); DATA_DIR is
# passed only when given on the command line.
USE_DATA_DIR = $(if $(filter command line,$(origin DATA_DIR)),--data-dir $(DATA_DIR))
IMAGES        ?=
OUT           ?=
BACKEND       ?= caffe
MODEL         ?=
SPLIT         ?=
LAYER         ?=
CHECK_IMAGES  ?=
SKIP_BAD      ?=
SPECIMEN_RULE ?=
.PHONY: predict export explain package

predict: setup  ## classify IMAGES=<folder|I3A folder|CSV> with RUN_DIR (BACKEND=caffe|onnx, MODEL=, WEIGHTS=, SPLIT=, OUT=, GPU=, SKIP_BAD=1)
	@if [ -z "$(IMAGES)" ]; then \
	  echo "make predict needs IMAGES=<folder of cell images, I3A folder or CSV>; e.g. make predict RUN_DIR=results/demo IMAGES=data/demo/synthetic_i3a SPLIT=test"; \
	  exit 2; fi
	$(PY) tools/predict.py --images $(IMAGES) $(if $(MODEL),--model $(MODEL),--run-dir $(RUN_DIR)) --backend $(if $(MODEL),onnx,$(BACKEND)) $(if $(WEIGHTS),--weights $(WEIGHTS)) $(if $(SPLIT),--split $(SPLIT)) $(USE_DATA_DIR) $(if $(OUT),--out $(OUT)) $(if $(SKIP_BAD),--skip-bad) $(if $(SPECIMEN_RULE),--specimen-rule $(SPECIMEN_RULE)) --gpu "$(GPU)"

export: setup  ## RUN_DIR/export: model.onnx + model.json, checked against pycaffe on the test cells (WEIGHTS=, CHECK_IMAGES=)
	$(PY) tools/export_onnx.py --run-dir $(RUN_DIR) $(if $(WEIGHTS),--weights $(WEIGHTS)) $(USE_DATA_DIR) $(if $(CHECK_IMAGES),--check-images $(CHECK_IMAGES))

explain: setup  ## RUN_DIR/explain: gradient and Grad-CAM montages per class (LAYER=, WEIGHTS=, GPU=)
	$(PY) tools/explain.py --run-dir $(RUN_DIR) $(if $(WEIGHTS),--weights $(WEIGHTS)) $(USE_DATA_DIR) $(if $(LAYER),--layer $(LAYER)) --gpu "$(GPU)"

package: setup  ## RUN_DIR/package/<name>.tar.gz: Caffe + ONNX model, mean, model card (WEIGHTS=)
	$(PY) tools/package.py --run-dir $(RUN_DIR) $(if $(WEIGHTS),--weights $(WEIGHTS)) $(USE_DATA_DIR)

# --- container ---------------------------------------------------------------------------------
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


# --- tests -------------------------------------------------------------------------------------
.PHONY: test test-fast
test: setup  ## the whole test suite, slow end-to-end tests included (what CI runs)
	$(PY) -m pytest $(PYTEST_ARGS)

test-fast: setup  ## the test suite without the slow end-to-end tests
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)
