"""Everything Li & Shen (DLMIA 2017) state, written once, cited by table or section.

Generators, tests, the describe tool and the reports read these values; nothing else in the
toolkit may restate a number of the paper. Below the paper's numbers are *our* named defaults
for what the paper leaves open; each names its row in ASSUMPTIONS.md (the assumptions ledger).
"""
from __future__ import annotations

from dataclasses import dataclass

CITATION = ("Y. Li and L. Shen, \"A Deep Residual Inception Network for HEp-2 Cell "
            "Classification\", DLMIA 2017, LNCS 10553, pp. 12-20.")

# --- Classes (section 3.1, Table 2) ------------------------------------------------------------
# Label order = Table 2's column order. Caffe labels are the index in this tuple.
CLASSES = ("Homogeneous", "Speckled", "Nucleolar", "Centromere", "NuMem", "Golgi")
CLASS_ABBREV = ("H", "S", "N", "C", "Nm", "G")
NUM_CLASSES = len(CLASSES)
GOLGI = CLASSES.index("Golgi")

# --- Data (section 3.1-3.2, Table 2) ------------------------------------------------------------
I3A_COUNTS = (2494, 2831, 2598, 2741, 2208, 724)            # Table 2, row "I3A"; total 13,596
TRAIN_COUNTS = (1596, 1812, 1663, 1754, 1413, 463)          # Table 2, row "Training set"; 8,701
AUGMENTED_COUNTS = (31920, 36240, 33260, 35080, 28260, 27780)  # Table 2, "Augmented set"; 192,540
I3A_TOTAL = 13596
TRAIN_TOTAL = 8701
AUGMENTED_TOTAL = 192540
SPLIT_FRACTIONS = (0.64, 0.16, 0.20)                        # section 3.2: train / val / test
ROTATION_STEP_DEG = 18                                      # section 3.2: H, S, N, C, Nm
GOLGI_ROTATION_STEP_DEG = 6                                 # section 3.2: G, "three times more"
INPUT_SIZE = 76                                             # section 2.1: "reshaped to 76 x 76"
INPUT_CHANNELS = 1                                          # I3A cells are 8-bit grey


def rotation_step_deg(class_index: int) -> int:
    """Section 3.2: Golgi is rotated in 6 degree steps, every other class in 18."""
    return GOLGI_ROTATION_STEP_DEG if class_index == GOLGI else ROTATION_STEP_DEG


# --- Table 1: the DRI blocks ---------------------------------------------------------------------
@dataclass(frozen=True)
class BlockWidths:
    """One column of Table 1: number of kernels per convolution of a DRI block."""
    b1x1: int          # 1x1 branch
    b3x3_reduce: int   # 3x3 branch, 1x1
    b3x3: int          # 3x3 branch, 3x3
    b5x5_reduce: int   # 5x5 branch, 1x1
    b5x5: int          # 5x5 branch, 5x5
    b5x5_3x3: int      # 5x5 branch, the extra 3x3 that deepens it (section 2.2)
    pool_proj: int     # 3x3 max pool branch, 1x1

    @property
    def output(self) -> int:
        """Channels of the concatenated block output (the four branch ends)."""
        return self.b1x1 + self.b3x3 + self.b5x5_3x3 + self.pool_proj

    @property
    def inception_output(self) -> int:
        """Channels when the block is an original Inception module (no extra 3x3, ref. [16])."""
        return self.b1x1 + self.b3x3 + self.b5x5 + self.pool_proj


TABLE1 = {
    "dri_1_1": BlockWidths(64, 96, 128, 16, 32, 64, 32),
    "dri_1_2": BlockWidths(128, 128, 192, 32, 96, 128, 64),
    "dri_2_1": BlockWidths(192, 112, 224, 16, 48, 96, 64),
    "dri_2_2": BlockWidths(160, 128, 256, 24, 64, 128, 64),
    # 244 is printed; the progression (192, 160, ...) suggests a typo of 224. Kept as printed:
    # ASSUMPTIONS.md N12, overridable with --dri-2-3-1x1.
    "dri_2_3": BlockWidths(244, 144, 288, 24, 64, 128, 64),
    "dri_3_1": BlockWidths(256, 160, 320, 32, 128, 256, 128),
    "dri_3_2": BlockWidths(384, 192, 384, 48, 128, 256, 128),
}
# Table 1's column headings in print, for tables that put our names beside the paper's.
TABLE1_HEADINGS = {name: "DRI " + name[4:].replace("_", "-") for name in TABLE1}

# Stages of DRI blocks; a max pool (3x3, stride 2) sits between stages (section 2.1, Fig. 1 as
# described: "Our DRI uses two kinds of pooling"). Block order is Table 1's column order.
STAGES = (("dri_1_1", "dri_1_2"), ("dri_2_1", "dri_2_2", "dri_2_3"), ("dri_3_1", "dri_3_2"))

# Section 3.3: SRI = DRI without DRI 1-2, DRI 2-3 and DRI 3-2.
SRI_REMOVED = ("dri_1_2", "dri_2_3", "dri_3_2")

