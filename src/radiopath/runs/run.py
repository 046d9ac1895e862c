"""Open a finished run folder and use it: its typed config, cohort, predictions, fitted
preprocessing and fold models, and scoring of new patients with the fold ensemble.

::

    from radiopath.runs import load_run

    run = load_run("runs/study1")
    run.config.protocol.primary_model        # typed RunConfig
    run.predictions                          # predictions.parquet
    run.preprocessing.state("us")            # what was fitted on the development cohort
    models = run.fold_models("fusion_concat")  # the five fold models, eval mode
    new = run.predict("new_patients.csv")    # one row per patient and model

:meth:`Run.predict` scores exactly as the protocol scored the external centers: the run's
saved preprocessing is applied (never refitted), features come from the same backbone in
the same precision and batch shape, and the probability is the mean of the fold models
(:func:`radiopath.models.inference.ensemble_proba`). Scoring the run's own external patients
therefore reproduces their rows of ``predictions.parquet``.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from radiopath.cohort import Cohort
from radiopath.compute import ComputePlan, plan
from radiopath.errors import ConfigError
from radiopath.features.cache import default_cache_dir
from radiopath.features.extract import Backbones, extract_features, load_images
from radiopath.features.preprocessing import Preprocessing
from radiopath.modalities import MODALITIES, ImageModality, StageContext
from radiopath.models import checkpoint as ckpt_io
from radiopath.models.factory import build_model
from radiopath.models.inference import ensemble_proba, modality_presence, usable_patients
from radiopath.models.inputs import PatientInputs
from radiopath.models.model import RadiopathModel
from radiopath.run_config import ModelSpec, RunConfig
from radiopath.runs import layout
from radiopath.shift.adabn import adapted_ensemble
from radiopath.shift.harmonize import HarmonizationState, harmonize

Say = Callable[[str], None]

#: Columns of :meth:`Run.predict`'s table.
PREDICT_COLUMNS = [
    "patient_id",
    "center",
    "cohort",
    "model",
    "prob",
    "threshold",
    "decision",
    "prob_sd",
    "prob_min",
    "prob_max",
    "n_folds",
    "modalities",
    "missing_modality",
]


@dataclass(frozen=True)
class InputsInfo:
    """``RUN/inputs.json``: how the run's model inputs were made."""

    mode: str
    in_dims: dict[str, int]
    families: dict[str, dict[str, str]]  # modality → feature family → cache key
    clinical_columns: list[str]
    amp: str  # "bf16" or "fp32": the backbones' precision in training and extraction
    blocks: dict[str, list[tuple[str, int, int]]]  # modality → (family, start, stop) columns
    feature_names: dict[str, list[str]]  # modality → column names (family:name)

    @classmethod
    def read(cls, run: Path) -> InputsInfo:
        return cls.read_file(run / layout.INPUTS)

    @classmethod
    def read_file(cls, path: Path) -> InputsInfo:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return cls(
                str(data["mode"]),
                {k: int(v) for k, v in data["in_dims"].items()},
                {k: dict(v) for k, v in data.get("families", {}).items()},
                list(data.get("clinical_columns", [])),
                str(data.get("amp", "fp32")),
                {k: [(str(f), int(a), int(b)) for f, a, b in v] for k, v in data.get("blocks", {}).items()},
                {k: list(v) for k, v in data.get("feature_names", {}).items()},
            )
        except (OSError, ValueError, KeyError) as exc:
            raise ConfigError(
                f"{path}: cannot read the run's input description ({exc}); is the run finished?"
            ) from None

    def to_dict(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "in_dims": self.in_dims,
            "families": self.families,
            "clinical_columns": self.clinical_columns,
            "amp": self.amp,
            "blocks": {k: [list(b) for b in v] for k, v in self.blocks.items()},
            "feature_names": self.feature_names,
        }


