"""The paper's class-balanced rotation augmentation and the resize to the net input
(sections 2.1 and 3.2, Table 2).

Training cells are rotated about their centre in `rotation_step_deg(label)` steps (18 degrees:
20 images per cell with the original; Golgi 6 degrees: 60), then resized to 76x76. Validation
and test cells are only resized. Interpolation, border and non-square handling:
ASSUMPTIONS.md D1-D3.
"""
from __future__ import annotations

import cv2
import numpy as np

from .. import classes as class_lists
from .. import ledger, paper
from ..errors import UserError

BORDERS = {"reflect101": cv2.BORDER_REFLECT_101, "replicate": cv2.BORDER_REPLICATE,
           "constant": cv2.BORDER_CONSTANT}


def rotation_angles(label: int, steps: tuple[int, ...] | None = None) -> list[int]:
    """Angles (degrees, 0 first) a training cell of class `label` is rotated by.

    `steps`: the step of each class in class-list order (`class_steps`); None: the paper's
    (I3A's six classes).
    """
    step = steps[label] if steps else paper.rotation_step_deg(label)
    if step <= 0 or 360 % step:
        raise UserError(f"rotation step {step} must divide 360")
    return list(range(0, 360, step))


def class_steps(classes: class_lists.ClassList, counts, base: int = paper.ROTATION_STEP_DEG,
                golgi: int = paper.GOLGI_ROTATION_STEP_DEG) -> tuple[int, ...]:
    """The rotation step of each class.

    I3A's classes: the paper's rule (section 3.2), `golgi` for Golgi and `base` for the
    others, whatever the counts. Any other class list (ledger C5): the paper's rule made
    general, a class with at most 1/m of the largest class's cells (`counts`, per class) is
    rotated in steps of base / m, m = 1, 2 or 3 (ledger.ROTATION_BALANCE_MAX): 18, 9 or 6
    degrees with the paper's base. On I3A's own counts this gives the paper's steps too.
    """
    if classes == class_lists.I3A:
        return tuple(golgi if c == paper.GOLGI else base for c in range(len(classes)))
    largest = max(counts) if len(counts) else 0
    steps = []
    for name, n in zip(classes.names, counts):
        m = min(ledger.ROTATION_BALANCE_MAX, largest // n) if n else 1
        if base % m:
            raise UserError(f"rotation step {base} cannot be divided by {m} for class {name} "
                            f"({n} cells against {largest}): give a --step divisible by 6, "
                            "or every class's step with --steps")
        steps.append(base // m)
    return tuple(steps)


def augmented_counts(train_counts, steps=None) -> tuple[int, ...]:
    """Images per class after augmentation: Table 2's "Augmented set" row from its training row."""
    return tuple(n * len(rotation_angles(label, steps)) for label, n in enumerate(train_counts))


def cell_views(img: np.ndarray, angles: list[int] | None = None, *, border: str = "reflect101",
               stretch: bool = False) -> np.ndarray:
    """(len(angles), 76, 76) uint8: `img` rotated by each angle about its centre, then resized.

    `angles=None` (validation, test): the image resized only. `stretch` maps each cell's
    min..max to 0..255 first (ASSUMPTIONS.md D4; off by default: raw pixels as in the paper).
    """
    if stretch:
        img = cv2.normalize(img, None, 0, 255, cv2.NORM_MINMAX)
    size = paper.INPUT_SIZE
    h, w = img.shape
    # Shrinking averages (no aliasing of the fine speckles); enlarging interpolates (D1).
    resize_interp = cv2.INTER_AREA if h * w >= size * size else cv2.INTER_LINEAR
    out = np.empty((len(angles) if angles else 1, size, size), np.uint8)
    for k, angle in enumerate(angles or [0]):
        view = img
        if angle:
            m = cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), angle, 1.0)
            view = cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_LINEAR,
                                  borderMode=BORDERS[border])
        out[k] = cv2.resize(view, (size, size), interpolation=resize_interp)
    return out
