"""Decision thresholds chosen on out-of-fold predictions and then frozen.

The threshold is part of the model: it is picked once, on the development cohort's
out-of-fold probabilities, *before* any external patient is scored, and the same number is
applied everywhere afterwards (TRIPOD+AI: no tuning on validation data).

* ``youden``: maximise Youden's J = sensitivity + specificity − 1 (Youden 1950);
* ``sensitivity``: the highest threshold whose sensitivity reaches a target (e.g. 0.90), the
  usual choice when a missed metastasis costs more than an unnecessary dissection.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import roc_curve

from radiopath.errors import ConfigError


def choose_threshold(
    y: np.ndarray, prob: np.ndarray, rule: str = "youden", target_sensitivity: float = 0.9
) -> float:
    """Threshold on ``prob`` (predict positive when ``prob >= threshold``).

    Raises:
        ConfigError: unknown rule, or labels of one class only.
    """
    y = np.asarray(y, dtype=float)
    prob = np.asarray(prob, dtype=float)
    keep = ~np.isnan(y) & ~np.isnan(prob)
    y, prob = y[keep], prob[keep]
    if len(np.unique(y)) < 2:
        raise ConfigError("a threshold needs out-of-fold predictions of both classes")
    fpr, tpr, thr = roc_curve(y, prob, drop_intermediate=False)
    thr = np.clip(thr, 0.0, 1.0)  # sklearn's first threshold is +inf
    if rule == "youden":
        j = tpr - fpr
        best = np.flatnonzero(j == j.max())
        return float(thr[best[0]])
    if rule == "sensitivity":
        if not 0 < target_sensitivity <= 1:
            raise ConfigError(f"target sensitivity must be in (0, 1], got {target_sensitivity}")
        ok = np.flatnonzero(tpr >= target_sensitivity - 1e-12)
        return float(thr[ok[0]])
    raise ConfigError(f"unknown threshold rule '{rule}'; use 'youden' or 'sensitivity'")