class Run:
    """A run folder opened read-only (see the module docstring). Use :func:`load_run`.

    A model bundle (:class:`radiopath.serve.Bundle`) is a :class:`Run` whose files live
    elsewhere: it overrides :meth:`file`, :meth:`read_config`, :meth:`fold_weights` and
    :meth:`backbones`, and scores patients with the same :meth:`predict`.
    """

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.config: RunConfig = self.read_config()
        self.info = InputsInfo.read_file(self.file(layout.INPUTS))
        self.preprocessing = Preprocessing.load(self.file(layout.PREPROCESSING))
        self._models: dict[tuple[str, str], list[RadiopathModel]] = {}
        self._backbones: dict[ComputePlan, Backbones] = {}
        #: what harmonisation did to the centers of the last scored table (none: not harmonised)
        self.last_harmonization: list[dict[str, Any]] = []
        #: the harmonisation state :meth:`inputs` last applied (its per-center adjustments)
        self.last_harmonization_state: HarmonizationState | None = None

    # -- where the files are (a bundle keeps them elsewhere) ---------------------------------

    def file(self, name: str) -> Path:
        """Where this run keeps the file called ``name`` in :mod:`radiopath.runs.layout`."""
        return self.folder / name

    def read_config(self) -> RunConfig:
        cfg_path = self.file(layout.CONFIG)
        if not cfg_path.is_file():
            raise ConfigError(
                f"{self.folder} is not a run folder (no {layout.CONFIG}); give the --out of `radiopath train`"
            )
        return RunConfig.from_yaml(cfg_path)

    def fold_weights(self, model: str) -> list[Path]:
        """The best-weights file of every fold of ``model``, in fold order.

        Raises:
            ConfigError: the model has no fold weights.
        """
        folders = sorted(
            (p for p in layout.model_dir(self.folder, model).glob("fold*") if (p / ckpt_io.BEST).is_file()),
            key=lambda p: int(p.name[4:]),
        )
        if not folders:
            raise ConfigError(
                f"{layout.model_dir(self.folder, model)} holds no fold weights; is the run finished?"
            )
        return [p / ckpt_io.BEST for p in folders]

    def backbones(self, compute: ComputePlan) -> Backbones:
        """The frozen backbones of features mode on ``compute``, built once and kept."""
        if compute not in self._backbones:
            self._backbones[compute] = Backbones(self.config, compute)
        return self._backbones[compute]

    # -- what the run holds -------------------------------------------------------------------

    @property
    def models(self) -> list[str]:
        """The models of the study, in the configured order."""
        return list(self.config.model.models)

    @property
    def primary_model(self) -> str:
        return self.config.primary_model()

    def spec(self, model: str) -> ModelSpec:
        """The :class:`ModelSpec` of ``model``.

        Raises:
            ConfigError: the run has no such model.
        """
        for spec in self.config.model.specs():
            if spec.name == model:
                return spec
        raise ConfigError(f"run {self.folder} has no model '{model}'; it has {self.models}")

    @cached_property
    def harmonization(self) -> HarmonizationState | None:
        """The run's harmonisation (``harmonization.method``): the development reference and the
        recorded per-center adjustments; None when the run was not harmonised. :meth:`predict`
        estimates each center of the scored table with at least ``min_patients`` patients from
        that table's own unlabelled features (recorded in :attr:`last_harmonization`)."""
        return HarmonizationState.load(self.file(layout.HARMONIZATION).parent)

    @cached_property
    def predictions(self) -> pd.DataFrame:
        path = self.folder / layout.PREDICTIONS
        if not path.is_file():
            raise ConfigError(
                f"{path} not found: the run is unfinished; finish it with `radiopath train --resume`"
            )
        return pd.read_parquet(path)

    @cached_property
    def thresholds(self) -> dict[str, float]:
        path = self.file(layout.THRESHOLDS)
        try:
            return {k: float(v) for k, v in json.loads(path.read_text(encoding="utf-8")).items()}
        except (OSError, ValueError) as exc:
            raise ConfigError(
                f"{path}: cannot read the frozen thresholds ({exc}); is the run finished?"
            ) from None

    @cached_property
    def cohort(self) -> pd.DataFrame:
        """The cohort as the run stored it (paths relative to :attr:`manifest`)."""
        return pd.read_parquet(self.folder / layout.COHORT)

    @cached_property
    def folds(self) -> pd.DataFrame:
        return pd.read_csv(self.folder / layout.FOLDS, dtype={"patient_id": str})

    @cached_property
    def provenance(self) -> dict[str, Any]:
        try:
            return dict(json.loads((self.folder / layout.PROVENANCE).read_text(encoding="utf-8")))
        except (OSError, ValueError):
            return {}

    @property
    def manifest(self) -> Path | None:
        """The manifest the run was trained on (as recorded in its provenance)."""
        m = self.provenance.get("manifest")
        return Path(m) if m else None

    def compute(self, device: str | None = None, precision: str = "auto") -> ComputePlan:
        """Where to score: ``device`` (default: the run's), the backbones in the run's own
        precision (``auto``) or in ``fp32``/``bf16``."""
        prec = self.info.amp if precision == "auto" else precision
        return plan(device or self.config.train.device, prec, self.config.train.channels_last)

    # -- models ---------------------------------------------------------------------------------

    def fold_models(self, model: str, device: str | torch.device = "cpu") -> list[RadiopathModel]:
        """The fold models of ``model`` with their best weights, in fold order, eval mode."""
        key = (model, str(device))
        if key not in self._models:
            spec = self.spec(model)
            out = []
            for path in self.fold_weights(model):
                m = build_model(
                    spec, self.config, self.info.in_dims, blocks=self.info.blocks, init_weights="none"
                )
                ckpt_io.load_weights(m, path)
                out.append(m.eval().to(device))
            self._models[key] = out
        return self._models[key]

    # -- scoring new patients -------------------------------------------------------------------

    def inputs(
        self,
        table: pd.DataFrame,
        compute: ComputePlan | None = None,
        *,
        cache_dir: str | Path | None = None,
        tiles: str | Path | None = None,
        mpp_table: Any = None,
        say: Say | None = None,
    ) -> PatientInputs:
        """Model inputs of ``table`` (a ``Cohort.table``) with the run's preprocessing applied."""
        compute = compute or self.compute()
        root = Path(cache_dir or self.config.cache_dir or default_cache_dir())
        ctx = StageContext(root, Path(tiles) if tiles else None, mpp_table, say=say or (lambda _m: None))
        if self.info.mode == "finetune":
            inputs, _, _ = load_images(table, self.config, ctx, preprocessing=self.preprocessing)
        else:
            fs = extract_features(
                table,
                self.config,
                compute,
                ctx,
                preprocessing=self.preprocessing,
                backbones=self.backbones(compute),
            )
            inputs = fs.inputs(table)
        _fill_absent(inputs, self.info, self.config)
        if self.harmonization is not None and self.info.mode == "features":
            state = copy.deepcopy(self.harmonization)
            inputs = harmonize(inputs, state, say)
            self.last_harmonization = state.record
            self.last_harmonization_state = state
        if "clinical" in inputs.arrays and inputs.clinical_columns != self.info.clinical_columns:
            raise ConfigError(
                f"clinical columns {inputs.clinical_columns} differ from the run's "
                f"{self.info.clinical_columns}"
            )
        return inputs

    def predict(
        self,
        source: str | Path | Cohort | pd.DataFrame,
        models: Sequence[str] | None = None,
        *,
        device: str | None = None,
        precision: str = "auto",
        cache_dir: str | Path | None = None,
        tiles: str | Path | None = None,
        mpp_table: Any = None,
        say: Say | None = None,
    ) -> pd.DataFrame:
        """Score patients with the fold ensemble of each model (default: every model).

        Args:
            source: a manifest path, a :class:`Cohort`, or a ``Cohort.table``.

        Returns:
            One row per patient and model (:data:`PREDICT_COLUMNS`): the ensemble probability,
            the frozen threshold and the decision at it, the spread of the fold models, and
            which modalities were present. Patients a model cannot score (a single-modality
            model without its modality) are left out for that model.
        """
        table = _table_of(source)
        compute = self.compute(device, precision)
        inputs = self.inputs(table, compute, cache_dir=cache_dir, tiles=tiles, mpp_table=mpp_table, say=say)
        frames = []
        for name in models or self.models:
            frames.append(self.score(name, inputs, compute))
        return (
            pd.concat(frames, ignore_index=True)[PREDICT_COLUMNS]
            if frames
            else pd.DataFrame(columns=PREDICT_COLUMNS)
        )

    def score(self, model: str, inputs: PatientInputs, compute: ComputePlan | None = None) -> pd.DataFrame:
        """:meth:`predict` for inputs already made (e.g. to score several models once).

        A finetune run with ``harmonization.method: adabn`` adapts every center of ``inputs`` with
        at least ``min_patients`` patients, as the protocol scored the external centers — a
        development center too, when it is scored here (the out-of-fold predictions were not);
        what was done is in :attr:`last_harmonization`."""
        compute = compute or self.compute()
        spec = self.spec(model)
        fold_models = self.fold_models(model, compute.device)
        for m in fold_models:
            m.backbone_amp = compute.amp_dtype
        idx = np.flatnonzero(usable_patients(spec.modalities, inputs))
        if self.config.harmonization.method == "adabn" and self.info.mode == "finetune":
            # as the protocol scored the external centers: AdaBN per center of this table
            mean, per_fold, self.last_harmonization = adapted_ensemble(
                fold_models, inputs, idx, compute.device, self.config.harmonization.min_patients
            )
        else:
            mean, per_fold = ensemble_proba(fold_models, inputs, idx, compute.device)
        seen, missing = modality_presence(spec.modalities, inputs, idx)
        threshold = self.thresholds[model]
        return pd.DataFrame(
            {
                "patient_id": inputs.patient_id[idx],
                "center": inputs.center[idx],
                "cohort": inputs.cohort[idx],
                "model": model,
                "prob": mean,
                "threshold": threshold,
                "decision": (mean >= threshold).astype(int),
                "prob_sd": per_fold.std(0) if len(per_fold) else np.nan,
                "prob_min": per_fold.min(0) if len(idx) else np.zeros(0),
                "prob_max": per_fold.max(0) if len(idx) else np.zeros(0),
                "n_folds": len(fold_models),
                "modalities": seen,
                "missing_modality": missing,
            }
        )


