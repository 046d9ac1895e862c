"""Cohort → :class:`PatientInputs`: ultrasound crops and slide tiles through frozen backbones.

Preprocessing is fitted on the development cohort only (per-center ultrasound histogram
standardisation, stain normalisation targets) — the external cohort never shapes the model.
The fitted states are returned so the run folder and the model bundle can carry them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from radiopath import __version__
from radiopath.cohort import Cohort
from radiopath.cohort.schema import BOX_COLUMNS, DEVELOPMENT, MASK_COLUMNS, US_VIEWS
from radiopath.io.images import read_image
from radiopath.slides import read_tiles, tile_cohort
from radiopath.slides.stain import MacenkoNormalizer, ReinhardNormalizer
from radiopath.train import distributed as dist
from radiopath.train.config import RunConfig
from radiopath.train.data import PatientInputs, from_cohort_table
from radiopath.train.device import ComputePlan
from radiopath.train.features import (
    FeatureCache,
    FeatureExtractor,
    Item,
    digest,
    extract_items,
    file_digest,
    make_extractor,
    pad_instances,
    resize_tiles,
    tiles_by_patient,
)
from radiopath.ultrasound import UltrasoundTransform

Say = Callable[[str], None]
FeatureProgress = Callable[[str, int, int], None]


@dataclass
class PreparedInputs:
    """The inputs and everything fitted or decided while making them."""

    inputs: PatientInputs
    ultrasound_state: dict[str, Any]
    stain_state: dict[str, Any] | None
    view_flags: pd.DataFrame
    tiles_path: Path | None
    cache_stats: dict[str, int] = field(default_factory=dict)


def prepare_inputs(
    cohort: Cohort,
    cfg: RunConfig,
    compute: ComputePlan,
    cache_root: Path,
    say: Say | None = None,
    progress: FeatureProgress | None = None,
) -> PreparedInputs:
    """Per-patient inputs of ``cohort``: cached backbone features (``features`` mode) or the
    preprocessed images themselves (``finetune`` mode, held in memory)."""
    say = say or (lambda _msg: None)
    table = cohort.table
    dev = (table["cohort"] == DEVELOPMENT).to_numpy()
    images = cfg.train.mode == "finetune"
    arrays: dict[str, np.ndarray] = {}
    stats: dict[str, int] = {}
    extractors: dict[str, FeatureExtractor] = {}

    def extractor(name: str) -> FeatureExtractor:
        if name not in extractors:
            extractors[name] = make_extractor(
                name, cfg.model.weights, compute, cfg.train.extract_batch_size, cfg.train.compile
            )
        return extractors[name]

    tf = UltrasoundTransform(cfg.ultrasound)
    flags = pd.DataFrame(columns=["patient_id", "view", "flags"])
    if table[list(US_VIEWS)].notna().any().any():
        if cfg.ultrasound.intensity.standardize:
            by_center: dict[str, list[str]] = {}
            for _, row in table[dev].iterrows():
                for view in US_VIEWS:
                    if isinstance(row[view], str):
                        by_center.setdefault(row["center"], []).append(row[view])
            tf.fit(by_center)
        items, slots, view_flags = _ultrasound_items(table, tf)
        if images:
            values = [it.load() for it in items]
        else:
            values = _extract(
                items,
                extractor(cfg.model.backbone),
                cache_root,
                cfg.ultrasound.size,
                progress,
                "ultrasound features",
                stats,
                "us",
            )
        shape = values[0].shape[1:] if values else (1,)
        us = np.zeros((len(table), len(US_VIEWS), *shape), values[0].dtype if values else np.float32)
        mask = np.zeros((len(table), len(US_VIEWS)), bool)
        for (i, v), value in zip(slots, values, strict=True):
            us[i, v] = value[0]
            mask[i, v] = True
        arrays.update(us=us, us_mask=mask)
        flags = pd.DataFrame(
            [
                {"patient_id": table.iloc[i]["patient_id"], "view": US_VIEWS[v], "flags": ";".join(fl)}
                for (i, v), fl in sorted(view_flags.items())
                if fl
            ],
            columns=["patient_id", "view", "flags"],
        )
        say(f"ultrasound: {int(mask.sum())} views of {int(mask.any(1).sum())} patients")

    tiles_path: Path | None = None
    stain_state = None
    if table["cytology"].notna().any():
        tiling = cfg.cytology.tiling
        tiles_dir = cache_root / "tiles" / digest("tiling", tiling.model_dump(mode="json"))[:16]
        say(f"tiling {int(table['cytology'].notna().sum())} slides → {tiles_dir}")
        with dist.main_first():
            if dist.is_main():
                tile_cohort(cohort, tiles_dir, tiling, workers=os.cpu_count() or 1)
        tiles_path = tiles_dir / "tiles.parquet"
        tiles = tiles_by_patient(pd.read_parquet(tiles_path))
        normalizer = _fit_stain(cfg, table, dev, tiles)
        stain_state = _state_of(normalizer) if normalizer is not None else None
        items, rows = _cytology_items(table, tiles, cfg, normalizer, stain_state)
        if images:
            values = [it.load() for it in items]
        else:
            name = cfg.model.cytology_backbone or cfg.model.backbone
            values = _extract(
                items,
                extractor(name),
                cache_root,
                cfg.cytology.input_size,
                progress,
                "cytology features",
                stats,
                "cytology",
            )
        per_patient: list[np.ndarray | None] = [None] * len(table)
        for i, value in zip(rows, values, strict=True):
            per_patient[i] = value
        cy, mask = pad_instances(per_patient, cfg.cytology.tiling.top_k)
        arrays.update(cytology=cy, cytology_mask=mask)
        say(f"cytology: {int(mask.sum())} tiles of {int(mask.any(1).sum())} patients")
    inputs = from_cohort_table(table, arrays)
    return PreparedInputs(inputs, tf.state_dict(), stain_state, flags, tiles_path, stats)


def _extract(
    items: list[Item],
    extractor: FeatureExtractor,
    cache_root: Path,
    size: int,
    progress: FeatureProgress | None,
    label: str,
    stats: dict[str, int],
    prefix: str,
) -> list[np.ndarray]:
    cache = FeatureCache(cache_root, extractor.key(size))
    values = extract_items(items, extractor, cache, progress, label)
    stats.update({f"{prefix}_cached": cache.hits, f"{prefix}_computed": cache.misses})
    return values


def _ultrasound_items(
    table: pd.DataFrame,
    tf: UltrasoundTransform,
) -> tuple[list[Item], list[tuple[int, int]], dict[tuple[int, int], list[str]]]:
    """One item per present view; its key covers the file, the region and the transform."""
    tf_key = digest(tf.state_dict(), __version__)
    items: list[Item] = []
    slots: list[tuple[int, int]] = []
    view_flags: dict[tuple[int, int], list[str]] = {}
    for i, row in enumerate(table.itertuples(index=False)):
        rec = row._asdict()
        for v, view in enumerate(US_VIEWS):
            path = rec.get(view)
            if not isinstance(path, str):
                continue
            mask_path = rec.get(MASK_COLUMNS[view])
            box = rec.get(BOX_COLUMNS[view])
            mask_key = file_digest(mask_path) if isinstance(mask_path, str) else None
            key = digest("us", tf_key, file_digest(path), mask_key, box, rec["center"])
            items.append(Item(key, _us_loader(tf, path, mask_path, box, rec["center"], view_flags, (i, v))))
            slots.append((i, v))
    return items, slots, view_flags


def _us_loader(
    tf: UltrasoundTransform,
    path: str,
    mask_path: Any,
    box: Any,
    center: str,
    flags: dict[tuple[int, int], list[str]],
    slot: tuple[int, int],
) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        image = read_image(path)
        mask = read_image(mask_path)[:, :, 0] > 0 if isinstance(mask_path, str) else None
        done = tf.process(
            image, mask=mask, box=box if isinstance(box, tuple) else None, center=center, source_path=path
        )
        flags[slot] = list(done.flags)
        return done.image[None]

    return load


def _fit_stain(
    cfg: RunConfig, table: pd.DataFrame, dev: np.ndarray, tiles: dict[str, pd.DataFrame]
) -> MacenkoNormalizer | ReinhardNormalizer | None:
    """Fit the stain target on tiles of development slides only (up to 4 tiles × 60 slides)."""
    method = cfg.cytology.stain_normalization
    if method == "none":
        return None
    sample = []
    for _, row in table[dev].head(60).iterrows():
        rows = tiles.get(str(row["patient_id"]))
        if rows is None or not isinstance(row["cytology"], str):
            continue
        sample.extend(read_tiles(row["cytology"], rows.head(4)))
    if not sample:
        return None
    norm = MacenkoNormalizer() if method == "macenko" else ReinhardNormalizer()
    return norm.fit(sample)


def _state_of(normalizer: Any) -> dict[str, Any]:
    """A JSON-ready description of a fitted normaliser (its array attributes)."""
    out: dict[str, Any] = {"method": type(normalizer).__name__}
    for k, v in vars(normalizer).items():
        if isinstance(v, np.ndarray):
            out[k] = np.round(v.astype(float), 6).tolist()
        elif isinstance(v, (int, float, str, bool)) or v is None:
            out[k] = v
    return out


def _cytology_items(
    table: pd.DataFrame,
    tiles: dict[str, pd.DataFrame],
    cfg: RunConfig,
    normalizer: Any,
    stain_state: dict[str, Any] | None,
) -> tuple[list[Item], list[int]]:
    """One item per slide with tiles; its key covers the slide, the tiles, the stain target and size."""
    size = cfg.cytology.input_size
    stain_key = json.dumps(stain_state, sort_keys=True)
    items: list[Item] = []
    rows_of: list[int] = []
    for i, row in enumerate(table.itertuples(index=False)):
        slide = row.cytology
        rows = tiles.get(str(row.patient_id))
        if not isinstance(slide, str) or rows is None or rows.empty:
            continue
        coords = rows[["x", "y", "level", "size"]].to_numpy().tolist()
        ident = file_digest(slide, full=False) if Path(slide).is_file() else slide
        key = digest("cyto", __version__, ident, coords, stain_key, size)
        items.append(Item(key, _tile_loader(slide, rows, normalizer, size)))
        rows_of.append(i)
    return items, rows_of


def _tile_loader(slide: str, rows: pd.DataFrame, normalizer: Any, size: int) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        patches = read_tiles(slide, rows)
        if normalizer is not None:
            patches = np.stack([normalizer.transform(p) for p in patches])
        return resize_tiles(patches, size)

    return load
