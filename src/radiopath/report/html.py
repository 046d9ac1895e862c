"""``write_report``: one self-contained ``report.html`` that answers a reviewer without other files.

Sections: key results; cohort flow; the paper's table (models × internal/external × metrics
with CIs) with ROC and precision–recall curves; internal threshold metrics at nested vs pooled
thresholds; model comparisons; calibration; clinical utility (decision curves, dissections
spared); conformal risk sets; per-center results; recalibration as model updating (when it
was run); confusion matrices; the Grad-CAM gallery when ``explain/gallery.json`` exists;
methods generated from the run's configuration, with the evaluation details (which interval,
which threshold) in the template; the TRIPOD+AI items covered; provenance. Figures are embedded as base64 PNG
(and also written to ``RUN/figures/`` for manuscripts), so the file opens anywhere, offline.
The template is Jinja2 with autoescaping on: nothing from the run can inject markup.
"""

from __future__ import annotations

import base64
import datetime as _dt
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
import numpy as np
import pandas as pd

from radiopath.errors import RadiopathError
from radiopath.evaluate import figures as F
from radiopath.evaluate.evaluate import evaluate_run
from radiopath.evaluate.metrics import METRIC_LABELS, METRIC_NAMES
from radiopath.evaluate.predictions import load_predictions
from radiopath.evaluate.results import Evaluation, format_ci, load_evaluation
from radiopath.evaluate.runinfo import flatten, read_config, read_provenance
from radiopath.io.atomic import atomic_dir, write_text
from radiopath.report import features as FT
from radiopath.report import sections as S
from radiopath.report import shift as SH
from radiopath.report.explanations import REFERENCES as EXPLAIN_REFERENCES
from radiopath.report.explanations import explain_section
from radiopath.report.methods import REFERENCES, TRIPOD_AI, TRIPOD_AUTHORS_ONLY, methods_paragraphs
from radiopath.run_config import resolve_primary

_TEMPLATES = Path(__file__).parent / "templates"
_MIME = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
}


class ReportError(RadiopathError):
    """The report cannot be written (the message says why and what to do)."""


@dataclass(frozen=True)
class FigureBlock:
    key: str
    question: str
    caption: str
    data_uri: str
    alt: str


