"""Scoring one uploaded patient: what every request of :mod:`radiopath.serve.app` shares.

:class:`Service` holds the verified bundle, a lock (one patient at a time uses the CPU cores),
the audit log and the upload limits. :meth:`Service.score` turns a received upload into a
one-row manifest inside the request's private folder and scores it with
:func:`radiopath.serve.predict.predict_manifest` — the code of ``radiopath predict`` — with a
feature cache inside that folder, so nothing derived from the patient outlives the request but
the audit record. Cytology without a recorded resolution takes the form's µm/px; a slide that
records its own keeps it.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from radiopath.errors import ImageReadError, RadiopathError
from radiopath.serve.audit import AuditLog
from radiopath.serve.bundle import Bundle
from radiopath.serve.predict import predict_manifest
from radiopath.serve.uploads import Upload, UploadError, label

log = logging.getLogger("radiopath.serve")
#: Placeholder patient id of a request (the page asks for no identifier).
PATIENT = "patient"
MODEL_LABELS = {
    "ultrasound": "Ultrasound only",
    "cytology": "Cytology only",
    "fusion_late": "Fusion (late)",
    "fusion_concat": "Fusion (concatenation)",
    "fusion_gated": "Fusion (gated attention)",
    "fusion_bilinear": "Fusion (bilinear)",
}
Explainer = Callable[[Bundle, Path, pd.DataFrame], list[dict[str, Any]]]


class ScoringError(RadiopathError):
    """The files were received but could not be scored (unreadable image, no resolution, …)."""

    def __init__(self, message: str, fix: str, field: str | None = None) -> None:
        self.message, self.fix, self.field = message, fix, field
        super().__init__(f"{message}; {fix}")


class Service:
    """The loaded bundle, its scoring lock and audit log: what every request shares."""

    def __init__(
        self,
        bundle: Bundle,
        *,
        precision: str = "auto",
        device: str | None = None,
        audit_log: str | Path = "radiopath-audit.jsonl",
        max_upload_mb: int = 2048,
        max_image_mb: int = 64,
        explainer: Explainer | None = None,
    ) -> None:
        self.bundle = bundle
        self.precision = precision
        self.device = device
        self.compute = bundle.compute(device, precision)
        self.audit = AuditLog(audit_log)
        self.max_bytes = max_upload_mb * 2**20
        self.file_limits = {k: max_image_mb * 2**20 for k in ("us_1", "us_2", "us_1_mask", "us_2_mask")}
        self.explainer = explainer
        self.lock = threading.Lock()

    def warm(self) -> None:
        """Build the backbones and load every fold model now, not on the first patient."""
        cfg = self.bundle.config
        if self.bundle.info.mode == "features":
            for b in self.bundle.metadata.get("backbones") or []:
                self.bundle.backbones(self.compute).get(b["name"])
        for m in self.bundle.models:
            self.bundle.fold_models(m, self.compute.device)
        log.info("bundle %s %s ready (%s, %s)", cfg.model.backbone, self.bundle.version, self.bundle.runtime,
                 self.compute.describe())  # fmt: skip

    # -- what the page shows before any upload ------------------------------------------------------

    def info(self) -> dict[str, Any]:
        meta = self.bundle.metadata
        inputs = meta.get("inputs", {})
        cyto = inputs.get("cytology") or {}
        return {
            "name": meta.get("name"),
            "version": meta.get("version"),
            "fingerprint": meta.get("fingerprint"),
            "created": meta.get("created"),
            "task": meta.get("task"),
            "intended_use": meta.get("intended_use"),
            "primary_model": self.bundle.primary_model,
            "models": [
                {
                    "name": m["name"],
                    "label": MODEL_LABELS.get(m["name"], m["name"]),
                    "modalities": m["modalities"],
                    "threshold": m["threshold"],
                    "n_folds": m["n_folds"],
                    "primary": m["primary"],
                }
                for m in meta["models"]
            ],
            "inputs": inputs,
            "eval_metrics": meta.get("eval_metrics", {}),
            "eval_metrics_note": meta.get("eval_metrics_note"),
            "warnings": list(self.bundle.warnings) + list(meta.get("warnings", [])),
            "runtime": self.bundle.runtime,
            "precision": "bf16" if self.compute.amp_dtype is not None else "fp32",
            "limits": {
                "max_upload_mb": self.max_bytes // 2**20,
                "max_image_mb": self.file_limits["us_1"] // 2**20,
            },
            "cytology_default_mpp": cyto.get("tile_mpp"),
            "explanations": self.explainer is not None,
        }

    # -- one patient --------------------------------------------------------------------------------

    def score(self, upload: Upload, request_id: str) -> dict[str, Any]:
        """Score a received upload (see the module docstring); audits success and failure."""
        start = time.perf_counter()
        hashes = {k: [f.sha256 for f in files] for k, files in upload.files.items()}
        base = {
            "request": request_id,
            "bundle": {"name": self.bundle.metadata.get("name"), "version": self.bundle.version,
                       "fingerprint": self.bundle.fingerprint},
            "runtime": self.bundle.runtime,
            "precision": "bf16" if self.compute.amp_dtype is not None else "fp32",
            "inputs_sha256": hashes,
        }  # fmt: skip
        try:
            answer = self._score(upload)
        except RadiopathError as exc:
            self.audit.append({**base, "outcome": "error", "error": type(exc).__name__})
            log.info("request %s: refused (%s), inputs %s", request_id, type(exc).__name__, _short(hashes))
            raise
        seconds = time.perf_counter() - start
        outputs = [
            {k: r[k] for k in ("model", "prob", "decision", "missing_modality")} for r in answer["results"]
        ]
        self.audit.append({**base, "outcome": "ok", "outputs": outputs, "seconds": round(seconds, 3)})
        log.info("request %s: scored in %.2f s, inputs %s", request_id, seconds, _short(hashes))
        return {"request_id": request_id, **answer, "bundle": base["bundle"], "runtime": base["runtime"],
                "precision": base["precision"], "seconds": round(seconds, 3)}  # fmt: skip

    def _score(self, upload: Upload) -> dict[str, Any]:
        files, folder = upload.files, upload.folder
        wanted = self.bundle.metadata.get("inputs", {})
        if not any(files.get(k) for k in ("us_1", "us_2", "cytology")):
            raise UploadError(
                "no images were uploaded", "choose ultrasound view 1 (and 2) and the cytology", 400, "us_1"
            )
        if files.get("us_2") and not files.get("us_1"):
            raise UploadError("view 2 was given without view 1", "put a single view in view 1", 400, "us_1")
        for key, modality in (("us_1", "ultrasound"), ("cytology", "cytology")):
            if files.get(key) and modality not in wanted:
                raise UploadError(f"this model takes no {modality}", f"leave the {modality} empty", 400, key)
        row: dict[str, Any] = {"patient_id": PATIENT, "center": "unknown", "cohort": "external", "lnm": ""}
        for view in ("us_1", "us_2"):
            row[view] = files[view][0].path.name if files.get(view) else ""
            mask = files.get(f"{view}_mask")
            row[f"{view}_mask"] = mask[0].path.name if mask else ""
            row[f"{view}_box"] = upload.text.get(f"{view}_box", "")
        mpp_table = None
        mpp_note = None
        if files.get("cytology"):
            path = folder / "cytology" if len(files["cytology"]) > 1 else files["cytology"][0].path
            row["cytology"] = path.relative_to(folder).as_posix()
            recorded = _recorded_mpp(path)
            if recorded is None:
                mpp = _form_mpp(upload.text.get("cytology_mpp", ""))
                mpp_table = {PATIENT: mpp}
                mpp_note = {"mpp": mpp, "source": "form"}
            else:
                mpp_note = {"mpp": recorded, "source": "file"}
        else:
            row["cytology"] = ""
        for key, value in upload.text.items():
            if key.startswith("clin_"):
                row[key] = value
        manifest = folder / "manifest.csv"
        pd.DataFrame([row]).to_csv(manifest, index=False)
        with self.lock:
            result = predict_manifest(
                self.bundle, manifest, device=self.device, precision=self.precision,
                cache_dir=folder / "cache", mpp_table=mpp_table,
            )  # fmt: skip
            explanations = (
                self.explainer(self.bundle, manifest, result.predictions)
                if self.explainer is not None and len(result.predictions)
                else None
            )
        if result.failures or not len(result.predictions):
            f = result.failures[0] if result.failures else None
            if f is None:
                raise ScoringError(
                    "no model could score these inputs", "upload the ultrasound views or the cytology"
                )
            text = _scrub(f.error, upload)
            fix = f.fix.replace(" or fix the path", "").replace(
                "re-export the file", "export the image again"
            )
            raise ScoringError(f"{label(f.column)}: {text}" if f.column else text, fix, f.column)
        results = []
        for rec in result.predictions.to_dict("records"):
            results.append(
                {
                    "model": rec["model"],
                    "label": MODEL_LABELS.get(rec["model"], rec["model"]),
                    "primary": rec["model"] == self.bundle.primary_model,
                    "prob": float(rec["prob"]),
                    "threshold": float(rec["threshold"]),
                    "decision": int(rec["decision"]),
                    "prob_sd": _finite(rec["prob_sd"]),
                    "prob_min": float(rec["prob_min"]),
                    "prob_max": float(rec["prob_max"]),
                    "n_folds": int(rec["n_folds"]),
                    "modalities": str(rec["modalities"]).split("+"),
                    "missing_modality": bool(rec["missing_modality"]),
                }
            )
        inputs: dict[str, Any] = {
            k: [{"format": f.format, "bytes": f.bytes, "sha256": f.sha256} for f in v]
            for k, v in files.items()
        }
        if mpp_note:
            inputs["cytology_mpp"] = mpp_note
        return {
            "primary_model": self.bundle.primary_model,
            "results": results,
            "inputs": inputs,
            "warnings": list(self.bundle.warnings),
            "explanations": explanations,
        }


def _recorded_mpp(path: Path) -> float | None:
    """The resolution the cytology file records, or None (a plain image, patches without one)."""
    from radiopath.slides import open_slide

    try:
        slide = open_slide(path)
    except (ImageReadError, RadiopathError):
        return None
    try:
        return float(slide.mpp)
    finally:
        slide.close()


def _form_mpp(text: str) -> float:
    from radiopath.slides.reader import MPP_RANGE, plausible_mpp

    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not plausible_mpp(value):
        raise UploadError(
            "the cytology records no resolution and the µm/px field is "
            + (f"'{text[:20]}', not a microscope resolution" if text else "empty"),
            f"enter the images' µm per pixel (between {MPP_RANGE[0]} and {MPP_RANGE[1]}; 0.25 at 40x, "
            "0.5 at 20x)",
            400,
            "cytology_mpp",
        )
    return value


def _finite(v: Any) -> float | None:
    return float(v) if v is not None and math.isfinite(float(v)) else None


def _scrub(text: str, upload: Upload) -> str:
    """A message without the request's temporary path, its files named as on the form."""
    folder = upload.folder
    text = text.replace(str(folder.resolve()) + "/", "").replace(str(folder) + "/", "")
    for name, files in upload.files.items():
        for f in files:
            text = text.replace(f"({f.path.name})", "").replace(f.path.name, label(name))
    return " ".join(text.split())


def _short(hashes: dict[str, list[str]]) -> str:
    return ", ".join(
        f"{k}:{'/'.join(h[:12] for h in v[:3])}{'…' if len(v) > 3 else ''}" for k, v in hashes.items()
    )
