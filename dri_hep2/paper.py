"""What Li & Shen (DLMIA 2017) state, written once, each value cited by table or section.

Generators, tests, the describe tool and the reports read these values; nothing else in the
toolkit may restate a number of the paper. What the paper leaves open is not here: our choices
for it live in `dri_hep2/ledger.py`, each with its row in ASSUMPTIONS.md.
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

# Table 1's blocks in order, grouped by the stage they run at. The paper names the blocks
# "DRI 1-1" ... "DRI 3-2": the first number is the stage; a max pool between stages is our
# reading of Fig. 1 (lost), ASSUMPTIONS.md N16.
STAGES = (("dri_1_1", "dri_1_2"), ("dri_2_1", "dri_2_2", "dri_2_3"), ("dri_3_1", "dri_3_2"))

# Section 3.3: SRI = DRI without DRI 1-2, DRI 2-3 and DRI 3-2.
SRI_REMOVED = ("dri_1_2", "dri_2_3", "dri_3_2")


# --- The nets of Table 3(a) (section 3.3) ----------------------------------------------------------
@dataclass(frozen=True)
class Variant:
    """One row of Table 3(a): the net as the paper names it and the MCA (%) it reports."""
    title: str          # as printed in Table 3(a)
    table3a_mca: float
    module: str         # "dri": the DRI block (section 2.2); "inception": ref. [16]'s module
    shallow: bool       # DRI 1-2, 2-3 and 3-2 removed (SRI_REMOVED)


# The one list of variants, in Table 3(a)'s row order; the keys name them in the toolkit
# (files, make's NET=, layer prefixes).
VARIANTS = {
    "shallow_inception": Variant("Shallow Inception", 96.54, "inception", shallow=True),
    "sri": Variant("SRI", 97.85, "dri", shallow=True),
    "inception": Variant("Inception [16]", 97.93, "inception", shallow=False),
    "dri": Variant("DRI", 98.37, "dri", shallow=False),
}



def variant_title(key: str | None) -> str:
    """A variant as Table 3(a) prints it; any other name as it is."""
    return VARIANTS[key].title if key in VARIANTS else str(key)


# --- Classifier heads and loss (section 2.1, Eq. 2) ----------------------------------------------
LOSS_WEIGHTS = (0.3, 0.3, 1.0)      # Eq. 2: w1, w2, w3 for FC1, FC2, FC3
AUX_DROPOUT = 0.7                   # section 2.1: FC1-0 and FC2-0 "followed by a dropout of 0.7"
AUX_POOL_STRIDE = 3                 # section 2.1: the "1/3" stride

# --- Training (section 2.3) ------------------------------------------------------------------------
BATCH_SIZE = 24
BASE_LR = 0.001
MOMENTUM = 0.9
LR_GAMMA = 0.79
MAX_ITER = 290000
WEIGHT_FILLER = "xavier"

# --- Results ----------------------------------------------------------------------------------------
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
