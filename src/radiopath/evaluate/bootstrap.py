"""Stratified bootstrap confidence intervals for every metric at once, vectorised.

A resample of a cohort with ``m`` positives and ``n`` negatives draws ``m`` positives and
``n`` negatives with replacement (stratified: the prevalence stays fixed, and every resample
has both outcomes, so AUC and calibration are always defined — Efron & Tibshirani, "An
Introduction to the Bootstrap", 1993, §8; Carpenter & Bithell, Stat. Med. 2000). With
``strata`` (for a pooled multi-center cohort: the center of each patient) the draws are made
within every stratum × outcome cell, so each resample keeps the study's mix of centers as
well as its prevalence: the centers were chosen by design, not sampled (Davison & Hinkley,
"Bootstrap Methods and their Application", 1997, §3.8, stratified resampling). A resample is
represented by how often each patient was drawn (a row of counts), so all ``B`` resamples
are one ``(B, N)`` weight matrix that the kernels of :mod:`radiopath.evaluate.metrics` consume
in a few array passes. Rows are processed in chunks so memory stays bounded (about
``chunk_elems`` × 8 bytes per temporary).

Intervals are percentile intervals; resamples where a metric is undefined (PPV when no one
is called positive, a calibration fit that does not converge) are left out of that metric's
interval and counted in ``n_undefined``.

The resamples depend only on ``seed``, the cohort's labels and strata, not on the scores: two
models evaluated on the same patients (in the same order) with the same seed see the same
resamples.

Threshold metrics can also be bootstrapped for calls that are not ``prob >= threshold``
(``calls=``, e.g. nested thresholds); the calls are then held fixed per patient.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from radiopath.evaluate._checks import EvaluationError, check_ci
from radiopath.evaluate.metrics import METRIC_NAMES, ScoredSample, weighted_metrics

#: Default number of resamples.
N_BOOT = 2000
#: Largest ``B × N`` block processed at once.
CHUNK_ELEMS = 2_000_000


@dataclass(frozen=True)
class MetricEstimate:
    """A point estimate with a confidence interval."""

    value: float
    ci_low: float
    ci_high: float
    se: float = float("nan")  #: standard deviation of the bootstrap distribution
    n_undefined: int = 0  #: resamples where the metric was undefined (left out of the interval)
    method: str = "bootstrap percentile"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class BootstrapResult:
    """Point estimates and bootstrap intervals of several metrics on one cohort."""

    estimates: dict[str, MetricEstimate]
    n_boot: int
    seed: int
    ci: float
    n: int
    n_pos: int
    threshold: float
    samples: dict[str, np.ndarray] | None = None  #: the bootstrap distributions, when kept
    n_strata: int = 1  #: strata resampled within (besides the outcome); 1 = outcome only

    def __getitem__(self, metric: str) -> MetricEstimate:
        return self.estimates[metric]


def stratified_counts(
    rng: np.random.Generator, n_pos: int, n_neg: int, n_rows: int
) -> tuple[np.ndarray, np.ndarray]:
    """Resample counts: ``(n_rows, n_pos)`` for the positives and ``(n_rows, n_neg)`` for the negatives."""

    def draw(size: int) -> np.ndarray:
        if size == 0:
            return np.zeros((n_rows, 0))
        idx = rng.integers(0, size, size=(n_rows, size))
        idx += (np.arange(n_rows) * size)[:, None]
        return np.bincount(idx.ravel(), minlength=n_rows * size).reshape(n_rows, size).astype(float)

    return draw(n_pos), draw(n_neg)


def _cells(sample: ScoredSample) -> list[np.ndarray]:
    """Original indices of the patients in each resampling cell, each in the caller's order.

    Without strata: positives, then negatives. With strata: for each stratum (sorted), its
    positives, then its negatives.
    """
    y_orig = np.empty_like(sample.y)
    y_orig[sample.order] = sample.y
    if sample.strata is None:
        return [np.flatnonzero(y_orig), np.flatnonzero(~y_orig)]
    st = np.empty_like(sample.strata)
    st[sample.order] = sample.strata
    cells = []
    for code in range(int(st.max()) + 1):
        here = st == code
        cells += [np.flatnonzero(y_orig & here), np.flatnonzero(~y_orig & here)]
    return cells


def resample_weights(sample: ScoredSample, rng: np.random.Generator, n_rows: int) -> np.ndarray:
    """Stratified resample counts in ``sample``'s canonical order, shape ``(n_rows, N)``.

    Patients are drawn within each cell (outcome, or stratum × outcome when the sample has
    strata) by their position in the caller's order, so equal seeds pair resamples across
    models on the same patients; the draws are then counted straight into canonical columns
    (one ``bincount``).
    """
    canon = np.empty(sample.n, dtype=np.int64)
    canon[sample.order] = np.arange(sample.n)  # original index → canonical column
    cells = _cells(sample)
    cols = np.concatenate([canon[c] for c in cells])  # k-th member of each cell, cell after cell
    n = sample.n
    draws = np.empty((n_rows, n), dtype=np.int64)
    start = 0
    for cell in cells:
        size = cell.size
        if size:
            draws[:, start : start + size] = start + rng.integers(0, size, size=(n_rows, size))
        start += size
    flat = cols[draws]
    flat += (np.arange(n_rows, dtype=np.int64) * n)[:, None]
    return np.bincount(flat.ravel(), minlength=n_rows * n).reshape(n_rows, n).astype(float)


def bootstrap_samples(
    sample: ScoredSample,
    metrics: Sequence[str] = METRIC_NAMES,
    n_boot: int = N_BOOT,
    seed: int = 0,
    chunk_elems: int = CHUNK_ELEMS,
) -> dict[str, np.ndarray]:
    """The bootstrap distribution of each metric: ``{metric: array (n_boot,)}``."""
    if n_boot < 1:
        raise EvaluationError(f"n_boot: need at least one resample, got {n_boot}")
    rng = np.random.default_rng(_seed_for(seed, sample))
    rows = max(1, int(chunk_elems // max(sample.n, 1)))
    parts: dict[str, list[np.ndarray]] = {m: [] for m in metrics}
    done = 0
    while done < n_boot:
        k = min(rows, n_boot - done)
        vals = weighted_metrics(sample, resample_weights(sample, rng, k), metrics)
        for m in metrics:
            parts[m].append(vals[m])
        done += k
    return {m: np.concatenate(v) for m, v in parts.items()}


def _seed_for(seed: int, sample: ScoredSample) -> np.random.SeedSequence:
    # Same seed + same cell sizes → same resamples (paired across models on the same patients).
    if sample.strata is None:
        return np.random.SeedSequence([int(seed), sample.n_pos, sample.n_neg])
    return np.random.SeedSequence([int(seed), sample.n_pos, sample.n_neg, *(c.size for c in _cells(sample))])


def percentile_interval(values: np.ndarray, ci: float) -> tuple[float, float, float, int]:
    """(low, high, sd, n_undefined) of a bootstrap distribution, ignoring NaNs."""
    finite = values[np.isfinite(values)]
    undefined = int(values.size - finite.size)
    if finite.size < 2:
        return float("nan"), float("nan"), float("nan"), undefined
    alpha = (1.0 - ci) / 2.0
    lo, hi = np.quantile(finite, [alpha, 1.0 - alpha])
    return float(lo), float(hi), float(finite.std(ddof=1)), undefined


def bootstrap_metrics(
    y: Any,
    prob: Any,
    threshold: float = 0.5,
    n_boot: int = N_BOOT,
    seed: int = 0,
    ci: float = 0.95,
    metrics: Sequence[str] = METRIC_NAMES,
    keep_samples: bool = False,
    strata: Any = None,
    calls: Any = None,
) -> BootstrapResult:
    """Point estimates and stratified-bootstrap percentile intervals of ``metrics``.

    ``y``: 0/1 outcomes (both must occur); ``prob``: probabilities; ``threshold``: positive
    means ``prob >= threshold``. ``keep_samples`` also returns the bootstrap distributions.
    ``strata``: the group of each patient (e.g. its center): resample within each group and
    outcome. ``calls``: 0/1 decisions per patient used instead of ``prob >= threshold``.
    """
    level = check_ci(ci)
    sample = ScoredSample.from_arrays(y, prob, threshold, calls=calls, strata=strata)
    if sample.n_pos == 0 or sample.n_neg == 0:
        raise EvaluationError(
            f"the stratified bootstrap needs both outcomes; got {sample.n_pos} positive(s) "
            f"and {sample.n_neg} negative(s)"
        )
    metrics = tuple(metrics)
    point = weighted_metrics(sample, sample.ones(), metrics)
    dist = bootstrap_samples(sample, metrics, n_boot, seed)
    estimates = {}
    for m in metrics:
        lo, hi, sd, undefined = percentile_interval(dist[m], level)
        estimates[m] = MetricEstimate(float(point[m][0]), lo, hi, sd, undefined)
    return BootstrapResult(
        estimates,
        n_boot,
        seed,
        level,
        sample.n,
        sample.n_pos,
        sample.threshold,
        dist if keep_samples else None,
        1 if sample.strata is None else int(sample.strata.max()) + 1,
    )


class Bootstrap:
    """Class form of :func:`bootstrap_metrics`: configure once, call per cohort.

    >>> boot = Bootstrap(n_boot=200, seed=1, metrics=("auc", "brier"))
    >>> r = boot([0, 0, 1, 1, 0, 1], [0.1, 0.4, 0.35, 0.8, 0.2, 0.9], threshold=0.5)
    >>> r["auc"].ci_low <= r["auc"].value <= r["auc"].ci_high
    True
    """

    def __init__(
        self, n_boot: int = N_BOOT, seed: int = 0, ci: float = 0.95, metrics: Sequence[str] = METRIC_NAMES
    ) -> None:
        self.n_boot, self.seed, self.ci, self.metrics = n_boot, seed, check_ci(ci), tuple(metrics)

    def __call__(self, y: Any, prob: Any, threshold: float = 0.5) -> BootstrapResult:
        return bootstrap_metrics(y, prob, threshold, self.n_boot, self.seed, self.ci, self.metrics)
