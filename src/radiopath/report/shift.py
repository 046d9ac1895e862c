"""The report's "Multi-center shift" section and its methods paragraph.

Read from the run folder alone: ``shift.parquet`` (per center and modality, the domain-
classifier AUC and standardised mean differences of the features against development, before
and — when used — after harmonisation), ``acquisition.parquet`` (ultrasound brightness and
contrast, slide sharpness against development), ``harmonization.json`` (what was adjusted,
from which data) and the primary model's per-center metrics, so a reader sees each center's
shift beside what it did to the model. Nothing here uses an outcome except those metrics.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd

from radiopath.evaluate.results import Evaluation
from radiopath.modalities import MODALITIES
from radiopath.run_config import RunConfig

#: Domain AUC from which a row is marked as a notable shift.
NOTABLE_AUC = 0.8

REFERENCES: dict[str, str] = {
    "tellez": "Tellez D, Litjens G, Bándi P, et al. Quantifying the effects of data augmentation and stain "
    "color normalization in convolutional neural networks for computational pathology. Med Image Anal "
    "2019;58:101544.",
    "goorbergh": "van den Goorbergh R, van Smeden M, Timmerman D, Van Calster B. The harm of class imbalance "
    "corrections for risk prediction models. J Am Med Inform Assoc 2022;29:1525–34.",
    "johnson": "Johnson WE, Li C, Rabinovic A. Adjusting batch effects in microarray expression data using "
    "empirical Bayes methods. Biostatistics 2007;8:118–27.",
    "fortin": "Fortin JP, Cullen N, Sheline YI, et al. Harmonization of cortical thickness measurements "
    "across scanners and sites. NeuroImage 2018;167:104–20.",
    "lopezpaz": "Lopez-Paz D, Oquab M. Revisiting classifier two-sample tests. ICLR 2017.",
    "li2018": "Li Y, Wang N, Shi J, Hou X, Liu J. Adaptive batch normalization for practical domain "
    "adaptation. Pattern Recognit 2018;80:109–17.",
    "austin": "Austin PC. Balance diagnostics for comparing the distribution of baseline covariates between "
    "treatment groups in propensity-score matched samples. Stat Med 2009;28:3083–107.",
}


def _ok(v: Any) -> bool:
    return v is not None and not (isinstance(v, float) and math.isnan(v))


def _read(path: Path) -> pd.DataFrame:
    try:
        return pd.read_parquet(path) if path.is_file() else pd.DataFrame()
    except (OSError, ValueError):
        return pd.DataFrame()


def harmonization_record(run: Path) -> dict[str, Any] | None:
    """``harmonization.json`` (method, min_patients, record), or None when not harmonised."""
    path = run / "harmonization.json"
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _label(modality: str) -> str:
    return MODALITIES[modality].label if modality in MODALITIES else modality


def _primary_metrics(ev: Evaluation, model: str) -> dict[str, dict[str, float]]:
    m = ev.metrics
    out: dict[str, dict[str, float]] = {}
    for c in ev.cohorts:
        if c.get("center") is None:
            continue
        sub = m[(m["model"] == model) & (m["cohort"] == c["key"])]
        out[str(c["center"])] = {r.metric: r.value for r in sub.itertuples()}
    return out


def shift_section(run: Path, ev: Evaluation, primary: str) -> dict[str, Any]:
    """Rows for the template: feature shift (with the primary model's per-center results),
    acquisition, and what harmonisation did."""
    shift = _read(run / "shift.parquet")
    acq = _read(run / "acquisition.parquet")
    results = _primary_metrics(ev, primary)
    rows = []
    for r in shift.to_dict(orient="records") if len(shift) else []:
        res = results.get(str(r["center"]), {})
        rows.append(
            {
                "features": r["features"],
                "center": r["center"],
                "cohort": r["cohort"],
                "modality": _label(str(r["modality"])),
                "patients": int(r["patients"]),
                "reference": int(r["reference_patients"]),
                "auc": {"v": r["domain_auc"], "lo": r["domain_auc_low"], "hi": r["domain_auc_high"]},
                "smd": r["mean_abs_smd"],
                "smd_max": r["max_abs_smd"],
                "notable": bool(_ok(r["domain_auc"]) and r["domain_auc"] >= NOTABLE_AUC),
                "model_auc": res.get("auc"),
                "model_acc": res.get("accuracy"),
                "model_int": res.get("cal_intercept"),
            }
        )
    acquisition = []
    for r in acq.to_dict(orient="records") if len(acq) else []:
        us = _ok(r.get("brightness_ratio"))
        acquisition.append(
            {
                "modality": _label(str(r.get("modality"))),
                "center": r.get("center"),
                "cohort": r.get("cohort"),
                "measure": "brightness / contrast of the scan area (ratio to development)"
                if us
                else "sharpness: Laplacian variance around nuclei (ratio to development; robust z)",
                "value": f"{r['brightness_ratio']:.2f} / {r['contrast_ratio']:.2f}"
                if us
                else (
                    f"{r['laplacian_ratio']:.2f} (z {r['sharpness_z']:+.1f}); "
                    f"{r['blur_relative_share']:.0%} of tiles relatively blurred"
                    if _ok(r.get("laplacian_ratio"))
                    else "–"
                ),
                "n": int(r.get("views") if us else r.get("slides_judged") or 0),
                "warn": bool(r.get("warn")),
            }
        )
    harm = harmonization_record(run)
    if harm:
        harm = {
            **harm,
            "record": [{**r, "modality": _label(str(r["modality"]))} for r in harm.get("record", [])],
        }
    return {
        "done": bool(rows or acquisition),
        "rows": rows,
        "acquisition": acquisition,
        "harmonization": harm,
        "adabn": adabn_sentence(ab) if (ab := adabn_record(run)) else None,
        "primary": primary,
        "notable_auc": NOTABLE_AUC,
    }


def robustness_paragraph(config: RunConfig | None, run: Path | None) -> str:
    """Methods: augmentation, class weighting, shift measurement and (if used) harmonisation."""
    if config is None:
        return "Augmentation, class weighting and harmonisation: not recorded (no config.yaml)."
    t = config.train
    parts = []
    if t.mode == "features":
        if t.augment_passes:
            a, c = config.ultrasound.augment, config.cytology.augment
            parts.append(
                f"Training augmentation in features mode: for every development view and tile, "
                f"{t.augment_passes} augmented pass(es) were passed through the frozen backbone (and the "
                "handcrafted measurements) and cached, each drawn from a generator seeded by the image "
                "content; in every epoch each training patient was represented, per modality, by its clean "
                "or one of its augmented passes, drawn at random; early stopping, thresholds and every "
                "reported prediction used the clean features. Tiles: defocus (Gaussian σ up to "
                f"{c.blur_um:g} µm), resolution (zoom 1 ± {c.mpp_jitter:g}) and HED stain jitter (scale "
                f"1 ± {c.hed_scale:g}, shift ± {c.hed_shift:g}) [Tellez 2019]; ultrasound: gain 1 ± "
                f"{a.gain:g}, gamma exp(± {a.contrast:g}), speckle sd {a.speckle:g}, rotation ± "
                f"{a.rotate_deg:g}°, zoom 1 ± {a.scale:g}, left-right flips."
            )
        else:
            parts.append("No training augmentation was used in features mode (train.augment_passes = 0).")
    parts.append(
        "Class weighting of the loss: "
        + (
            "positives weighted by the ratio of negatives to positives (this shifts predicted risks and "
            "miscalibrates the model [van den Goorbergh 2022])."
            if t.class_weighted
            else "none (unweighted binary cross-entropy, so predicted risks keep the development "
            "prevalence [van den Goorbergh 2022])."
        )
    )
    parts.append(
        "Each center's shift from the development cohort was measured without outcomes: on the "
        "patient-level features, standardised and projected on 16 principal components of the development "
        "patients, by the out-of-fold AUC of a logistic regression telling the center from development "
        "[Lopez-Paz 2017] and by standardised mean differences [Austin 2009]; acquisition by the ultrasound "
        "scan area's median grey level and interquartile range and by the slides' focus (Laplacian "
        "variance around nuclei) relative to the development slides."
    )
    harm = harmonization_record(run) if run is not None else None
    adabn = adabn_record(run) if run is not None else None
    if harm:
        adjusted = [r for r in harm.get("record", []) if r.get("adjusted")]
        left = [r for r in harm.get("record", []) if not r.get("adjusted")]
        method = {"standardize": "per-center standardisation", "combat": "ComBat with empirical Bayes"}.get(
            harm.get("method"), str(harm.get("method"))
        )
        parts.append(
            f"Harmonisation (transductive, label-free): {method} [Johnson 2007; Fortin 2018] of every "
            "feature of each image modality, before the fold models' own standardisation. The development "
            "cohort's per-feature means and standard deviations were fitted on development patients only "
            "and saved; each center's location and scale were estimated from that center's own unlabelled "
            f"features (at least {harm.get('min_patients')} patients per center) and mapped onto them. "
            "Adjusted: "
            + (
                ", ".join(
                    f"{r['center']} {_label(r['modality'])} ({r['patients']} patients)" for r in adjusted
                )
                or "none"
            )
            + (
                "; left unchanged: "
                + ", ".join(f"{r['center']} {_label(r['modality'])} ({r['source']})" for r in left)
                if left
                else ""
            )
            + ". Because it uses the external centers' images, the external results describe a model that "
            "was allowed to see those images (not their outcomes) before scoring them."
        )
    elif adabn:
        parts.append(adabn_sentence(adabn))
    else:
        parts.append("No harmonisation of features across centers was applied (harmonization.method = none).")
    return " ".join(parts)


def adabn_record(run: Path) -> dict[str, Any] | None:
    """``adabn.json`` (finetune mode, ``harmonization.method: adabn``), or None."""
    path = run / "adabn.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def adabn_sentence(record: dict[str, Any]) -> str:
    """The methods' words for AdaBN: what it is, that it is transductive, and which centers got it."""
    centers: dict[str, tuple[int, bool, str]] = {}
    for rows in (record.get("models") or {}).values():
        for r in rows:
            centers.setdefault(str(r["center"]), (int(r["patients"]), bool(r["adjusted"]), str(r["source"])))
    adapted = [f"{c} ({n} patients)" for c, (n, a, _) in sorted(centers.items()) if a]
    left = [f"{c} ({why})" for c, (_, a, why) in sorted(centers.items()) if not a]
    return (
        "Harmonisation (transductive, label-free): AdaBN [Li 2018] — before scoring an external center, each "
        "fold model's backbone BatchNorm statistics were re-estimated on that center's own unlabelled images "
        f"(every present view and tile; at least {record.get('min_patients')} patients per center), weights "
        "unchanged; development patients were scored without it. Adapted: "
        + (", ".join(adapted) or "none")
        + ("; not adapted: " + ", ".join(left) if left else "")
        + ". Because it uses the external centers' images, the external results describe a model that was "
        "allowed to see those images (not their outcomes) before scoring them."
    )
