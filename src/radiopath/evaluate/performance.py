"""The metric rows of ``metrics.json``: every metric of every model on every cohort, with its interval.

One row per model × cohort × metric. What each row's interval is, and which calls a threshold
metric scores, is written into the row itself:

* ``ci_method`` — ``DeLong`` (AUC); ``Wilson`` or ``Clopper-Pearson`` (accuracy, sensitivity,
  specificity, PPV, NPV: binomial intervals on ``k`` of ``denominator``, see
  :mod:`radiopath.evaluate.proportions`); ``bootstrap percentile`` (F1, AUCPR, Brier,
  calibration intercept and slope), ``bootstrap percentile, center-stratified`` on a pooled
  cohort of several centers (resampled within center × outcome); ``none`` when too few
  patients.
* ``threshold_basis`` (threshold metrics only) — ``frozen``: the model's frozen threshold, on
  patients it never saw (external); ``nested``: development patients called at thresholds
  chosen on the other folds (:mod:`radiopath.evaluate.nested`), the primary internal figure;
  ``pooled_oof``: the frozen threshold on the very out-of-fold predictions it was chosen on —
  the secondary figure, under the metric name ``<metric>_pooled_threshold``.
* ``primary`` — False for those secondary rows.

The bootstrap percentile interval of every threshold metric is kept as ``boot_ci_low`` /
``boot_ci_high`` for comparison, and ``se`` is the DeLong SE for the AUC, else the bootstrap SD.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from radiopath.evaluate.bootstrap import BootstrapResult, bootstrap_metrics
from radiopath.evaluate.metrics import METRIC_NAMES, THRESHOLD_METRICS, binary_metrics
from radiopath.evaluate.nested import NESTED_METRICS, NestedCalls, pooled_name
from radiopath.evaluate.predictions import DEVELOPMENT, CohortSpec, labelled
from radiopath.evaluate.proportions import PROPORTIONS, proportion_metrics
from radiopath.evaluate.stats import auc_ci_delong

BOOTSTRAP = "bootstrap percentile"
BOOTSTRAP_CENTERS = "bootstrap percentile, center-stratified"
#: Printable meaning of ``threshold_basis``.
THRESHOLD_BASIS: dict[str, str] = {
    "frozen": "frozen threshold",
    "nested": "nested thresholds (chosen on the other folds)",
    "pooled_oof": "frozen threshold, chosen on these same out-of-fold predictions",
}


def _counts(y: np.ndarray, calls: np.ndarray) -> dict[str, int]:
    return {
        "tp": int((calls & y).sum()),
        "fp": int((calls & ~y).sum()),
        "tn": int((~calls & ~y).sum()),
        "fn": int((~calls & y).sum()),
    }


def _empty_row(metric: str) -> dict[str, Any]:
    return {
        "metric": metric,
        "value": np.nan,
        "ci_low": np.nan,
        "ci_high": np.nan,
        "se": np.nan,
        "ci_method": "none",
        "n_undefined": 0,
        "boot_ci_low": np.nan,
        "boot_ci_high": np.nan,
        "k": np.nan,
        "denominator": np.nan,
        "threshold_basis": None,
        "primary": True,
    }


def _threshold_rows(
    y: np.ndarray,
    calls: np.ndarray,
    point: Mapping[str, float],
    boot: BootstrapResult | None,
    basis: str,
    names: Sequence[str],
    ci: float,
    proportion_method: str,
    rename: bool,
) -> list[dict[str, Any]]:
    props = proportion_metrics(
        _counts(y, calls), [m for m in names if m in PROPORTIONS], ci, proportion_method
    )
    rows = []
    for m in names:
        row = _empty_row(pooled_name(m) if rename else m)
        row.update(threshold_basis=basis, primary=not rename, value=point[m])
        if boot is not None:
            e = boot[m]
            row.update(se=e.se, n_undefined=e.n_undefined, boot_ci_low=e.ci_low, boot_ci_high=e.ci_high)
        if m in props:
            pr = props[m]
            row.update(value=pr.value, k=pr.k, denominator=pr.n)
            if pr.n:
                row.update(ci_low=pr.ci_low, ci_high=pr.ci_high, ci_method=pr.method)
        elif boot is not None:
            row.update(ci_low=row["boot_ci_low"], ci_high=row["boot_ci_high"], ci_method=boot_method(boot))
        rows.append(row)
    return rows


def boot_method(boot: BootstrapResult) -> str:
    """``ci_method`` of a bootstrap interval: center-stratified when it resampled within strata."""
    return BOOTSTRAP_CENTERS if boot.n_strata > 1 else BOOTSTRAP


def metric_rows(
    sub: pd.DataFrame,
    threshold: float,
    nested: np.ndarray | None,
    development: bool,
    n_boot: int,
    seed: int,
    ci: float,
    proportion_method: str = "wilson",
    strata: np.ndarray | None = None,
) -> tuple[list[dict[str, Any]], list[str]]:
    """Rows of one model on one cohort (``sub``: its labelled rows, in patient order).

    ``nested``: the nested-threshold calls of these patients (development cohorts), or None.
    ``development``: the patients are out-of-fold development patients, so the frozen
    threshold was chosen on them. ``strata``: centers, to resample a pooled cohort within.
    """
    y = sub["label"].to_numpy() == 1.0
    p = sub["prob"].to_numpy()
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    notes: list[str] = []
    frozen_calls = p >= threshold
    can_boot = n_pos >= 2 and n_neg >= 2
    boot = boot_nested = None
    delong = None
    if can_boot:
        boot = bootstrap_metrics(y, p, threshold, n_boot=n_boot, seed=seed, ci=ci, strata=strata)
        if nested is not None:  # same seed and cells → the same resamples as ``boot``
            boot_nested = bootstrap_metrics(
                y, p, n_boot=n_boot, seed=seed, ci=ci, metrics=NESTED_METRICS, strata=strata, calls=nested
            )
        delong = auc_ci_delong(y, p, ci)
    else:
        notes.append(
            f"{n_pos} positive(s) and {n_neg} negative(s): intervals only for proportions with a denominator"
        )
    point = binary_metrics(y, p, threshold)
    rows: list[dict[str, Any]] = []
    threshold_names = [m for m in METRIC_NAMES if m in THRESHOLD_METRICS]
    if nested is not None:
        nested_point = binary_metrics(y, p, metrics=NESTED_METRICS, calls=nested)
        primary = _threshold_rows(
            y, nested, nested_point, boot_nested, "nested", NESTED_METRICS, ci, proportion_method, False
        )
    else:
        basis = "pooled_oof" if development else "frozen"
        primary = _threshold_rows(
            y, frozen_calls, point, boot, basis, threshold_names, ci, proportion_method, False
        )
    by_name = {r["metric"]: r for r in primary}
    for m in METRIC_NAMES:
        if m in by_name:
            rows.append(by_name[m])
            continue
        row = _empty_row(m)
        row["value"] = point[m]
        if m == "auc" and delong is not None:
            row.update(ci_low=delong.ci_low, ci_high=delong.ci_high, se=delong.se, ci_method="DeLong")
            row.update(boot_ci_low=boot[m].ci_low, boot_ci_high=boot[m].ci_high)  # type: ignore[index]
        elif boot is not None:
            e = boot[m]
            row.update(
                ci_low=e.ci_low,
                ci_high=e.ci_high,
                se=e.se,
                n_undefined=e.n_undefined,
                boot_ci_low=e.ci_low,
                boot_ci_high=e.ci_high,
                ci_method=boot_method(boot),
            )
        rows.append(row)
    if nested is not None:  # the pooled-threshold figures, secondary
        rows += _threshold_rows(
            y, frozen_calls, point, boot, "pooled_oof", NESTED_METRICS, ci, proportion_method, True
        )
    return rows, notes


def metrics_tables(
    df: pd.DataFrame,
    specs: Sequence[CohortSpec],
    models: Sequence[str],
    thresholds: Mapping[str, float],
    nested: NestedCalls,
    n_boot: int,
    seed: int,
    ci: float,
    proportion_method: str = "wilson",
) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """(metrics, confusion, notes) for every cohort in ``specs`` and every model."""
    rows: list[dict[str, Any]] = []
    conf: list[dict[str, Any]] = []
    notes: list[str] = []
    for spec in specs:
        in_cohort = df[spec.select(df)]
        for model in models:
            all_rows = in_cohort[in_cohort["model"] == model]
            if all_rows.empty:
                continue
            sub = labelled(all_rows)
            development = spec.cohort == DEVELOPMENT
            calls = nested.for_patients(model, sub["patient_id"].tolist()) if development else None
            base = {
                "model": model,
                "cohort": spec.key,
                "cohort_label": spec.label,
                "scope": spec.scope,
                "center": spec.center,
                "n": len(sub),
                "n_pos": int((sub["label"] == 1).sum()),
                "n_neg": int((sub["label"] == 0).sum()),
                "n_unlabelled": len(all_rows) - len(sub),
                "threshold": thresholds[model],
            }
            if sub.empty:
                notes.append(f"{model} on {spec.label}: no patient with a known outcome")
                continue
            centers = sub["center"].to_numpy()
            strata = centers if spec.center is None and np.unique(centers).size > 1 else None
            mrows, mnotes = metric_rows(
                sub, thresholds[model], calls, development, n_boot, seed, ci, proportion_method, strata
            )
            for r in mrows:
                nested_row = r["threshold_basis"] == "nested"
                rows.append({**base, **r, "threshold": np.nan if nested_row else base["threshold"]})
            notes += [f"{model} on {spec.label}: {n}" for n in mnotes]
            y = sub["label"].to_numpy() == 1.0
            frozen = sub["prob"].to_numpy() >= thresholds[model]
            if calls is not None:
                conf.append(
                    {**base, "threshold": np.nan, "calls": "nested", "primary": True, **_counts(y, calls)}
                )
                conf.append({**base, "calls": "pooled_oof", "primary": False, **_counts(y, frozen)})
            else:
                basis = "pooled_oof" if development else "frozen"
                conf.append({**base, "calls": basis, "primary": True, **_counts(y, frozen)})
    return pd.DataFrame(rows), pd.DataFrame(conf), notes
