"""A synthetic replica of I3A Task 1 in the contest layout, for the demo, the tests and anyone
without the data (I3A may not be redistributed).

Each class has a pattern generator that imitates what a pathologist sees (ASSUMPTIONS.md D8):

- Homogeneous: the nucleus evenly filled, smooth, with faint fine texture;
- Speckled: a granular nucleus; the finest, lowest-contrast specimens look homogeneous;
- Nucleolar: a few (2-7) large bright blobs on a dim nucleus;
- Centromere: many (12-60) small sharp dots; sparse ones look nucleolar;
- NuMem: a bright rim around a dimmer interior;
- Golgi: a dim nucleus with a cluster of granules crowded on one side of it.

Cells are 8-bit grey, 54-111 px a side, dim (brightest pixel ~55 for intermediate specimens,
~2x for positive), with a 0/255 nucleus mask. Cells come in specimens (one class each) that
share brightness, blur, noise and pattern scale, so a specimen-level split is harder than a
cell-level one, as on I3A. Every cell is drawn from its own seeded generator: the replica is
identical for a seed whatever the number of processes.
"""
from __future__ import annotations

import csv
import io
import os
from multiprocessing import get_context
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from .. import atomic, ledger, paper
from .i3a import CSV_NAME

SPECIMENS_PER_CLASS = 8        # ASSUMPTIONS.md D8: enough for a 64/16/20 specimen split
SIDE_RANGE = (54, 111)         # reference facts 1: I3A cells are 54-111 px a side
MONTAGE_PER_CLASS = 10
CSV_HEADER = ("Image ID", "Image class", "Intensity", "Specimen ID")


def class_counts(scale: float = 1.0) -> tuple[int, ...]:
    """I3A's class counts (Table 2) times `scale`, at least one cell per class."""
    return tuple(max(1, round(n * scale)) for n in paper.I3A_COUNTS)


def make_replica(out: str | Path, *, scale: float = 1.0, seed: int = ledger.RANDOM_SEED,
                 workers: int | None = None, montage: bool = True,
                 progress: bool = True) -> Path:
    """Write a replica in I3A's contest layout to `out` (atomically) and return `out`.

    IDs come in class blocks as on I3A (at scale 1: H 1-2494, ..., G 12873-13596).
    """
    out = Path(out)
    plan = _plan(class_counts(scale), seed)
    workers = workers or os.cpu_count() or 1
    with atomic.staged_path(out, is_dir=True) as tmp:
        chunks = [(tmp, seed, plan[i:i + 256]) for i in range(0, len(plan), 256)]
        with get_context("fork").Pool(workers) as pool:
            for _ in tqdm(pool.imap_unordered(_write_chunk, chunks), total=len(chunks),
                          desc="synthetic cells", unit="x256", disable=not progress):
                pass
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(CSV_HEADER)
        for cell_id, label, spec in plan:
            writer.writerow([cell_id, paper.CLASSES[label], spec["intensity"], spec["id"]])
        (tmp / CSV_NAME).write_text(buf.getvalue())
        if montage:
            cv2.imwrite(str(tmp / "montage.png"), _montage(plan, seed))
    return out


def draw_cell(label: int, spec: dict, rng: np.random.Generator,
              patterns=None) -> tuple[np.ndarray, np.ndarray]:
    """One cell image (uint8) and its nucleus mask (0/255) of class `label`: drawn by
    `patterns[label]` (default I3A's six generators; dri_hep2.data.replicas adds others)."""
    h = int(np.clip(rng.normal(70, 11), *SIDE_RANGE))
    w = int(np.clip(h + rng.integers(-6, 7), *SIDE_RANGE))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    cy, cx = h / 2 + rng.normal(0, 1.5), w / 2 + rng.normal(0, 1.5)
    a = min(h, w) * rng.uniform(0.34, 0.42)
    b = a * rng.uniform(0.78, 1.0)
    t = rng.uniform(0, np.pi)
    u = ((xx - cx) * np.cos(t) + (yy - cy) * np.sin(t)) / a
    v = (-(xx - cx) * np.sin(t) + (yy - cy) * np.cos(t)) / b
    r = np.sqrt(u * u + v * v)
    inside = np.clip((1.0 - r) * 8.0, 0.0, 1.0)       # soft nucleus edge, ~1/8 radius wide
    img = (patterns or _PATTERNS)[label](rng, spec, r, u, v, a, inside) * inside
    img = cv2.GaussianBlur(img, (0, 0), spec["blur"])
    img = img / max(float(img.max()), 1e-6)
    img = img * spec["peak"] * rng.uniform(0.85, 1.1) + spec["background"]
    img += rng.normal(0, spec["noise"], img.shape).astype(np.float32)
    mask = np.where(r <= 1.0, 255, 0).astype(np.uint8)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8), mask


# --- the six pattern generators: relative intensity inside the nucleus --------------------------
def _granules(rng, shape, density, sigma):
    """Random bright granules: a sparse impulse field blurred to spots of width `sigma`."""
    field = (rng.random(shape) < density).astype(np.float32) * rng.uniform(
        0.5, 1.0, shape).astype(np.float32)
    field = cv2.GaussianBlur(field, (0, 0), sigma)
    return field / max(float(field.max()), 1e-6)


def _dots(rng, r, u, v, count, sigma, where):
    """`count` spots of width `sigma` at positions where `where(r, angle)` holds."""
    field = np.zeros(r.shape, np.float32)
    ys, xs = np.nonzero(where)
    if len(ys):
        pick = rng.integers(0, len(ys), count)
        field[ys[pick], xs[pick]] = rng.uniform(0.6, 1.0, count)
    field = cv2.GaussianBlur(field, (0, 0), sigma)
    return field / max(float(field.max()), 1e-6)


