"""The checks a reviewer asks of saliency maps: model randomisation, deletion, modality contribution.

* **Model randomisation** (Adebayo et al., "Sanity Checks for Saliency Maps", NeurIPS 2018):
  :func:`randomized_members` gives the twin of a model with every trained parameter drawn
  afresh — the heads (encoders, attention, fusion, missing-modality embeddings) always, and
  the backbone whenever it was trained (finetune mode) or pretrained (ImageNet or a weights
  file); with ``weights: none`` in features mode the backbone is random already and the twin
  keeps it, re-drawing only the heads. The fitted standardisation and principal-component
  projection are kept: they are preprocessing, fitted without labels. The twin is seeded, so
  it is the same twin on every run.
* **Deletion** (Samek et al., "Evaluating the visualization of what a deep neural network has
  learned", IEEE TNNLS 2017; Petsiuk et al., RISE, BMVC 2018): remove what the explanation
  ranks first and watch the predicted-class probability fall, against removing at random —
  tiles from the bag (:func:`deletion_summary`) and, for ultrasound, the top CAM pixels.
* **Modality contribution**: how far the fused probability moves when a modality is masked
  and the model uses its learned missing-modality embedding instead
  (:func:`contribution_summary`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from radiopath.compute import seeded, stable_seed
from radiopath.explain.engine import CaseResult, Member
from radiopath.explain.nuclear import mean_ci, paired_difference
from radiopath.features.deep import make_extractor
from radiopath.models.backbones import Backbone, create_backbone
from radiopath.models.factory import build_model
from radiopath.models.weights import NONE
from radiopath.runs import Run


def freeze(module: Any) -> Any:
    """Eval mode and no parameter gradients (explanations differentiate activations only)."""
    module.eval()
    for p in module.parameters():
        p.requires_grad_(False)
    return module


def random_backbone(name: str, compute: Any, channels_last: bool = True) -> Backbone:
    """A randomly initialised ``name``, seeded apart from the run's own random-weights seed."""
    with seeded(stable_seed(name, "explain-randomized-backbone")):
        bb = create_backbone(name, NONE)
    bb = freeze(bb).to(compute.device)
    return bb.to(memory_format=torch.channels_last) if channels_last else bb


def randomized_members(
    run: Run, model: str, members: Sequence[Member], compute: Any, shared: dict[str, Backbone]
) -> list[Member]:
    """The randomised twin of ``members`` (the fold models of ``model``; see the module docstring).

    ``shared`` caches random backbones by name, so every twin of a run uses the same one.
    """
    spec = run.spec(model)
    cfg = run.config
    finetune = run.info.mode == "finetune"
    twins = []
    for mem in members:
        with seeded(stable_seed("explain-randomized", model, mem.fold)):
            twin = build_model(spec, cfg, run.info.in_dims, blocks=run.info.blocks, init_weights=NONE)
        for m, std in mem.head.standardize.items():
            twin.standardize[m].load_state_dict(std.state_dict())  # fitted buffers, kept
        twin = freeze(twin).to(compute.device)
        if finetune:
            backbones = {m: twin.backbones[m] for m in mem.backbones}
        elif cfg.model.weights == NONE:
            backbones = dict(mem.backbones)
        else:
            backbones = {}
            for m, bb in mem.backbones.items():
                if bb.name not in shared:
                    shared[bb.name] = random_backbone(bb.name, compute, cfg.train.channels_last)
                backbones[m] = shared[bb.name]
        twins.append(Member(mem.fold, twin, backbones))
    return twins


def run_backbones(run: Run, compute: Any, names: Mapping[str, str]) -> dict[str, Backbone]:
    """Features mode: the run's frozen extractor backbone per image modality (one per name),
    rebuilt exactly (``weights: none`` is seeded by the backbone's name)."""
    built: dict[str, Backbone] = {}
    out = {}
    for m, name in names.items():
        if name not in built:
            ex = make_extractor(name, run.config.model.weights, compute, run.config.train.extract_batch_size)
            built[name] = ex.backbone
        out[m] = built[name]
    return out


