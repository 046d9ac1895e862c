"""``radiopath explain RUN``: Grad-CAM of a finished run's models, measured as well as drawn.

For the chosen patients (default: a seeded draw of correct and wrong, positive and negative
cases of the primary model, ``n`` in all) and models (default: the primary model and the two
single-modality models), :func:`explain_run` writes ``RUN/explain/``::

    summary.json        per model: nuclear enrichment (trained and randomised twin, 95% CIs),
                        deletion results, modality contribution; the method and layers used
    patients.csv        one row per patient and model: probability, explained class, CAM
                        and nuclear numbers, deletion drops, probability with each modality masked
    tiles.csv           one row per explained tile: position, attention, CAM mass, nuclei
    contribution.csv    features mode: every patient's probability with each modality masked
    blocks.csv          features mode, hybrid models: every patient's probability with each
                        feature family's block at its training mean
    gallery.json        the report's gallery (the primary model's panels)
    panels/<model>/<patient>.jpg   a patient's panel (views, slide heatmaps, top tiles)
    slides/<model>/<patient>_{attention,cam}.png   the slide heatmaps alone
    enrichment.png, deletion.png   the cohort checks

Everything is computed with the run's saved preprocessing, backbone, weights and precision
(:mod:`radiopath.explain.engine`), and the folder is written atomically.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd

from radiopath.cohort import Cohort
from radiopath.errors import ConfigError
from radiopath.explain import figures as FG
from radiopath.explain.cases import Case, attach_scored, describe, load_cases
from radiopath.explain.checks import (
    block_contribution,
    cohort_contribution,
    contribution_summary,
    deletion_summary,
    feature_blocks,
    freeze,
    randomized_members,
    run_backbones,
)
from radiopath.explain.engine import US_FRACTIONS, CaseResult, Explainer, Member, Target
from radiopath.explain.gradcam import METHODS
from radiopath.explain.heatmaps import Thumbnail, slide_heatmap, slide_thumbnail
from radiopath.explain.nuclear import (
    Focus,
    TileNuclei,
    mean_ci,
    nuclear_focus,
    paired_difference,
    tile_nuclei,
    upsample,
)
from radiopath.io.atomic import atomic_dir
from radiopath.modalities import MODALITIES, ImageModality
from radiopath.runs import Run, load_run

Say = Callable[[str], None]
#: Default number of patients explained (the report's gallery).
DEFAULT_PATIENTS = 12
RANDOMIZED = ":randomized"
#: Instances per engine chunk (patients are grouped until their images reach this).
CHUNK_IMAGES = 96


@dataclass
class ExplainResult:
    """What :func:`explain_run` made."""

    folder: Path
    summary: dict[str, Any]
    seconds: float


def default_models(run: Run) -> list[str]:
    """The primary model and the single-modality models the run has, in that order."""
    names = [run.primary_model]
    for m in MODALITIES.values():
        if isinstance(m, ImageModality) and m.label in run.models:
            names.append(m.label)
    return list(dict.fromkeys(n for n in names if n in run.models))


def choose_patients(run: Run, table: pd.DataFrame, n: int, seed: int = 0) -> list[str]:
    """``n`` labelled patients of the primary model, drawn at random (seeded) in turn from its
    true positives, false negatives, true negatives and false positives (a cell short of
    patients gives its turn to the next), preferring patients with every modality."""
    model = run.primary_model
    pred = run.predictions[run.predictions["model"] == model].drop_duplicates("patient_id")
    pred = pred[pred["label"].notna()].copy()
    complete = {
        str(p)
        for p, ok in zip(
            table["patient_id"],
            np.logical_and.reduce(
                [
                    MODALITIES[m].present(table)
                    for m in run.spec(model).modalities
                    if isinstance(MODALITIES[m], ImageModality)
                ]
            ),
            strict=True,
        )
        if ok
    }
    pred["complete"] = pred["patient_id"].astype(str).isin(complete)
    decision = (pred["prob"] >= pred["threshold"]).astype(int)
    pred["cell"] = [FG.outcome(lab, d) for lab, d in zip(pred["label"], decision, strict=True)]
    rng = np.random.default_rng(seed)
    pools = {}
    for cell in ("TP", "FN", "TN", "FP"):
        part = pred[pred["cell"] == cell].sort_values(["complete", "patient_id"], ascending=[False, True])
        ids = part["patient_id"].astype(str).to_numpy()
        full = part["complete"].to_numpy()
        pools[cell] = [*rng.permutation(ids[full]).tolist(), *rng.permutation(ids[~full]).tolist()]
    chosen: list[str] = []
    while len(chosen) < n and any(pools.values()):
        for cell in ("TP", "FN", "TN", "FP"):
            if pools[cell] and len(chosen) < n:
                chosen.append(pools[cell].pop(0))
    return chosen


def _targets(
    run: Run, models: Sequence[str], compute: Any, say: Say
) -> tuple[list[Target], dict[str, Any], dict[str, Any]]:
    """The targets (each model and its randomised twin), a backbone per explained image
    modality (for the layers) and, features mode, the run's own backbone per modality."""
    cfg = run.config
    images = [
        m
        for m, mod in MODALITIES.items()
        if isinstance(mod, ImageModality)
        and m in run.info.in_dims
        and (run.info.mode == "finetune" or cfg.model.feature_set_of(m) != "handcrafted")
    ]
    shared = (
        run_backbones(run, compute, {m: MODALITIES[m].backbone(cfg) for m in images})  # type: ignore[attr-defined]
        if run.info.mode == "features"
        else {}
    )
    random_shared: dict[str, Any] = {}
    targets = []
    some_backbone: dict[str, Any] = {}
    for name in models:
        spec = run.spec(name)
        folds = [freeze(m) for m in run.fold_models(name, compute.device)]
        members = []
        for k, head in enumerate(folds):
            bbs = {
                m: (head.backbones[m] if run.info.mode == "finetune" else shared[m])
                for m in spec.modalities
                if m in images
            }
            some_backbone.update(bbs)
            members.append(Member(k, head, bbs))
        targets.append(Target(name, name, list(spec.modalities), members, run.thresholds[name]))
        if "cytology" in spec.modalities:
            twin = randomized_members(run, name, members, compute, random_shared)
            targets.append(
                Target(
                    name + RANDOMIZED, name, list(spec.modalities), twin, run.thresholds[name], name, False
                )
            )
    say(f"explaining {', '.join(models)} (+ randomised twins of those with cytology) on {compute.describe()}")
    return targets, some_backbone, shared


