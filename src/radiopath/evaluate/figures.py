"""Figures of an evaluation, one per question a reviewer asks, readable in print.

Each function returns a :class:`matplotlib.figure.Figure` (built without pyplot, so no global
state or GUI backend) sized for a two-column journal page (7 in wide) with 8–9 pt text, the
Okabe–Ito colour-blind-safe palette and a line style per model, so the figures survive
greyscale printing:

* :func:`roc_figure` — how well do the models discriminate, internally and externally? (ROC + 95% band)
* :func:`pr_figure` — how well do they find metastases at each recall? (precision–recall)
* :func:`calibration_figure` — are the predicted risks right? (observed vs. predicted, recalibration line)
* :func:`decision_figure` — would acting on the model help? (decision curves)
* :func:`utility_figure` — how many dissections are spared, and at what cost in missed metastases?
* :func:`forest_figure` — is discrimination consistent across centers? (AUC per center with CIs)
* :func:`confusion_figure` — what happens at the frozen threshold? (confusion matrices)
* :func:`conformal_figure` — for how many patients can the model not decide? (conformal risk sets)
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterator
from contextlib import contextmanager

import matplotlib as mpl
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from radiopath.evaluate.calibration import calibration_bins, recalibration_curve, slope_model
from radiopath.evaluate.curves import pr_curve, roc_band
from radiopath.evaluate.results import Evaluation, format_ci

#: Okabe & Ito (2008) palette, minus yellow (unreadable on white paper).
PALETTE: tuple[str, ...] = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#D55E00", "#56B4E9", "#000000")
_STYLE = {
    "font.size": 8.5,
    "axes.titlesize": 9,
    "axes.labelsize": 8.5,
    "legend.fontsize": 7.5,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.25,
    "grid.linewidth": 0.5,
    "figure.dpi": 100,
}
WIDTH = 7.0  # inches: a two-column page
DPI = 200


@contextmanager
def _style() -> Iterator[None]:
    with mpl.rc_context(_STYLE):
        yield


def model_styles(models: list[str]) -> dict[str, dict[str, object]]:
    """Colour, line style and width per model; fusion models solid and thicker."""
    styles = {}
    for i, m in enumerate(models):
        fusion = m.startswith("fusion")
        styles[m] = {
            "color": PALETTE[i % len(PALETTE)],
            "linestyle": "-" if fusion else ("--" if i % 2 == 0 else ":"),
            "linewidth": 1.8 if fusion else 1.3,
        }
    return styles


def to_png(fig: Figure, dpi: int = DPI) -> bytes:
    """The figure as PNG bytes."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight", pad_inches=0.06, facecolor="white")
    return buf.getvalue()


def _main_cohorts(ev: Evaluation) -> list[dict[str, object]]:
    return [c for c in ev.cohorts if c["scope"] == "main"]


def _labelled(df: pd.DataFrame, cohort: dict[str, object], model: str) -> tuple[np.ndarray, np.ndarray]:
    y, p, _ = _labelled_centers(df, cohort, model)
    return y, p


