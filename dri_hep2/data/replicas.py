"""Synthetic replicas of the other layouts `make data` reads (dri_hep2.data.formats), each in
its exact on-disk form, for the tests and for trying the toolkit without the data (none of
these collections may be redistributed). Cells come from the I3A replica's generators
(dri_hep2.data.synthetic, ledger D8) plus four more patterns below; every cell is drawn from its
own seeded generator, so a replica is the same for a seed.

    make_icpr2012   NNN.png + NNN_mask.png (3-channel, as the contest's colour images), a
                    semicolon CSV `ID;pattern` with lower-case patterns
    make_task2      specimen images <specimen>_<n>.tif, each a mosaic of cells with its mask
                    <stem>_Mask.tif, and gt_training.csv `Specimen ID,Pattern,Intensity`
    make_folders    <root>/<class>/<id>.png|tif|bmp (formats in turn) and specimens.csv
"""
from __future__ import annotations

import csv
import io
from pathlib import Path

import cv2
import numpy as np

from .. import atomic, classes as class_lists
from .. import ledger
from . import synthetic
from .synthetic import _dots, _granules

# The ICPR 2012 contest's 1,457 cells per pattern, as its public description gives them
# (28 images; ledger C2), in the class list's order H, FS, CS, N, C, Cy.
ICPR2012_COUNTS = (345, 225, 239, 257, 388, 128)
ICPR2012_CSV = "gt_training.csv"
TASK2_CSV = "gt_training.csv"


# --- patterns the I3A replica does not have -------------------------------------------------------
def _fine_speckled(rng, spec, r, u, v, a, inside):
    """Fine, dense speckles throughout the nucleus."""
    return 0.35 + 0.1 * (1 - r) + 0.8 * _granules(rng, r.shape, 0.3, 0.7 * spec["grain"])


def _coarse_speckled(rng, spec, r, u, v, a, inside):
    """Variously sized, larger speckles, sparser."""
    small = _granules(rng, r.shape, 0.05, 1.2 * spec["grain"])
    large = _granules(rng, r.shape, 0.01, 2.4 * spec["grain"])
    return 0.2 + 0.6 * small + 0.9 * large


def _cytoplasmatic(rng, spec, r, u, v, a, inside):
    """A dark nucleus inside bright, fibrous cytoplasm (the cell image holds both)."""
    fibres = cv2.GaussianBlur((rng.random(r.shape) < 0.08).astype(np.float32), (0, 0), 1.0,
                              sigmaY=3.0)
    fibres /= max(float(fibres.max()), 1e-6)
    ring = np.clip((r - 0.5) * 6, 0, 1)
    return 0.08 + ring * (0.5 + 0.6 * fibres)


def _mitotic_spindle(rng, spec, r, u, v, a, inside):
    """A dim nucleus with two bright crescents at opposite poles (the spindle's poles)."""
    phi = rng.uniform(-np.pi, np.pi)
    ang = np.arctan2(v, u)
    poles = np.zeros(r.shape, np.float32)
    for pole in (phi, phi + np.pi):
        near = np.abs(np.angle(np.exp(1j * (ang - pole)))) < 0.5
        poles = np.maximum(poles, _dots(rng, r, u, v, 6, 1.5 * spec["grain"],
                                        near & (r > 0.5) & (r < 0.9)))
    return 0.15 + 0.05 * _granules(rng, r.shape, 0.1, 1.0) + poles


_I3A = dict(zip(class_lists.I3A.names, synthetic._PATTERNS))
PATTERNS = {
    "icpr2012": (_I3A["Homogeneous"], _fine_speckled, _coarse_speckled, _I3A["Nucleolar"],
                 _I3A["Centromere"], _cytoplasmatic),
    "i3a-task2": (*synthetic._PATTERNS, _mitotic_spindle),
}


def _png(img: np.ndarray, suffix: str = ".png") -> bytes:
    ok, data = cv2.imencode(suffix, img)
    assert ok, suffix
    return data.tobytes()


def _csv(rows, delimiter: str = ",") -> str:
    buf = io.StringIO()
    csv.writer(buf, delimiter=delimiter, lineterminator="\n").writerows(rows)
    return buf.getvalue()


# --- ICPR 2012 ------------------------------------------------------------------------------------
def make_icpr2012(out: str | Path, *, scale: float = 1.0,
                  seed: int = ledger.RANDOM_SEED) -> Path:
    """`NNN.png` (3-channel, grey in each channel), `NNN_mask.png`, and a semicolon CSV
    `ID;pattern` with the contest's lower-case patterns; IDs in class blocks from 001."""
    counts = tuple(max(1, round(n * scale)) for n in ICPR2012_COUNTS)
    plan = synthetic._plan(counts, seed)
    names = [n.lower() for n in class_lists.ICPR2012.names]
    rows = [("ID", "pattern")]
    with atomic.staged_path(out, is_dir=True) as tmp:
        for cell_id, label, spec in plan:
            img, mask = synthetic.draw_cell(label, spec, np.random.default_rng(
                [seed, int(cell_id)]), PATTERNS["icpr2012"])
            name = f"{int(cell_id):03d}"
            (tmp / f"{name}.png").write_bytes(_png(cv2.merge([img, img, img])))
            (tmp / f"{name}_mask.png").write_bytes(_png(mask))
            rows.append((name, names[label]))
        (tmp / ICPR2012_CSV).write_text(_csv(rows, ";"))
    return Path(out)