def _feature_sets(run: Run) -> dict[str, str]:
    """Per image modality, what the explained input is (features mode: its feature set)."""
    out = {}
    for m in run.info.in_dims:
        if m == "clinical":
            continue
        fs = run.config.model.feature_set_of(m) if run.info.mode == "features" else "finetuned backbone"
        out[m] = {
            "deep": "deep (the backbone's features)",
            "hybrid": "hybrid: the map is the deep block's, the handcrafted features held at their values",
            "handcrafted": "handcrafted: held at its values (no map)",
        }.get(fs, fs)
    return out


def _layers(backbones: dict[str, Any], target_layer: str | None) -> dict[str, str]:
    out = {}
    for m, bb in backbones.items():
        name = target_layer or bb.target_layer
        bb.layer(name)  # ConfigError listing the layers when there is no such layer
        out[m] = name
    return out


def _chunks(cases: Sequence[Case]) -> list[list[Case]]:
    out: list[list[Case]] = [[]]
    count = 0
    for c in cases:
        n = sum(len(v) for v in c.images.values())
        if out[-1] and count + n > CHUNK_IMAGES:
            out.append([])
            count = 0
        out[-1].append(c)
        count += n
    return [c for c in out if c]


def explain_run(
    run_dir: str | Path,
    *,
    models: Sequence[str] | None = None,
    patients: Sequence[str] | None = None,
    n: int = DEFAULT_PATIENTS,
    target_layer: str | None = None,
    method: str = "gradcam",
    device: str | None = None,
    precision: str = "auto",
    cache_dir: str | Path | None = None,
    n_boot: int = 2000,
    seed: int | None = None,
    pictures: bool = True,
    panels: str = "all",
    gallery: int | None = None,
    us_fractions: Sequence[float] = US_FRACTIONS,
    say: Say | None = None,
) -> ExplainResult:
    """Explain ``models`` of the run on ``patients`` and write ``RUN/explain/`` (module docstring).

    Args:
        models: model names (default :func:`default_models`).
        patients: patient ids (default :func:`choose_patients` with ``n``).
        target_layer: the backbone layer to explain (default: its last convolutional block,
            ``Backbone.target_layer``; e.g. ``body.layer3`` for a finer map on small inputs).
        method: ``gradcam`` or ``gradcam++``.
        pictures: False writes the numbers only (faster; for measurements).
        panels: ``all`` draws a panel per patient for every explained model, ``primary`` only
            for the primary model (the gallery's; slide heatmaps are written for all).
        gallery: pictures for the first ``gallery`` explained patients only (default: all); the
            checks (enrichment, deletion, contribution) use every explained patient, so a
            larger ``n`` narrows their intervals at about a second a patient, without pictures.
        us_fractions: shares of each ultrasound view blurred away in the deletion check
            (``()`` skips it: it costs three backbone passes per view and order).

    Raises:
        ConfigError: unknown model, patient, layer or method; the run's manifest is gone.
    """
    start = time.perf_counter()
    say = say or (lambda _m: None)
    run = load_run(run_dir)
    if method not in METHODS:
        raise ConfigError(f"--method must be one of {list(METHODS)}, got '{method}'")
    models = list(models or default_models(run))
    unknown = [m for m in models if m not in run.models]
    if unknown:
        raise ConfigError(f"--model {unknown}: the run has no such model; it has {run.models}")
    if run.manifest is None or not run.manifest.is_file():
        raise ConfigError(
            f"{run.folder}: the manifest the run was trained on ({run.manifest}) is not there; "
            "explanations need its images: restore it at that path"
        )
    if run.info.mode == "features":
        sets = {m: run.config.model.feature_set_of(m) for m in run.info.in_dims if m != "clinical"}
        deep = {m for m, v in sets.items() if v != "handcrafted"}
        without = [name for name in models if not deep & set(run.spec(name).modalities)]
        if without:
            raise ConfigError(
                f"{run.folder}: --model {without}: no modality of it has a backbone's features "
                "(model.feature_set: handcrafted): Grad-CAM explains the deep block of a deep or "
                "hybrid feature set; explain another model, or train with a deep or hybrid feature set"
            )
    adabn = run.info.mode == "finetune" and run.config.harmonization.method == "adabn"
    if adabn:
        say(
            f"warning: {run.folder} scored its external centers with AdaBN (harmonization.method: adabn); "
            "the maps explain the fold models with the development batch-norm statistics, so an "
            "external patient's explained probability is not its prediction — explain development patients "
            "(--patients) for maps of the predictions themselves"
        )
    table = Cohort.from_manifest(run.manifest).table
    ids = table["patient_id"].astype(str).tolist()
    seed = run.config.protocol.seed if seed is None else seed
    chosen = list(patients) if patients else choose_patients(run, table, n, seed)
    missing = [p for p in chosen if p not in ids]
    if missing:
        raise ConfigError(f"--patients {missing}: not in the run's cohort ({run.manifest})")
    if not chosen:
        raise ConfigError(f"{run.folder}: no labelled patient to explain; name some with --patients")
    compute = run.compute(device, precision)
    targets, backbones, reference = _targets(run, models, compute, say)
    layers = _layers(backbones, target_layer)
    say(f"loading {len(chosen)} patients' images with the run's preprocessing")
    cases = load_cases(run, table, [ids.index(p) for p in chosen], cache_dir=cache_dir, say=say)
    inputs = None
    if run.info.mode == "features":  # the whole cohort: harmonisation estimates each center from it
        inputs = run.inputs(table, compute, cache_dir=cache_dir)
        attach_scored(cases, run, inputs)
    n_max = {m: MODALITIES[m].max_instances(run.config) for m in layers}  # type: ignore[attr-defined]
    explainer = Explainer(
        targets,
        compute,
        layers=layers,
        n_max=n_max,
        method=method,
        batch_size=run.config.train.extract_batch_size,
        seed=seed,
        us_fractions=us_fractions,
        reference=reference,
    )
    t0 = time.perf_counter()
    results: dict[str, list[CaseResult]] = {t.key: [] for t in targets}
    for chunk in _chunks(cases):
        for key, rs in explainer.explain(chunk).items():
            results[key].extend(rs)
        say(f"explained {len(results[targets[0].key])}/{len(cases)} patients")
    cam_seconds = time.perf_counter() - t0
    nuclei = {
        i: tile_nuclei(c.native["cytology"], float(c.tiles["mpp"].iloc[0]))
        for i, c in enumerate(cases)
        if "cytology" in c.native and c.tiles is not None
    }
    focus = {
        (t.key, i): nuclear_focus(r.cams["cytology"], nuclei[i])
        for t in targets
        for i, r in enumerate(results[t.key])
        if "cytology" in r.cams and i in nuclei
    }
    contribution: dict[str, list[dict[str, Any]]] = {}
    families: dict[str, list[dict[str, Any]]] = {}
    if inputs is not None:
        for name in models:
            contribution[name] = cohort_contribution(run, name, inputs, compute)
            families[name] = block_contribution(run, name, inputs, compute)
    tables = _tables(targets, cases, results, focus, nuclei)
    summary = _summary(
        run, targets, results, focus, contribution, tables[0], layers, method, n_boot, seed, us_fractions
    )
    for name, rows in families.items():
        blocks = feature_blocks(run, name)
        summary["models"][name]["feature_family_contribution"] = (
            {
                m: contribution_summary(rows, [f"{m}:{f}" for f in fams], n_boot=n_boot, seed=seed)
                for m, fams in blocks.items()
            }
            if rows
            else None
        )
    if adabn:
        summary["adabn"] = (
            "external centers were scored with AdaBN; the maps use the development batch-norm statistics, "
            "so external patients' explained probabilities differ from their predictions"
        )
    summary["seconds"] = {"total": None, "explain": round(cam_seconds, 1)}
    summary["seconds_per_patient"] = round(cam_seconds / max(len(cases), 1), 2)
    out = run.folder / "explain"
    with atomic_dir(out, overwrite=True) as tmp:
        tables[0].to_csv(tmp / "patients.csv", index=False)
        tables[1].to_csv(tmp / "tiles.csv", index=False)
        if any(contribution.values()):
            pd.concat(
                [pd.DataFrame(rows).assign(model=name) for name, rows in contribution.items() if rows]
            ).to_csv(tmp / "contribution.csv", index=False)
        if any(families.values()):
            pd.concat(
                [pd.DataFrame(rows).assign(model=name) for name, rows in families.items() if rows]
            ).to_csv(tmp / "blocks.csv", index=False)
        k = len(cases) if gallery is None else max(0, min(int(gallery), len(cases)))
        shown = {key: rs[:k] for key, rs in results.items()}
        drawn = (
            _pictures(tmp, run, targets, cases[:k], shown, focus, nuclei, layers, panels) if pictures else []
        )
        for name, make in (("enrichment", FG.enrichment_figure), ("deletion", FG.deletion_figure)):
            fig = make(summary["models"])
            if fig is not None and pictures:
                (tmp / f"{name}.png").write_bytes(FG.to_png(fig))
        summary["seconds"]["total"] = round(time.perf_counter() - start, 1)
        (tmp / "gallery.json").write_text(json.dumps(drawn, indent=1), encoding="utf-8")
        (tmp / "summary.json").write_text(json.dumps(summary, indent=1), encoding="utf-8")
    say(f"explanations written to {out} in {summary['seconds']['total']:.0f} s")
    return ExplainResult(out, summary, time.perf_counter() - start)


