"""Tile sharpness relative to the development slides: fit → state → apply, and per-center shift.

Tile QC (:mod:`radiopath.slides.qc`) measures focus as the variance of the Laplacian around
nuclei (Pech-Pacheco et al., ICPR 2000) and flags ``blur`` below an absolute threshold. An
absolute threshold cannot see a center whose scanner is *uniformly* softer than the
development centers' — on the synthetic cohort it flags no tile at all, although blur at the
external centers moves the model's logit by several units. Sharpness is therefore also judged
relative to the development cohort:

* :func:`fit_sharpness` — the distribution of ``log`` Laplacian variance over the kept tiles
  of development slides only (median and a robust scale, 1.4826 · MAD), and the same over the
  development slides' medians; plain numbers, saved with the preprocessing state;
* :func:`sharpness_z` — each tile's robust z-score against the development tiles (a tile below
  :data:`TILE_Z` is ``blur_relative``);
* :func:`center_sharpness` — per center, the median slide sharpness as a z-score against the
  development slides and as a ratio of Laplacian variance; a center below :data:`CENTER_Z`
  gets a warning (:func:`sharpness_warnings`).

Nothing here changes which tiles are kept (a blurry center still needs its best tiles); it
makes the shift visible before a model is trusted there.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

#: Robust z-score of a tile below which it is flagged ``blur_relative``.
TILE_Z = -3.0
#: Robust z-score of a center's median slide below which the center gets a warning.
CENTER_Z = -2.0
#: Fewest development slides with a focus verdict for a reference to be fitted.
MIN_SLIDES = 3
_MAD = 1.4826


@dataclass(frozen=True)
class SharpnessState:
    """The development cohort's sharpness, in natural-log Laplacian variance."""

    tile_median: float
    tile_scale: float
    slide_median: float
    slide_scale: float
    n_slides: int
    n_tiles: int
    measure: str = "log variance of the Laplacian around nuclei (radiopath.slides.qc)"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SharpnessState:
        return cls(
            float(d["tile_median"]),
            float(d["tile_scale"]),
            float(d["slide_median"]),
            float(d["slide_scale"]),
            int(d["n_slides"]),
            int(d["n_tiles"]),
            str(d.get("measure", cls.measure)),
        )


def _log_blur(values: Any) -> np.ndarray:
    x = np.asarray(values, np.float64)
    x = x[np.isfinite(x) & (x > 0)]
    return np.log(x)


def _robust(x: np.ndarray) -> tuple[float, float]:
    med = float(np.median(x))
    scale = _MAD * float(np.median(np.abs(x - med)))
    return med, max(scale, 1e-3)


def slide_sharpness(tiles: pd.DataFrame) -> float:
    """Median log Laplacian variance of a slide's kept tiles (NaN when no tile has a verdict)."""
    x = _log_blur(tiles["blur"]) if "blur" in tiles.columns and len(tiles) else np.zeros(0)
    return float(np.median(x)) if x.size else float("nan")


def fit_sharpness(development: Sequence[pd.DataFrame]) -> SharpnessState | None:
    """The reference from the kept-tile tables (column ``blur``) of development slides only.

    Returns None when fewer than :data:`MIN_SLIDES` slides have a focus verdict.
    """
    per_slide = [_log_blur(t["blur"]) for t in development if "blur" in t.columns]
    per_slide = [x for x in per_slide if x.size]
    if len(per_slide) < MIN_SLIDES:
        return None
    tiles = np.concatenate(per_slide)
    medians = np.array([np.median(x) for x in per_slide])
    t_med, t_scale = _robust(tiles)
    s_med, s_scale = _robust(medians)
    return SharpnessState(t_med, t_scale, s_med, s_scale, len(per_slide), int(tiles.size))


def sharpness_z(state: SharpnessState, blur: Any) -> np.ndarray:
    """Robust z-score of each tile's Laplacian variance against the development tiles (NaN: no verdict)."""
    x = np.asarray(blur, np.float64)
    out = np.full(x.shape, np.nan)
    ok = np.isfinite(x) & (x > 0)
    out[ok] = (np.log(x[ok]) - state.tile_median) / state.tile_scale
    return out


