"""The study's stages as functions of a manifest: what ``radiopath extract`` runs.

``radiopath tile`` is :func:`radiopath.slides.tile_cohort`; ``radiopath train`` is
:func:`radiopath.train.run.train_run`; this module adds the extraction stage on a manifest:
validate, check the options, fit the preprocessing on the development cohort, extract, and
write ``FEATS/`` — checked before anything is written.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from radiopath.cohort import Cohort
from radiopath.compute import plan
from radiopath.features.cache import default_cache_dir
from radiopath.features.extract import extract_stage, image_modalities_present
from radiopath.features.store import FeatureSet, check_output
from radiopath.modalities import MODALITIES, ImageModality, StageContext
from radiopath.preflight import check_backbones, check_tile_folder
from radiopath.run_config import RunConfig

Say = Callable[[str], None]
Progress = Callable[[str, int, int], None]


def extract_cohort(
    manifest: str | Path,
    out: str | Path,
    cfg: RunConfig | None = None,
    *,
    tiles: str | Path | None = None,
    mpp_table: str | Path | None = None,
    say: Say | None = None,
    progress: Progress | None = None,
) -> FeatureSet:
    """``radiopath extract``: the features of every view and tile of ``manifest`` → ``out``.

    Raises:
        ManifestError: the manifest has errors.
        ConfigError: an unknown backbone, unusable weights, or a tile folder that does not
            match (before anything is written).
    """
    say = say or (lambda _m: None)
    cfg = cfg or RunConfig()
    check_output(out)
    cohort = Cohort.from_manifest(manifest)
    used = [
        m for k in image_modalities_present(cohort.table) if isinstance(m := MODALITIES[k], ImageModality)
    ]
    check_backbones(cfg, used)
    if tiles is not None:
        check_tile_folder(tiles)
    compute = plan(cfg.train.device, cfg.train.precision, cfg.train.channels_last)
    say(f"compute: {compute.describe()}")
    root = Path(cfg.cache_dir) if cfg.cache_dir else default_cache_dir()
    ctx = StageContext(root, Path(tiles) if tiles else None, mpp_table, workers=os.cpu_count() or 1, say=say)
    return extract_stage(cohort.table, out, cfg, compute, ctx, progress)
