"""The extraction stage: cohort → fitted preprocessing → features of every view and tile.

``radiopath extract MANIFEST --out FEATS`` runs :func:`extract_stage`; ``radiopath train``
without ``--features`` runs :func:`extract_features` itself, in memory — the same code, so
the three-stage way and the one-go way give the same features, bit for bit. For every image
modality of the registry that the cohort has:

1. *prepare* (cytology: tile every slide, or reuse a ``radiopath tile`` folder);
2. *fit* its preprocessing on the development cohort only (unless a fitted state is given:
   prediction and explanation apply the run's own state, never refit);
3. *apply* it: instance groups with content keys; features come from the shared cache or
   are computed by the frozen backbone (:mod:`radiopath.features.deep`);
4. with ``augment`` (what ``extract`` and ``train`` do; prediction never does), also
   ``train.augment_passes`` augmented passes of every development group
   (:mod:`radiopath.features.passes`), cached like the clean features.

Under ``torchrun`` each rank computes a strided share of the missing groups; batches have a
fixed shape, so the result does not depend on the number of processes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from radiopath import distributed as dist
from radiopath.compute import ComputePlan
from radiopath.features.cache import FeatureCache, preprocessing_code_version
from radiopath.features.deep import FeatureExtractor, extractor_key, make_extractor
from radiopath.features.families import HandcraftedFamily, families_for, measure_group
from radiopath.features.passes import augmented_family_key, augmented_group, can_augment
from radiopath.features.preprocessing import Preprocessing, development_rows, fit_preprocessing
from radiopath.features.store import INDEX_COLUMNS, Block, FeatureSet, source_table
from radiopath.io.fingerprint import digest
from radiopath.modalities import MODALITIES, ImageModality, InstanceGroup, StageContext, VectorModality
from radiopath.models.inputs import PatientInputs
from radiopath.parallel import process_pool
from radiopath.run_config import RunConfig

Progress = Callable[[str, int, int], None]
Notes = list[list[str]]
#: Images loaded per extraction step (the next step is loaded while this one runs).
CHUNK_IMAGES = 128


@dataclass
class Plan:
    """What extraction will do: the fitted preprocessing and every instance group per modality."""

    preprocessing: Preprocessing
    groups: dict[str, list[InstanceGroup]] = field(default_factory=dict)
    prepared: dict[str, Any] = field(default_factory=dict)


def image_modalities_present(table: pd.DataFrame) -> list[str]:
    """Registered image modalities at least one patient of ``table`` has."""
    return [k for k, m in MODALITIES.items() if isinstance(m, ImageModality) and m.present(table).any()]


def plan_groups(
    table: pd.DataFrame, cfg: RunConfig, ctx: StageContext, preprocessing: Preprocessing | None = None
) -> Plan:
    """Prepare every image modality, fit (or take) the preprocessing, and list instance groups."""
    images = image_modalities_present(table)
    vectors = [k for k, m in MODALITIES.items() if isinstance(m, VectorModality) and m.present(table).any()]
    prepared: dict[str, Any] = {}
    for key in images:
        modality = MODALITIES[key]
        assert isinstance(modality, ImageModality)
        prepared[key] = modality.prepare(table, cfg, ctx)
    if preprocessing is None:
        preprocessing = fit_preprocessing(table, cfg, prepared, images + vectors)
    plan = Plan(preprocessing, prepared=prepared)
    for key in images:
        modality = MODALITIES[key]
        assert isinstance(modality, ImageModality)
        plan.groups[key] = modality.groups(table, cfg, preprocessing.state(key), prepared[key])
    return plan


def family_key(
    modality: ImageModality, cfg: RunConfig, compute: ComputePlan, weights: str | None = None
) -> str:
    """The cache namespace of a modality's deep features under ``cfg`` on ``compute``
    (``weights``: the backbone's weights when not ``cfg.model.weights``)."""
    return digest(
        extractor_key(
            modality.backbone(cfg),
            weights or cfg.model.weights,
            modality.input_size(cfg),
            compute,
            cfg.train.extract_batch_size,
        ),
        preprocessing_code_version(),
    )[:24]


class Backbones:
    """The frozen backbones of an extraction, built on first use and then kept.

    By default every backbone gets ``cfg.model.weights`` (what ``extract`` and ``train`` do). A
    deployed model passes its own instance: each backbone's weights from its bundled file
    (``weights``), kept across requests by a server, or another runtime (ONNX, see
    :mod:`radiopath.serve.onnx`) whose features get a cache namespace of their own.
    """

    #: part of the cache namespace when not ``torch``
    runtime = "torch"

    def __init__(
        self, cfg: RunConfig, compute: ComputePlan, weights: Mapping[str, str] | None = None
    ) -> None:
        self.cfg = cfg
        self.compute = compute
        self.weights = dict(weights or {})
        self._built: dict[str, FeatureExtractor] = {}

    def weights_of(self, backbone: str) -> str:
        """The weights choice (``none``, ``imagenet`` or a file) of ``backbone``."""
        return self.weights.get(backbone, self.cfg.model.weights)

    def family(self, modality: ImageModality) -> str:
        """The cache namespace of ``modality``'s features from these backbones."""
        key = family_key(modality, self.cfg, self.compute, self.weights_of(modality.backbone(self.cfg)))
        return key if self.runtime == "torch" else digest(key, self.runtime)[:24]

    def get(self, backbone: str) -> FeatureExtractor:
        """The extractor of ``backbone`` (built once)."""
        if backbone not in self._built:
            self._built[backbone] = self.build(backbone)
        return self._built[backbone]

    def build(self, backbone: str) -> FeatureExtractor:
        t = self.cfg.train
        return make_extractor(
            backbone, self.weights_of(backbone), self.compute, t.extract_batch_size, t.compile
        )


def extract_features(
    table: pd.DataFrame,
    cfg: RunConfig,
    compute: ComputePlan,
    ctx: StageContext,
    *,
    preprocessing: Preprocessing | None = None,
    progress: Progress | None = None,
    backbones: Backbones | None = None,
    augment: bool = False,
) -> FeatureSet:
    """Features of every view and tile of ``table`` (see the module docstring).

    Args:
        table: a validated cohort table (``Cohort.table``).
        preprocessing: a fitted state to apply; None fits it on the development rows.
        backbones: the extractors to use (default: :class:`Backbones` of ``cfg`` on ``compute``).
        augment: also the augmented passes of the development rows (features mode training);
            their features are ``FeatureSet.augmented`` (passes, instances, D), the clean
            features where a group has none.
    """
    plan = plan_groups(table, cfg, ctx, preprocessing)
    n_passes = int(cfg.train.augment_passes) if augment and cfg.train.mode == "features" else 0
    dev = development_rows(table)
    backbones = backbones or Backbones(cfg, compute)
    features: dict[str, np.ndarray] = {}
    augmented: dict[str, np.ndarray] = {}
    families: dict[str, dict[str, str]] = {}
    blocks: dict[str, list[Block]] = {}
    index_parts: list[pd.DataFrame] = []
    stats: dict[str, int] = {}
    ids = table["patient_id"].astype(str).to_numpy()
    for key, groups in plan.groups.items():
        modality = MODALITIES[key]
        assert isinstance(modality, ImageModality)

        def extractor(modality: ImageModality = modality) -> FeatureExtractor:
            return backbones.get(modality.backbone(cfg))

        per_family: list[list[tuple[np.ndarray, Notes]]] = []
        per_pass: list[list[list[tuple[np.ndarray, Notes]]]] = [[] for _ in range(n_passes)]
        families[key], blocks[key] = {}, []
        computed = 0
        for family in families_for(key, cfg.model.feature_set_of(key)):
            fkey = family_keys(modality, cfg, compute, backbones)[family.name]
            handcrafted = isinstance(family, HandcraftedFamily)
            run = partial(_family_values, family=family, modality=modality, cfg=cfg, extractor=extractor)
            run = partial(run, workers=ctx.workers, progress=progress)
            cache = FeatureCache(ctx.cache_root, fkey)
            values = run(groups, cache, f"{modality.label} {family.name} features")
            per_family.append(values)
            families[key][family.name] = fkey
            stats.update(
                {f"{key}_{family.name}_cached": cache.hits, f"{key}_{family.name}_computed": cache.misses}
            )
            computed += cache.misses
            mine = (
                [i for i, g in enumerate(groups) if dev[g.row]] if can_augment(modality, handcrafted) else []
            )
            if n_passes and mine:
                acache = FeatureCache(ctx.cache_root, augmented_family_key(fkey, modality, cfg))
                for p in range(1, n_passes + 1):
                    passed = [augmented_group(groups[i], modality, cfg, p) for i in mine]
                    label = f"{modality.label} {family.name} augmented pass {p}/{n_passes}"
                    done = dict(zip(mine, run(passed, acache, label), strict=True))
                    per_pass[p - 1].append([done.get(i, v) for i, v in enumerate(values)])
                stats.update({f"{key}_{family.name}_augmented_computed": acache.misses})
                computed += acache.misses
            else:
                for p in range(n_passes):
                    per_pass[p].append(values)
        stats.update({f"{key}_computed": computed})
        values = _side_by_side(per_family)
        feats, index = _index(key, groups, values, ids)
        if n_passes:
            augmented[key] = np.stack([_index(key, groups, _side_by_side(v), ids)[0] for v in per_pass])
        start = 0
        for family, part in zip(families_for(key, cfg.model.feature_set_of(key)), per_family, strict=True):
            dim = part[0][0].shape[1] if part else 0
            blocks[key].append(Block(family.name, start, start + dim, family.names(key, cfg, dim)))
            start += dim
        features[key] = feats
        index_parts.append(index)
        n_pat = len({g.row for g in groups})
        ctx.say(f"{modality.label}: {len(feats)} instances of {n_pat} patients ({computed} groups computed)")
    index = pd.concat(index_parts, ignore_index=True) if index_parts else pd.DataFrame(columns=INDEX_COLUMNS)
    sources = source_table(table, list(plan.groups))
    shift = acquisition_shift(table, plan, ctx) if preprocessing is None else pd.DataFrame()
    return FeatureSet(
        cfg, plan.preprocessing, index, features, families, sources, stats, blocks, augmented, shift
    )


def acquisition_shift(table: pd.DataFrame, plan: Plan, ctx: StageContext) -> pd.DataFrame:
    """Every image modality's per-center acquisition check (``ImageModality.shift_report``, no
    labels), one table with a ``modality`` column; its warnings go to ``ctx.say``."""
    parts = []
    for key in plan.groups:
        modality = MODALITIES[key]
        assert isinstance(modality, ImageModality)
        report, warnings = modality.shift_report(table, plan.preprocessing.state(key), plan.prepared.get(key))
        for w in warnings:
            ctx.say(f"warning: {modality.label}: {w}")
        if len(report):
            parts.append(report.assign(modality=key))
    if not parts:
        return pd.DataFrame()
    out = pd.concat(parts, ignore_index=True)
    dev = set(table.loc[development_rows(table), "center"].astype(str))
    cohort_of = dict(zip(table["center"].astype(str), table["cohort"].astype(str), strict=True))
    out["cohort"] = ["development" if c in dev else cohort_of.get(c, "") for c in out["center"].astype(str)]
    return out


def family_keys(
    modality: ImageModality, cfg: RunConfig, compute: ComputePlan, backbones: Backbones | None = None
) -> dict[str, str]:
    """Cache namespace of each family ``cfg`` uses for ``modality`` (the preprocessing code
    included; the deep family's from ``backbones``, by default ``cfg``'s own)."""
    out = {}
    for family in families_for(modality.key, cfg.model.feature_set_of(modality.key)):
        if isinstance(family, HandcraftedFamily):
            out[family.name] = digest(family.key(cfg), preprocessing_code_version())[:24]
        else:
            out[family.name] = (backbones or Backbones(cfg, compute)).family(modality)
    return out


def _family_values(
    groups: Sequence[InstanceGroup],
    cache: FeatureCache,
    label: str,
    *,
    family: Any,
    modality: ImageModality,
    cfg: RunConfig,
    extractor: Callable[[], FeatureExtractor],
    workers: int,
    progress: Progress | None,
) -> list[tuple[np.ndarray, Notes]]:
    """One family's (features, notes) of every group: measured (handcrafted) or extracted (deep)."""
    if isinstance(family, HandcraftedFamily):
        return _measure_groups(groups, family, cfg, cache, workers, progress, label)
    return _extract_groups(groups, modality, cfg, extractor, cache, progress, label)


def _side_by_side(per_family: list[list[tuple[np.ndarray, Notes]]]) -> list[tuple[np.ndarray, Notes]]:
    """One (features, notes) per group with every family's columns side by side."""
    if len(per_family) == 1:
        return per_family[0]
    out = []
    for parts in zip(*per_family, strict=True):
        feats = np.concatenate([p[0] for p in parts], axis=1)
        notes = [
            sorted({n for p in parts for n in (p[1][i] if i < len(p[1]) else [])}) for i in range(len(feats))
        ]
        out.append((feats, notes))
    return out


def _measure_groups(
    groups: Sequence[InstanceGroup],
    family: HandcraftedFamily,
    cfg: RunConfig,
    cache: FeatureCache,
    workers: int,
    progress: Progress | None,
    label: str,
) -> list[tuple[np.ndarray, Notes]]:
    """A handcrafted family's features of every group: cached, or measured in worker processes."""
    missing = [i for i, g in enumerate(groups) if not cache.has(g.key)]
    cache.hits += len(groups) - len(missing)
    cache.misses += len(missing)
    mine = [missing[i] for i in dist.shard(len(missing))]
    jobs = [(family.name, cfg, groups[i].details) for i in mine]
    if progress:
        progress(label, 0, len(mine))
    results: Iterable[tuple[np.ndarray, Notes]]
    if workers > 1 and len(jobs) >= 2 * workers:
        import cv2

        with process_pool(workers, initializer=cv2.setNumThreads, initargs=(1,)) as pool:
            results = list(pool.map(measure_group, jobs, chunksize=max(1, len(jobs) // (4 * workers))))
    else:
        results = map(measure_group, jobs)
    for n, (i, (feats, notes)) in enumerate(zip(mine, results, strict=True), start=1):
        cache.put(groups[i].key, feats, notes)
        if progress:
            progress(label, n, len(mine))
    dist.barrier()
    return _read_back(groups, cache, lambda g: measure_group((family.name, cfg, g.details)))


def load_images(
    table: pd.DataFrame,
    cfg: RunConfig,
    ctx: StageContext,
    *,
    preprocessing: Preprocessing | None = None,
) -> tuple[PatientInputs, Preprocessing, pd.DataFrame]:
    """Finetune mode: the backbone inputs themselves, in memory: ``(inputs, state, flags)``."""
    plan = plan_groups(table, cfg, ctx, preprocessing)
    arrays: dict[str, np.ndarray] = {}
    flags = []
    for key, groups in plan.groups.items():
        modality = MODALITIES[key]
        assert isinstance(modality, ImageModality)
        size, n_max = modality.input_size(cfg), modality.max_instances(cfg)
        x = np.zeros((len(table), n_max, size, size, 3), np.uint8)
        mask = np.zeros((len(table), n_max), bool)
        for g in groups:
            images = modality.network_input(g.load(), cfg)
            for slot, image, rec, note in zip(g.slots, images, g.index, _notes(g), strict=True):
                if slot < n_max:
                    x[g.row, slot], mask[g.row, slot] = image, True
                flags.append((str(table.iloc[g.row]["patient_id"]), key, rec.get("view"), ";".join(note)))
        arrays.update({key: x, f"{key}_mask": mask})
        ctx.say(f"{modality.label}: {int(mask.sum())} images of {int(mask.any(1).sum())} patients in memory")
    fs = FeatureSet(
        cfg, plan.preprocessing, pd.DataFrame(columns=INDEX_COLUMNS), {}, {}, source_table(table, [])
    )
    inputs = fs.inputs(table)
    inputs.arrays.update(arrays)
    flag_table = pd.DataFrame(flags, columns=["patient_id", "modality", "view", "flags"])
    return inputs, plan.preprocessing, flag_table[flag_table["flags"] != ""].reset_index(drop=True)


def _notes(group: InstanceGroup) -> list[list[str]]:
    return group.info if len(group.info) == len(group.slots) else [[] for _ in group.slots]


def _extract_groups(
    groups: Sequence[InstanceGroup],
    modality: ImageModality,
    cfg: RunConfig,
    extractor: Callable[[], FeatureExtractor],
    cache: FeatureCache,
    progress: Progress | None,
    label: str,
) -> list[tuple[np.ndarray, list[list[str]]]]:
    """Features and notes of every group, from the cache or computed (and cached)."""
    missing = [i for i, g in enumerate(groups) if not cache.has(g.key)]
    cache.hits += len(groups) - len(missing)
    cache.misses += len(missing)
    mine = [missing[i] for i in dist.shard(len(missing))]
    if progress:
        progress(label, 0, len(mine))

    def load(step: list[int]) -> list[np.ndarray]:
        return [modality.network_input(groups[i].load(), cfg) for i in step]

    done = 0
    steps = list(_steps(mine, groups))
    with ThreadPoolExecutor(max_workers=1) as loader:
        future = loader.submit(load, steps[0]) if steps else None
        for s, step in enumerate(steps):
            assert future is not None
            loaded = future.result()
            if s + 1 < len(steps):
                future = loader.submit(load, steps[s + 1])
            feats = extractor()(np.concatenate(loaded))
            start = 0
            for i, images in zip(step, loaded, strict=True):
                cache.put(groups[i].key, feats[start : start + len(images)], _notes(groups[i]))
                start += len(images)
            done += len(step)
            if progress:
                progress(label, done, len(mine))
    dist.barrier()
    return _read_back(
        groups, cache, lambda g: (extractor()(modality.network_input(g.load(), cfg)), _notes(g))
    )


def _read_back(
    groups: Sequence[InstanceGroup],
    cache: FeatureCache,
    compute_one: Callable[[InstanceGroup], tuple[np.ndarray, Notes]],
) -> list[tuple[np.ndarray, Notes]]:
    """Every group's entry from the cache; an unreadable one is computed again in place."""
    out = []
    for g in groups:
        entry = cache.get(g.key)
        if entry is None:
            entry = compute_one(g)
            cache.put(g.key, *entry)
        out.append(entry)
    return out


def _steps(indices: list[int], groups: Sequence[InstanceGroup]) -> Iterable[list[int]]:
    step: list[int] = []
    images = 0
    for i in indices:
        step.append(i)
        images += len(groups[i].slots)
        if images >= CHUNK_IMAGES:
            yield step
            step, images = [], 0
    if step:
        yield step


def _index(
    key: str,
    groups: Sequence[InstanceGroup],
    values: list[tuple[np.ndarray, list[list[str]]]],
    ids: np.ndarray,
) -> tuple[np.ndarray, pd.DataFrame]:
    """Stack a modality's features and describe every row."""
    rows: list[dict[str, Any]] = []
    blocks = []
    n = 0
    for g, (feats, notes) in zip(groups, values, strict=True):
        blocks.append(feats)
        notes = notes if len(notes) == len(g.slots) else [[] for _ in g.slots]
        for slot, rec, note in zip(g.slots, g.index, notes, strict=True):
            rows.append(
                {
                    "patient_id": ids[g.row],
                    "modality": key,
                    "slot": int(slot),
                    "group": g.key,
                    "row": n,
                    "view": rec.get("view"),
                    "rank": rec.get("rank"),
                    "x": rec.get("x"),
                    "y": rec.get("y"),
                    "level": rec.get("level"),
                    "size": rec.get("size"),
                    "flags": ";".join(note),
                }
            )
            n += 1
    dim = blocks[0].shape[1] if blocks else 0
    feats = np.concatenate(blocks).astype(np.float32) if blocks else np.zeros((0, dim), np.float32)
    index = pd.DataFrame(rows, columns=INDEX_COLUMNS)
    for c in ("rank", "x", "y", "level", "size"):
        index[c] = index[c].astype("Int64")
    index["view"] = index["view"].astype("string")
    return feats, index


def extract_stage(
    table: pd.DataFrame,
    out: str | Path,
    cfg: RunConfig,
    compute: ComputePlan,
    ctx: StageContext,
    progress: Progress | None = None,
) -> FeatureSet:
    """``radiopath extract``: :func:`extract_features` written to the ``FEATS`` folder."""
    start = time.perf_counter()
    fs = extract_features(table, cfg, compute, ctx, progress=progress, augment=True)
    fs.stats["seconds"] = round(time.perf_counter() - start, 1)  # type: ignore[assignment]
    if dist.is_main():
        fs.save(out)
    dist.barrier()
    return fs


def preprocessing_of(fs_or_state: FeatureSet | Preprocessing | Mapping[str, Any]) -> Preprocessing:
    """A :class:`Preprocessing` from a feature set, itself, or its dict form."""
    if isinstance(fs_or_state, FeatureSet):
        return fs_or_state.preprocessing
    if isinstance(fs_or_state, Preprocessing):
        return fs_or_state
    return Preprocessing.from_dict(fs_or_state)
