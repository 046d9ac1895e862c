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

from radiopath.evaluate import conformal as _conformal
from radiopath.evaluate import recalibration as _recal
from radiopath.evaluate._checks import EvaluationError, check_ci
from radiopath.evaluate.bootstrap import N_BOOT
from radiopath.evaluate.cohortflow import cohort_flow
from radiopath.evaluate.decision import DEFAULT_THRESHOLDS, decision_curve, threshold_for_sensitivity
from radiopath.evaluate.metrics import confusion_counts
from radiopath.evaluate.nested import NestedCalls, nested_calls
from radiopath.evaluate.performance import metrics_tables
from radiopath.evaluate.predictions import (
    DEVELOPMENT,
    CohortSpec,
    cohort_specs,
    default_pairs,
    labelled,
    load_predictions,
    model_order,
)
from radiopath.evaluate.proportions import METHODS as PROPORTION_METHODS
from radiopath.evaluate.proportions import check_method, proportion_metrics
from radiopath.evaluate.results import (
    TABLES,
    Evaluation,
    file_sha256,
    format_ci,
    load_evaluation,
    write_evaluation,
)
from radiopath.evaluate.runsettings import run_settings
from radiopath.evaluate.stats import delong_test, holm_adjust, mcnemar_test

__all__ = ["TABLES", "Evaluation", "evaluate_run", "format_ci", "load_evaluation", "write_evaluation"]


# --------------------------------------------------------------------------- comparisons


def _paired(df: pd.DataFrame, a: str, b: str) -> pd.DataFrame:
    la = labelled(df[df["model"] == a])[["patient_id", "label", "prob"]]
    lb = labelled(df[df["model"] == b])[["patient_id", "prob"]]
    return la.merge(lb, on="patient_id", suffixes=("_a", "_b")).sort_values("patient_id")