def center_sharpness(
    state: SharpnessState, slides: Mapping[str, pd.DataFrame], centers: Mapping[str, str]
) -> pd.DataFrame:
    """Per center: slides, median slide sharpness as a z-score against the development slides,
    the Laplacian-variance ratio to the development median, the share of ``blur_relative``
    tiles, and whether it warrants a warning.

    Args:
        slides: per patient id, the slide's kept tiles (column ``blur``).
        centers: per patient id, its center.
    """
    rows = []
    by_center: dict[str, list[pd.DataFrame]] = {}
    for pid, tiles in slides.items():
        by_center.setdefault(str(centers[pid]), []).append(tiles)
    for center, tables in sorted(by_center.items()):
        medians = np.array([slide_sharpness(t) for t in tables])
        medians = medians[np.isfinite(medians)]
        z_tiles = np.concatenate([sharpness_z(state, t["blur"]) for t in tables]) if tables else np.zeros(0)
        z_tiles = z_tiles[np.isfinite(z_tiles)]
        med = float(np.median(medians)) if medians.size else float("nan")
        z = (med - state.slide_median) / state.slide_scale if medians.size else float("nan")
        rows.append(
            {
                "center": center,
                "slides": len(tables),
                "slides_judged": int(medians.size),
                "sharpness_z": z,
                "laplacian_ratio": math.exp(med - state.slide_median) if medians.size else float("nan"),
                "blur_relative_share": float((z_tiles < TILE_Z).mean()) if z_tiles.size else float("nan"),
                "warn": bool(np.isfinite(z) and z < CENTER_Z),
            }
        )
    return pd.DataFrame(
        rows,
        columns=[
            "center",
            "slides",
            "slides_judged",
            "sharpness_z",
            "laplacian_ratio",
            "blur_relative_share",
            "warn",
        ],
    )


def sharpness_warnings(table: pd.DataFrame) -> list[str]:
    """One sentence per center of :func:`center_sharpness` that is much blurrier than development."""
    out = []
    for r in table[table["warn"]].itertuples():
        out.append(
            f"center {r.center}: its slides are much blurrier than the development slides (median "
            f"Laplacian variance {r.laplacian_ratio:.0%} of development, robust z {r.sharpness_z:.1f}; "
            f"{r.blur_relative_share:.0%} of its tiles below z {TILE_Z:g}); a model trained on sharper "
            "slides may be miscalibrated there — check its calibration, consider augmentation "
            "(train.augment_passes) or harmonization (harmonization.method)"
        )
    return out


def cohort_sharpness(
    tiles: pd.DataFrame, table: pd.DataFrame, top_k: int | None = None
) -> tuple[SharpnessState | None, pd.DataFrame, list[str]]:
    """The reference, per-center table and warnings of a tiled cohort.

    Args:
        tiles: kept tiles with ``patient_id``, ``rank`` and ``blur`` (``TILES/tiles.parquet``).
        table: the cohort table (``patient_id``, ``center``, ``cohort``).
        top_k: judge only each slide's best ``top_k`` tiles (what the model sees).
    """
    from radiopath.cohort.schema import DEVELOPMENT

    ids = table["patient_id"].astype(str)
    centers = dict(zip(ids, table["center"].astype(str), strict=True))
    dev = set(ids[(table["cohort"].astype(str) == DEVELOPMENT).to_numpy()])
    slides = {}
    for pid, rows in tiles.groupby(tiles["patient_id"].astype(str), sort=True):
        if pid in centers:
            rows = rows.sort_values("rank")
            slides[pid] = rows.head(top_k) if top_k else rows
    state = fit_sharpness([t for p, t in slides.items() if p in dev])
    if state is None:
        return None, pd.DataFrame(), []
    out = center_sharpness(state, slides, centers)
    return state, out, sharpness_warnings(out)
