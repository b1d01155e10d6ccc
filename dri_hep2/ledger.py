"""Our choices for what the paper leaves open: every default here is ours, not Li & Shen's.

Each value names its row of the assumptions ledger (ASSUMPTIONS.md), where the paper's own
words, the reason and the knob that overrides it are written; tests check that every row named
here exists there. What the paper does state is in `dri_hep2/paper.py`.
"""
from __future__ import annotations

from .folders import REPO_ROOT

# The ledger's page, of which this module holds the values.
PAGE = REPO_ROOT / "ASSUMPTIONS.md"

# --- Nets (rows N*) ---------------------------------------------------------------------------------
# N1: the stem in front of DRI 1-1, bvlc_googlenet's conv1 / pool1 / conv2 without LRN and
# without pool2, so that DRI 1-x run at 19x19, DRI 2-x at 9x9 and DRI 3-x at 4x4.
STEM_CONV1 = 64              # conv1/7x7_s2: 7x7, stride 2 (the "1/2" of section 2.1)
STEM_CONV2_REDUCE = 64       # conv2/3x3_reduce: 1x1
STEM_CONV2 = 192             # conv2/3x3: 3x3
# N2: the identity shortcut between blobs of different widths: "zero_pad" (ResNet option A,
# parameter free, stock Slice + Eltwise + Concat) or "projection" (a 1x1 convolution).
SHORTCUT = "zero_pad"
SHORTCUTS = ("zero_pad", "projection")
# N4: where the auxiliary heads attach: after the last block of stages 1 and 2 ("shallow" and
# "medium" features, section 2.1): DRI 1-2 and DRI 2-3 in DRI, DRI 1-1 and DRI 2-2 in SRI.
# Stage numbers count from 1.
AUX_AFTER_STAGES = (1, 2)
# N5: the auxiliary heads' layers the lost Fig. 1 would give: bvlc_googlenet's.
AUX_POOL_KERNEL = 5          # the "1/3" pool's kernel
AUX_CONV = 128               # 1x1 conv, 128 maps
AUX_FC = 1024                # FC1-0 / FC2-0 neurons
# N6: dropout of the main head (not described): bvlc_googlenet's 0.4.
MAIN_DROPOUT = 0.4
# N9: Caffe's transform_param: subtract the training mean image, then multiply by this scale.
INPUT_SCALE = 0.0078125      # 1/128: mean-subtracted grey levels to about [-1, 1]
# N10: conv / fc biases are kept (Caffe's default) and start at this constant.
BIAS_FILLER_VALUE = 0.0
# N11: PReLU slopes without weight decay, as in the PReLU paper (ref. [19]).
PRELU_DECAY_MULT = 0.0
# N17: Scale layers' gamma and beta keep Caffe's default multipliers (lr 1, decay 1): None
# writes no `param` block.
SCALE_DECAY_MULT = None

# --- Solver (rows N7, N8, N14) -------------------------------------------------------------------
LR_STEPSIZE = 10000          # N7: the step policy's stepsize; lr reaches ~1e-6 at 290k
WEIGHT_DECAY = 0.0002        # N8: bvlc_googlenet's
RANDOM_SEED = 1701           # N14: one seed for split, augmentation order, key shuffle, solver
TEST_BATCH_SIZE = 32         # N14: I3A's 2176 validation cells = 68 batches of 32
TEST_INTERVAL = 4000         # N14: about half an epoch of the 192,540-image augmented set
SNAPSHOT_INTERVAL = 10000    # N14
DISPLAY_INTERVAL = 100       # N14

# --- Data (rows D*) -------------------------------------------------------------------------------
INPUT_CHANNELS = 1           # D6: cells decoded as 8-bit grey, one channel

# --- Other data sets and cross-validation (rows C*) ------------------------------------------
# C3: how I3A Task 2's specimen images are cut into cells along their masks.
TASK2_CELL_PADDING = 4       # px of background kept around a component's bounding box
TASK2_MIN_CELL_AREA = 150    # px: smaller components are debris, not nuclei
# C5: the class-balanced rotation rule for class lists other than the paper's: a class with at
# most 1/m of the largest class's cells is rotated m times more often, m up to this factor.
ROTATION_BALANCE_MAX = 3
# C6, C7: folds of `PROTOCOL=kfold` (and of grouped `loso` when there are many specimens);
# leave-one-specimen-out proper up to this many specimens.
CV_FOLDS = 5
LOSO_MAX_FOLDS = 12

# --- The short CPU schedule and the demo (rows T1, T7) ---------------------------------------------
SHORT_MAX_ITER = 400         # T1
SHORT_STEPSIZE = 50          # T1
SHORT_BASE_LR = 0.01         # T1
SHORT_TEST_INTERVAL = 100    # T1
SHORT_SNAPSHOT_INTERVAL = 200  # T1
SHORT_DISPLAY_INTERVAL = 20  # T1
# T7: BatchNorm's moving average in the short schedule. Caffe's default 0.999 averages the
# statistics of ~1000 iterations: over a 400-iteration run, mostly those of early weights.
SHORT_BN_MOVING_AVERAGE = 0.8
DEMO_SCALE = 0.1             # T1: `make demo`'s synthetic replica, a fraction of I3A's counts

# --- Evaluation (row T8) ---------------------------------------------------------------------------
# T8: resamples of the stratified bootstrap behind MCA's 95 % interval (seeded by RANDOM_SEED).
BOOTSTRAP_RESAMPLES = 2000

# --- Sweeps: grids of runs, on this host or as Slurm job arrays (rows T10-T11) ----------------
# T10: a sweep's seed-K trains with random_seed RANDOM_SEED + K - 1 (as `make seeds`), on the
# one split of DATA_DIR, or, with PROTOCOL=kfold|loso, on each fold built with RANDOM_SEED.
# T11: Slurm warns a task this many seconds before its time limit (USR1): Caffe snapshots,
# the task requeues itself. One validation pass plus a snapshot of DRI on a GPU take well
# under a minute; five minutes leave room for a slow shared file system.
SLURM_SIGNAL_SECONDS = 300

# --- Using a trained model: predict, export, explain, package (rows U*) -------------------------
# U2: one call per specimen: arg-max of the mean of its cells' fused probabilities ("mean"),
# or the class most of its cells are called ("vote").
SPECIMEN_RULE = "mean"
# U4: the ONNX file's operator set and IR version: what onnxruntime 1.14 and later all load.
ONNX_OPSET = 17
ONNX_IR_VERSION = 8
# U5: an export passes its check against pycaffe when the fused probabilities differ by less
# than this on every checked cell and every label is the same.
EXPORT_MAX_ABS_DIFF = 1e-4
# U6: the montages of `make explain`: this many cells per class and outcome (correct, wrong),
# the most confident ones.
EXPLAIN_CELLS = 4
# U7: the licence a model package gives its weights.
WEIGHTS_LICENSE = "BSD-2-Clause"
