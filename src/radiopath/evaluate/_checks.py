"""Input checks shared by every metric: labels, probabilities and thresholds, validated early.

Each public metric function calls these first, so a bad input is one clear
:class:`EvaluationError` (which is also a ``ValueError``, as in scikit-learn) naming the
argument, what is wrong and what to do — never a NaN that surfaces three tables later.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from radiopath.errors import RadiopathError


class EvaluationError(RadiopathError, ValueError):
    """Inputs to an evaluation are unusable (wrong shape, labels not 0/1, a missing class, …)."""


def as_labels(y: Any, name: str = "y") -> np.ndarray:
    """``y`` as a 1-D bool array; every value must be 0 or 1 (no NaN: drop unknown labels first)."""
    arr = np.asarray(y)
    if arr.ndim != 1:
        raise EvaluationError(f"{name}: expected a 1-D array of 0/1 labels, got shape {arr.shape}")
    if arr.dtype == bool:
        return arr
    try:
        values = arr.astype(float)
    except (TypeError, ValueError):
        raise EvaluationError(f"{name}: labels must be numbers 0 or 1, got dtype {arr.dtype}") from None
    bad = ~np.isin(values, (0.0, 1.0))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise EvaluationError(
            f"{name}: {int(bad.sum())} label(s) are not 0 or 1 (first at position {i}: {arr[i]!r}); "
            "drop patients with unknown outcome before computing metrics"
        )
    return values == 1.0


def as_scores(p: Any, n: int, name: str = "prob", unit_interval: bool = True) -> np.ndarray:
    """``p`` as a 1-D float array of length ``n``; finite, and within [0, 1] when ``unit_interval``."""
    arr = np.asarray(p, dtype=float)
    if arr.ndim != 1 or arr.shape[0] != n:
        raise EvaluationError(f"{name}: expected {n} scores (one per label), got shape {arr.shape}")
    bad = ~np.isfinite(arr)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise EvaluationError(f"{name}: {int(bad.sum())} score(s) are NaN or infinite (first at {i})")
    if unit_interval and ((arr < 0).any() or (arr > 1).any()):
        i = int(np.flatnonzero((arr < 0) | (arr > 1))[0])
        raise EvaluationError(
            f"{name}: probabilities must lie in [0, 1]; position {i} holds {arr[i]!r} "
            "(pass probabilities, not logits)"
        )
    return arr


def require_both_classes(y: np.ndarray, what: str) -> tuple[int, int]:
    """Numbers of positives and negatives; raises when either is zero (``what`` is undefined then)."""
    n_pos = int(y.sum())
    n_neg = int(y.size - n_pos)
    if n_pos == 0 or n_neg == 0:
        raise EvaluationError(
            f"{what} needs both outcomes, but the labels hold {n_pos} positive(s) and {n_neg} negative(s)"
        )
    return n_pos, n_neg


def check_threshold(threshold: float, name: str = "threshold") -> float:
    """A decision threshold: a finite number in [0, 1]."""
    t = float(threshold)
    if not np.isfinite(t) or not 0.0 <= t <= 1.0:
        raise EvaluationError(f"{name}: must be a probability in [0, 1], got {threshold!r}")
    return t


def check_ci(ci: float) -> float:
    """Confidence level strictly between 0 and 1 (0.95 for 95% intervals)."""
    c = float(ci)
    if not 0.0 < c < 1.0:
        raise EvaluationError(f"ci: confidence level must be in (0, 1), e.g. 0.95; got {ci!r}")
    return c
