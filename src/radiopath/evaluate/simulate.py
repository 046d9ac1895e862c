"""A simulated run folder: predictions drawn from known score distributions, for tests and previews.

:func:`simulate_run` writes what the training stage writes — ``predictions.parquet``
(5-fold out-of-fold predictions for development patients, ensemble predictions for external
ones), ``config.yaml``, ``provenance.json`` (marked ``"simulated": true``, which the report
shows as a banner), ``cohort.parquet`` and an ``explain/`` gallery — without training anything.

The scores follow a binormal model with shared patient-level signals, so models are
correlated the way real ones are: an ultrasound signal ``u`` and a cytology signal ``c``
drive the outcome; ``ultrasound`` sees ``u``, ``cytology`` sees ``c``, fusion models see both
(each with its own noise); external centers get a calibration shift. The true AUCs are
therefore known in closed form only approximately — tests use it for plumbing and for
comparing against references, never as ground truth of a statistic.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from radiopath.evaluate.threshold import choose_threshold
from radiopath.io.atomic import atomic_dir
from radiopath.run_config import RunConfig, model_presets

#: How much of each latent signal a simulated model sees, and its own noise.
DEFAULT_MODELS: dict[str, tuple[float, float, float]] = {
    # name: (weight on u, weight on c, noise sd)
    "ultrasound": (1.0, 0.0, 0.9),
    "cytology": (0.0, 1.0, 0.8),
    "fusion_concat": (1.0, 1.0, 0.6),
    "fusion_late": (0.9, 0.9, 0.75),
}


@dataclass
class SimulatedRun:
    """Options of :func:`simulate_run`."""

    seed: int = 0
    development: dict[str, int] = field(default_factory=lambda: {"Center A": 220, "Center B": 180})
    external: dict[str, int] = field(default_factory=lambda: {"Center C": 130, "Center D": 110})
    prevalence: float = 0.45
    n_folds: int = 5
    models: dict[str, tuple[float, float, float]] = field(default_factory=lambda: dict(DEFAULT_MODELS))
    external_shift: float = -0.4  #: logit shift of external predictions (miscalibration)
    missing_cytology: float = 0.05  #: fraction of patients without a cytology slide
    unlabelled_external: int = 6  #: external patients whose outcome is unknown
    gallery: bool = True
    threshold_rule: str = "youden"  #: how the frozen thresholds are chosen (the training stage's rule)
    target_sensitivity: float = 0.9  #: target of the "sensitivity" rule


def simulate_predictions(spec: SimulatedRun) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(predictions, cohort table) for ``spec``."""
    rng = np.random.default_rng(spec.seed)
    rows = []
    pid = 0
    for cohort, centers in (("development", spec.development), ("external", spec.external)):
        for center, n in centers.items():
            for _ in range(n):
                rows.append({"patient_id": f"P{pid:05d}", "center": center, "cohort": cohort})
                pid += 1
    cohort = pd.DataFrame(rows)
    n = len(cohort)
    u, c, e = rng.standard_normal(n), rng.standard_normal(n), rng.standard_normal(n)
    risk = u + c + 0.8 * e
    tau = np.quantile(risk, 1 - spec.prevalence)
    lnm = (risk > tau).astype(float)
    ext = (cohort["cohort"] == "external").to_numpy()
    unl = rng.choice(np.flatnonzero(ext), size=min(spec.unlabelled_external, int(ext.sum())), replace=False)
    lnm_obs = lnm.copy()
    lnm_obs[unl] = np.nan
    has_cyto = rng.random(n) >= spec.missing_cytology
    cohort["lnm"] = lnm_obs
    cohort["us_1"] = [f"ultrasound/{p}_1.png" for p in cohort["patient_id"]]
    cohort["us_2"] = [f"ultrasound/{p}_2.png" if rng.random() > 0.1 else None for p in cohort["patient_id"]]
    cohort["cytology"] = [
        f"cytology/{p}.svs" if h else None for p, h in zip(cohort["patient_id"], has_cyto, strict=True)
    ]
    dev_idx = np.flatnonzero(~ext)
    folds = np.full(n, -1)
    for label in (0.0, 1.0):  # stratified fold assignment
        members = dev_idx[lnm[dev_idx] == label]
        members = rng.permutation(members)
        folds[members] = np.arange(members.size) % spec.n_folds
    preds = []
    for model, (wu, wc, sd) in spec.models.items():
        score = wu * u + wc * c + sd * rng.standard_normal(n)
        score = (score - score.mean()) / score.std() * 1.6 + np.log(spec.prevalence / (1 - spec.prevalence))
        score = score + np.where(ext, spec.external_shift, 0.0)
        prob = np.round(1 / (1 + np.exp(-score)), 6)  # as stored; the threshold is chosen on these
        keep = has_cyto if model == "cytology" else np.ones(n, dtype=bool)
        dev_lab = ~ext & keep
        thr = choose_threshold(lnm[dev_lab], prob[dev_lab], spec.threshold_rule, spec.target_sensitivity)
        for i in np.flatnonzero(keep):
            preds.append(
                {
                    "patient_id": cohort.at[i, "patient_id"],
                    "center": cohort.at[i, "center"],
                    "cohort": cohort.at[i, "cohort"],
                    "model": model,
                    "fold": int(folds[i]),
                    "prob": float(prob[i]),
                    "label": lnm_obs[i],
                    "threshold": thr,
                    "modalities": "us+cytology" if has_cyto[i] else "us",
                    "missing_modality": bool(not has_cyto[i]) and model != "ultrasound",
                }
            )
    return pd.DataFrame(preds), cohort


