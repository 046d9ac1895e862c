"""A slide → its ``top_k`` best tiles at a physical resolution, reading as little as possible.

1. One low-resolution read of the whole slide (chunked, from the best pyramid level) gives
   the cell mask and the pen mask (:mod:`radiopath.slides.detection`) and the thumbnail.
2. A grid of tiles of ``tile_size`` pixels at ``target_mpp`` covers each scanned region; each
   grid tile's share of cell mask and pen mask comes from an integral image, for all tiles at
   once, without reading a pixel.
3. Candidates (enough cells, no pen) are read in order of mask share, from the pyramid level
   nearest the target resolution, and checked (:mod:`radiopath.slides.qc`) until ``top_k``
   clean tiles are found; blurred tiles fill the rest when there are not enough sharp ones.

So a slide costs one thumbnail-sized read plus about ``top_k`` tile reads, instead of reading
every grid tile at level 0 — the plain way that ``benchmarks/bench_tiling.py`` compares against.

The tile table (one row per kept tile, best first) records everything needed to read a tile
again (:func:`read_tiles`): level-0 position ``x, y``, the pyramid ``level`` and the square
``level_size`` read there, the tile ``size`` and ``mpp``.
"""

from __future__ import annotations

import logging
import math
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
import pandas as pd

from radiopath.errors import ConfigError
from radiopath.slides.config import TilingConfig
from radiopath.slides.detection import Detection, detect_cells
from radiopath.slides.qc import FLAGS, HARD_FLAGS, TileQC, tile_qc
from radiopath.slides.reader import Slide, open_slide, resize

log = logging.getLogger(__name__)

#: Columns of a tile table, in order (``patient_id`` is added by the cohort runner). ``flags``
#: lists QC flags separated by commas (empty when clean); read it as ``table["flags"]``, since
#: ``table.flags`` is a pandas attribute.
TILE_COLUMNS: tuple[str, ...] = (
    "slide",
    "rank",
    "x",
    "y",
    "level",
    "level_size",
    "extent",
    "mpp",
    "size",
    "slide_mpp",
    "score",
    "mask_fraction",
    "blur",
    "pen_fraction",
    "flags",
)
_DTYPES: dict[str, str] = {
    "slide": "string",
    "rank": "int32",
    "x": "int64",
    "y": "int64",
    "level": "int16",
    "level_size": "int32",
    "extent": "float64",
    "mpp": "float64",
    "size": "int32",
    "slide_mpp": "float64",
    "score": "float32",
    "mask_fraction": "float32",
    "blur": "float32",
    "pen_fraction": "float32",
    "flags": "string",
}
_READ_COLUMNS = ("x", "y", "level", "level_size", "size")


def empty_table() -> pd.DataFrame:
    """A tile table with no rows and the right columns and types."""
    return pd.DataFrame({c: pd.Series(dtype=_DTYPES[c]) for c in TILE_COLUMNS})


@dataclass
class SlideTiling:
    """Everything tiling one slide produced: the table plus what a human or a report needs."""

    table: pd.DataFrame
    status: Literal["ok", "empty"]
    thumbnail: np.ndarray
    slide_mpp: float
    mpp_source: str
    vendor: str
    dimensions: tuple[int, int]
    n_grid: int
    n_candidates: int
    n_read: int
    rejected: dict[str, int] = field(default_factory=dict)
    cell_area_mm2: float = 0.0
    pen_area_mm2: float = 0.0
    seconds: float = 0.0

    @property
    def message(self) -> str:
        if self.status == "empty" and self.n_candidates:
            why = ", ".join(f"{n} {k}" for k, n in self.rejected.items() if n) or "none passed QC"
            return f"{self.n_candidates} candidate tiles but none kept ({why}): check the thumbnail"
        if self.status == "empty":
            return (
                f"no cell-bearing region found ({self.cell_area_mm2:.4f} mm² stained, "
                f"{self.n_candidates} candidate tiles): empty or unstained slide"
            )
        kept, grid = len(self.table), self.n_grid
        return f"{kept} tiles kept of {grid} ({self.n_candidates} candidates, {self.n_read} read)"

    def summary(self) -> dict[str, object]:
        """JSON-ready numbers for ``summary.json`` and the CLI."""
        return {
            "status": self.status,
            "message": self.message,
            "tiles": len(self.table),
            "grid_tiles": self.n_grid,
            "candidates": self.n_candidates,
            "read": self.n_read,
            "rejected": dict(self.rejected),
            "slide_mpp": self.slide_mpp,
            "mpp_source": self.mpp_source,
            "vendor": self.vendor,
            "width": self.dimensions[0],
            "height": self.dimensions[1],
            "cell_area_mm2": round(self.cell_area_mm2, 6),
            "pen_area_mm2": round(self.pen_area_mm2, 6),
            "seconds": round(self.seconds, 3),
        }