def _ensemble_probs(
    run: Run, model: str, inputs: Any, idx: np.ndarray, variants: dict[str, dict[str, Any]], compute: Any
) -> dict[str, np.ndarray]:
    """Each variant batch's probability for the patients ``idx``: development patients by their
    out-of-fold model, the others by the fold ensemble (as ``predictions.parquet``)."""
    models = run.fold_models(model, compute.device)
    fold_of = dict(zip(run.folds["patient_id"].astype(str), run.folds["fold"].astype(int), strict=True))
    fold = np.array([fold_of.get(str(p), -1) for p in inputs.patient_id[idx]])
    w = np.where(
        (fold[:, None] == np.arange(len(models))[None, :]) | (fold[:, None] < 0),
        1.0,
        0.0,
    )
    w /= w.sum(1, keepdims=True)
    probs = {}
    for name, b in variants.items():
        p = np.zeros(len(idx))
        for j, net in enumerate(models):
            p += torch.sigmoid(net.eval()(b).float()).double().cpu().numpy() * w[:, j]
        probs[name] = p
    return probs


def _patient_row(inputs: Any, i: int, prob: float) -> dict[str, Any]:
    """A contribution table's row for patient ``i`` of ``inputs``: its ids and full probability."""
    return {"patient_id": str(inputs.patient_id[i]), "cohort": str(inputs.cohort[i]), "prob": prob}


@torch.no_grad()
def cohort_contribution(run: Run, model: str, inputs: Any, compute: Any) -> list[dict[str, Any]]:
    """Features mode, every patient with two or more of the model's modalities: the probability
    with all of them and with each one masked, from the cached features (cheap: heads only).
    Development patients use their out-of-fold model, the others the fold ensemble."""
    spec = run.spec(model)
    mods = list(spec.modalities)
    images = [m for m in mods if m in run.info.in_dims and m != "clinical"]
    if len(images) < 2 or not all(m in inputs.arrays for m in mods):
        return []
    present = np.stack([inputs.present(m) for m in images], 1)
    idx = np.flatnonzero(present.sum(1) >= 2)
    if not len(idx):
        return []
    batch = inputs.batch(idx, mods, compute.device)
    variants = {"prob": batch}
    for m in images:
        variants[f"prob_without_{m}"] = {**batch, f"{m}_mask": torch.zeros_like(batch[f"{m}_mask"])}
    probs = _ensemble_probs(run, model, inputs, idx, variants, compute)
    rows = []
    for k, i in enumerate(idx):
        row = _patient_row(inputs, i, probs["prob"][k])
        for m in images:
            if present[i, images.index(m)]:
                row[f"prob_without_{m}"] = probs[f"prob_without_{m}"][k]
        rows.append(row)
    return rows


def feature_blocks(run: Run, model: str) -> dict[str, list[str]]:
    """Per image modality of ``model`` whose feature set has two or more families (hybrid),
    the families in column order."""
    out = {}
    for m in run.spec(model).modalities:
        fams = [f for f, _, _ in run.info.blocks.get(m, [])]
        if len(fams) >= 2:
            out[m] = fams
    return out


