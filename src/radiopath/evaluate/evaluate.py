"""``evaluate_run``: a run folder's predictions → every number the study reports.

Reads ``RUN/predictions.parquet`` (validated against its contract), and writes

* ``RUN/metrics.json`` — everything below plus the settings, in one machine-readable file;
* ``RUN/tables/*.csv`` — ``table_main.csv`` (the paper's table: model × internal/external ×
  metrics with CIs), ``metrics.csv`` (long form, every cohort and center), ``confusion.csv``,
  ``comparisons.csv``, ``clinical_utility.csv``, ``decision_curves.csv``, ``cohort_flow.csv``.

Nothing here needs a model: the predictions are the hub (DESIGN.md). Every artifact is written
atomically (``tables/`` as one folder, then ``metrics.json``), so a crash leaves the previous
results, never half of the new ones.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from radiopath.evaluate._checks import EvaluationError, check_ci
from radiopath.evaluate.bootstrap import N_BOOT, bootstrap_metrics
from radiopath.evaluate.cohortflow import cohort_flow
from radiopath.evaluate.decision import DEFAULT_THRESHOLDS, decision_curve, threshold_for_sensitivity
from radiopath.evaluate.metrics import METRIC_NAMES, binary_metrics, confusion_counts
from radiopath.evaluate.predictions import (
    CohortSpec,
    cohort_specs,
    default_pairs,
    load_predictions,
    model_order,
)
from radiopath.evaluate.results import (
    TABLES,
    Evaluation,
    file_sha256,
    format_ci,
    load_evaluation,
    write_evaluation,
)
from radiopath.evaluate.runinfo import read_config, read_provenance, resolve_seed
from radiopath.evaluate.stats import auc_ci_delong, delong_test, holm_adjust, mcnemar_test

__all__ = ["TABLES", "Evaluation", "evaluate_run", "format_ci", "load_evaluation", "write_evaluation"]


# --------------------------------------------------------------------------- per cohort × model


def _labelled(df: pd.DataFrame) -> pd.DataFrame:
    """Rows with a known label, in patient order (so resamples pair up across models)."""
    return df[df["label"].notna()].sort_values("patient_id", kind="stable")


def _metric_rows(
    sub: pd.DataFrame, threshold: float, n_boot: int, seed: int, ci: float
) -> tuple[list[dict[str, Any]], list[str]]:
    y = sub["label"].to_numpy() == 1.0
    p = sub["prob"].to_numpy()
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    notes: list[str] = []
    rows: list[dict[str, Any]] = []
    if n_pos >= 2 and n_neg >= 2:
        boot = bootstrap_metrics(y, p, threshold, n_boot=n_boot, seed=seed, ci=ci)
        delong = auc_ci_delong(y, p, ci)
        for m in METRIC_NAMES:
            e = boot[m]
            row = {
                "metric": m,
                "value": e.value,
                "ci_low": e.ci_low,
                "ci_high": e.ci_high,
                "se": e.se,
                "ci_method": "bootstrap percentile",
                "n_undefined": e.n_undefined,
                "boot_ci_low": e.ci_low,
                "boot_ci_high": e.ci_high,
            }
            if m == "auc":
                row.update(ci_low=delong.ci_low, ci_high=delong.ci_high, se=delong.se, ci_method="DeLong")
            rows.append(row)
    else:
        point = binary_metrics(y, p, threshold) if len(y) else dict.fromkeys(METRIC_NAMES, float("nan"))
        notes.append(f"{n_pos} positive(s) and {n_neg} negative(s): no confidence intervals")
        for m in METRIC_NAMES:
            rows.append(
                {
                    "metric": m,
                    "value": point[m],
                    "ci_low": np.nan,
                    "ci_high": np.nan,
                    "se": np.nan,
                    "ci_method": "none",
                    "n_undefined": 0,
                    "boot_ci_low": np.nan,
                    "boot_ci_high": np.nan,
                }
            )
    return rows, notes


def _metrics_tables(
    df: pd.DataFrame,
    specs: list[CohortSpec],
    models: list[str],
    thresholds: dict[str, float],
    n_boot: int,
    seed: int,
    ci: float,
) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    rows, conf, notes = [], [], []
    for spec in specs:
        in_cohort = df[spec.select(df)]
        for model in models:
            all_rows = in_cohort[in_cohort["model"] == model]
            if all_rows.empty:
                continue
            sub = _labelled(all_rows)
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
            mrows, mnotes = _metric_rows(sub, thresholds[model], n_boot, seed, ci)
            rows += [{**base, **r} for r in mrows]
            notes += [f"{model} on {spec.label}: {n}" for n in mnotes]
            counts = confusion_counts(sub["label"].to_numpy(), sub["prob"].to_numpy(), thresholds[model])
            conf.append({**base, **counts})
    return pd.DataFrame(rows), pd.DataFrame(conf), notes


# --------------------------------------------------------------------------- comparisons


def _paired(df: pd.DataFrame, a: str, b: str) -> pd.DataFrame:
    la = _labelled(df[df["model"] == a])[["patient_id", "label", "prob"]]
    lb = _labelled(df[df["model"] == b])[["patient_id", "prob"]]
    return la.merge(lb, on="patient_id", suffixes=("_a", "_b")).sort_values("patient_id")


def _comparisons(
    df: pd.DataFrame,
    specs: list[CohortSpec],
    pairs: Sequence[tuple[str, str]],
    thresholds: dict[str, float],
    ci: float,
) -> tuple[pd.DataFrame, list[str]]:
    rows, notes = [], []
    for spec in [s for s in specs if s.scope == "main"]:
        block = []
        for a, b in pairs:
            both = _paired(df[spec.select(df)], a, b)
            y = both["label"].to_numpy() == 1.0
            n_pos, n_neg = int(y.sum()), int((~y).sum())
            if n_pos < 2 or n_neg < 2:
                notes.append(
                    f"{a} vs {b} on {spec.label}: too few paired patients ({n_pos}+/{n_neg}−) to compare"
                )
                continue
            pa, pb = both["prob_a"].to_numpy(), both["prob_b"].to_numpy()
            d = delong_test(y, pa, pb, ci)
            pred_a, pred_b = pa >= thresholds[a], pb >= thresholds[b]
            mc = mcnemar_test(y, pred_a, pred_b)
            block.append(
                {
                    "cohort": spec.key,
                    "cohort_label": spec.label,
                    "model_a": a,
                    "model_b": b,
                    "n": int(y.size),
                    "n_pos": n_pos,
                    "auc_a": d.auc_a,
                    "auc_b": d.auc_b,
                    "auc_diff": d.diff,
                    "diff_ci_low": d.ci_low,
                    "diff_ci_high": d.ci_high,
                    "delong_z": d.z,
                    "delong_p": d.p_value,
                    "accuracy_a": float((pred_a == y).mean()),
                    "accuracy_b": float((pred_b == y).mean()),
                    "mcnemar_b": mc.b,
                    "mcnemar_c": mc.c,
                    "mcnemar_stat": mc.statistic,
                    "mcnemar_p": mc.p_value,
                    "mcnemar_method": mc.method,
                }
            )
        if block:
            holm_d = holm_adjust([r["delong_p"] for r in block])
            holm_m = holm_adjust([r["mcnemar_p"] for r in block])
            for r, hd, hm in zip(block, holm_d, holm_m, strict=True):
                r["delong_p_holm"] = float(hd)
                r["mcnemar_p_holm"] = float(hm)
            rows += block
    return pd.DataFrame(rows), notes


# --------------------------------------------------------------------------- clinical utility


def _complete_cases(df: pd.DataFrame, models: list[str]) -> pd.DataFrame:
    """Labelled patients that have a prediction from every model: (patients × models) of probabilities."""
    lab = df[df["label"].notna()]
    wide = lab.pivot(index="patient_id", columns="model", values="prob")
    wide = wide[[m for m in models if m in wide.columns]].dropna()
    labels = lab.drop_duplicates("patient_id").set_index("patient_id")["label"]
    wide.insert(0, "_label", labels.reindex(wide.index))
    return wide.sort_index()


def _decision_curves(
    df: pd.DataFrame, specs: list[CohortSpec], models: list[str], thresholds: np.ndarray
) -> pd.DataFrame:
    rows = []
    for spec in [s for s in specs if s.scope == "main"]:
        wide = _complete_cases(df[spec.select(df)], models)
        if wide.empty:
            continue
        y = wide["_label"].to_numpy() == 1.0
        dc = decision_curve(y, {m: wide[m].to_numpy() for m in models if m in wide.columns}, thresholds)
        frame = {"treat all": dc.treat_all, "treat none": dc.treat_none, **dc.models}
        for strategy, nb in frame.items():
            for t, v in zip(dc.thresholds, nb, strict=True):
                rows.append(
                    {
                        "cohort": spec.key,
                        "cohort_label": spec.label,
                        "n": dc.n,
                        "prevalence": dc.prevalence,
                        "strategy": strategy,
                        "threshold": float(t),
                        "net_benefit": float(v),
                    }
                )
    return pd.DataFrame(rows)


def _utility(
    df: pd.DataFrame,
    specs: list[CohortSpec],
    models: list[str],
    thresholds: dict[str, float],
    sensitivity: float,
    n_boot: int,
    seed: int,
    ci: float,
) -> tuple[pd.DataFrame, list[str]]:
    rows, notes = [], []
    internal = next((s for s in specs if s.key == "internal"), None)
    wanted = ("sensitivity", "specificity", "positive_rate", "negative_rate", "fn_rate")
    for model in models:
        rules: list[tuple[str, float]] = []
        if internal is not None:
            dev = _labelled(df[internal.select(df) & (df["model"] == model)])
            yd = dev["label"].to_numpy() == 1.0
            if yd.any():
                t = threshold_for_sensitivity(yd, dev["prob"].to_numpy(), sensitivity)
                rules.append((f"sensitivity ≥ {sensitivity:.0%} on development", t))
        rules.append(("frozen threshold", thresholds[model]))
        for rule, t in rules:
            for spec in specs:
                if spec.scope == "center" and spec.cohort != "external":
                    continue
                sub = _labelled(df[spec.select(df) & (df["model"] == model)])
                y = sub["label"].to_numpy() == 1.0
                if y.size == 0:
                    continue
                n_pos, n_neg = int(y.sum()), int((~y).sum())
                row: dict[str, Any] = {
                    "model": model,
                    "rule": rule,
                    "threshold": t,
                    "cohort": spec.key,
                    "cohort_label": spec.label,
                    "n": int(y.size),
                    "n_pos": n_pos,
                }
                if n_pos >= 1 and n_neg >= 1:
                    b = bootstrap_metrics(
                        y, sub["prob"].to_numpy(), t, n_boot=n_boot, seed=seed, ci=ci, metrics=wanted
                    )
                    est = b.estimates
                else:
                    point = binary_metrics(y, sub["prob"].to_numpy(), t, metrics=wanted)
                    est = {k: None for k in wanted}
                    notes.append(f"clinical utility of {model} on {spec.label}: one outcome only, no CIs")
                for k, label in (
                    ("sensitivity", "sensitivity"),
                    ("specificity", "specificity"),
                    ("positive_rate", "dissections_per_100"),
                    ("negative_rate", "spared_per_100"),
                    ("fn_rate", "missed_per_100"),
                ):
                    scale = 1.0 if k in ("sensitivity", "specificity") else 100.0
                    e = est[k]
                    if e is None:
                        row[label], row[f"{label}_low"], row[f"{label}_high"] = (
                            point[k] * scale,
                            np.nan,
                            np.nan,
                        )
                    else:
                        row[label] = e.value * scale
                        row[f"{label}_low"], row[f"{label}_high"] = e.ci_low * scale, e.ci_high * scale
                row["unnecessary_spared_per_100"] = (
                    float(((sub["prob"].to_numpy() < t) & ~y).sum()) * 100 / y.size
                )
                rows.append(row)
    return pd.DataFrame(rows), notes


# --------------------------------------------------------------------------- entry point


def evaluate_run(
    run: str | Path,
    n_boot: int = N_BOOT,
    seed: int | None = None,
    ci: float = 0.95,
    sensitivity: float = 0.90,
    pairs: Sequence[tuple[str, str]] | None = None,
    dca_thresholds: Sequence[float] | np.ndarray = DEFAULT_THRESHOLDS,
    write: bool = True,
) -> Evaluation:
    """Compute every metric, test and table of a run from ``RUN/predictions.parquet``.

    ``n_boot`` stratified bootstrap resamples (default 2,000) for the CIs; ``seed`` defaults
    to the run's ``protocol.seed``; ``sensitivity``: the sensitivity at which clinical utility
    (dissections spared, metastases missed) is reported; ``pairs``: model pairs to compare
    (default: every ``fusion*`` model against ``ultrasound`` and ``cytology``). With
    ``write`` the results go to ``RUN/metrics.json`` and ``RUN/tables/``.
    """
    run = Path(run)
    level = check_ci(ci)
    if not 0 < sensitivity <= 1:
        raise EvaluationError(f"sensitivity: must be in (0, 1], e.g. 0.9; got {sensitivity!r}")
    if n_boot < 10:
        raise EvaluationError(f"n_boot: need at least 10 bootstrap resamples, got {n_boot}")
    df = load_predictions(run)
    config = read_config(run)
    provenance = read_provenance(run)
    seed_value, seed_source = resolve_seed(seed, config, provenance)
    models = model_order(df["model"].unique())
    thresholds = {m: float(df.loc[df["model"] == m, "threshold"].iloc[0]) for m in models}
    specs = cohort_specs(df)
    pair_list = [tuple(p) for p in (pairs if pairs is not None else default_pairs(models))]
    unknown = sorted({m for p in pair_list for m in p} - set(models))
    if unknown:
        raise EvaluationError(f"pairs: model(s) {unknown} are not in the predictions; models are {models}")
    metrics, confusion, notes = _metrics_tables(df, specs, models, thresholds, n_boot, seed_value, level)
    if metrics.empty:
        raise EvaluationError(
            f"{run}: no patient with a known outcome in predictions.parquet; nothing to evaluate"
        )
    comparisons, cnotes = _comparisons(df, specs, pair_list, thresholds, level)
    utility, unotes = _utility(df, specs, models, thresholds, sensitivity, n_boot, seed_value, level)
    decision = _decision_curves(df, specs, models, np.asarray(dca_thresholds, dtype=float))
    flow = cohort_flow(run, df, provenance)
    from radiopath import __version__

    ev = Evaluation(
        run=run,
        settings={
            "n_boot": n_boot,
            "seed": seed_value,
            "seed_source": seed_source,
            "ci": level,
            "sensitivity_target": sensitivity,
            "pairs": [list(p) for p in pair_list],
            "bootstrap": "stratified by outcome, percentile intervals",
            "auc_ci": "DeLong (Sun & Xu 2014 fast algorithm), Wald interval clipped to [0, 1]",
            "radiopath_version": __version__,
        },
        models=models,
        thresholds=thresholds,
        cohorts=[
            {"key": s.key, "label": s.label, "scope": s.scope, "cohort": s.cohort, "center": s.center}
            for s in specs
        ],
        metrics=metrics,
        confusion=confusion,
        comparisons=comparisons,
        clinical_utility=utility,
        decision_curves=decision,
        cohort_flow=flow,
        notes=notes + cnotes + unotes,
        predictions_sha256=file_sha256(run / "predictions.parquet"),
        created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    )
    if write:
        write_evaluation(ev)
    return ev
