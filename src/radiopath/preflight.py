"""Everything a run can check before it writes a single file.

A typo in an option, a weights file that does not exist or does not fit, a model that needs
slides nobody has, a development cohort too small for its folds, a features folder made
from another cohort — each is a :class:`~radiopath.errors.ConfigError` (exit status 2) that
names the option, file or patients and the fix, raised before the run folder exists, so the
corrected command starts cleanly instead of meeting a half-written folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from radiopath.cohort import Cohort
from radiopath.cohort.schema import DEVELOPMENT
from radiopath.compute import ComputePlan
from radiopath.errors import ConfigError
from radiopath.features.extract import family_keys
from radiopath.features.families import family_sections
from radiopath.features.store import FeatureSet, check_same_cohort, options_diff, source_table
from radiopath.modalities import MODALITIES, ImageModality
from radiopath.models.backbones import check_backbone_name
from radiopath.models.weights import IMAGENET, NONE
from radiopath.run_config import RunConfig


def check_options(cfg: RunConfig, *, tiles: str | Path | None = None) -> None:
    """What needs no cohort: backbone names, the weights, the feature set against the mode, a
    tile folder (before the manifest is read)."""
    check_backbones(cfg, _image_modalities_used(cfg))
    if cfg.train.mode == "finetune":
        handcrafted = [
            m.label for m in _image_modalities_used(cfg) if cfg.model.feature_set_of(m.key) != "deep"
        ]
        signatures = [s.name for s in cfg.model.specs() if s.head == "signature"]
        if handcrafted or signatures:
            raise ConfigError(
                "finetune mode trains backbones on images; "
                + (f"feature_set must be deep (it is not for {handcrafted})" if handcrafted else "")
                + ("; " if handcrafted and signatures else "")
                + (f"signature models need features mode ({signatures})" if signatures else "")
                + ": use train.mode features, or drop them"
            )
    check_harmonization(cfg)
    if tiles is not None:
        check_tile_folder(tiles)


def check_harmonization(cfg: RunConfig) -> None:
    """``harmonization.method`` fits the mode: features are harmonised in features mode, BatchNorm
    statistics adapted (AdaBN) in finetune mode; never an option that would be silently ignored."""
    method, mode = cfg.harmonization.method, cfg.train.mode
    if method == "adabn" and mode != "finetune":
        raise ConfigError(
            "harmonization.method adabn re-estimates the BatchNorm statistics of trained backbones, but "
            "train.mode is features (frozen backbones, cached features): use standardize or combat, or "
            "train.mode finetune"
        )
    if method in ("standardize", "combat") and mode != "features":
        raise ConfigError(
            f"harmonization.method {method} harmonises cached features, but train.mode is {mode}: use "
            "adabn (finetune mode), or train.mode features"
        )


def check_run(
    cfg: RunConfig, cohort: Cohort, compute: ComputePlan, *, features: FeatureSet | None = None
) -> None:
    """What needs the cohort: models against its inputs, folds against its classes, a features folder."""
    table = cohort.table
    check_models_have_inputs(cfg, table)
    check_folds(cfg, table)
    if features is not None:
        check_features(features, cfg, table, compute)


def _image_modalities_used(cfg: RunConfig) -> list[ImageModality]:
    keys = {m for spec in cfg.model.specs() for m in spec.modalities}
    return [m for k, m in MODALITIES.items() if k in keys and isinstance(m, ImageModality)]


def check_backbones(cfg: RunConfig, modalities: list[ImageModality]) -> None:
    """Registered backbone names; weights that exist, are readable and fit; ImageNet reachable."""
    names = sorted({m.backbone(cfg) for m in modalities})
    for name in names:
        check_backbone_name(name)
    weights = cfg.model.weights
    if weights == NONE:
        return
    if weights == IMAGENET:
        for name in names:
            if name.startswith("timm:"):
                raise ConfigError("timm backbones load pretrained weights from a file: pass --weights PATH")
            import torchvision.models as tvm

            from radiopath.models.weights import imagenet_weights

            imagenet_weights(tvm.get_model_weights(name))
        return
    path = Path(weights)
    if not path.is_file():
        raise ConfigError(
            f"weights file {path} not found (model.weights / --weights); give an existing .safetensors or "
            ".pth file, 'imagenet', or 'none'"
        )
    from radiopath.models.backbones import create_backbone

    for name in names:  # builds the backbone once: an unreadable or ill-fitting file fails here
        create_backbone(name, weights)


def check_models_have_inputs(cfg: RunConfig, table: pd.DataFrame) -> None:
    """Every modality a model needs is present for at least one patient."""
    problems = []
    for spec in cfg.model.specs():
        for key in spec.modalities:
            if not MODALITIES[key].present(table).any():
                problems.append(
                    f"model '{spec.name}' needs {MODALITIES[key].label} inputs, but no patient has them"
                )
    if problems:
        raise ConfigError(
            "; ".join(problems)
            + "; drop those models from model.models (--models) or add the inputs to the manifest"
        )


def check_folds(cfg: RunConfig, table: pd.DataFrame) -> None:
    """Enough labelled development patients of each class for ``protocol.n_folds`` folds."""
    k = cfg.protocol.n_folds
    dev = table[(table["cohort"].astype(str) == DEVELOPMENT) & table["lnm"].notna()]
    labels = dev["lnm"].astype(int).to_numpy()
    counts = {c: int((labels == c).sum()) for c in (0, 1)}
    if min(counts.values()) < k:
        raise ConfigError(
            f"{k}-fold cross-validation needs at least {k} labelled development patients of each class; "
            f"the cohort has {counts[0]} without and {counts[1]} with metastasis: add patients or lower "
            "protocol.n_folds (--folds)"
        )
    per_fold_train = {c: n - int(np.ceil(n / k)) for c, n in counts.items()}
    if min(per_fold_train.values()) < 2:
        raise ConfigError(
            f"with {k} folds some training folds keep fewer than 2 patients of a class (counts {counts}); "
            "lower protocol.n_folds or add patients"
        )
    inner = cfg.model.signature.inner_folds
    if any(s.head == "signature" for s in cfg.model.specs()) and min(per_fold_train.values()) < inner:
        raise ConfigError(
            f"the signature's {inner}-fold inner cross-validation needs {inner} patients of each class in "
            f"every training fold; with {k} folds some keep only {min(per_fold_train.values())} (counts "
            f"{counts}): lower model.signature.inner_folds or protocol.n_folds, or add patients"
        )


#: The options that shape extracted features (a features folder must match them).
def extraction_options(cfg: RunConfig) -> dict[str, Any]:
    data = cfg.model_dump(mode="json")
    out: dict[str, Any] = {
        "model": {k: data["model"][k] for k in ("backbone", "cytology_backbone", "weights", "feature_set")},
        "train": {
            k: data["train"][k]
            for k in (
                "precision",
                "extract_batch_size",
                "channels_last",
                "compile",
                "device",
                "augment_passes",
            )
        },
    }
    for m in MODALITIES.values():
        if m.section:
            out[m.section] = data[m.section]
    for section in family_sections():
        out[section] = data[section]
    return out


def check_features(fs: FeatureSet, cfg: RunConfig, table: pd.DataFrame, compute: ComputePlan) -> None:
    """A features folder made with the same extraction options, from the same cohort."""
    if cfg.train.mode != "features":
        raise ConfigError("--features holds cached features, but train.mode is finetune: use --tiles instead")
    diff = options_diff(extraction_options(fs.config), extraction_options(cfg))
    if diff:
        raise ConfigError(
            "the features folder was extracted with other options: "
            + "; ".join(diff[:8])
            + "; run `radiopath extract` with this --config, or train with the folder's own config.yaml"
        )
    for key in fs.features:
        modality = MODALITIES[key]
        assert isinstance(modality, ImageModality)
        if fs.families.get(key) != family_keys(modality, cfg, compute):
            raise ConfigError(
                f"the {modality.label} features were made by another extractor (a changed weights file, "
                "another device or another version of the preprocessing code); run `radiopath extract` again"
            )
    check_same_cohort(fs.sources, source_table(table, list(fs.features)), "the features folder")


def check_tile_folder(tiles: str | Path) -> None:
    path = Path(tiles)
    if not (path / "tiles.parquet").is_file():
        raise ConfigError(
            f"{path} is not a finished `radiopath tile` folder (no tiles.parquet); run "
            f"`radiopath tile MANIFEST --out {path}` first, or leave out --tiles"
        )
