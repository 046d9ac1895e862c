"""Report sections for the honest-statistics tables: nested vs pooled internal thresholds, conformal
risk sets, recalibration (model updating), and the sentences that say which figure is which.

Each function turns one table of an :class:`~radiopath.evaluate.results.Evaluation` into plain
rows for the template (``report.html.j2``); nothing here computes a statistic.
"""

from __future__ import annotations

import math
from typing import Any

from radiopath.evaluate.metrics import METRIC_LABELS
from radiopath.evaluate.nested import NESTED_METRICS
from radiopath.evaluate.results import Evaluation

#: References cited by the evaluation-details paragraph, added to those of the methods section.
EXTRA_REFERENCES: dict[str, str] = {
    "clopper": "Clopper CJ, Pearson ES. The use of confidence or fiducial limits illustrated in the case of "
    "the binomial. Biometrika 1934;26:404–13.",
    "brown": "Brown LD, Cai TT, DasGupta A. Interval estimation for a binomial proportion. Stat Sci "
    "2001;16:101–33.",
    "varma": "Varma S, Simon R. Bias in error estimation when using cross-validation for model selection. "
    "BMC Bioinformatics 2006;7:91.",
    "vovk": "Vovk V, Gammerman A, Shafer G. Algorithmic Learning in a Random World. Springer, 2005.",
    "angelopoulos": "Angelopoulos AN, Bates S. A gentle introduction to conformal prediction and "
    "distribution-free uncertainty quantification. arXiv:2107.07511, 2021.",
    "steyerberg": "Steyerberg EW. Clinical Prediction Models: A Practical Approach to Development, "
    "Validation, and Updating. 2nd ed. Springer, 2019.",
    "davison": "Davison AC, Hinkley DV. Bootstrap Methods and their Application. Cambridge University "
    "Press, 1997.",
}


def _ok(v: Any) -> bool:
    return v is not None and not (isinstance(v, float) and math.isnan(v))


def _fusion(model: str) -> bool:
    return str(model).startswith("fusion")


def threshold_section(ev: Evaluation) -> dict[str, Any]:
    """Internal threshold metrics at nested vs pooled thresholds, and the nested threshold of each fold."""
    comp = ev.threshold_comparison()
    rows = []
    if not comp.empty:
        internal = comp[comp["cohort"] == "internal"]
        for model in ev.models:
            sub = internal[internal["model"] == model].set_index("metric")
            if sub.empty:
                continue
            cells = []
            for m in NESTED_METRICS:
                if m not in sub.index:
                    cells.append(None)
                    continue
                r = sub.loc[m]
                cells.append(
                    {
                        "nested": {"v": r["nested"], "lo": r["nested_ci_low"], "hi": r["nested_ci_high"]},
                        "pooled": {
                            "v": r["pooled_threshold"],
                            "lo": r["pooled_ci_low"],
                            "hi": r["pooled_ci_high"],
                        },
                        "optimism": r["optimism"],
                    }
                )
            rows.append({"model": model, "fusion": _fusion(model), "cells": cells})
    folds = []
    nt = ev.nested_thresholds
    if not nt.empty:
        fold_ids = sorted(int(f) for f in nt["fold"].unique())
        for model in ev.models:
            sub = nt[nt["model"] == model]
            if sub.empty:
                continue
            by = dict(zip(sub["fold"].astype(int), sub["threshold"], strict=True))
            folds.append(
                {
                    "model": model,
                    "fusion": _fusion(model),
                    "frozen": float(sub["frozen_threshold"].iloc[0]),
                    "thresholds": [by.get(k) for k in fold_ids],
                }
            )
        fold_ids_out = fold_ids
    else:
        fold_ids_out = []
    return {
        "metrics": [METRIC_LABELS[m] for m in NESTED_METRICS],
        "rows": rows,
        "folds": folds,
        "fold_ids": fold_ids_out,
        "rule": ev.settings.get("threshold_rule", "youden"),
        "rule_source": ev.settings.get("threshold_rule_source", ""),
        "target": ev.settings.get("target_sensitivity"),
    }


def conformal_section(ev: Evaluation) -> list[dict[str, Any]]:
    """One group per cohort/center (internal first), one row per model."""
    c = ev.conformal
    if c.empty:
        return []
    groups = []
    for co in ev.cohorts:
        sub = c[c["cohort"] == co["key"]]
        rows = []
        for model in ev.models:
            r = sub[sub["model"] == model]
            if r.empty:
                continue
            r = r.iloc[0]
            rows.append(
                {
                    "model": model,
                    "fusion": _fusion(model),
                    "n": int(r["n"]),
                    "n_pos": int(r["n_pos"]),
                    "coverage": {"v": r["coverage"], "lo": r["coverage_low"], "hi": r["coverage_high"]},
                    "coverage_pos": {
                        "v": r["coverage_pos"],
                        "lo": r["coverage_pos_low"],
                        "hi": r["coverage_pos_high"],
                    },
                    "coverage_neg": {
                        "v": r["coverage_neg"],
                        "lo": r["coverage_neg_low"],
                        "hi": r["coverage_neg_high"],
                    },
                    "neg_only": r["share_neg_only"],
                    "pos_only": r["share_pos_only"],
                    "uncertain": r["share_uncertain"],
                    "empty": r["share_empty"],
                    "n_empty": int(r["n_empty"]),
                    "threshold_neg": r["threshold_neg"],
                    "threshold_pos": r["threshold_pos"],
                    "below": str(r["below_target"] or ""),
                }
            )
        if rows:
            first = sub.iloc[0]
            groups.append({"label": co["label"], "calibrated_on": first["calibrated_on"], "rows": rows})
    return groups