def _labelled_centers(
    df: pd.DataFrame, cohort: dict[str, object], model: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Labels, probabilities and — for a pooled cohort of several centers — each patient's center."""
    sel = (df["cohort"] == cohort["cohort"]) & (df["model"] == model) & df["label"].notna()
    if cohort.get("center"):
        sel &= df["center"] == cohort["center"]
    sub = df[sel].sort_values("patient_id")
    centers = sub["center"].to_numpy()
    strata = centers if not cohort.get("center") and np.unique(centers).size > 1 else None
    return sub["label"].to_numpy() == 1.0, sub["prob"].to_numpy(), strata


def _panel_title(ev: Evaluation, cohort: dict[str, object]) -> str:
    m = ev.metrics[(ev.metrics["cohort"] == cohort["key"])]
    if m.empty:
        return str(cohort["label"])
    n, pos = int(m["n"].max()), int(m["n_pos"].max())
    return f"{cohort['label']}\n(n = {n}, {pos} with LNM)"


def _panels(n: int, height: float = 3.3) -> tuple[Figure, list]:
    fig = Figure(figsize=(WIDTH if n > 1 else WIDTH / 2, height))
    axes = fig.subplots(1, n, squeeze=False)[0]
    return fig, list(axes)


def _legend_below_height(n_models: int) -> float:
    return 3.4 + 0.15 * (n_models + 2)


def roc_figure(ev: Evaluation, df: pd.DataFrame, n_boot: int | None = None) -> Figure:
    """ROC curves of every model, one panel per main cohort, with pointwise 95% bootstrap bands."""
    cohorts = _main_cohorts(ev)
    styles = model_styles(ev.models)
    n_boot = int(n_boot or ev.settings.get("n_boot", 2000))
    seed = int(ev.settings.get("seed", 0))
    with _style():
        fig, axes = _panels(len(cohorts), height=_legend_below_height(len(ev.models)))
        for ax, cohort in zip(axes, cohorts, strict=True):
            ax.plot([0, 1], [0, 1], color="0.6", linewidth=0.8, linestyle=(0, (2, 2)), label="chance")
            for model in ev.models:
                y, p, strata = _labelled_centers(df, cohort, model)
                if y.sum() < 2 or (~y).sum() < 2:
                    continue
                band = roc_band(
                    y, p, n_boot=n_boot, seed=seed, ci=float(ev.settings.get("ci", 0.95)), strata=strata
                )
                st = styles[model]
                ax.fill_between(
                    band.grid, band.tpr_low, band.tpr_high, color=st["color"], alpha=0.13, linewidth=0
                )
                r = ev.metric(model, str(cohort["key"]), "auc")
                ax.plot(band.fpr, band.tpr, **st, label=f"{model}: {format_ci(r.value, r.ci_low, r.ci_high)}")
            ax.set(
                xlim=(0, 1), ylim=(0, 1.01), xlabel="1 − specificity", ylabel="Sensitivity", aspect="equal"
            )
            ax.set_title(_panel_title(ev, cohort))
            ax.legend(
                loc="upper center",
                bbox_to_anchor=(0.5, -0.16),
                title="AUC (95% CI)",
                title_fontsize=7.5,
                frameon=False,
            )
        fig.tight_layout()
    return fig


def pr_figure(ev: Evaluation, df: pd.DataFrame) -> Figure:
    """Precision–recall curves, one panel per main cohort; the dotted line is the prevalence."""
    cohorts = _main_cohorts(ev)
    styles = model_styles(ev.models)
    with _style():
        fig, axes = _panels(len(cohorts), height=_legend_below_height(len(ev.models)))
        for ax, cohort in zip(axes, cohorts, strict=True):
            prevalence = None
            for model in ev.models:
                y, p = _labelled(df, cohort, model)
                if y.sum() < 1 or (~y).sum() < 1:
                    continue
                pr = pr_curve(y, p)
                prevalence = pr.prevalence if prevalence is None else prevalence
                r = ev.metric(model, str(cohort["key"]), "auprc")
                ax.step(
                    pr.recall,
                    pr.precision,
                    where="post",
                    **styles[model],
                    label=f"{model}: {format_ci(r.value, r.ci_low, r.ci_high)}",
                )
            if prevalence is not None:
                ax.axhline(
                    prevalence,
                    color="0.5",
                    linewidth=0.8,
                    linestyle=(0, (1, 2)),
                    label=f"prevalence {prevalence:.2f}",
                )
            ax.set(xlim=(0, 1), ylim=(0, 1.02), xlabel="Recall (sensitivity)", ylabel="Precision (PPV)")
            ax.set_title(_panel_title(ev, cohort))
            ax.legend(
                loc="upper center",
                bbox_to_anchor=(0.5, -0.16),
                title="AUCPR (95% CI)",
                title_fontsize=7.5,
                frameon=False,
            )
        fig.tight_layout()
    return fig


def calibration_figure(ev: Evaluation, df: pd.DataFrame, n_bins: int = 10) -> Figure:
    """Observed vs. predicted risk per model; internal and external in each panel.

    Points: deciles of predicted risk (fewer when small) with Wilson 95% intervals; line: the
    logistic recalibration fit ``expit(a + b·logit p)``; the diagonal is perfect calibration.
    """
    cohorts = _main_cohorts(ev)
    models = ev.models
    ncol = 2 if len(models) <= 4 else 3
    ncol = min(ncol, len(models))
    nrow = math.ceil(len(models) / ncol)
    colours = {c["key"]: col for c, col in zip(cohorts, ("#0072B2", "#D55E00", "#009E73"), strict=False)}
    markers = {c["key"]: mk for c, mk in zip(cohorts, ("o", "s", "^"), strict=False)}
    grid = np.linspace(0.005, 0.995, 199)
    with _style():
        fig = Figure(
            figsize=(WIDTH * 0.85 if ncol > 1 else WIDTH / 2, (WIDTH * 0.85 / ncol) * 0.95 * nrow + 0.4)
        )
        axes = fig.subplots(nrow, ncol, squeeze=False)
        for k, model in enumerate(models):
            ax = axes[k // ncol][k % ncol]
            ax.plot([0, 1], [0, 1], color="0.6", linewidth=0.8, linestyle=(0, (2, 2)))
            notes = []
            for cohort in cohorts:
                y, p = _labelled(df, cohort, model)
                if y.sum() < 2 or (~y).sum() < 2:
                    continue
                key = str(cohort["key"])
                bins = calibration_bins(y, p, n_bins)
                col = colours[key]
                ax.errorbar(
                    bins.mean_predicted,
                    bins.observed,
                    yerr=[bins.observed - bins.ci_low, bins.ci_high - bins.observed],
                    fmt=markers[key],
                    color=col,
                    markersize=3,
                    elinewidth=0.7,
                    capsize=0,
                    label=str(cohort["label"]).split(" (")[0],
                )
                a, b = slope_model(y, p)
                if np.isfinite(b):
                    ax.plot(grid, recalibration_curve(a, b, grid), color=col, linewidth=1.1)
                ci_ = ev.metric(model, key, "cal_intercept")
                cs = ev.metric(model, key, "cal_slope")
                notes.append(
                    f"{str(cohort['label']).split(' (')[0]}: int {ci_.value:+.2f}, slope {cs.value:.2f}"
                )
            ax.set(xlim=(0, 1), ylim=(0, 1), aspect="equal")
            ax.set_title(model)
            ax.text(
                0.97,
                0.03,
                "\n".join(notes),
                transform=ax.transAxes,
                va="bottom",
                ha="right",
                fontsize=7,
                bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.8, "pad": 1.5},
            )
            if k % ncol == 0:
                ax.set_ylabel("Observed proportion")
            if k // ncol == nrow - 1:
                ax.set_xlabel("Predicted risk")
        for k in range(len(models), nrow * ncol):
            axes[k // ncol][k % ncol].set_visible(False)
        handles, labels = axes[0][0].get_legend_handles_labels()
        if handles:
            fig.legend(
                handles,
                labels,
                loc="lower center",
                ncol=len(labels),
                frameon=False,
                bbox_to_anchor=(0.5, -0.01),
            )
        fig.tight_layout(rect=(0, 0.05, 1, 1))
    return fig


def decision_figure(ev: Evaluation) -> Figure:
    """Net benefit against threshold probability, one panel per main cohort."""
    dc = ev.decision_curves
    cohorts = [c for c in _main_cohorts(ev) if not dc.empty and (dc["cohort"] == c["key"]).any()]
    styles = model_styles(ev.models)
    with _style():
        fig, axes = _panels(max(1, len(cohorts)))
        for ax, cohort in zip(axes, cohorts, strict=False):
            sub = dc[dc["cohort"] == cohort["key"]]
            prev = float(sub["prevalence"].iloc[0])
            for strategy, part in sub.groupby("strategy", sort=False):
                if strategy == "treat all":
                    ax.plot(
                        part["threshold"],
                        part["net_benefit"],
                        color="0.45",
                        linewidth=1.0,
                        label="dissect all",
                    )
                elif strategy == "treat none":
                    ax.plot(
                        part["threshold"],
                        part["net_benefit"],
                        color="0.1",
                        linewidth=0.8,
                        label="dissect none",
                    )
                else:
                    ax.plot(
                        part["threshold"], part["net_benefit"], **styles[str(strategy)], label=str(strategy)
                    )
            ax.set(
                xlim=(0, 1),
                ylim=(-0.05, max(0.05, prev * 1.1)),
                xlabel="Threshold probability",
                ylabel="Net benefit",
            )
            n = int(sub["n"].iloc[0])
            ax.set_title(f"{cohort['label']}\n(n = {n} with every model's prediction)")
            ax.legend(loc="upper right", frameon=False)
        fig.tight_layout()
    return fig


def utility_figure(ev: Evaluation) -> Figure:
    """Dissections spared and metastases missed per 100 patients at the target sensitivity."""
    u = ev.clinical_utility
    target = float(ev.settings.get("sensitivity_target", 0.9))
    u = u[u["rule"].str.startswith("sensitivity") & u["cohort"].isin([c["key"] for c in _main_cohorts(ev)])]
    styles = model_styles(ev.models)
    cohorts = [c for c in _main_cohorts(ev) if (u["cohort"] == c["key"]).any()]
    with _style():
        fig, axes = _panels(2, height=0.5 + 0.42 * max(1, len(ev.models)) * max(1, len(cohorts)))
        for ax, (col, title) in zip(
            axes,
            (
                ("spared_per_100", "Dissections spared per 100 patients"),
                ("missed_per_100", "Metastases missed per 100 patients"),
            ),
            strict=True,
        ):
            ticks, labels = [], []
            pos = 0.0
            for cohort in cohorts:
                for model in ev.models:
                    row = u[(u["cohort"] == cohort["key"]) & (u["model"] == model)]
                    if row.empty:
                        continue
                    r = row.iloc[0]
                    err = [[r[col] - r[f"{col}_low"]], [r[f"{col}_high"] - r[col]]]
                    ax.barh(
                        pos,
                        r[col],
                        color=styles[model]["color"],
                        height=0.7,
                        xerr=err,
                        error_kw={"elinewidth": 0.8, "capsize": 2},
                    )
                    ax.annotate(
                        f"{r[col]:.1f}",
                        (r[f"{col}_high"], pos),
                        xytext=(3, 0),
                        textcoords="offset points",
                        va="center",
                        fontsize=7,
                    )
                    ticks.append(pos)
                    labels.append(f"{model} · {str(cohort['label']).split(' (')[0]}")
                    pos += 1
                pos += 0.6
            ax.set_yticks(ticks, labels)
            ax.invert_yaxis()
            ax.set_title(title)
            ax.set_xlabel("per 100 patients (95% CI)")
            ax.grid(axis="y", visible=False)
        axes[1].set_yticklabels([])
        fig.suptitle(f"Threshold set for sensitivity ≥ {target:.0%} on the development data", fontsize=8.5)
        fig.tight_layout()
    return fig


def forest_figure(ev: Evaluation) -> Figure:
    """AUC with 95% DeLong CI for each center (internal centers out-of-fold, external centers)."""
    m = ev.metrics[ev.metrics["metric"] == "auc"]
    rank = {"internal": 0, "external": 2}
    order = sorted(
        (c["key"] for c in ev.cohorts),
        key=lambda k: (rank.get(k.split("/")[0], 4) + (1 if "/" in k else 0), k),
    )
    keys = [k for k in order if (m["cohort"] == k).any()]
    styles = model_styles(ev.models)
    nm = len(ev.models)
    with _style():
        fig = Figure(figsize=(WIDTH, 0.6 + 0.22 * nm * len(keys)))
        ax = fig.subplots()
        ticks, labels = [], []
        for i, key in enumerate(keys):
            base = i * (nm + 1)
            sub = m[m["cohort"] == key]
            label = str(sub["cohort_label"].iloc[0])
            for j, model in enumerate(ev.models):
                r = sub[sub["model"] == model]
                if r.empty:
                    continue
                r = r.iloc[0]
                y = base + j
                ax.errorbar(
                    r["value"],
                    y,
                    xerr=[[r["value"] - r["ci_low"]], [r["ci_high"] - r["value"]]],
                    fmt="o" if model.startswith("fusion") else "s",
                    color=styles[model]["color"],
                    markersize=3.5,
                    elinewidth=1.0,
                    capsize=0,
                    label=model if i == 0 else None,
                )
                ax.text(
                    1.01,
                    y,
                    format_ci(r["value"], r["ci_low"], r["ci_high"]),
                    transform=blend(ax),
                    va="center",
                    fontsize=7,
                    color=styles[model]["color"],
                )
            ticks.append(base + (nm - 1) / 2)
            n = int(sub["n"].max())
            labels.append(f"{label}\n(n = {n})")
            if i < len(keys) - 1:
                ax.axhline(base + nm, color="0.85", linewidth=0.6)
        ax.axvline(0.5, color="0.6", linewidth=0.8, linestyle=(0, (2, 2)))
        ax.set_yticks(ticks, labels)
        ax.invert_yaxis()
        ax.set_xlabel("AUC (95% DeLong CI)")
        ax.set_xlim(min(0.4, float(np.nanmin(m["ci_low"])) - 0.02) if m["ci_low"].notna().any() else 0.4, 1.0)
        ax.grid(axis="y", visible=False)
        ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), frameon=False, ncol=min(4, nm))
        fig.tight_layout()
    return fig