def _gallery_image(rng: np.random.Generator, size: int = 96) -> Image.Image:
    yy, xx = np.mgrid[0:size, 0:size] / size
    cx, cy = rng.uniform(0.3, 0.7, 2)
    heat = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / 0.02)
    base = 0.6 + 0.2 * rng.standard_normal((size, size))
    rgb = np.stack([0.5 * base + 0.5 * heat, 0.5 * base, 0.5 * base + 0.3 * (1 - heat)], axis=-1)
    return Image.fromarray((np.clip(rgb, 0, 1) * 255).astype(np.uint8))


def simulate_run(out_dir: str | Path, spec: SimulatedRun | None = None, overwrite: bool = False) -> Path:
    """Write a simulated run folder to ``out_dir`` (atomically); returns its path."""
    spec = spec or SimulatedRun()
    out = Path(out_dir)
    preds, cohort = simulate_predictions(spec)
    config = RunConfig()
    config.protocol.n_folds = spec.n_folds
    config.protocol.seed = spec.seed
    config.protocol.threshold_rule = spec.threshold_rule  # type: ignore[assignment]
    config.protocol.target_sensitivity = spec.target_sensitivity
    models = [str(m) for m in dict.fromkeys(preds["model"])]
    known = [m for m in models if m.removesuffix("+clin") in model_presets()]
    if known:
        config.model.models = known
    config = config.resolved()
    provenance = {
        "simulated": True,
        "note": "predictions simulated by radiopath.evaluate.simulate, not produced by a trained model",
        "seed": spec.seed,
        "versions": {"radiopath": "simulated"},
        "data_hashes": {"manifest.csv": "0" * 64},
    }
    with atomic_dir(out, overwrite=overwrite) as tmp:
        preds.to_parquet(tmp / "predictions.parquet", index=False)
        cohort.to_parquet(tmp / "cohort.parquet", index=False)
        config.to_yaml(tmp / "config.yaml")
        (tmp / "provenance.json").write_text(json.dumps(provenance, indent=1), encoding="utf-8")
        if spec.gallery:
            rng = np.random.default_rng(spec.seed + 1)
            (tmp / "explain").mkdir()
            entries = []
            for k, (model, modality) in enumerate(
                (("fusion_concat", "cytology"), ("fusion_concat", "ultrasound"), ("cytology", "cytology"))
            ):
                pid = str(cohort["patient_id"].iloc[k * 7])
                name = f"explain/{pid}_{model}_{modality}.png"
                _gallery_image(rng).save(tmp / name)
                entries.append(
                    {
                        "patient_id": pid,
                        "model": model,
                        "modality": modality,
                        "image": name,
                        "caption": f"Grad-CAM of {model} on the {modality} input (simulated)",
                    }
                )
            (tmp / "explain" / "gallery.json").write_text(json.dumps(entries, indent=1), encoding="utf-8")
    return out
