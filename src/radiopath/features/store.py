"""A cohort's extracted features and how they were made: the ``FEATS/`` artifact.

``radiopath extract`` writes, and ``radiopath train --features`` reads::

    FEATS/
      config.yaml          the RunConfig the features were made with
      features.json        family key per modality, dimensions, counts, code versions, cohort key
      preprocessing.json   the fitted preprocessing (development cohort only)
      index.parquet        one row per instance: patient_id, modality, slot, view or tile
                           coordinates (rank, x, y, level, size), group (content key), row, flags
      sources.parquet      per patient and modality, the content key of its input files
      shift.parquet        per modality and center, the acquisition check against development
      <modality>.safetensors   the features, (instances, D) float32, rows as in the index
      <modality>.augmented.safetensors   the augmented passes, (passes, instances, D) float32
                           (the clean features where a group has none: external patients)

The folder is built under a temporary name and moved into place whole. ``train --features``
checks that the folder was made from the same cohort (patients, centers, cohorts and file
contents) and with the same extraction options before it trusts a single number.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from radiopath.errors import ConfigError, OutputExistsError
from radiopath.features.preprocessing import Preprocessing
from radiopath.io.atomic import atomic_dir
from radiopath.io.fingerprint import digest
from radiopath.modalities import MODALITIES, ImageModality, VectorModality
from radiopath.models.inputs import PatientInputs
from radiopath.run_config import RunConfig


@dataclass(frozen=True)
class Block:
    """The columns one feature family fills in a modality's feature matrix."""

    family: str
    start: int
    stop: int
    names: list[str]

    def to_dict(self) -> dict[str, Any]:
        return {"family": self.family, "start": self.start, "stop": self.stop, "names": self.names}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Block:
        return cls(str(d["family"]), int(d["start"]), int(d["stop"]), [str(n) for n in d["names"]])


INDEX_COLUMNS = [
    "patient_id",
    "modality",
    "slot",
    "group",
    "row",
    "view",
    "rank",
    "x",
    "y",
    "level",
    "size",
    "flags",
]
FEATURES_FORMAT = 3