def fmt_p(p: float | None) -> str:
    """p-values as journals print them: ``<0.001`` or three decimals."""
    if p is None or (isinstance(p, float) and math.isnan(p)):
        return "–"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def _num(v: Any, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    text = f"{float(v):.{digits}f}"
    return text[1:] if text.startswith("-") and float(text) == 0 else text  # no "-0.000"


def _uri(png: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(png).decode('ascii')}"


def _figures(ev: Evaluation, df: pd.DataFrame, out_dir: Path | None, n_boot: int | None) -> list[FigureBlock]:
    n_int = "out-of-fold predictions of the development cohort"
    specs = [
        (
            "roc",
            "How well do the models discriminate, internally and externally?",
            f"ROC curves; internal = {n_int}. Shaded: pointwise 95% stratified-bootstrap band of "
            "sensitivity; "
            "legend: AUC with 95% DeLong CI.",
            lambda: F.roc_figure(ev, df, n_boot),
        ),
        (
            "pr",
            "How well do they find metastases, at each recall?",
            "Precision–recall curves; dotted line: prevalence (a model without skill). Legend: average "
            "precision "
            "with 95% bootstrap CI.",
            lambda: F.pr_figure(ev, df),
        ),
        (
            "calibration",
            "Are the predicted risks right?",
            "Observed proportion of LNM against predicted risk, by deciles of predicted risk (Wilson 95% "
            "CI), and "
            "the logistic recalibration curve; the dashed diagonal is perfect calibration. Calibration "
            "intercept "
            "(ideal 0) and slope (ideal 1) in each panel.",
            lambda: F.calibration_figure(ev, df),
        ),
        (
            "decision",
            "Would deciding on dissection with the model do more good than harm?",
            "Decision curves: net benefit of dissecting patients whose predicted risk exceeds the threshold "
            "probability, against dissecting all and dissecting none; patients scored by every model.",
            lambda: F.decision_figure(ev),
        ),
        (
            "utility",
            "How many neck dissections would the model spare, and how many metastases would it miss?",
            "Per 100 patients, at the threshold that reached the target sensitivity on the development data "
            "(applied unchanged to the external cohort); 95% "
            f"{ev.settings.get('proportion_ci', 'Wilson')} CIs.",
            lambda: F.utility_figure(ev),
        ),
        (
            "forest",
            "Is discrimination consistent across centers?",
            "AUC with 95% DeLong CI for every cohort and center (internal centers: out-of-fold predictions).",
            lambda: F.forest_figure(ev),
        ),
        (
            "confusion",
            "What happens at the decision threshold?",
            "Confusion matrices: counts and row percentages. External: at each model's frozen threshold; "
            "internal: at nested thresholds (each fold called at a threshold chosen on the other folds).",
            lambda: F.confusion_figure(ev),
        ),
    ]
    if not ev.conformal.empty:
        alpha = float(ev.settings.get("conformal_alpha") or 0.1)
        specs.append(
            (
                "conformal",
                "For how many patients can the model not decide?",
                f"Class-conditional conformal risk sets at α = {alpha:g}. Left: coverage of LNM− (open "
                f"circles) and LNM+ (triangles), with binomial 95% CIs, against the {1 - alpha:.0%} target "
                "(dashed). Right: share of patients whose set "
                "is LNM− only, LNM+ only, both (uncertain) or empty. Internal: sets calibrated on the other "
                "folds; external: on all development out-of-fold predictions.",
                lambda: F.conformal_figure(ev),
            )
        )
    blocks = []
    for key, question, caption, make in specs:
        fig = make()
        png = F.to_png(fig)
        if out_dir is not None:
            (out_dir / f"{key}.png").write_bytes(png)
        blocks.append(FigureBlock(key, question, caption, _uri(png), question))
    return blocks


def _gallery(run: Path) -> tuple[list[dict[str, str]], list[str]]:
    index = run / "explain" / "gallery.json"
    if not index.is_file():
        return [], []
    try:
        entries = json.loads(index.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        return [], [f"{index}: cannot read the Grad-CAM gallery index ({exc})"]
    if not isinstance(entries, list):
        return [], [f"{index}: expected a list of entries"]
    items, notes = [], []
    base = index.parent.resolve()
    for k, e in enumerate(entries):
        if not isinstance(e, dict) or "image" not in e:
            notes.append(f"gallery entry {k}: no 'image' field")
            continue
        path = (run / str(e["image"])).resolve()
        if not path.is_file():
            path = (base / str(e["image"])).resolve()
        mime = _MIME.get(path.suffix.lower())
        if not path.is_file() or mime is None:
            notes.append(f"gallery entry {k}: image {e['image']!r} is missing or not PNG/JPEG")
            continue
        items.append(
            {
                "uri": _uri(path.read_bytes(), mime),
                "patient_id": str(e.get("patient_id", "")),
                "model": str(e.get("model", "")),
                "modality": str(e.get("modality", "")),
                "caption": str(e.get("caption", "")),
            }
        )
    return items, notes


def short_label(label: str) -> str:
    """ "Internal (5-fold out-of-fold)" → "Internal"; center labels stay as they are."""
    return str(label).split(" (")[0]


def _cell(sub: pd.DataFrame, metric: str) -> dict[str, float] | None:
    x = sub[sub["metric"] == metric]
    if x.empty:
        return None
    r = x.iloc[0]
    return {"v": r["value"], "lo": r["ci_low"], "hi": r["ci_high"]}


def _paper_table(ev: Evaluation) -> dict[str, Any]:
    """Metrics as rows; cohorts (internal, external) as column groups; models as columns."""
    m = ev.metrics[ev.metrics["scope"] == "main"]
    if "primary" in m.columns:
        m = m[m["primary"].astype(bool)]
    groups = []
    for c in [c for c in ev.cohorts if c["scope"] == "main"]:
        sub = m[m["cohort"] == c["key"]]
        cols = []
        for model in ev.models:
            r = sub[sub["model"] == model]
            if r.empty:
                continue
            cols.append(
                {
                    "model": model,
                    "n": int(r["n"].iloc[0]),
                    "events": int(r["n_pos"].iloc[0]),
                    "fusion": model.startswith("fusion"),
                    "sub": r,
                }
            )
        if cols:
            groups.append({"label": c["label"], "cols": cols})
    rows = []
    for name in METRIC_NAMES:
        methods = m.loc[(m["metric"] == name) & (m["ci_method"] != "none"), "ci_method"]
        rows.append(
            {
                "metric": METRIC_LABELS[name],
                "ci": " / ".join(
                    dict.fromkeys(str(x).replace("bootstrap percentile", "bootstrap") for x in methods)
                ),
                "cells": [_cell(col["sub"], name) for g in groups for col in g["cols"]],
            }
        )
    for g in groups:
        for col in g["cols"]:
            del col["sub"]
    return {"groups": groups, "rows": rows}


def _center_table(ev: Evaluation) -> list[dict[str, Any]]:
    """One group per cohort/center, one row per model."""
    m = ev.metrics
    out = []
    for c in ev.cohorts:
        sub = m[m["cohort"] == c["key"]]
        rows = []
        for model in ev.models:
            r = sub[sub["model"] == model]
            if r.empty:
                continue
            rows.append(
                {
                    "model": model,
                    "n": int(r["n"].iloc[0]),
                    "events": int(r["n_pos"].iloc[0]),
                    "fusion": model.startswith("fusion"),
                    **{
                        k: _cell(r, k)
                        for k in ("auc", "sensitivity", "specificity", "brier", "cal_intercept", "cal_slope")
                    },
                }
            )
        if rows:
            out.append({"label": c["label"], "rows": rows})
    return out


def _utility_groups(ev: Evaluation) -> list[dict[str, Any]]:
    u = ev.clinical_utility
    if u.empty:
        return []
    order = {c["key"]: i for i, c in enumerate(ev.cohorts)}
    groups = []
    for rule in dict.fromkeys(u["rule"]):
        part = u[u["rule"] == rule].copy()
        part["_o"] = part["cohort"].map(order)
        part["_m"] = part["model"].map({m: i for i, m in enumerate(ev.models)})
        part = part.sort_values(["_o", "_m"])
        rows = part.drop(columns=["_o", "_m"]).to_dict(orient="records")
        for r in rows:
            r["cohort_short"] = short_label(r["cohort_label"])
            r["fusion"] = str(r["model"]).startswith("fusion")
        groups.append({"rule": rule, "rows": rows})
    return groups


def primary_model(ev: Evaluation) -> str:
    """The study's primary model, named before the run (``protocol.primary_model``)."""
    named = ev.settings.get("primary_model")
    if isinstance(named, str) and named in ev.models:
        return named
    return resolve_primary(None, list(ev.models))


def _key_results(ev: Evaluation) -> list[str]:
    """A few sentences a reader can quote: the primary model (chosen before the run, never the
    one that happened to score best) and how it compares."""
    m = ev.metrics
    auc = m[(m["metric"] == "auc") & (m["scope"] == "main")]
    if auc.empty:
        return []
    best = primary_model(ev)
    parts = []
    for key, label in (("internal", "internally (out-of-fold)"), ("external", "externally")):
        r = auc[(auc["model"] == best) & (auc["cohort"] == key)]
        if len(r):
            r = r.iloc[0]
            parts.append(
                f"AUC {format_ci(r['value'], r['ci_low'], r['ci_high'])} {label} (n = {int(r['n'])})"
            )
    sentences = [f"Primary model (named before the run), {best}: " + "; ".join(parts) + "."]
    sentences += S.key_sentences(ev, best)
    comp = ev.comparisons
    if not comp.empty:
        for r in comp[comp["model_a"] == best].itertuples():
            sentences.append(
                f"{r.cohort_label}: {r.model_a} vs {r.model_b}, ΔAUC {r.auc_diff:+.3f} "
                f"(95% CI {r.diff_ci_low:+.3f} to {r.diff_ci_high:+.3f}), DeLong p {fmt_p(r.delong_p)} "
                f"(Holm {fmt_p(r.delong_p_holm)}); accuracy {r.accuracy_a:.3f} vs {r.accuracy_b:.3f}, "
                f"McNemar p {fmt_p(r.mcnemar_p)}."
            )
    u = ev.clinical_utility
    if not u.empty:
        for r in u[
            (u["model"] == best)
            & u["rule"].str.startswith("sensitivity")
            & u["cohort"].isin(["internal", "external"])
        ].itertuples():
            sentences.append(
                f"{r.cohort_label}: at threshold {r.threshold:.3f} (sensitivity {r.sensitivity:.1%}) {best} "
                "would "
                f"spare {r.spared_per_100:.1f} (95% CI "
                f"{r.spared_per_100_low:.1f}–{r.spared_per_100_high:.1f}) "
                f"dissections per 100 patients and miss {r.missed_per_100:.1f} "
                f"({r.missed_per_100_low:.1f}–{r.missed_per_100_high:.1f}) metastases per 100."
            )
    return sentences


def _flow(ev: Evaluation, folds: int) -> dict[str, Any]:
    flow = ev.cohort_flow
    total = flow[(flow["cohort"] == "(all)")]
    boxes = []
    for cohort, title in (("development", "Development cohort"), ("external", "External validation cohort")):
        t = flow[(flow["cohort"] == cohort) & (flow["center"] == "(all)")]
        if t.empty:
            continue
        t = t.iloc[0]
        centers = flow[(flow["cohort"] == cohort) & (flow["center"] != "(all)")]
        n_models = ev.metrics[
            (ev.metrics["cohort"] == ("internal" if cohort == "development" else "external"))
        ]
        evaluated = n_models.drop_duplicates("model")[["model", "n", "n_pos"]].to_dict(orient="records")
        boxes.append(
            {
                "title": title,
                "patients": int(t["patients"]),
                "labelled": int(t["labelled"]),
                "unlabelled": int(t["patients"]) - int(t["labelled"]),
                "lnm_pos": int(t["lnm_pos"]),
                "prevalence": t["prevalence"],
                "centers": [f"{r.center} ({int(r.patients)})" for r in centers.itertuples()],
                "evaluated": evaluated,
                "what": f"{folds}-fold cross-validation, out-of-fold predictions"
                if cohort == "development"
                else "never used for training or tuning; fold-ensemble predictions",
            }
        )
    return {
        "total": int(total["patients"].iloc[0]) if len(total) else 0,
        "boxes": boxes,
        "source": str(flow["source"].iloc[0]) if len(flow) else "",
    }


def _table(df: pd.DataFrame, columns: list[str], fmt: dict[str, Any] | None = None) -> dict[str, Any]:
    fmt = fmt or {}
    rows = []
    for rec in df[columns].to_dict(orient="records"):
        rows.append([fmt.get(c, _num)(rec[c]) if not isinstance(rec[c], str) else rec[c] for c in columns])
    return {"headers": columns, "rows": rows}


def _wanted_settings(
    ev: Evaluation | None, proportion_ci: str | None, conformal_alpha: float | None, recalibrate: bool | None
) -> dict[str, Any]:
    """The evaluation settings a report asks for: each given one, else the evaluation's own (else
    the defaults), in ``evaluate_run``'s keywords."""
    from radiopath.evaluate.proportions import METHODS

    s = ev.settings if ev is not None else {}
    names = {v: k for k, v in METHODS.items()}
    saved_ci = names.get(str(s.get("proportion_ci")), "wilson")
    saved_alpha = s.get("conformal_alpha", 0.1) if ev is not None else 0.1
    return {
        "proportion_ci": proportion_ci or saved_ci,
        "conformal_alpha": (conformal_alpha or None) if conformal_alpha is not None else saved_alpha,
        "recalibrate": recalibrate if recalibrate is not None else bool(s.get("recalibration")),
    }


def render_report(run: Path, ev: Evaluation, df: pd.DataFrame, figures: list[FigureBlock]) -> str:
    """The HTML text of the report."""
    config = read_config(run)
    provenance = read_provenance(run)
    gallery, gallery_notes = _gallery(run)
    explain = explain_section(run)
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(_TEMPLATES)),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["num"] = _num
    env.filters["p"] = fmt_p
    env.filters["pct"] = lambda v: (
        "–" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.1%}"
    )
    comp = ev.comparisons
    flow_cols = [
        c
        for c in (
            "cohort",
            "center",
            "patients",
            "labelled",
            "lnm_pos",
            "prevalence",
            "with_predictions",
            "us_1",
            "us_2",
            "cytology",
            "modalities",
        )
        if c in ev.cohort_flow.columns
    ]
    context = {
        "title": "radiopath study report",
        "run": str(run.resolve()),
        "created": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "ev": ev,
        "simulated": bool(provenance.get("simulated")),
        "simulated_note": str(provenance.get("note", "")),
        "key_results": _key_results(ev),
        "flow": _flow(ev, int(df.loc[df["cohort"] == "development", "fold"].nunique())),
        "flow_table": _table(ev.cohort_flow, flow_cols, {"prevalence": lambda v: _num(v, 3)}),
        "paper": _paper_table(ev),
        "figures": {f.key: f for f in figures},
        "comparisons": [
            {**r, "cohort_short": short_label(r["cohort_label"])} for r in comp.to_dict(orient="records")
        ]
        if not comp.empty
        else [],
        "centers": _center_table(ev),
        "utility": _utility_groups(ev),
        "gallery": gallery,
        "gallery_notes": gallery_notes,
        "explain": explain,
        "methods": methods_paragraphs(ev, config, provenance, df, run),
        "references": {
            **REFERENCES,
            **S.EXTRA_REFERENCES,
            **SH.REFERENCES,
            **(EXPLAIN_REFERENCES if explain else {}),
        },
        "tripod": TRIPOD_AI,
        "tripod_authors": TRIPOD_AUTHORS_ONLY,
        "config_items": sorted(flatten(config.model_dump(mode="json")).items()) if config is not None else [],
        "provenance_items": sorted(
            (k, json.dumps(v) if not isinstance(v, str) else v) for k, v in flatten(provenance).items()
        ),
        "notes": ev.notes,
        "thresholds": ev.thresholds,
        "nested": S.threshold_section(ev),
        "threshold_note": S.threshold_note(ev),
        "conformal": S.conformal_section(ev),
        "feature_sets": FT.feature_sets(run),
        "signatures": FT.signatures(run),
        "recal": S.recalibration_section(ev),
        "shift": SH.shift_section(run, ev, primary_model(ev)),
    }
    return env.get_template("report.html.j2").render(**context)


