"""Nuclear focus, measured: how much Grad-CAM mass falls on nuclei, relative to their area.

The study's clinical story is that "nuclear features in FNA images were the most
influential". A heatmap that looks nuclear is not a measurement, so per explained tile the
nuclei are segmented (the project's one segmentation, :func:`radiopath.slides.nuclei.
segment_nuclei`, at the tile's own resolution) and the tile's CAM, upsampled to the tile,
is split into the mass on nuclear pixels and the rest. A patient's **nuclear enrichment**
pools their tiles::

    enrichment = (Σ CAM on nuclei / Σ CAM) / (Σ nuclear pixels / Σ pixels)

1 means the map falls on nuclei no more than their area would give by chance; above 1, it
concentrates on them. Raw (unscaled) CAMs are pooled, so a tile the model barely uses
weighs little. The cohort figure is the mean over patients with a 95% percentile-bootstrap
interval over patients (``scipy.stats.bootstrap``). The same numbers for the model's
randomised twin are the model-randomisation check of Adebayo et al., "Sanity Checks for
Saliency Maps", NeurIPS 2018: a map that stays on nuclei when the learned weights are
random shows where the network's edges are, not what the model learned.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
from scipy import stats

from radiopath.slides.nuclei import NucleiConfig, segment_nuclei


@dataclass(frozen=True)
class TileNuclei:
    """The nuclear masks of a case's tiles (``(K, T, T)`` bool) and their nuclei counts."""

    masks: np.ndarray
    counts: np.ndarray


def tile_nuclei(tiles: np.ndarray, mpp: float, cfg: NucleiConfig | None = None) -> TileNuclei:
    """Segment every tile ``(K, T, T, 3)`` uint8 at ``mpp`` µm/px; the mask is every nuclear pixel."""
    segs = [segment_nuclei(t, mpp, cfg) for t in tiles]
    return TileNuclei(
        np.stack([s.mask for s in segs]) if segs else np.zeros((0, 1, 1), bool),
        np.array([s.count for s in segs], np.int64),
    )


def upsample(cams: np.ndarray, size: int) -> np.ndarray:
    """``(K, h, w)`` maps → ``(K, size, size)`` by bilinear interpolation (pixel centres aligned)."""
    if not len(cams):
        return np.zeros((0, size, size), np.float32)
    return np.stack(
        [cv2.resize(c.astype(np.float32), (size, size), interpolation=cv2.INTER_LINEAR) for c in cams]
    ).clip(0, None)


@dataclass(frozen=True)
class Focus:
    """Per tile: CAM mass in total and on nuclei, nuclear and total pixels."""

    mass: np.ndarray
    on_nuclei: np.ndarray
    nuclear_px: np.ndarray
    pixels: np.ndarray

    @property
    def enrichment(self) -> float:
        """The case's pooled enrichment (NaN without CAM mass or without nuclei)."""
        mass, nuc = float(self.mass.sum()), float(self.nuclear_px.sum())
        if mass <= 0 or nuc <= 0:
            return float("nan")
        return (float(self.on_nuclei.sum()) / mass) / (nuc / float(self.pixels.sum()))

    @property
    def mass_fraction(self) -> float:
        mass = float(self.mass.sum())
        return float(self.on_nuclei.sum()) / mass if mass > 0 else float("nan")

    @property
    def area_fraction(self) -> float:
        return float(self.nuclear_px.sum()) / float(self.pixels.sum()) if self.pixels.sum() else float("nan")

    def tile_enrichment(self) -> np.ndarray:
        """Per tile (NaN where a tile has no CAM mass or no nuclei)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            e = (self.on_nuclei / self.mass) / (self.nuclear_px / self.pixels)
        return np.where((self.mass > 0) & (self.nuclear_px > 0), e, np.nan)


def nuclear_focus(cams: np.ndarray, nuclei: TileNuclei) -> Focus:
    """Split raw CAMs ``(K, h, w)`` of a case's tiles over their nuclei (masks ``(K, T, T)``)."""
    size = nuclei.masks.shape[1]
    up = upsample(cams, size).astype(np.float64)
    masks = nuclei.masks
    return Focus(
        up.sum((1, 2)),
        (up * masks).sum((1, 2)),
        masks.sum((1, 2)).astype(np.float64),
        np.full(len(masks), float(size * size)),
    )


@dataclass(frozen=True)
class MeanCI:
    """A cohort mean over patients with its 95% bootstrap interval."""

    mean: float
    ci_low: float
    ci_high: float
    n: int

    def to_dict(self) -> dict[str, float | int | None]:
        def clean(v: float) -> float | None:
            return None if not np.isfinite(v) else round(float(v), 4)

        return {
            "mean": clean(self.mean),
            "ci_low": clean(self.ci_low),
            "ci_high": clean(self.ci_high),
            "n": self.n,
        }


def mean_ci(values: Sequence[float], *, n_boot: int = 2000, seed: int = 0, level: float = 0.95) -> MeanCI:
    """Mean of the finite ``values`` with a percentile-bootstrap interval over them (patients).

    One value gives no interval (NaN bounds); none gives NaN throughout.
    """
    v = np.asarray([x for x in values if np.isfinite(x)], np.float64)
    if len(v) == 0:
        return MeanCI(float("nan"), float("nan"), float("nan"), 0)
    if len(v) == 1 or np.ptp(v) == 0:
        lo = hi = float(v[0]) if np.ptp(v) == 0 and len(v) > 1 else float("nan")
        return MeanCI(float(v.mean()), lo, hi, len(v))
    res = stats.bootstrap(
        (v,),
        np.mean,
        n_resamples=n_boot,
        confidence_level=level,
        method="percentile",
        **_seeded(seed),
    )
    ci = res.confidence_interval
    return MeanCI(float(v.mean()), float(ci.low), float(ci.high), len(v))


def _seeded(seed: int) -> dict[str, np.random.Generator]:
    """scipy ≥ 1.15 takes ``rng``; older releases ``random_state``."""
    import inspect

    name = "rng" if "rng" in inspect.signature(stats.bootstrap).parameters else "random_state"
    return {name: np.random.default_rng(seed)}


def paired_difference(a: Sequence[float], b: Sequence[float], *, n_boot: int = 2000, seed: int = 0) -> MeanCI:
    """Mean of ``a - b`` over pairs where both are finite, with its bootstrap interval."""
    x, y = np.asarray(a, np.float64), np.asarray(b, np.float64)
    ok = np.isfinite(x) & np.isfinite(y)
    return mean_ci((x - y)[ok], n_boot=n_boot, seed=seed)