# --- Classifier heads and loss (section 2.1, Eq. 2) ----------------------------------------------
LOSS_WEIGHTS = (0.3, 0.3, 1.0)      # Eq. 2: w1, w2, w3 for FC1, FC2, FC3
AUX_DROPOUT = 0.7                   # section 2.1: FC1-0 and FC2-0 "followed by a dropout of 0.7"
AUX_POOL_STRIDE = 3                 # section 2.1: the "1/3" stride
# Where the auxiliary heads attach: after the last block of stages 1 and 2 ("shallow" and
# "medium" features, section 2.1): DRI 1-2 and DRI 2-3 in DRI, DRI 1-1 and DRI 2-2 in SRI.
# Stage numbers count from 1. ASSUMPTIONS.md N4.
AUX_AFTER_STAGES = (1, 2)

# --- Training (section 2.3) ------------------------------------------------------------------------
BATCH_SIZE = 24
BASE_LR = 0.001
MOMENTUM = 0.9
LR_GAMMA = 0.79
MAX_ITER = 290000
WEIGHT_FILLER = "xavier"

# --- Results ----------------------------------------------------------------------------------------
# Table 3(a): MCA (%) of the architecture variants on the test split.
TABLE3A_MCA = {"shallow_inception": 96.54, "sri": 97.85, "inception": 97.93, "dri": 98.37}
# Table 3(b): MCA (%) of DRI with classifier branches fused by the sum layer.
TABLE3B_MCA = {"3": 96.23, "1+3": 97.41, "2+3": 96.23, "1+2+3": 98.37}
# Table 4: MCA / ACA (%) of the benchmarks and the paper's nets ("-" where not reported).
TABLE4 = {
    "VHAR [9]": (93.60, None),
    "BoF [11]": (94.23, 94.38),
    "FV [11]": (95.73, 96.07),
    "Gao et al. [11]": (96.76, 97.24),
    "SRI": (97.85, 97.98),
    "DRI": (98.37, 98.49),
}
# Print names of the variants of Table 3(a).
VARIANT_TITLES = {"dri": "DRI", "sri": "SRI", "inception": "Inception [16]",
                  "shallow_inception": "Shallow Inception"}

# ====================================================================================================
# Our defaults for what the paper leaves open. Each is a row of ASSUMPTIONS.md; each is a knob.
# ====================================================================================================
LR_STEPSIZE = 10000          # N7: step policy's stepsize is not given; lr reaches ~1e-6 at 290k
WEIGHT_DECAY = 0.0002        # N8: not given; bvlc_googlenet's value
MAIN_DROPOUT = 0.4           # N6: main head dropout not described; bvlc_googlenet's 0.4
AUX_POOL_KERNEL = 5          # N5: the "1/3" pool's kernel; bvlc_googlenet's 5
AUX_CONV = 128               # N5: bvlc_googlenet's 1x1 conv, 128 maps, in each auxiliary head
AUX_FC = 1024                # N5: "the second parameter ... number of neurons" is lost with Fig. 1
PRELU_DECAY_MULT = 0.0       # N11: PReLU paper uses no weight decay on the slopes
RANDOM_SEED = 1701           # one seed for split, augmentation order, key shuffle and solver
SHORT_MAX_ITER = 400         # short CPU schedule for demos (ASSUMPTIONS.md T1)
SHORT_STEPSIZE = 50
SHORT_BASE_LR = 0.01
# T7: BatchNorm's moving average in the short schedule. Caffe's default 0.999 averages the
# statistics of ~1000 iterations: over a 400-iteration run, mostly those of early weights.
SHORT_BN_MOVING_AVERAGE = 0.8
DEMO_SCALE = 0.1             # T1: `make demo`'s synthetic replica, a fraction of I3A's counts

# --- Net reconstruction defaults (ASSUMPTIONS.md N1-N3, N9, N10, N13-N16) ---------------------
# N1: the stem in front of DRI 1-1, bvlc_googlenet's conv1 / pool1 / conv2 without LRN and
# without pool2, so that DRI 1-x run at 19x19, DRI 2-x at 9x9 and DRI 3-x at 4x4.
STEM_CONV1 = 64              # conv1/7x7_s2: 7x7, stride 2 (the "1/2" of section 2.1)
STEM_CONV2_REDUCE = 64       # conv2/3x3_reduce: 1x1
STEM_CONV2 = 192             # conv2/3x3: 3x3
# N2: the identity shortcut between blobs of different widths: "zero_pad" (ResNet option A,
# parameter free, stock Slice + Eltwise + Concat) or "projection" (a 1x1 convolution).
SHORTCUT = "zero_pad"
SHORTCUTS = ("zero_pad", "projection")
# N9: Caffe's transform_param: subtract the training mean image, then multiply by this scale.
INPUT_SCALE = 0.0078125      # 1/128: mean-subtracted grey levels to about [-1, 1]
# N10: conv / fc biases are kept (Caffe's default) and start at this constant.
BIAS_FILLER_VALUE = 0.0
# N14: the validation pass of the solvers.
TEST_BATCH_SIZE = 32         # I3A's 2176 validation cells = 68 batches of 32
TEST_INTERVAL = 4000         # about half an epoch of the 192,540-image augmented set at 24
SNAPSHOT_INTERVAL = 10000
DISPLAY_INTERVAL = 100
SHORT_TEST_INTERVAL = 100
SHORT_SNAPSHOT_INTERVAL = 200
SHORT_DISPLAY_INTERVAL = 20