def write_report(
    run: str | Path,
    evaluation: Evaluation | None = None,
    n_boot: int | None = None,
    figures: bool = True,
    *,
    proportion_ci: str | None = None,
    conformal_alpha: float | None = None,
    recalibrate: bool | None = None,
) -> Path:
    """Write ``RUN/report.html`` (and the figures as PNG in ``RUN/figures/``); returns the report's path.

    Uses ``RUN/metrics.json`` when it matches the current predictions, else evaluates first
    (with ``n_boot`` resamples, default 2,000). ``proportion_ci``, ``conformal_alpha`` (0: no
    conformal sets) and ``recalibrate`` ask for evaluation settings; None keeps the saved
    evaluation's, and a setting that differs from it evaluates again (written to
    ``metrics.json``). The model-updating section appears only when recalibration was asked for.
    ``figures=False`` skips the PNG files (the report embeds its figures either way).
    """
    run = Path(run)
    if not (run / "predictions.parquet").is_file():
        raise ReportError(
            f"{run}: no predictions.parquet; train first (`radiopath train`) or pass a run folder"
        )
    ev = evaluation or load_evaluation(run)
    wanted = _wanted_settings(ev, proportion_ci, conformal_alpha, recalibrate)
    if ev is None or (evaluation is None and wanted != _wanted_settings(ev, None, None, None)):
        ev = evaluate_run(
            run, n_boot=n_boot or int((ev.settings if ev else {}).get("n_boot", 2000)), **wanted
        )
    df = load_predictions(run)
    if figures:
        with atomic_dir(run / "figures", overwrite=True) as tmp:
            blocks = _figures(ev, df, tmp, n_boot)
    else:
        blocks = _figures(ev, df, None, n_boot)
    html = render_report(run, ev, df, blocks)
    path = run / "report.html"
    write_text(path, html)
    return path