def _comparisons(
    df: pd.DataFrame,
    specs: list[CohortSpec],
    pairs: Sequence[tuple[str, str]],
    thresholds: dict[str, float],
    ci: float,
    nested: NestedCalls,
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
            calls = "frozen"
            if spec.cohort == DEVELOPMENT:  # internal accuracy at nested thresholds, as in the metrics
                ids = both["patient_id"].tolist()
                na, nb = nested.for_patients(a, ids), nested.for_patients(b, ids)
                if na is not None and nb is not None:
                    pred_a, pred_b, calls = na, nb, "nested"
                else:
                    calls = "pooled_oof"
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
                    "calls": calls,
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
    ci: float,
    proportion_method: str,
) -> tuple[pd.DataFrame, list[str]]:
    """Dissections spared and metastases missed per 100; every column is a proportion (binomial CIs)."""
    rows: list[dict[str, Any]] = []
    internal = next((s for s in specs if s.key == "internal"), None)
    wanted = {
        "sensitivity": ("sensitivity", 1.0),
        "specificity": ("specificity", 1.0),
        "positive_rate": ("dissections_per_100", 100.0),
        "negative_rate": ("spared_per_100", 100.0),
        "fn_rate": ("missed_per_100", 100.0),
    }
    for model in models:
        rules: list[tuple[str, float]] = []
        if internal is not None:
            dev = labelled(df[internal.select(df) & (df["model"] == model)])
            yd = dev["label"].to_numpy() == 1.0
            if yd.any():
                t = threshold_for_sensitivity(yd, dev["prob"].to_numpy(), sensitivity)
                rules.append((f"sensitivity ≥ {sensitivity:.0%} on development", t))
        rules.append(("frozen threshold", thresholds[model]))
        for rule, t in rules:
            for spec in specs:
                if spec.scope == "center" and spec.cohort != "external":
                    continue
                sub = labelled(df[spec.select(df) & (df["model"] == model)])
                y = sub["label"].to_numpy() == 1.0
                if y.size == 0:
                    continue
                p = sub["prob"].to_numpy()
                row: dict[str, Any] = {
                    "model": model,
                    "rule": rule,
                    "threshold": t,
                    "cohort": spec.key,
                    "cohort_label": spec.label,
                    "n": int(y.size),
                    "n_pos": int(y.sum()),
                }
                est = proportion_metrics(confusion_counts(y, p, t), tuple(wanted), ci, proportion_method)
                for k, (label, scale) in wanted.items():
                    e = est[k]
                    row[label] = e.value * scale
                    row[f"{label}_low"], row[f"{label}_high"] = e.ci_low * scale, e.ci_high * scale
                row["unnecessary_spared_per_100"] = float(((p < t) & ~y).sum()) * 100 / y.size
                row["ci_method"] = PROPORTION_METHODS[check_method(proportion_method)]
                rows.append(row)
    return pd.DataFrame(rows), []


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
    proportion_ci: str = "wilson",
    conformal_alpha: float | None = _conformal.ALPHA,
    recalibrate: bool = False,
    recalibration_folds: int = _recal.N_FOLDS,
    recalibration_min_patients: int = _recal.MIN_PATIENTS,
    recalibration_min_events: int = _recal.MIN_EVENTS,
) -> Evaluation:
    """Compute every metric, test and table of a run from ``RUN/predictions.parquet``.

    ``n_boot`` stratified bootstrap resamples (default 2,000) for the CIs of AUCPR, F1, Brier
    and calibration (within center × outcome on a pooled multi-center cohort); ``seed``
    defaults to the run's ``protocol.seed``; ``sensitivity``: the sensitivity at which clinical
    utility (dissections spared, metastases missed) is reported; ``pairs``: model pairs to
    compare (default: every ``fusion*`` model against ``ultrasound`` and ``cytology``). With
    ``write`` the results go to ``RUN/metrics.json`` and ``RUN/tables/``.

    ``proportion_ci``: ``"wilson"`` (default) or ``"clopper-pearson"`` intervals for accuracy,
    sensitivity, specificity, PPV, NPV and the per-100 rates. Internal threshold metrics are
    scored at nested thresholds (chosen on the other folds by the run's
    ``protocol.threshold_rule``); the pooled-threshold figures are kept as
    ``<metric>_pooled_threshold``. ``conformal_alpha``: error rate of the class-conditional
    conformal risk sets (None: skip). ``recalibrate``: also update the frozen model at each
    external center with that center's labels (intercept, then intercept + slope), cross-fitted
    in ``recalibration_folds`` folds; centers below ``recalibration_min_patients`` patients or
    ``recalibration_min_events`` in the rarer outcome are skipped. Off by default: it is model
    updating, not validation.
    """
    run = Path(run)
    level = check_ci(ci)
    prop_method = check_method(proportion_ci)
    if not 0 < sensitivity <= 1:
        raise EvaluationError(f"sensitivity: must be in (0, 1], e.g. 0.9; got {sensitivity!r}")
    if n_boot < 10:
        raise EvaluationError(f"n_boot: need at least 10 bootstrap resamples, got {n_boot}")
    if conformal_alpha is not None:
        conformal_alpha = _conformal.check_alpha(conformal_alpha)
    if recalibrate and recalibration_folds < 2:
        raise EvaluationError(f"recalibration_folds: need at least 2 folds, got {recalibration_folds}")
    df = load_predictions(run)
    rs = run_settings(run, seed)
    models = model_order(df["model"].unique())
    thresholds = {m: float(df.loc[df["model"] == m, "threshold"].iloc[0]) for m in models}
    specs = cohort_specs(df)
    pair_list = [tuple(p) for p in (pairs if pairs is not None else default_pairs(models))]
    unknown = sorted({m for p in pair_list for m in p} - set(models))
    if unknown:
        raise EvaluationError(f"pairs: model(s) {unknown} are not in the predictions; models are {models}")
    nested = nested_calls(df, models, thresholds, rs.threshold_rule, rs.target_sensitivity)
    metrics, confusion, notes = metrics_tables(
        df, specs, models, thresholds, nested, n_boot, rs.seed, level, prop_method
    )
    if metrics.empty:
        raise EvaluationError(
            f"{run}: no patient with a known outcome in predictions.parquet; nothing to evaluate"
        )
    comparisons, cnotes = _comparisons(df, specs, pair_list, thresholds, level, nested)
    utility, unotes = _utility(df, specs, models, thresholds, sensitivity, level, prop_method)
    decision = _decision_curves(df, specs, models, np.asarray(dca_thresholds, dtype=float))
    conformal, confnotes = (
        _conformal.conformal_table(df, specs, models, conformal_alpha, level, prop_method)
        if conformal_alpha is not None
        else (pd.DataFrame(), [])
    )
    recal, rnotes = (
        _recal.recalibration_table(
            df,
            models,
            thresholds,
            recalibration_folds,
            rs.seed,
            recalibration_min_patients,
            recalibration_min_events,
            level,
            prop_method,
        )
        if recalibrate
        else (pd.DataFrame(), [])
    )
    flow = cohort_flow(run, df, rs.provenance)
    from radiopath import __version__

    ev = Evaluation(
        run=run,
        settings={
            "n_boot": n_boot,
            "seed": rs.seed,
            "seed_source": rs.seed_source,
            "ci": level,
            "sensitivity_target": sensitivity,
            "pairs": [list(p) for p in pair_list],
            "bootstrap": "stratified by outcome (pooled multi-center cohorts: by center × outcome), "
            "percentile intervals",
            "auc_ci": "DeLong (Sun & Xu 2014 fast algorithm), Wald interval clipped to [0, 1]",
            "proportion_ci": PROPORTION_METHODS[prop_method],
            "threshold_rule": rs.threshold_rule,
            "threshold_rule_source": rs.rule_source,
            "target_sensitivity": rs.target_sensitivity if rs.threshold_rule == "sensitivity" else None,
            "internal_threshold_metrics": "nested: threshold chosen on the other folds' out-of-fold "
            "predictions, applied to each fold; pooled-threshold figures as <metric>_pooled_threshold",
            "conformal_alpha": conformal_alpha,
            "recalibration": {
                "folds": recalibration_folds,
                "min_patients": recalibration_min_patients,
                "min_events": recalibration_min_events,
            }
            if recalibrate
            else None,
            "primary_model": rs.primary_model(models),
            "primary_model_source": "config.yaml protocol.primary_model"
            if rs.config is not None and rs.config.protocol.primary_model in models
            else "default rule (fusion_concat, else the first fusion model, else the first model)",
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
        nested_thresholds=nested.table,
        conformal=conformal,
        recalibration=recal,
        notes=nested.notes + notes + cnotes + unotes + confnotes + rnotes,
        predictions_sha256=file_sha256(run / "predictions.parquet"),
        created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    )
    if write:
        write_evaluation(ev)
    return ev
