"""One cell image from its file to the net's input, as training saw it at TEST time.

    file ──decode──▶ 8-bit grey ──net_view──▶ 76x76 uint8 (what the val/test LMDBs hold)
         ──Transform──▶ (x - mean) * scale, float32 (what Caffe's TEST Data layer feeds)

`make data` (data.build, through i3a.load_images) and `make predict` (dri_hep2.model.inputs)
call the same `decode` and `net_view`; evaluation and prediction the same `Transform`. Nothing here
imports pycaffe: the ONNX backend of `make predict` runs on these functions without Caffe.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from . import augment

# What `decode` reads (OpenCV's decoders); masks (`*_Mask.png`) are not cells.
IMAGE_SUFFIXES = (".png", ".tif", ".tiff", ".bmp")


def decode(path: str | Path) -> np.ndarray | None:
    """A cell image file as 8-bit grey (H, W), or None when it cannot be decoded.

    IMREAD_GRAYSCALE turns a colour copy into grey and a 16-bit PNG or TIFF into 8 bits by
    dropping the low byte, as the LMDB build has always done (ASSUMPTIONS.md D6); libpng and
    libtiff reject truncated files, which then come back as None.
    """
    path = Path(path)
    data = np.fromfile(path, dtype=np.uint8) if path.is_file() else None
    if data is None or data.size == 0:
        return None
    img = cv2.imdecode(data, cv2.IMREAD_GRAYSCALE)
    return img if img is not None and img.size else None


def net_view(img: np.ndarray, *, stretch: bool = False) -> np.ndarray:
    """(76, 76) uint8: the view of a validation or test cell, exactly as the build stores it.

    `stretch` must be what the run's data folder was built with (its manifest's
    `parameters.stretch`, ASSUMPTIONS.md D4).
    """
    return augment.cell_views(img, None, stretch=stretch)[0]


@dataclass(frozen=True)
class Transform:
    """Caffe's DataTransformer at TEST time: (x - mean) * scale, centre crop."""
    mean: np.ndarray | float = 0.0
    scale: float = 1.0
    crop_size: int = 0

    def __call__(self, images: np.ndarray) -> np.ndarray:
        x = (images.astype(np.float32) - self.mean) * self.scale
        if self.crop_size:
            h, w = x.shape[-2:]
            top, left = (h - self.crop_size) // 2, (w - self.crop_size) // 2
            x = x[..., top:top + self.crop_size, left:left + self.crop_size]
        return x
