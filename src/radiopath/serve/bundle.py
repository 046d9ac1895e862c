"""A model bundle: a finished run made into a versioned, self-describing, verifiable folder.

``radiopath export RUN --out BUNDLE`` writes (:mod:`radiopath.serve.export`)::

    BUNDLE/
      configs/metadata.json       what the model is, its inputs and outputs, versions, intended
                                  use, metrics, and the sha256 of every other file (MONAI-style)
      configs/config.yaml         the run's RunConfig (cache_dir cleared)
      configs/inputs.json         how model inputs are made (mode, dimensions, precision)
      configs/preprocessing.json  the preprocessing fitted on the development cohort
      configs/thresholds.json     each model's frozen threshold
      models/backbones/<backbone>.safetensors   features mode: each frozen backbone, once
      models/<model>/fold<k>.safetensors        each fold model's weights
      models/onnx/<backbone>.onnx               with --onnx: each backbone (fp32, fixed batch)
      models/onnx/<model>/fold<k>.onnx          with --onnx: each fold's head (fp32)
      docs/README.md              intended use, inputs, how to run, the validation metrics

:class:`Bundle` is a :class:`radiopath.runs.Run` whose files live in that layout, so a bundle
scores patients with exactly the code that scored the study's external centers
(:meth:`Run.predict`). Opening one first verifies it (:func:`verify_bundle`): the metadata
parses and has a format this radiopath reads, every listed file is present with its sha256,
no unlisted file is there, and the bundle was not made by a newer radiopath. Nothing is ever
unpickled: weights are safetensors, the rest JSON or YAML, ONNX graphs are protobuf data.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch

from radiopath.compute import ComputePlan
from radiopath.errors import ConfigError
from radiopath.features.extract import Backbones
from radiopath.io.fingerprint import file_sha256
from radiopath.models.model import RadiopathModel
from radiopath.run_config import RunConfig
from radiopath.runs import layout
from radiopath.runs.run import Run

#: Bundle format this radiopath writes and reads; bumped when the layout's meaning changes.
BUNDLE_FORMAT = 1
METADATA = "configs/metadata.json"
CONFIGS = "configs"
MODELS = "models"
DOCS = "docs"
RUNTIMES = ("torch", "onnx")


class BundleError(ConfigError):
    """A bundle that cannot be trusted or used: not a bundle, tampered, incomplete, incompatible."""


def fingerprint(files: dict[str, str]) -> str:
    """The bundle's identity: sha256 over every file's name and sha256 (sorted)."""
    text = json.dumps(sorted(files.items()), separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def version_tuple(version: str) -> tuple[int, ...]:
    """``"0.1.0"`` → ``(0, 1, 0)``; a pre-release or local tail ends it (``2.4.1+cu130`` → (2, 4, 1))."""
    out: list[int] = []
    for part in version.split("+")[0].split("."):
        digits = part[: len(part) - len(part.lstrip("0123456789"))]
        if not digits:
            break
        out.append(int(digits))
        if digits != part:
            break
    return tuple(out)


def listed_files(folder: Path) -> list[str]:
    """Every file under ``folder`` but the metadata and hidden files, as POSIX relative paths."""
    out = []
    for p in sorted(folder.rglob("*")):
        rel = p.relative_to(folder).as_posix()
        if p.is_file() and rel != METADATA and not any(part.startswith(".") for part in Path(rel).parts):
            out.append(rel)
    return out


def read_metadata(folder: str | Path) -> dict[str, Any]:
    """``configs/metadata.json`` of a bundle, parsed (not verified).

    Raises:
        BundleError: not a bundle folder, or the metadata is not JSON.
    """
    folder = Path(folder)
    path = folder / METADATA
    if not path.is_file():
        hint = (
            " (it is a run folder: make a bundle with `radiopath export RUN --out BUNDLE`)"
            if (folder / layout.CONFIG).is_file()
            else ""
        )
        raise BundleError(f"{folder} is not a model bundle: {METADATA} is missing{hint}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BundleError(f"{path}: not readable JSON ({exc}); export the bundle again") from None
    if not isinstance(data, dict):
        raise BundleError(f"{path}: expected a JSON object; export the bundle again")
    return data


def verify_bundle(folder: str | Path) -> dict[str, Any]:
    """Check a bundle before anything in it is used; return its metadata.

    Raises:
        BundleError: naming what is wrong — not a bundle, a format or radiopath version this
            radiopath cannot read, a listed file missing (incomplete copy), a file whose sha256
            differs (damaged or tampered), a file that is not listed, or a fingerprint that does
            not match the file list.
    """
    from radiopath import __version__

    folder = Path(folder)
    meta = read_metadata(folder)
    where = folder / METADATA
    fmt = meta.get("format")
    if fmt != BUNDLE_FORMAT:
        raise BundleError(
            f"{where}: bundle format {fmt!r}; this radiopath {__version__} reads format {BUNDLE_FORMAT}. "
            f"Install the radiopath version that made it ({meta.get('radiopath_version', 'unknown')}) "
            "or export the run again with this one"
        )
    made_by = str(meta.get("radiopath_version", ""))
    if not made_by or version_tuple(made_by) > version_tuple(__version__):
        raise BundleError(
            f"{where}: made by radiopath {made_by or '(unknown)'}, newer than this radiopath {__version__}; "
            f"upgrade radiopath to at least {made_by or 'the exporting version'}"
        )
    files = meta.get("files")
    if not isinstance(files, dict) or not files:
        raise BundleError(f"{where}: no file list ('files'); export the bundle again")
    missing = [f for f in files if not (folder / f).is_file()]
    if missing:
        raise BundleError(
            f"{folder}: incomplete bundle, {len(missing)} listed file(s) missing ({', '.join(missing[:4])}); "
            "copy the whole folder again"
        )
    bad = [f for f, sha in files.items() if file_sha256(folder / f) != sha]
    if bad:
        raise BundleError(
            f"{folder}: {', '.join(bad[:4])} differ from the sha256 in {METADATA} (damaged or modified); "
            "copy the bundle again from its source"
        )
    extra = [f for f in listed_files(folder) if f not in files]
    if extra:
        raise BundleError(
            f"{folder}: file(s) not part of the bundle: {', '.join(extra[:4])}; remove them (a bundle is "
            "used only as exported)"
        )
    if meta.get("fingerprint") != fingerprint(files):
        raise BundleError(
            f"{where}: the fingerprint does not match the file list (the metadata was edited); "
            "copy the bundle again from its source"
        )
    return meta


class Bundle(Run):
    """A verified bundle, opened for scoring (see the module docstring). Use :func:`load_bundle`.

    Attributes:
        metadata: ``configs/metadata.json``.
        runtime: ``torch`` (default) or ``onnx`` (needs a bundle exported with ``--onnx`` and
            the ``onnxruntime`` package; fp32 only).
        warnings: differences between this installation and the one that validated the model
            (preprocessing code, library versions) — shown with every prediction.
    """

    def __init__(self, folder: str | Path, runtime: str = "torch") -> None:
        if runtime not in RUNTIMES:
            raise BundleError(f"runtime must be one of {RUNTIMES}, got {runtime!r}")
        self.metadata = verify_bundle(folder)
        self.runtime = runtime
        if runtime == "onnx" and not self.metadata.get("onnx"):
            raise BundleError(
                f"{folder} has no ONNX graphs; export it with `radiopath export RUN --out BUNDLE --onnx`, "
                "or use --runtime torch"
            )
        super().__init__(folder)
        self.warnings = compatibility_warnings(self.metadata)

    # -- Run's file seam ---------------------------------------------------------------------------

    def file(self, name: str) -> Path:
        return self.folder / CONFIGS / name

    def read_config(self) -> RunConfig:
        cfg = RunConfig.from_yaml(self.file(layout.CONFIG))
        cfg.cache_dir = None
        backbones = self.metadata.get("backbones") or []
        if backbones:  # features mode: the frozen backbones come from the bundle
            cfg.model.weights = str(self.folder / backbones[0]["file"])
        return cfg

    def fold_weights(self, model: str) -> list[Path]:
        entry = self.model_entry(model)
        return [self.folder / f for f in entry["weights"]]

    def backbones(self, compute: ComputePlan) -> Backbones:
        if compute not in self._backbones:
            weights = {b["name"]: str(self.folder / b["file"]) for b in self.metadata.get("backbones") or []}
            if self.runtime == "onnx":
                from radiopath.serve.onnx import OnnxBackbones

                onnx = {b["name"]: str(self.folder / b["onnx"]) for b in self.metadata["backbones"]}
                self._backbones[compute] = OnnxBackbones(self.config, compute, weights, onnx)
            else:
                self._backbones[compute] = Backbones(self.config, compute, weights)
        return self._backbones[compute]

    def compute(self, device: str | None = None, precision: str = "auto") -> ComputePlan:
        """As :meth:`Run.compute`; the ONNX runtime is fp32 on the CPU only."""
        if self.runtime == "onnx":
            if precision == "bf16":
                raise BundleError("the ONNX runtime computes in fp32: use --precision fp32 (or auto)")
            if device not in (None, "auto", "cpu"):
                raise BundleError(
                    "the ONNX runtime runs on the CPU here: use --device cpu (or --runtime torch)"
                )
            return super().compute("cpu", "fp32")
        return super().compute(device or "auto", precision)

    def fold_models(self, model: str, device: str | torch.device = "cpu") -> list[RadiopathModel]:
        if self.runtime != "onnx":
            return super().fold_models(model, device)
        key = (model, "onnx")
        if key not in self._models:
            from radiopath.serve.onnx import OnnxHead

            entry = self.model_entry(model)
            spec = self.spec(model)
            self._models[key] = [OnnxHead(spec, self.folder / f) for f in entry["onnx"]]  # type: ignore[misc]
        return self._models[key]

    # -- what the bundle says about itself ----------------------------------------------------------

    @property
    def models(self) -> list[str]:
        """The bundled models, the primary model first."""
        return [m["name"] for m in self.metadata["models"]]

    @property
    def primary_model(self) -> str:
        return str(self.metadata["primary_model"])

    @property
    def version(self) -> str:
        return str(self.metadata.get("version", ""))

    @property
    def fingerprint(self) -> str:
        return str(self.metadata["fingerprint"])

    def model_entry(self, model: str) -> dict[str, Any]:
        for entry in self.metadata["models"]:
            if entry["name"] == model:
                return dict(entry)
        raise BundleError(f"bundle {self.folder} has no model '{model}'; it has {self.models}")

    @property
    def predictions(self) -> Any:  # a bundle carries no patient data
        raise BundleError("a bundle carries no study predictions (no patient data); open the run folder")


def compatibility_warnings(meta: dict[str, Any]) -> list[str]:
    """What differs between this installation and the one the bundle was validated with."""
    import torch as _torch

    from radiopath import __version__
    from radiopath.features.cache import preprocessing_code_version
    from radiopath.features.deep import DEEP_CODE
    from radiopath.io.fingerprint import source_digest

    out = []
    code = meta.get("code", {})
    if code.get("preprocessing") and code["preprocessing"] != preprocessing_code_version():
        out.append(
            "this radiopath's image preprocessing code differs from the one the model was validated with; "
            "probabilities may differ from the validated model"
        )
    if code.get("deep") and code["deep"] != source_digest(*DEEP_CODE):
        out.append("this radiopath's backbone code differs from the one the model was validated with")
    made = str(meta.get("radiopath_version", ""))
    if made and made != __version__:
        out.append(f"exported by radiopath {made}, running radiopath {__version__}")
    torch_made = str(meta.get("pytorch_version", ""))
    if torch_made and version_tuple(torch_made)[:2] != version_tuple(_torch.__version__)[:2]:
        out.append(f"exported with torch {torch_made}, running torch {_torch.__version__}")
    return out


def load_bundle(folder: str | Path, runtime: str = "torch") -> Bundle:
    """Verify and open a bundle written by ``radiopath export`` (see :class:`Bundle`).

    Raises:
        BundleError: not a bundle, tampered, incomplete or version-incompatible (names the file).
    """
    return Bundle(folder, runtime)