@dataclass
class FeatureSet:
    """Features of every instance of a cohort, with the state and keys that made them."""

    config: RunConfig
    preprocessing: Preprocessing
    index: pd.DataFrame
    features: dict[str, np.ndarray]
    families: dict[str, dict[str, str]]  # modality → family → cache key
    sources: pd.DataFrame
    stats: dict[str, int] = field(default_factory=dict)
    blocks: dict[str, list[Block]] = field(default_factory=dict)  # modality → its families' columns
    #: modality → (passes, instances, D): the augmented passes (train.augment_passes)
    augmented: dict[str, np.ndarray] = field(default_factory=dict)
    #: per modality and center, the acquisition check (``ImageModality.shift_report``)
    shift: pd.DataFrame = field(default_factory=pd.DataFrame)

    # -- assembling model inputs -----------------------------------------------------------

    def inputs(self, table: pd.DataFrame) -> PatientInputs:
        """Dense per-patient arrays for the patients of ``table`` (in its order).

        Image modalities come from the stored features; vector modalities (clinical) are
        encoded from ``table`` with the saved state.
        """
        cfg = self.config
        ids = table["patient_id"].astype(str).to_numpy()
        pos = {pid: i for i, pid in enumerate(ids)}
        arrays: dict[str, np.ndarray] = {}
        augmented: dict[str, np.ndarray] = {}
        clinical_columns: list[str] = []
        for key, m in MODALITIES.items():
            if isinstance(m, ImageModality) and key in self.features:
                feats = self.features[key]
                passes = self.augmented.get(key)
                n_max = m.max_instances(cfg)
                x = np.zeros((len(ids), n_max, feats.shape[1]), np.float32)
                xa = (
                    np.zeros((len(passes), len(ids), n_max, feats.shape[1]), np.float32)
                    if passes is not None
                    else None
                )
                mask = np.zeros((len(ids), n_max), bool)
                rows = self.index[self.index["modality"] == key]
                for pid, slot, row in zip(rows["patient_id"], rows["slot"], rows["row"], strict=True):
                    i = pos.get(str(pid))
                    if i is not None and slot < n_max:
                        x[i, slot] = feats[row]
                        mask[i, slot] = True
                        if xa is not None:
                            xa[:, i, slot] = passes[:, row]  # type: ignore[index]
                arrays.update({key: x, f"{key}_mask": mask})
                if xa is not None:
                    augmented[key] = xa
            elif isinstance(m, VectorModality) and key in self.preprocessing.states:
                matrix, known, names = m.apply(self.preprocessing.state(key), table)
                if names:
                    arrays.update({key: matrix, f"{key}_mask": known})
                    clinical_columns = names
        label = table["lnm"].astype("Float64").to_numpy(dtype=float, na_value=np.nan)
        return PatientInputs(
            ids,
            table["center"].astype(str).to_numpy(),
            table["cohort"].astype(str).to_numpy(),
            label,
            arrays,
            clinical_columns,
            {m: [(b.family, b.start, b.stop) for b in bl] for m, bl in self.blocks.items()},
            {
                **{m: self.feature_names(m) for m in self.features},
                **({"clinical": clinical_columns} if clinical_columns else {}),
            },
            augmented,
        )

    def feature_names(self, modality: str) -> list[str]:
        """Column names of ``modality``'s matrix (``family:name``)."""
        return [f"{b.family}:{n}" for b in self.blocks.get(modality, []) for n in b.names]

    def flags(self) -> pd.DataFrame:
        """Instances with notes from preprocessing (ultrasound flags): patient_id, modality, view, flags."""
        flagged = self.index[self.index["flags"].astype(str) != ""]
        return flagged[["patient_id", "modality", "view", "flags"]].reset_index(drop=True)

    def cohort_key(self) -> str:
        return cohort_key(self.sources)

    # -- files -----------------------------------------------------------------------------

    def save(self, folder: str | Path) -> Path:
        """Write the folder (see the module docstring) atomically; replaces an earlier FEATS."""
        from safetensors.numpy import save_file

        folder = Path(folder)
        check_output(folder)
        with atomic_dir(folder, overwrite=True) as tmp:
            self.config.to_yaml(tmp / "config.yaml")
            self.preprocessing.save(tmp / "preprocessing.json")
            self.index.to_parquet(tmp / "index.parquet", index=False)
            self.sources.to_parquet(tmp / "sources.parquet", index=False)
            self.shift.to_parquet(tmp / "shift.parquet", index=False)
            for key, value in self.features.items():
                save_file(
                    {"features": np.ascontiguousarray(value, np.float32)}, str(tmp / f"{key}.safetensors")
                )
            for key, value in self.augmented.items():
                save_file(
                    {"features": np.ascontiguousarray(value, np.float32)},
                    str(tmp / f"{key}.augmented.safetensors"),
                )
            meta = {
                "format": FEATURES_FORMAT,
                "families": self.families,
                "dims": {k: int(v.shape[1]) for k, v in self.features.items()},
                "instances": {k: len(v) for k, v in self.features.items()},
                "patients": len(self.sources),
                "cohort_key": self.cohort_key(),
                "stats": self.stats,
                "blocks": {m: [b.to_dict() for b in bl] for m, bl in self.blocks.items()},
                "augmented_passes": {k: int(v.shape[0]) for k, v in self.augmented.items()},
            }
            (tmp / "features.json").write_text(json.dumps(meta, indent=1), encoding="utf-8")
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> FeatureSet:
        """Read a folder written by :meth:`save`.

        Raises:
            ConfigError: not a finished features folder, or a damaged one.
        """
        from safetensors import SafetensorError
        from safetensors.numpy import load_file

        folder = Path(folder)
        if not is_feature_folder(folder):
            raise ConfigError(
                f"{folder} is not a features folder (no features.json): run `radiopath extract MANIFEST "
                f"--out {folder}` first, or leave out --features"
            )
        try:
            meta = json.loads((folder / "features.json").read_text(encoding="utf-8"))
            if meta.get("format") != FEATURES_FORMAT:
                raise ConfigError(
                    f"{folder} was written by another radiopath (format {meta.get('format')}); extract again"
                )
            features = {k: load_file(str(folder / f"{k}.safetensors"))["features"] for k in meta["dims"]}
            augmented = {
                k: load_file(str(folder / f"{k}.augmented.safetensors"))["features"]
                for k in meta.get("augmented_passes", {})
            }
            index = pd.read_parquet(folder / "index.parquet")
            sources = pd.read_parquet(folder / "sources.parquet")
            shift = pd.read_parquet(folder / "shift.parquet")
        except (OSError, ValueError, KeyError, SafetensorError) as exc:
            raise ConfigError(
                f"{folder}: damaged features folder ({exc}); run `radiopath extract` again"
            ) from None
        return cls(
            RunConfig.from_yaml(folder / "config.yaml"),
            Preprocessing.load(folder / "preprocessing.json"),
            index,
            features,
            {k: dict(v) for k, v in meta["families"].items()},
            sources,
            dict(meta.get("stats", {})),
            {m: [Block.from_dict(b) for b in bl] for m, bl in meta.get("blocks", {}).items()},
            augmented,
            shift,
        )