@torch.no_grad()
def block_contribution(run: Run, model: str, inputs: Any, compute: Any) -> list[dict[str, Any]]:
    """Features mode, a model with a hybrid feature set: for every patient with such a modality,
    the probability with all features and with each feature family's block set to its training
    mean (missing: the fold's standardisation maps it to 0, its mean), so the share of the
    modality's evidence that comes from, e.g., the nuclear morphometry (``pathomics``) against
    the backbone (``deep``) is measured, not guessed. Columns ``prob_without_<m>:<family>``."""
    blocks = feature_blocks(run, model)
    mods = list(run.spec(model).modalities)
    if not blocks or not all(m in inputs.arrays for m in mods):
        return []
    has = {m: inputs.present(m) for m in blocks}
    idx = np.flatnonzero(np.logical_or.reduce(list(has.values())))
    if not len(idx):
        return []
    batch = inputs.batch(idx, mods, compute.device)
    variants = {"prob": batch}
    for m in blocks:
        for fam, a, b in run.info.blocks[m]:
            x = batch[m].clone()
            x[..., a:b] = float("nan")
            variants[f"prob_without_{m}:{fam}"] = {**batch, m: x}
    probs = _ensemble_probs(run, model, inputs, idx, variants, compute)
    rows = []
    for k, i in enumerate(idx):
        row = _patient_row(inputs, i, probs["prob"][k])
        for m, fams in blocks.items():
            if has[m][i]:
                row.update({f"prob_without_{m}:{f}": probs[f"prob_without_{m}:{f}"][k] for f in fams})
        rows.append(row)
    return rows


# -- summaries --------------------------------------------------------------------------------


def deletion_summary(
    results: Sequence[CaseResult], kind: str, *, n_boot: int = 2000, seed: int = 0
) -> dict[str, Any] | None:
    """Mean deletion curves of ``kind`` (``tile_deletion`` or ``us_deletion``) over patients.

    Each curve is the predicted-class probability after each step; its *drop* is the start
    minus the mean over the later steps (larger = the removed part mattered more). Tile
    curves of different bag sizes are compared over the steps all of them have.
    """
    curves = [getattr(r, kind) for r in results if getattr(r, kind)]
    if not curves:
        return None
    orders = [o for o in ("cam", "attention", "random") if all(o in c for c in curves)]
    steps = min(len(c[orders[0]]) for c in curves)
    out: dict[str, Any] = {"n_patients": len(curves), "steps": steps}
    drops: dict[str, np.ndarray] = {}
    for o in orders:
        arr = np.stack([c[o][:steps] for c in curves])
        out[f"curve_{o}"] = [round(float(v), 4) for v in arr.mean(0)]
        drops[o] = arr[:, 0] - arr[:, 1:].mean(1)
        out[f"drop_{o}"] = mean_ci(drops[o], n_boot=n_boot, seed=seed).to_dict()
    for o in orders:
        if o != "random" and "random" in drops:
            out[f"drop_{o}_minus_random"] = paired_difference(
                drops[o], drops["random"], n_boot=n_boot, seed=seed
            ).to_dict()
    return out


def contribution_summary(
    rows: Sequence[Mapping[str, Any]], modalities: Sequence[str], *, n_boot: int = 2000, seed: int = 0
) -> dict[str, Any] | None:
    """Per modality, over patients who have it and another one: the mean signed and absolute
    change of the fused probability when it is masked (``prob - prob_without``), and its
    share of the two changes (|Δ_m| / Σ |Δ|), overall and per cohort."""
    if len(modalities) < 2 or not rows:
        return None
    out: dict[str, Any] = {}
    for scope in ("all", *sorted({str(r["cohort"]) for r in rows})):
        part = [r for r in rows if scope == "all" or str(r["cohort"]) == scope]
        block: dict[str, Any] = {}
        deltas = {
            m: np.array([r["prob"] - r.get(f"prob_without_{m}", np.nan) for r in part], np.float64)
            for m in modalities
        }
        total = np.nansum(np.abs(np.stack(list(deltas.values()))), 0)
        for m, d in deltas.items():
            with np.errstate(invalid="ignore", divide="ignore"):
                share = np.where(total > 0, np.abs(d) / total, np.nan)
            block[m] = {
                "delta": mean_ci(d, n_boot=n_boot, seed=seed).to_dict(),
                "abs_delta": mean_ci(np.abs(d), n_boot=n_boot, seed=seed).to_dict(),
                "share": mean_ci(share, n_boot=n_boot, seed=seed).to_dict(),
            }
        out[scope] = block
    return out