def blend(ax: object) -> object:
    """x in axes coordinates, y in data coordinates (for labels right of the plot)."""
    from matplotlib.transforms import blended_transform_factory

    return blended_transform_factory(ax.transAxes, ax.transData)  # type: ignore[attr-defined]


def confusion_figure(ev: Evaluation) -> Figure:
    """Confusion matrices: rows = main cohorts, columns = models.

    External: at each model's frozen threshold; internal: at the nested thresholds (each fold
    called at a threshold chosen on the other folds), the calls behind the primary metrics.
    """
    cohorts = _main_cohorts(ev)
    conf = ev.confusion
    models = ev.models
    with _style():
        fig = Figure(figsize=(WIDTH, 1.75 * len(cohorts) + 0.4))
        axes = fig.subplots(len(cohorts), len(models), squeeze=False)
        for i, cohort in enumerate(cohorts):
            for j, model in enumerate(models):
                ax = axes[i][j]
                ax.grid(visible=False)
                r = conf[(conf["cohort"] == cohort["key"]) & (conf["model"] == model)]
                if "primary" in r.columns:
                    r = r[r["primary"].astype(bool)]
                if r.empty:
                    ax.set_visible(False)
                    continue
                r = r.iloc[0]
                mat = np.array([[r["tn"], r["fp"]], [r["fn"], r["tp"]]], dtype=float)
                rowsum = mat.sum(axis=1, keepdims=True)
                frac = np.divide(mat, rowsum, out=np.zeros_like(mat), where=rowsum > 0)
                ax.imshow(frac, cmap="Blues", vmin=0, vmax=1)
                for a in range(2):
                    for b in range(2):
                        ax.text(
                            b,
                            a,
                            f"{int(mat[a, b])}\n{frac[a, b]:.0%}",
                            ha="center",
                            va="center",
                            fontsize=7.5,
                            color="white" if frac[a, b] > 0.6 else "black",
                        )
                ax.set_xticks([0, 1], ["pred −", "pred +"])
                ax.set_yticks([0, 1], ["LNM −", "LNM +"] if j == 0 else ["", ""])
                ax.tick_params(length=0)
                for s in ax.spines.values():
                    s.set_visible(False)
                calls = (
                    "nested thresholds" if r.get("calls") == "nested" else f"threshold {r['threshold']:.3f}"
                )
                ax.set_title(f"{model}\n{calls}" if i == 0 else calls, fontsize=8)
                if j == 0:
                    ax.set_ylabel(str(cohort["label"]).split(" (")[0], fontsize=8.5)
        fig.tight_layout()
    return fig