def recalibration_section(ev: Evaluation) -> dict[str, Any]:
    """Per external center (then pooled): the frozen model and its two updates, one row each."""
    r = ev.recalibration
    if r.empty:
        return {"done": False, "groups": [], "skipped": []}
    order = {m: i for i, m in enumerate(ev.models)}
    upd = {"none": 0, "intercept": 1, "logistic": 2}
    groups, skipped = [], []
    keys = [k for k in dict.fromkeys(r["cohort"]) if k != "external"] + (
        ["external"] if (r["cohort"] == "external").any() else []
    )
    labels = {c["key"]: c["label"] for c in ev.cohorts}
    for key in keys:
        sub = r[r["cohort"] == key].copy()
        done = sub[sub["status"] == "done"]
        for s in sub[sub["status"] == "skipped"].itertuples():
            skipped.append(f"{s.model} at {s.center}: {s.reason}")
        if done.empty:
            continue
        done = done.assign(_m=done["model"].map(order), _u=done["update"].map(upd)).sort_values(["_m", "_u"])
        rows = []
        for x in done.to_dict(orient="records"):
            rows.append(
                {
                    **x,
                    "fusion": _fusion(x["model"]),
                    "first": x["update"] == "none",
                    "acc": {"v": x["accuracy"], "lo": x["accuracy_low"], "hi": x["accuracy_high"]},
                    "sens": {"v": x["sensitivity"], "lo": x["sensitivity_low"], "hi": x["sensitivity_high"]},
                    "spec": {"v": x["specificity"], "lo": x["specificity_low"], "hi": x["specificity_high"]},
                    "fitted": (
                        f"a = {x['fitted_intercept']:+.2f}, β = {x['fitted_slope']:.2f}"
                        if _ok(x.get("fitted_slope"))
                        else "–"
                    ),
                }
            )
        label = (
            "External (pooled; each center updated with its own labels)"
            if key == "external"
            else labels.get(key, key)
        )
        groups.append({"label": label, "rows": rows})
    return {"done": True, "groups": groups, "skipped": skipped}


def key_sentences(ev: Evaluation, best: str) -> list[str]:
    """Key-result sentences on the nested thresholds and the conformal sets of model ``best``."""
    out = []
    comp = ev.threshold_comparison()
    if not comp.empty:
        r = comp[(comp["cohort"] == "internal") & (comp["model"] == best) & (comp["metric"] == "accuracy")]
        if len(r):
            r = r.iloc[0]
            out.append(
                f"Internal accuracy of {best} at nested thresholds (each fold called at a threshold chosen "
                f"on the other folds): {r['nested_text']}; at the frozen threshold on the same out-of-fold "
                f"predictions it was chosen on it would read {r['pooled_text']} "
                f"(optimism {r['optimism']:+.3f})."
            )
    c = ev.conformal
    if not c.empty:
        r = c[(c["cohort"] == "external") & (c["model"] == best)]
        if len(r):
            r = r.iloc[0]
            out.append(
                f"External conformal risk sets of {best} at α = {r['alpha']:g}: they contained the true "
                f"outcome for {r['coverage_pos']:.1%} of patients with LNM and {r['coverage_neg']:.1%} "
                f"without (target ≥ {r['target_coverage']:.0%} each); {r['share_uncertain']:.1%} of "
                f"patients were left uncertain and {int(r['n_empty'])} had an empty set."
            )
    return out


def threshold_note(ev: Evaluation) -> str:
    """One sentence for the main table's footnote: which calls the threshold metrics score."""
    if "threshold_basis" not in ev.metrics.columns:
        return ""
    basis = set(ev.metrics.loc[ev.metrics["cohort"] == "internal", "threshold_basis"].dropna())
    if "nested" in basis:
        return (
            "Internal accuracy, sensitivity, specificity, PPV, NPV and F1 are at nested thresholds: each "
            "development fold is called at a threshold chosen, by the run's own rule, on the out-of-fold "
            "predictions of the other folds (the frozen-threshold figures, optimistic because that "
            "threshold was chosen on the same predictions, are in section 3). External rows are at the "
            "frozen threshold."
        )
    return "All threshold metrics are at the frozen threshold."