def _tables(
    targets: Sequence[Target],
    cases: Sequence[Case],
    results: dict[str, list[CaseResult]],
    focus: dict[tuple[str, int], Focus],
    nuclei: dict[int, TileNuclei],
) -> tuple[pd.DataFrame, pd.DataFrame]:
    rows, tiles = [], []
    trained = [t for t in targets if t.sign_of is None]
    for t in trained:
        twin = t.key + RANDOMIZED
        for i, (c, r) in enumerate(zip(cases, results[t.key], strict=True)):
            f = focus.get((t.key, i))
            ft = focus.get((twin, i))
            row: dict[str, Any] = {
                **describe(c),
                "model": t.model,
                "prob": r.prob,
                "threshold": t.threshold,
                "decision": int(r.prob >= t.threshold),
                "explained_class": "LNM" if r.sign > 0 else "no LNM",
                "fold_probs": ";".join(f"{p:.4f}" for p in r.fold_probs),
                "nuclear_enrichment": f.enrichment if f else np.nan,
                "nuclear_enrichment_randomized": ft.enrichment if ft else np.nan,
                "cam_mass_on_nuclei": f.mass_fraction if f else np.nan,
                "nuclear_area_fraction": f.area_fraction if f else np.nan,
            }
            for kind, block in (("tiles", r.tile_deletion), ("us", r.us_deletion)):
                for order, curve in block.items():
                    row[f"deletion_{kind}_{order}_drop"] = float(curve[0] - np.mean(curve[1:]))
            for m, p in r.without.items():
                row[f"prob_without_{m}"] = p
            rows.append(row)
            if "cytology" not in r.cams or c.tiles is None:
                continue
            per_tile = f.tile_enrichment() if f else np.full(len(r.cams["cytology"]), np.nan)
            twin_r = results.get(twin)
            for k, slot in enumerate(c.slots["cytology"]):
                rec = c.tiles.iloc[int(slot)]
                tiles.append(
                    {
                        "patient_id": c.patient_id,
                        "model": t.model,
                        "rank": int(rec["rank"]),
                        "x": int(rec["x"]),
                        "y": int(rec["y"]),
                        "extent": float(rec["extent"]),
                        "attention": float(r.attention["cytology"][k]),
                        "cam_mass": float(r.cams["cytology"][k].sum()),
                        "cam_mass_randomized": float(twin_r[i].cams["cytology"][k].sum())
                        if twin_r
                        else np.nan,
                        "nuclei": int(nuclei[i].counts[k]) if i in nuclei else 0,
                        "nuclear_area_fraction": float(nuclei[i].masks[k].mean()) if i in nuclei else np.nan,
                        "nuclear_enrichment": float(per_tile[k]),
                    }
                )
    return pd.DataFrame(rows), pd.DataFrame(tiles)