# --------------------------------------------------------------------------- geometry


def tile_extent(slide_mpp: float, cfg: TilingConfig) -> float:
    """Side of one tile in level-0 pixels."""
    return cfg.tile_size * cfg.target_mpp / slide_mpp


def grid(regions: list[tuple[int, int, int, int]], extent: float) -> tuple[np.ndarray, np.ndarray]:
    """Level-0 top-left corners of non-overlapping tiles of side ``extent`` in each region.

    The grid is centred in its region; a region smaller than a tile gets one tile at its corner
    (the part outside it reads as background).
    """
    xs, ys = [], []
    for rx, ry, rw, rh in regions:
        nx, ny = max(int(rw // extent), 1), max(int(rh // extent), 1)
        ox, oy = max((rw - nx * extent) / 2, 0.0), max((rh - ny * extent) / 2, 0.0)
        gx, gy = np.meshgrid(rx + ox + np.arange(nx) * extent, ry + oy + np.arange(ny) * extent)
        xs.append(np.round(gx.ravel()).astype(np.int64))
        ys.append(np.round(gy.ravel()).astype(np.int64))
    return np.concatenate(xs), np.concatenate(ys)


def mask_fractions(
    mask: np.ndarray, xs: np.ndarray, ys: np.ndarray, extent: float, downsample: float
) -> np.ndarray:
    """Share of each tile ``(x, y, extent)`` covered by ``mask`` (a 0/1 map at ``downsample``)."""
    integral = cv2.integral(mask.astype(np.uint8), sdepth=cv2.CV_64F)
    h, w = mask.shape
    x0 = np.clip(np.round(xs / downsample), 0, w).astype(np.int64)
    y0 = np.clip(np.round(ys / downsample), 0, h).astype(np.int64)
    x1 = np.clip(np.round((xs + extent) / downsample), 0, w).astype(np.int64)
    y1 = np.clip(np.round((ys + extent) / downsample), 0, h).astype(np.int64)
    x1, y1 = np.maximum(x1, np.minimum(x0 + 1, w)), np.maximum(y1, np.minimum(y0 + 1, h))
    total = integral[y1, x1] - integral[y0, x1] - integral[y1, x0] + integral[y0, x0]
    area = np.maximum((x1 - x0) * (y1 - y0), 1)
    return total / area


# --------------------------------------------------------------------------- reading


def read_tile(slide: Slide, x: int, y: int, level: int, level_size: int, size: int) -> np.ndarray:
    """The tile whose table row says ``(x, y, level, level_size, size)``: ``(size, size, 3)`` uint8."""
    return resize(slide.read_region(x, y, level, level_size, level_size), size, size)


def read_plan(slide: Slide, cfg: TilingConfig) -> tuple[int, int]:
    """Pyramid level to read tiles from and the square size read there."""
    extent = tile_extent(slide.mpp, cfg)
    level = slide.best_level(extent / cfg.tile_size)
    return level, max(round(extent / slide.level_downsamples[level]), 1)


def read_tiles(slide_path: str | Path | Slide, rows: pd.DataFrame) -> np.ndarray:
    """Read the tiles of ``rows`` (a tile table of one slide) again: ``(K, size, size, 3)`` uint8.

    Raises:
        ConfigError: the rows lack a column needed to read, or mix tile sizes.
    """
    missing = [c for c in (*_READ_COLUMNS, "slide_mpp") if c not in rows.columns]
    if missing:
        raise ConfigError(f"tile table lacks column(s) {missing}; pass rows of a table made by tile_slide")
    sizes = rows["size"].unique()
    if len(sizes) > 1:
        raise ConfigError(f"tile rows mix tile sizes {sorted(sizes)}; read one slide's table at a time")
    size = int(sizes[0]) if len(sizes) else 0
    out = np.empty((len(rows), size, size, 3), np.uint8)
    if not len(rows):
        return out
    if isinstance(slide_path, Slide):
        return _read_rows(slide_path, rows, out)
    with open_slide(slide_path, mpp_override=float(rows["slide_mpp"].iloc[0])) as slide:
        return _read_rows(slide, rows, out)


def _read_rows(slide: Slide, rows: pd.DataFrame, out: np.ndarray) -> np.ndarray:
    for i, (x, y, level, ls, size) in enumerate(rows[list(_READ_COLUMNS)].itertuples(index=False)):
        out[i] = read_tile(slide, int(x), int(y), int(level), int(ls), int(size))
    return out


# --------------------------------------------------------------------------- the pipeline


def lowres_views(slide: Slide, cfg: TilingConfig) -> tuple[np.ndarray, float, np.ndarray, float]:
    """One chunked low-resolution read → (detection image, its downsample, thumbnail, its downsample).

    The read comes from the coarsest pyramid level at most 1.5x coarser than ``detection_mpp``,
    at that level's own scale (no resampling while reading); the thumbnail is never finer.
    """
    longest = max(slide.dimensions)
    d_det = max(cfg.detection_mpp / slide.mpp, 1.0, longest / cfg.max_detection_side)
    # a pyramid level up to 1.5x coarser than asked is good enough and much cheaper to read
    # (on a 100k px slide: 3125 px instead of 6250 px squared)
    level_ds = slide.level_downsamples[slide.best_level(d_det * 1.5)]
    d_det = max(d_det, level_ds)
    d_read = max(level_ds, longest / max(cfg.max_detection_side, cfg.thumbnail_side))
    d_thumb = max(longest / cfg.thumbnail_side, d_read)
    img = slide.read_lowres(d_read)
    h, w = img.shape[:2]

    def shrink(d: float) -> np.ndarray:
        return resize(img, max(math.ceil(w * d_read / d), 1), max(math.ceil(h * d_read / d), 1))

    det, thumb = shrink(d_det), shrink(d_thumb)
    # the actual scale after integer rounding of the image sizes
    return det, slide.dimensions[0] / det.shape[1], thumb, slide.dimensions[0] / thumb.shape[1]


def tile_slide_result(
    path: str | Path, cfg: TilingConfig | None = None, mpp_override: float | None = None
) -> SlideTiling:
    """Tile one slide; see the module docstring. An empty slide gives ``status='empty'``."""
    cfg = cfg or TilingConfig()
    start = time.perf_counter()
    with open_slide(path, mpp_override) as slide:
        det_img, det_ds, thumb, thumb_ds = lowres_views(slide, cfg)
        det = detect_cells(det_img, det_ds * slide.mpp, det_ds, cfg)
        extent = tile_extent(slide.mpp, cfg)
        xs, ys = grid(slide.regions, extent)
        cell_frac = mask_fractions(det.cells, xs, ys, extent, det_ds)
        pen_frac = mask_fractions(det.pen, xs, ys, extent, det_ds)
        is_cand = (cell_frac >= cfg.min_cell_fraction) & (pen_frac <= cfg.max_pen_fraction)
        rejected = {"pen": int(((cell_frac >= cfg.min_cell_fraction) & ~is_cand).sum())}
        cands = np.flatnonzero(is_cand)
        cands = cands[np.lexsort((xs[cands], ys[cands], -cell_frac[cands]))]
        level, level_size = read_plan(slide, cfg)
        kept, n_read = _select(slide, cfg, det, cands, xs, ys, pen_frac, level, level_size, rejected)
        rows = [
            {
                "slide": str(path),
                "x": int(xs[i]),
                "y": int(ys[i]),
                "level": level,
                "level_size": level_size,
                "extent": extent,
                "mpp": cfg.target_mpp,
                "size": cfg.tile_size,
                "slide_mpp": slide.mpp,
                "score": q.score,
                "mask_fraction": float(cell_frac[i]),
                "blur": q.blur,
                "pen_fraction": q.pen_fraction,
                "flags": ",".join(q.flags),
            }
            for i, q in kept
        ]
        table = (
            pd.DataFrame(rows, columns=[c for c in TILE_COLUMNS if c != "rank"]) if rows else empty_table()
        )
        if rows:
            table.insert(1, "rank", np.arange(len(table)))
            table = table.astype(_DTYPES)
        status: Literal["ok", "empty"] = "ok" if len(table) else "empty"
        if status == "empty":
            log.warning("%s: no cell-bearing region found; the slide is empty or unstained", path)
        result = SlideTiling(
            table=table,
            status=status,
            thumbnail=draw_thumbnail(thumb, thumb_ds, det, table, extent),
            slide_mpp=slide.mpp,
            mpp_source=slide.mpp_source,
            vendor=slide.vendor,
            dimensions=slide.dimensions,
            n_grid=len(xs),
            n_candidates=len(cands),
            n_read=n_read,
            rejected=rejected,
            cell_area_mm2=det.cell_area_um2 / 1e6,
            pen_area_mm2=det.pen_area_um2 / 1e6,
        )
    result.seconds = time.perf_counter() - start
    return result


def _select(
    slide: Slide,
    cfg: TilingConfig,
    det: Detection,
    cands: np.ndarray,
    xs: np.ndarray,
    ys: np.ndarray,
    pen_frac: np.ndarray,
    level: int,
    level_size: int,
    rejected: dict[str, int],
) -> tuple[list[tuple[int, TileQC]], int]:
    """Read candidates best-first until ``top_k`` clean tiles are found (or the budget is spent)."""

    def check(i: int) -> TileQC:
        tile = read_tile(slide, int(xs[i]), int(ys[i]), level, level_size, cfg.tile_size)
        return tile_qc(tile, det.background, float(pen_frac[i]), cfg)

    clean: list[tuple[int, TileQC]] = []
    soft: list[tuple[int, TileQC]] = []
    budget = min(len(cands), cfg.read_budget)
    pos = 0
    with ThreadPoolExecutor(max_workers=cfg.threads) as pool:
        while len(clean) < cfg.top_k and pos < budget:
            need = cfg.top_k - len(clean)
            batch = cands[pos : min(pos + max(need + need // 4 + 2, 2 * cfg.threads), budget)]
            pos += len(batch)
            for i, q in zip(batch, pool.map(check, batch), strict=True):
                if q.hard:
                    reason = next(f for f in q.flags if f in HARD_FLAGS)
                    rejected[reason] = rejected.get(reason, 0) + 1
                elif q.flags:
                    soft.append((int(i), q))
                else:
                    clean.append((int(i), q))
    clean.sort(key=lambda t: -t[1].score)
    soft.sort(key=lambda t: -t[1].score)
    kept = (clean + soft)[: cfg.top_k]
    rejected["blur"] = sum(1 for _, q in soft[max(cfg.top_k - len(clean), 0) :])
    return kept, pos


def tile_slide(
    path: str | Path, cfg: TilingConfig | None = None, mpp_override: float | None = None
) -> pd.DataFrame:
    """The ``top_k`` best tiles of one slide, best first (columns :data:`TILE_COLUMNS`).

    An empty slide gives an empty table (and a logged warning), not an error.

    Raises:
        ImageReadError: the slide cannot be read or has no resolution and no override.
    """
    return tile_slide_result(path, cfg, mpp_override).table


# --------------------------------------------------------------------------- thumbnail

_GREEN, _ORANGE, _RED, _BLUE = (0, 170, 0), (255, 140, 0), (220, 0, 0), (40, 90, 255)


def draw_thumbnail(
    thumb: np.ndarray, thumb_ds: float, det: Detection, table: pd.DataFrame, extent: float
) -> np.ndarray:
    """The thumbnail with the cell mask outlined in blue, pen marks in red, kept tiles in green
    (orange when flagged ``blur``)."""
    out = thumb.copy()
    h, w = out.shape[:2]
    for mask, colour in ((det.cells, _BLUE), (det.pen, _RED)):
        if mask.any():
            big = cv2.resize(mask, (w, h), interpolation=cv2.INTER_NEAREST)
            contours, _ = cv2.findContours(big, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
            cv2.drawContours(out, contours, -1, colour, 1)
    side = max(round(extent / thumb_ds), 2)
    for x, y, flags in zip(table["x"], table["y"], table["flags"], strict=True):
        x0, y0 = round(x / thumb_ds), round(y / thumb_ds)
        colour = _ORANGE if "blur" in str(flags) else _GREEN
        cv2.rectangle(out, (x0, y0), (x0 + side - 1, y0 + side - 1), colour, max(side // 24, 1))
    return out


__all__ = [
    "FLAGS",
    "TILE_COLUMNS",
    "SlideTiling",
    "empty_table",
    "grid",
    "mask_fractions",
    "read_tiles",
    "tile_slide",
    "tile_slide_result",
]
