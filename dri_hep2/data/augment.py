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

from .. import paper
from ..errors import UserError

BORDERS = {"reflect101": cv2.BORDER_REFLECT_101, "replicate": cv2.BORDER_REPLICATE,
           "constant": cv2.BORDER_CONSTANT}


def rotation_angles(label: int, steps: tuple[int, ...] | None = None) -> list[int]:
    """Angles (degrees, 0 first) a training cell of class `label` is rotated by.

    `steps` overrides the per-class step (six values in paper.CLASSES order).
    """
    step = steps[label] if steps else paper.rotation_step_deg(label)
    if step <= 0 or 360 % step:
        raise UserError(f"rotation step {step} must divide 360")
    return list(range(0, 360, step))


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
