"""The cytology modality: the FNA slide's ``top_k`` cell-bearing tiles.

Prepared by tiling every slide (:mod:`radiopath.slides`), either from a finished
``radiopath tile`` folder (checked against the manifest) or into the shared content-keyed
tile cache. Fitted state: the stain normalisation target (Macenko or Reinhard), learned on
tiles of development slides only (``none`` fits none), and the development slides' sharpness
(:mod:`radiopath.slides.sharpness`), against which each center's focus is judged. Augmentation
(defocus, resolution, HED stain: :mod:`radiopath.slides.augment`) serves both modes: the
cached augmented passes of features mode and end-to-end training. Each slide is one instance group
whose key covers the slide's content, the tile coordinates, the stain state and the tiling
options; tiles are read at ``tiling.target_mpp`` and resized to ``input_size`` for the backbone.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np
import pandas as pd
from pydantic import Field

from radiopath.cohort.schema import CYTOLOGY_COLUMN
from radiopath.config import StrictModel
from radiopath.io.fingerprint import digest
from radiopath.modalities.base import ImageModality, InstanceGroup, RunConfig, StageContext, rows_of
from radiopath.slides import TilingConfig, read_tile_folder, read_tiles, sharpness, tile_slides_cached
from radiopath.slides import augment as tile_augment
from radiopath.slides.cohort import config_hash
from radiopath.slides.stain import MacenkoNormalizer, ReinhardNormalizer, normalizer_from_state

#: Stain target: tiles of at most this many development slides, this many tiles each.
FIT_SLIDES, FIT_TILES = 60, 4


class CytologyConfig(StrictModel):
    """Slide → tiles → backbone input."""

    tiling: TilingConfig = Field(default_factory=TilingConfig)
    input_size: int = Field(224, ge=16, le=1024, description="tiles are resized to this before the backbone")
    stain_normalization: Literal["none", "macenko", "reinhard"] = Field(
        "none",
        description="normalise every tile to the development cohort's stain (fitted on development only)",
    )
    augment: tile_augment.TileAugmentConfig = Field(
        default_factory=tile_augment.TileAugmentConfig,
        description="tile augmentation: defocus, resolution and HED stain jitter (features-mode passes "
        "and finetune training)",
    )


class Cytology(ImageModality):
    key = "cytology"
    label = "cytology"
    columns = (CYTOLOGY_COLUMN,)
    section = "cytology"
    options = CytologyConfig

    def max_instances(self, cfg: RunConfig) -> int:
        return int(cfg.cytology.tiling.top_k)

    def input_size(self, cfg: RunConfig) -> int:
        return int(cfg.cytology.input_size)

    def prepare(self, table: pd.DataFrame, cfg: RunConfig, ctx: StageContext) -> dict[int, pd.DataFrame]:
        """Tile every slide (or read a finished tile folder): tile rows per table row, best first."""
        slides = [(i, rec[CYTOLOGY_COLUMN]) for i, rec in enumerate(rows_of(table, [CYTOLOGY_COLUMN]))]
        slides = [(i, s) for i, s in slides if s is not None]
        if not slides:
            return {}
        ids = table["patient_id"].astype(str).tolist()
        pairs = [(ids[i], Path(s)) for i, s in slides]
        tiling = cfg.cytology.tiling
        if ctx.tiles is not None:
            ctx.say(f"cytology: reading the tiles of {len(pairs)} slides from {ctx.tiles}")
            tables = read_tile_folder(ctx.tiles, pairs, tiling, mpp_table=ctx.mpp_table)
        else:
            ctx.say(f"cytology: tiling {len(pairs)} slides (cache {ctx.cache_root / 'tiles'})")
            tables = tile_slides_cached(
                pairs, ctx.cache_root, tiling, mpp_table=ctx.mpp_table, workers=ctx.workers
            )
        out = {}
        for i, _ in slides:
            rows = tables[ids[i]]
            if len(rows):
                out[i] = rows.sort_values("rank").head(tiling.top_k).reset_index(drop=True)
        return out

    def fit(
        self,
        table: pd.DataFrame,
        development: np.ndarray,
        cfg: RunConfig,
        prepared: Mapping[int, pd.DataFrame],
    ) -> dict[str, Any]:
        method = cfg.cytology.stain_normalization
        state: dict[str, Any] = {"tiling": config_hash(cfg.cytology.tiling), "stain": None}
        reference = sharpness.fit_sharpness(
            [prepared[i] for i in np.flatnonzero(development) if i in prepared]
        )
        state["sharpness"] = reference.to_dict() if reference is not None else None
        if method == "none":
            return state
        sample: list[np.ndarray] = []
        dev_rows = [i for i in np.flatnonzero(development) if i in prepared][:FIT_SLIDES]
        for i in dev_rows:
            rows = prepared[i]
            sample.extend(read_tiles(str(table.iloc[i][CYTOLOGY_COLUMN]), rows.head(FIT_TILES)))
        if sample:
            norm = MacenkoNormalizer() if method == "macenko" else ReinhardNormalizer()
            state["stain"] = norm.fit(sample).state_dict()
        return state

    def groups(
        self,
        table: pd.DataFrame,
        cfg: RunConfig,
        state: Mapping[str, Any],
        prepared: Mapping[int, pd.DataFrame],
    ) -> list[InstanceGroup]:
        stain = state.get("stain")
        normalizer = normalizer_from_state(stain) if stain else None
        out = []
        for i, rows in sorted(prepared.items()):
            slide = str(table.iloc[i][CYTOLOGY_COLUMN])
            coords = rows[["x", "y", "level", "level_size", "size"]].to_numpy().tolist()
            key = digest("cytology", str(rows["slide_key"].iloc[0]), coords, state.get("tiling"), stain)
            index = tuple(
                {
                    "rank": int(r.rank),
                    "x": int(r.x),
                    "y": int(r.y),
                    "level": int(r.level),
                    "size": int(r.size),
                }
                for r in rows.itertuples(index=False)
            )
            load = partial(_read_tiles, slide, rows, normalizer)
            out.append(InstanceGroup(i, tuple(range(len(rows))), key, index, load, details=load))
        return out

    def network_input(self, images: np.ndarray, cfg: RunConfig) -> np.ndarray:
        size = self.input_size(cfg)
        if images.shape[1] == size:
            return images
        return np.stack([cv2.resize(t, (size, size), interpolation=cv2.INTER_AREA) for t in images])

    def augment(self, image: np.ndarray, rng: np.random.Generator, cfg: RunConfig) -> np.ndarray:
        """Finetune: HED stain, resolution and defocus jitter (:mod:`radiopath.slides.augment`) of a
        backbone input, a random 90° rotation and a left-right flip."""
        mpp = float(cfg.cytology.tiling.target_mpp) * cfg.cytology.tiling.tile_size / image.shape[0]
        return tile_augment.augment_tile(image, rng, cfg.cytology.augment, mpp, orient=True)

    def augment_instances(self, images: np.ndarray, rng: np.random.Generator, cfg: RunConfig) -> np.ndarray:
        """Features mode: the slide's tiles at the tiling resolution, augmented (no reorientation:
        the frozen backbone's pooled features barely change with it)."""
        return tile_augment.augment_tiles(
            images, rng, cfg.cytology.augment, float(cfg.cytology.tiling.target_mpp)
        )

    def augment_details(self, details: Any, rng: np.random.Generator, cfg: RunConfig) -> np.ndarray:
        """The tiles pathomics measures are the same tiles: augmented alike."""
        return self.augment_instances(np.asarray(details), rng, cfg)

    def shift_report(
        self, table: pd.DataFrame, state: Mapping[str, Any], prepared: Mapping[int, pd.DataFrame]
    ) -> tuple[pd.DataFrame, list[str]]:
        """Per center, its slides' sharpness against the development slides' (state ``sharpness``)."""
        ref = state.get("sharpness")
        if not ref or not prepared:
            return pd.DataFrame(), []
        ids = table["patient_id"].astype(str).tolist()
        centers = table["center"].astype(str).tolist()
        slides = {ids[i]: rows for i, rows in prepared.items()}
        out = sharpness.center_sharpness(
            sharpness.SharpnessState.from_dict(ref), slides, {ids[i]: centers[i] for i in prepared}
        )
        return out, sharpness.sharpness_warnings(out)

    def describe_state(self, state: Mapping[str, Any]) -> str:
        stain = state.get("stain")
        if not stain:
            return "no stain normalisation"
        return f"{stain['method'].capitalize()} stain normalisation to development tiles"


def _read_tiles(slide: str, rows: pd.DataFrame, normalizer: Any) -> np.ndarray:
    """A slide's tiles ``(K, T, T, 3)`` at the tiling resolution, stain-normalised when fitted."""
    patches = read_tiles(slide, rows)
    if normalizer is not None:
        patches = np.stack([normalizer.transform(p) for p in patches])
    return patches