def _summary(
    run: Run,
    targets: Sequence[Target],
    results: dict[str, list[CaseResult]],
    focus: dict[tuple[str, int], Focus],
    contribution: dict[str, list[dict[str, Any]]],
    patients: pd.DataFrame,
    layers: dict[str, str],
    method: str,
    n_boot: int,
    seed: int,
    us_fractions: Sequence[float],
) -> dict[str, Any]:
    per_model: dict[str, Any] = {}
    for t in [t for t in targets if t.sign_of is None]:
        rs = results[t.key]
        n = len(rs)
        block: dict[str, Any] = {"modalities": t.modalities, "n_patients": n}
        if "cytology" in t.modalities:
            trained = np.array(
                [focus[(t.key, i)].enrichment if (t.key, i) in focus else np.nan for i in range(n)]
            )
            twin_key = t.key + RANDOMIZED
            twin = np.array(
                [focus[(twin_key, i)].enrichment if (twin_key, i) in focus else np.nan for i in range(n)]
            )
            mass = [focus[(t.key, i)].mass_fraction for i in range(n) if (t.key, i) in focus]
            area = [focus[(t.key, i)].area_fraction for i in range(n) if (t.key, i) in focus]
            block["nuclear_enrichment"] = mean_ci(trained, n_boot=n_boot, seed=seed).to_dict()
            block["nuclear_enrichment_randomized"] = mean_ci(twin, n_boot=n_boot, seed=seed).to_dict()
            block["nuclear_enrichment_difference"] = paired_difference(
                trained, twin, n_boot=n_boot, seed=seed
            ).to_dict()
            block["cam_mass_on_nuclei"] = mean_ci(mass, n_boot=n_boot, seed=seed).to_dict()
            block["nuclear_area_fraction"] = mean_ci(area, n_boot=n_boot, seed=seed).to_dict()
            block["patients_without_cam_mass"] = int(np.isnan(trained).sum())
            signs = np.array([r.sign for r in rs])
            block["nuclear_enrichment_by_class"] = {
                cls: {
                    "n_explained": int((signs == s).sum()),
                    "trained": mean_ci(trained[signs == s], n_boot=n_boot, seed=seed).to_dict(),
                    "randomized": mean_ci(twin[signs == s], n_boot=n_boot, seed=seed).to_dict(),
                }
                for cls, s in (("LNM", 1), ("no LNM", -1))
            }
        else:
            block["nuclear_enrichment"] = None
            block["nuclear_enrichment_randomized"] = None
        tiles = deletion_summary(rs, "tile_deletion", n_boot=n_boot, seed=seed)
        us = deletion_summary(rs, "us_deletion", n_boot=n_boot, seed=seed)
        if us is not None:
            us["fractions"] = list(us_fractions)
        block["deletion"] = {"tiles": tiles, "ultrasound": us}
        images = [m for m in t.modalities if m in layers]
        rows = contribution.get(t.model) or [
            {
                "cohort": c["cohort"],
                "prob": c["prob"],
                **{f"prob_without_{m}": c.get(f"prob_without_{m}") for m in images},
            }
            for c in patients[patients["model"] == t.model].to_dict(orient="records")
        ]
        block["modality_contribution"] = contribution_summary(
            [{k: (np.nan if v is None else v) for k, v in r.items()} for r in rows],
            images,
            n_boot=n_boot,
            seed=seed,
        )
        block["modality_contribution_patients"] = len(rows) if len(images) > 1 else 0
        per_model[t.model] = block
    return {
        "schema": 1,
        "method": method,
        "target_layers": layers,
        "cam_grid": _grids(results, targets),
        "explained_class": "the predicted class at the model's frozen threshold (LNM or no LNM)",
        "feature_sets": _feature_sets(run),
        "harmonization": run.config.harmonization.method,
        "ensemble": (
            "development patients: their out-of-fold model; others: the fold ensemble — features mode: "
            "Grad-CAM of the ensemble's mean logit (the folds share the frozen backbone); finetune mode: "
            "each fold model's map on its own backbone, averaged"
        ),
        "randomization": (
            "twin: every trained parameter re-drawn (heads; the backbone when trained or pretrained, "
            f"kept when random already: weights={run.config.model.weights}, mode={run.info.mode})"
        ),
        "precision": run.info.amp,
        "mode": run.info.mode,
        "backbone": run.config.model.backbone,
        "weights": run.config.model.weights,
        "primary_model": run.primary_model,
        "patients": [str(p) for p in patients["patient_id"].drop_duplicates()],
        "models": per_model,
    }


