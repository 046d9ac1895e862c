"""Patient-level cross-validation folds over the development cohort.

Folds follow scikit-learn's :class:`~sklearn.model_selection.StratifiedGroupKFold`: grouped
by patient (so no patient's images are ever on both sides of a split) and stratified by the
label, and by center × label when the development cohort spans several centers, so every
fold keeps each center's prevalence. External patients never enter a fold: their fold is -1.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold

from radiopath.errors import ConfigError

EXTERNAL_FOLD = -1


def assign_folds(
    labels: Sequence[int] | np.ndarray,
    groups: Sequence[str] | np.ndarray,
    n_splits: int = 5,
    seed: int = 0,
    strata: Sequence[str] | np.ndarray | None = None,
) -> np.ndarray:
    """Fold index (0..n_splits-1) for every sample, grouped by ``groups``.

    Args:
        labels: 0/1 outcome per sample.
        groups: the unit that must never be split (the patient, or a case with several
            patients' worth of images); all samples of a group get the same fold.
        n_splits: number of folds.
        seed: shuffles groups before the balanced assignment; same seed → same folds.
        strata: what to balance across folds (default: ``labels``); pass center×label
            strings to balance each center's prevalence.

    Raises:
        ConfigError: fewer groups of a class than folds, or a group with mixed labels.
    """
    y = np.asarray(labels).astype(int)
    g = np.asarray(groups).astype(str)
    if y.shape != g.shape:
        raise ConfigError(f"labels ({y.shape}) and groups ({g.shape}) differ in length")
    if n_splits < 2:
        raise ConfigError(f"n_splits must be at least 2, got {n_splits}")
    for cls in (0, 1):
        n_groups = len(np.unique(g[y == cls]))
        if n_groups < n_splits:
            raise ConfigError(
                f"only {n_groups} patient(s) with lnm={cls} for {n_splits}-fold cross-validation; "
                f"add patients or use --folds {max(2, n_groups)} or fewer"
            )
    s = y.astype(str) if strata is None else np.asarray(strata).astype(str)
    _, s_codes = np.unique(s, return_inverse=True)
    splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    folds = np.full(len(y), EXTERNAL_FOLD, dtype=int)
    with warnings.catch_warnings():
        # a center×label stratum smaller than n_splits only weakens balance; labels are checked above
        warnings.filterwarnings("ignore", message="The least populated class", category=UserWarning)
        for k, (_, test) in enumerate(splitter.split(np.zeros(len(y)), s_codes, g)):
            folds[test] = k
    return folds