# --- I3A Task 2 -----------------------------------------------------------------------------------
TILE = 116              # px per cell of a mosaic: the largest cell (111 px) and a margin


def make_task2(out: str | Path, *, specimens_per_class: int = 2, images_per_specimen: int = 4,
               grid: tuple[int, int] = (3, 4), seed: int = ledger.RANDOM_SEED) -> Path:
    """Specimen images in the Task 2 layout (ledger C3): per specimen `images_per_specimen`
    mosaics `<specimen:05d>_<n>.tif` of grid[0] x grid[1] cells of its class, each with a
    binary mask `<stem>_Mask.tif`; besides the grid, each image has one cell cut by its right
    border and one speck of debris (both in the mask, neither a cell by the reader's defaults);
    `gt_training.csv` lists `Specimen ID,Pattern,Intensity`."""
    rows_n, cols_n = grid
    height, width = rows_n * TILE, cols_n * TILE + TILE // 2
    rng_plan = np.random.default_rng([seed, 2])
    rows = [("Specimen ID", "Pattern", "Intensity")]
    spec_id = 1
    with atomic.staged_path(out, is_dir=True) as tmp:
        for label, name in enumerate(class_lists.I3A_TASK2.names):
            for _ in range(specimens_per_class):
                spec = synthetic.new_specimen(rng_plan, spec_id)
                for n in range(1, images_per_specimen + 1):
                    img, mask = _mosaic(label, spec, height, width, grid,
                                        np.random.default_rng([seed, spec_id, n]))
                    stem = f"{spec_id:05d}_{n}"
                    (tmp / f"{stem}.tif").write_bytes(_png(img, ".tif"))
                    (tmp / f"{stem}_Mask.tif").write_bytes(_png(mask, ".tif"))
                rows.append((f"{spec_id:05d}", name, spec["intensity"]))
                spec_id += 1
        (tmp / TASK2_CSV).write_text(_csv(rows))
    return Path(out)


def _mosaic(label: int, spec: dict, height: int, width: int, grid, rng):
    """One specimen image and its mask: a cell per grid tile, jittered inside it."""
    img = (spec["background"] + rng.normal(0, spec["noise"], (height, width))).clip(0, 255)
    img = img.astype(np.uint8)
    mask = np.zeros((height, width), np.uint8)

    def paste(cell, cell_mask, top, left):
        h = min(cell.shape[0], height - top)
        w = min(cell.shape[1], width - left)
        img[top:top + h, left:left + w] = cell[:h, :w]
        mask[top:top + h, left:left + w] = np.maximum(mask[top:top + h, left:left + w],
                                                      cell_mask[:h, :w])

    for row in range(grid[0]):
        for col in range(grid[1]):
            cell, cell_mask = synthetic.draw_cell(label, spec, rng, PATTERNS["i3a-task2"])
            top = row * TILE + int(rng.integers(0, TILE - cell.shape[0] + 1))
            left = col * TILE + int(rng.integers(0, TILE - cell.shape[1] + 1))
            paste(cell, cell_mask, top, left)
    # A cell cut by the right border, in the strip beside the grid: its nucleus reaches past
    # the edge, so its mask component touches the border.
    cell, cell_mask = synthetic.draw_cell(label, spec, rng, PATTERNS["i3a-task2"])
    paste(cell, cell_mask, 2, width - cell.shape[1] // 2)
    # Debris: a 4x4 speck, far below the minimum cell area, in the strip's lower part.
    mask[height - 8:height - 4, width - 30:width - 26] = 255
    return img, mask


# --- a folder per class ---------------------------------------------------------------------------
FOLDER_CLASSES = ("speckled", "centromere", "homogeneous", "nucleolar")


def make_folders(out: str | Path, *, class_names: tuple[str, ...] = FOLDER_CLASSES,
                 per_class: int = 40, specimens_per_class: int = 4,
                 seed: int = ledger.RANDOM_SEED) -> Path:
    """`<out>/<class>/<id>.png|.tif|.bmp` (the three suffixes in turn), grey cells of I3A's
    generator of that name (others cycle through them), and `specimens.csv` `image,specimen`
    with each image's path relative to `out`."""
    generators = [_I3A.get(name.capitalize(), synthetic._PATTERNS[k % len(synthetic._PATTERNS)])
                  for k, name in enumerate(class_names)]
    plan = synthetic._plan((per_class,) * len(class_names), seed, specimens_per_class)
    rows = [("image", "specimen")]
    suffixes = (".png", ".tif", ".bmp")
    with atomic.staged_path(out, is_dir=True) as tmp:
        for k, (cell_id, label, spec) in enumerate(plan):
            img, _ = synthetic.draw_cell(label, spec, np.random.default_rng([seed, int(cell_id)]),
                                         generators)
            rel = f"{class_names[label]}/{cell_id}{suffixes[k % len(suffixes)]}"
            (tmp / class_names[label]).mkdir(exist_ok=True)
            (tmp / rel).write_bytes(_png(img, Path(rel).suffix))
            rows.append((rel, f"{class_names[label]}-{spec['id']}"))
        (tmp / "specimens.csv").write_text(_csv(rows))
    return Path(out)