def check_output(folder: str | Path) -> None:
    """Refuse an output that is a file or a folder of something else (never written over).

    Raises:
        OutputExistsError: naming the folder and the fix.
    """
    folder = Path(folder)
    if folder.exists() and (not folder.is_dir() or (any(folder.iterdir()) and not is_feature_folder(folder))):
        raise OutputExistsError(
            f"{folder} exists and is not a features folder of `radiopath extract`; choose another --out"
        )


def is_feature_folder(folder: Path) -> bool:
    return (folder / "features.json").is_file()


def source_table(table: pd.DataFrame, modalities: list[str]) -> pd.DataFrame:
    """Per patient: id, center, cohort and each image modality's input content key."""
    out = pd.DataFrame(
        {
            "patient_id": table["patient_id"].astype(str).to_numpy(),
            "center": table["center"].astype(str).to_numpy(),
            "cohort": table["cohort"].astype(str).to_numpy(),
        }
    )
    for key in modalities:
        out[key] = MODALITIES[key].source_keys(table)
    return out


def cohort_key(sources: pd.DataFrame) -> str:
    """Digest of who is in the cohort, where and with which input files (not of the labels)."""
    ordered = sources.sort_values("patient_id").astype(object).where(sources.notna(), None)
    return digest(ordered.columns.tolist(), ordered.to_numpy().tolist())


def check_same_cohort(stored: pd.DataFrame, current: pd.DataFrame, where: str) -> None:
    """Raise a ConfigError naming the patients whose inputs differ between two source tables."""
    if cohort_key(stored) == cohort_key(current):
        return
    a = stored.set_index("patient_id").astype(object)
    b = current.set_index("patient_id").astype(object)
    problems = [f"{p}: not in {where}" for p in b.index.difference(a.index)[:10]]
    problems += [f"{p}: in {where} but not in the manifest" for p in a.index.difference(b.index)[:10]]
    for pid in b.index.intersection(a.index):
        ra, rb = a.loc[pid], b.loc[pid]
        diff = [c for c in b.columns if c in a.columns and _norm(ra[c]) != _norm(rb[c])]
        if diff:
            problems.append(f"{pid}: {', '.join(diff)} differ")
        if len(problems) >= 12:
            break
    lines = "\n".join(f"  - {p}" for p in problems)
    raise ConfigError(
        f"{where} was made from another cohort (patients, centers, cohorts or input files differ):\n{lines}\n"
        "run `radiopath extract` again on this manifest, or leave out --features"
    )


def _norm(v: Any) -> Any:
    return None if v is None or (isinstance(v, float) and np.isnan(v)) else v


def options_diff(a: Mapping[str, Any], b: Mapping[str, Any], prefix: str = "") -> list[str]:
    """``key: old -> new`` for every leaf that differs between two nested mappings."""
    out = []
    for k in sorted(set(a) | set(b)):
        va, vb = a.get(k), b.get(k)
        if isinstance(va, Mapping) and isinstance(vb, Mapping):
            out += options_diff(va, vb, f"{prefix}{k}.")
        elif va != vb:
            out.append(f"{prefix}{k}: {va!r} -> {vb!r}")
    return out