#: Colours of the conformal set kinds: LNM− only, LNM+ only, uncertain, empty.
_SET_COLOURS = ("#56B4E9", "#D55E00", "#BBBBBB", "#000000")


def conformal_figure(ev: Evaluation) -> Figure:
    """Conformal risk sets per cohort and center: coverage of each outcome (with CIs) against the
    1 − α target, and the share of patients whose set is LNM− only, LNM+ only, uncertain or empty."""
    c = ev.conformal
    order = {co["key"]: i for i, co in enumerate(_cohort_order(ev))}
    rows = c.assign(_o=c["cohort"].map(order), _m=c["model"].map({m: i for i, m in enumerate(ev.models)}))
    rows = rows.sort_values(["_o", "_m"]).reset_index(drop=True)
    target = float(rows["target_coverage"].iloc[0]) if len(rows) else 0.9
    styles = model_styles(ev.models)
    with _style():
        fig = Figure(figsize=(WIDTH, 0.9 + 0.2 * max(1, len(rows))))
        left, right = fig.subplots(1, 2, sharey=True, gridspec_kw={"width_ratios": [1, 1.25]})
        ys = np.arange(len(rows), dtype=float)
        for key, mark, dy, hollow in (("coverage_neg", "o", -0.17, True), ("coverage_pos", "^", 0.17, False)):
            for i, r in rows.iterrows():
                v, lo, hi = r[key], r[f"{key}_low"], r[f"{key}_high"]
                if not np.isfinite(v):
                    continue
                left.errorbar(
                    v,
                    ys[i] + dy,
                    xerr=[[v - lo], [hi - v]],
                    fmt=mark,
                    color=styles[r["model"]]["color"],
                    markersize=3.2,
                    elinewidth=0.8,
                    mfc="white" if hollow else None,
                )
        left.axvline(target, color="0.3", linewidth=0.8, linestyle=(0, (3, 2)))
        handles = [
            Line2D(
                [], [], marker="o", mfc="white", color="0.2", linestyle="none", markersize=3.5, label="LNM−"
            ),
            Line2D([], [], marker="^", color="0.2", linestyle="none", markersize=3.5, label="LNM+"),
        ]
        lows = rows[["coverage_pos_low", "coverage_neg_low"]].to_numpy(dtype=float)
        lowest = float(np.nanmin(lows)) if np.isfinite(lows).any() else 0.6
        left.set_xlim(max(0.0, min(0.6, lowest - 0.02)), 1.0)
        left.set_xlabel(f"Coverage (95% CI); dashed: {target:.0%} target")
        left.legend(handles=handles, loc="lower left", frameon=False, fontsize=7)
        labels = [f"{short(str(r.cohort_label))} · {r.model}" for r in rows.itertuples()]
        left.set_yticks(ys, labels)
        left.invert_yaxis()
        left.grid(axis="y", visible=False)
        shares = ("share_neg_only", "share_pos_only", "share_uncertain", "share_empty")
        names = ("LNM− only", "LNM+ only", "uncertain (both)", "empty")
        start = np.zeros(len(rows))
        for key, colour, name in zip(shares, _SET_COLOURS, names, strict=True):
            width = rows[key].to_numpy(dtype=float)
            right.barh(ys, width, left=start, color=colour, height=0.72, label=name, linewidth=0)
            start += width
        for i, r in rows.iterrows():
            right.text(
                1.01, ys[i], f"{r['share_uncertain']:.0%}", transform=blend(right), va="center", fontsize=6.5
            )
        right.set_xlim(0, 1)
        right.set_xlabel("Share of patients by prediction set")
        right.grid(axis="y", visible=False)
        right.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=4, frameon=False, fontsize=7)
        fig.tight_layout()
    return fig


def short(label: str) -> str:
    """ "Internal (5-fold out-of-fold)" → "Internal"."""
    return label.split(" (")[0]


def _cohort_order(ev: Evaluation) -> list[dict[str, object]]:
    """Internal, its centers, external, its centers."""
    rank = {"internal": 0, "external": 2}
    return sorted(
        ev.cohorts,
        key=lambda c: (
            rank.get(str(c["key"]).split("/")[0], 4) + (1 if "/" in str(c["key"]) else 0),
            str(c["key"]),
        ),
    )
