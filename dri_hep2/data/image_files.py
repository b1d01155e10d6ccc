"""Which files of a folder are cell images and which are their masks: `X_mask.<ext>` (any
case, any image suffix) is the mask of `X.<ext>`. The readers of the other layouts and
`make predict`'s folder input name them so."""
from __future__ import annotations

from pathlib import Path

from .cells import IMAGE_SUFFIXES


def is_mask(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES and path.stem.lower().endswith("_mask")


def is_cell_image(path: Path) -> bool:
    """An image file by its name, not a mask (whether it is a file is the caller's to ask)."""
    return path.suffix.lower() in IMAGE_SUFFIXES and not path.stem.lower().endswith("_mask")


def masks(folder: Path) -> dict[str, Path]:
    """The masks of a folder by the stem of their image. Listed once per folder, not once per
    image."""
    return {p.stem[:-len("_mask")]: p for p in sorted(folder.iterdir()) if is_mask(p)}