def load_run(folder: str | Path) -> Run:
    """Open a run folder written by ``radiopath train`` (see :class:`Run`).

    Raises:
        ConfigError: not a run folder, or an unfinished or damaged one (names the file).
    """
    return Run(folder)


def _fill_absent(inputs: PatientInputs, info: InputsInfo, cfg: RunConfig) -> None:
    """Give every image modality the run was trained on an array, all absent when no patient of
    the table has it (one new patient without a slide), so fusion models still score them."""
    n = len(inputs)
    for key, dim in info.in_dims.items():
        modality = MODALITIES.get(key)
        if not isinstance(modality, ImageModality) or key in inputs.arrays:
            continue
        k = modality.max_instances(cfg)
        if info.mode == "finetune":
            size = modality.input_size(cfg)
            inputs.arrays[key] = np.zeros((n, k, size, size, 3), np.uint8)
        else:
            inputs.arrays[key] = np.zeros((n, k, dim), np.float32)
        inputs.arrays[f"{key}_mask"] = np.zeros((n, k), bool)


def _table_of(source: str | Path | Cohort | pd.DataFrame) -> pd.DataFrame:
    if isinstance(source, Cohort):
        return source.table
    if isinstance(source, pd.DataFrame):
        return source
    return Cohort.from_manifest(source).table
