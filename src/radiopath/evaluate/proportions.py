"""Confidence intervals for proportions (sensitivity, specificity, PPV, NPV, accuracy): Wilson and exact.

A threshold metric is a count ``k`` of successes among ``n`` patients (sensitivity: true
positives among the patients with metastasis). Its interval is a binomial interval on
``k / n``, not a bootstrap: the percentile bootstrap of 59/59 is the point 1.000 (every
resample is 59/59 too), an interval that claims certainty no data can give.

* **Wilson score interval** (Wilson, JASA 1927;22:209–12), the default: inverts the score
  test; stays inside [0, 1], is never degenerate, and has close to nominal coverage even for
  small ``n`` and proportions near 0 or 1 (Brown, Cai & DasGupta, Statistical Science
  2001;16:101–33, who recommend it).
* **Clopper–Pearson** (Biometrika 1934;26:404–13): the "exact" interval from beta quantiles;
  coverage is at least nominal for every true proportion, at the price of being wider.

Both reproduce ``statsmodels.stats.proportion.proportion_confint`` (``method="wilson"`` and
``method="beta"``), to which the tests pin them. The functions are vectorised over arrays of
counts. The intervals are conditional on the decision threshold(s) used to make the calls.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.stats import beta, norm

from radiopath.evaluate._checks import EvaluationError, check_ci

#: Interval methods, by the name used in the API and in ``ci_method`` of the metric rows.
METHODS: dict[str, str] = {"wilson": "Wilson", "clopper-pearson": "Clopper-Pearson"}
#: Threshold metrics that are proportions: (numerator, denominator) as sums of confusion cells.
PROPORTIONS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "accuracy": (("tp", "tn"), ("tp", "tn", "fp", "fn")),
    "sensitivity": (("tp",), ("tp", "fn")),
    "specificity": (("tn",), ("tn", "fp")),
    "ppv": (("tp",), ("tp", "fp")),
    "npv": (("tn",), ("tn", "fn")),
    "positive_rate": (("tp", "fp"), ("tp", "tn", "fp", "fn")),
    "negative_rate": (("tn", "fn"), ("tp", "tn", "fp", "fn")),
    "fn_rate": (("fn",), ("tp", "tn", "fp", "fn")),
}


def check_method(method: str) -> str:
    """A known interval method (``wilson`` or ``clopper-pearson``), normalised."""
    m = str(method).strip().lower().replace("_", "-").replace(" ", "-")
    if m in {"clopper", "exact", "beta", "cp"}:
        m = "clopper-pearson"
    if m not in METHODS:
        raise EvaluationError(
            f"proportion_ci: unknown interval method {method!r}; use one of {sorted(METHODS)}"
        )
    return m


def _counts(k: Any, n: Any) -> tuple[np.ndarray, np.ndarray]:
    kk = np.asarray(k, dtype=float)
    nn = np.asarray(n, dtype=float)
    kk, nn = np.broadcast_arrays(kk, nn)
    if np.any(nn < 0) or np.any(kk < 0) or np.any(kk > nn) or np.any(kk != np.round(kk)):
        raise EvaluationError(
            "proportion_ci: counts must be whole numbers with 0 <= k <= n; "
            f"got k = {np.asarray(k).tolist()}, n = {np.asarray(n).tolist()}"
        )
    return kk, nn


def wilson_interval(k: Any, n: Any, ci: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval of ``k / n`` (arrays broadcast); NaN where ``n == 0``.

    ``(k + z²/2)/(n + z²) ± z/(n + z²) · √(k(n − k)/n + z²/4)``.
    """
    kk, nn = _counts(k, n)
    z = float(norm.ppf(0.5 + check_ci(ci) / 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        centre = (kk + z * z / 2) / (nn + z * z)
        half = z / (nn + z * z) * np.sqrt(kk * (nn - kk) / nn + z * z / 4)
    # the bounds at k = 0 and k = n are exactly 0 and 1; rounding must not move them
    lo = np.where(kk == 0, 0.0, np.clip(centre - half, 0.0, 1.0))
    hi = np.where(kk == nn, 1.0, np.clip(centre + half, 0.0, 1.0))
    return np.where(nn > 0, lo, np.nan), np.where(nn > 0, hi, np.nan)


def clopper_pearson_interval(k: Any, n: Any, ci: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Clopper–Pearson ("exact") interval of ``k / n`` from beta quantiles; NaN where ``n == 0``."""
    kk, nn = _counts(k, n)
    a = (1 - check_ci(ci)) / 2
    with np.errstate(invalid="ignore", divide="ignore"):
        lo = np.where(kk > 0, beta.ppf(a, kk, nn - kk + 1), 0.0)
        hi = np.where(kk < nn, beta.isf(a, kk + 1, nn - kk), 1.0)
    lo = np.where(nn > 0, lo, np.nan)
    hi = np.where(nn > 0, hi, np.nan)
    return lo, hi


def proportion_ci(k: Any, n: Any, ci: float = 0.95, method: str = "wilson") -> tuple[np.ndarray, np.ndarray]:
    """``(low, high)`` of the proportion ``k / n`` by ``method`` (``wilson`` or ``clopper-pearson``).

    >>> lo, hi = proportion_ci(59, 59)
    >>> round(float(lo), 3), float(hi)
    (0.939, 1.0)
    """
    m = check_method(method)
    return wilson_interval(k, n, ci) if m == "wilson" else clopper_pearson_interval(k, n, ci)


@dataclass(frozen=True)
class ProportionEstimate:
    """A proportion ``k / n`` with its interval and the method that produced it."""

    value: float
    ci_low: float
    ci_high: float
    k: int
    n: int
    method: str  #: "Wilson" or "Clopper-Pearson"


def proportion_metrics(
    counts: Mapping[str, int], metrics: Any = tuple(PROPORTIONS), ci: float = 0.95, method: str = "wilson"
) -> dict[str, ProportionEstimate]:
    """Each proportion metric of a confusion table ``counts`` (``tp, fp, tn, fn``) with its interval.

    A metric whose denominator is zero (PPV when no one is called positive) is NaN with no interval.
    """
    m = check_method(method)
    out: dict[str, ProportionEstimate] = {}
    for name in metrics:
        if name not in PROPORTIONS:
            raise EvaluationError(f"{name!r} is not a proportion; proportions are {sorted(PROPORTIONS)}")
        num, den = PROPORTIONS[name]
        k = int(sum(int(counts[c]) for c in num))
        n = int(sum(int(counts[c]) for c in den))
        lo, hi = proportion_ci(k, n, ci, m)
        value = k / n if n else float("nan")
        out[name] = ProportionEstimate(float(value), float(lo), float(hi), k, n, METHODS[m])
    return out


class ProportionCI:
    """Class form of :func:`proportion_ci`: configure the level and method once.

    >>> round(float(ProportionCI(method="clopper-pearson")(0, 10)[1]), 4)
    0.3085
    """

    def __init__(self, ci: float = 0.95, method: str = "wilson") -> None:
        self.ci, self.method = check_ci(ci), check_method(method)

    @property
    def label(self) -> str:
        """The method's printable name ("Wilson", "Clopper-Pearson")."""
        return METHODS[self.method]

    def __call__(self, k: Any, n: Any) -> tuple[np.ndarray, np.ndarray]:
        return proportion_ci(k, n, self.ci, self.method)