def _grids(results: dict[str, list[CaseResult]], targets: Sequence[Target]) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for t in targets:
        for r in results[t.key]:
            for m, cam in r.cams.items():
                out.setdefault(m, [int(cam.shape[1]), int(cam.shape[2])])
    return out


def _pictures(
    folder: Path,
    run: Run,
    targets: Sequence[Target],
    cases: Sequence[Case],
    results: dict[str, list[CaseResult]],
    focus: dict[tuple[str, int], Focus],
    nuclei: dict[int, TileNuclei],
    layers: dict[str, str],
    panels: str,
) -> list[dict[str, str]]:
    thumbs: dict[int, Thumbnail] = {}
    for i in FG.thumbnails_needed(cases):
        c = cases[i]
        assert c.tiles is not None and c.slide is not None
        thumbs[i] = slide_thumbnail(c.slide, float(c.tiles["slide_mpp"].iloc[0]), side=768)
    gallery = []
    for t in [t for t in targets if t.sign_of is None]:
        if panels == "all" or t.model == run.primary_model:
            (folder / "panels" / t.model).mkdir(parents=True, exist_ok=True)
        for i, (c, r) in enumerate(zip(cases, results[t.key], strict=True)):
            rel = Path("panels") / t.model / f"{_slug(c.patient_id)}.jpg"
            if panels == "all" or t.model == run.primary_model:
                fig = FG.case_panel(
                    c,
                    t.model,
                    r,
                    t.threshold,
                    thumb=thumbs.get(i),
                    nuclei=nuclei.get(i),
                    focus=focus.get((t.key, i)),
                    layers=layers,
                )
                (folder / rel).write_bytes(FG.to_jpeg(fig))
            if i in thumbs and "cytology" in r.cams and c.tiles is not None:
                (folder / "slides" / t.model).mkdir(parents=True, exist_ok=True)
                tiles = c.tiles.iloc[c.slots["cytology"]]
                att = r.attention["cytology"]
                cam = r.cams["cytology"]
                for kind, vals in (
                    ("attention", att / max(att.max(), 1e-12)),
                    ("cam", upsample(cam, cam.shape[1] * 4) / max(cam.max(), 1e-12)),
                ):
                    pic, _ = slide_heatmap(thumbs[i], list(vals), tiles, by_value=kind == "cam")
                    _, png = cv2.imencode(".png", cv2.cvtColor(pic, cv2.COLOR_RGB2BGR))
                    (folder / "slides" / t.model / f"{_slug(c.patient_id)}_{kind}.png").write_bytes(
                        png.tobytes()
                    )
            if t.model == run.primary_model:
                decision = int(r.prob >= t.threshold)
                f = focus.get((t.key, i))
                gallery.append(
                    {
                        "patient_id": c.patient_id,
                        "model": t.model,
                        "modality": "+".join(m for m in t.modalities if m in r.cams),
                        "image": str(Path("explain") / rel),
                        "outcome": FG.outcome(c.label, decision),
                        "caption": (
                            f"{FG.outcome(c.label, decision)} · {c.cohort} · p = {r.prob:.3f} (threshold "
                            f"{t.threshold:.3f})"
                            + (
                                f" · nuclear enrichment {f.enrichment:.2f}"
                                if f and np.isfinite(f.enrichment)
                                else ""
                            )
                        ),
                    }
                )
    order = {"TP": 0, "FN": 1, "TN": 2, "FP": 3}
    return sorted(gallery, key=lambda g: order.get(g["outcome"], 9))


def _slug(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in text)