def _homogeneous(rng, spec, r, u, v, a, inside):
    texture = rng.uniform(0.03, 0.18) * _granules(rng, r.shape, 0.25, 0.9)
    return 0.75 + 0.1 * (1 - r) + texture


def _speckled(rng, spec, r, u, v, a, inside):
    amp = rng.uniform(0.25, 0.8) * spec["texture"]      # low amplitude: homogeneous look-alike
    grains = _granules(rng, r.shape, rng.uniform(0.08, 0.2), spec["grain"])
    return 0.4 + 0.15 * (1 - r) + amp * grains


def _nucleolar(rng, spec, r, u, v, a, inside):
    n = int(rng.integers(2, 8))
    blobs = _dots(rng, r, u, v, n, a * rng.uniform(0.09, 0.15) * spec["grain"], r < 0.6)
    return 0.22 + 0.05 * _granules(rng, r.shape, 0.1, 1.0) + blobs


def _centromere(rng, spec, r, u, v, a, inside):
    n = int(rng.integers(12, 60))                        # few dots: nucleolar look-alike
    dots = _dots(rng, r, u, v, n, rng.uniform(0.8, 1.3) * spec["grain"], r < 0.9)
    return 0.1 + 1.1 * dots


def _numem(rng, spec, r, u, v, a, inside):
    centre, width = rng.uniform(0.8, 0.9), rng.uniform(0.08, 0.15)
    ring = np.exp(-((r - centre) / width) ** 2)
    return 0.25 + 0.1 * _granules(rng, r.shape, 0.1, 1.2) + 0.9 * ring


def _golgi(rng, spec, r, u, v, a, inside):
    phi, spread = rng.uniform(-np.pi, np.pi), rng.uniform(0.4, 0.9)
    ang = np.abs(np.angle(np.exp(1j * (np.arctan2(v, u) - phi))))
    where = (ang < spread) & (r > 0.45) & (r < 0.95)
    cluster = _dots(rng, r, u, v, int(rng.integers(6, 18)),
                    rng.uniform(1.2, 2.2) * spec["grain"], where)
    return 0.12 + 0.06 * _granules(rng, r.shape, 0.1, 1.0) + cluster


_PATTERNS = (_homogeneous, _speckled, _nucleolar, _centromere, _numem, _golgi)
assert len(_PATTERNS) == paper.NUM_CLASSES


# --- plan, workers, montage ---------------------------------------------------------------------
def _plan(counts: tuple[int, ...], seed: int,
          specimens_per_class: int = SPECIMENS_PER_CLASS) -> list[tuple[str, int, dict]]:
    """(id, label, specimen) per cell: class blocks of IDs, specimens in runs of IDs."""
    rng = np.random.default_rng([seed, 0])
    plan, next_id, spec_id = [], 1, 1
    for label, n in enumerate(counts):
        for block in np.array_split(np.arange(n), min(specimens_per_class, n)):
            spec = new_specimen(rng, spec_id)
            for _ in block:
                plan.append((f"{next_id:05d}", label, spec))
                next_id += 1
            spec_id += 1
    return plan


def new_specimen(rng: np.random.Generator, spec_id: int) -> dict:
    """What the cells of one specimen share: intensity class, brightness, background, noise,
    blur, pattern grain and texture (D8)."""
    positive = rng.random() < 0.5
    return {"id": str(spec_id), "intensity": "positive" if positive else "intermediate",
            "peak": float(rng.normal(120, 20) if positive else rng.normal(55, 6)),
            "background": float(rng.uniform(2, 8)),
            "noise": float(rng.uniform(1.0, 2.5)),
            "blur": float(rng.uniform(0.5, 1.1)),
            "grain": float(rng.uniform(0.85, 1.2)),
            "texture": float(rng.uniform(0.7, 1.2))}


def _write_chunk(job) -> int:
    folder, seed, cells = job
    for cell_id, label, spec in cells:
        img, mask = draw_cell(label, spec, np.random.default_rng([seed, int(cell_id)]))
        _write_png(folder / f"{cell_id}.png", img)
        _write_png(folder / f"{cell_id}_Mask.png", mask)
    return len(cells)


def _write_png(path: Path, img: np.ndarray) -> None:
    # Plain writes are safe here: the whole folder is staged and renamed by make_replica.
    ok, data = cv2.imencode(".png", img)
    assert ok, path
    path.write_bytes(data.tobytes())


def _montage(plan, seed: int) -> np.ndarray:
    """MONTAGE_PER_CLASS cells per class (rows), each stretched to full contrast for viewing
    (the cells themselves are dim), labelled with the class name."""
    tile, label_w = paper.INPUT_SIZE, 110
    rows = []
    for label, name in enumerate(paper.CLASSES):
        of_class = [c for c in plan if c[1] == label]
        # Evenly spaced over the class block, so every specimen shows up.
        picks = np.linspace(0, len(of_class) - 1, MONTAGE_PER_CLASS).round().astype(int)
        cells = [of_class[i] for i in sorted(set(picks))]
        row = np.zeros((tile, label_w + tile * MONTAGE_PER_CLASS), np.uint8)
        cv2.putText(row, name, (4, tile // 2 + 5), cv2.FONT_HERSHEY_SIMPLEX, 0.5, 255, 1)
        for k, (cell_id, _, spec) in enumerate(cells):
            img, _ = draw_cell(label, spec, np.random.default_rng([seed, int(cell_id)]))
            img = cv2.resize(img, (tile, tile), interpolation=cv2.INTER_AREA)
            img = cv2.normalize(img, None, 0, 255, cv2.NORM_MINMAX)
            row[:, label_w + k * tile:label_w + (k + 1) * tile] = img
        rows.append(row)
    return np.vstack(rows)
