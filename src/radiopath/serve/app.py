"""``radiopath serve BUNDLE``: the bundle behind a JSON API and a web page for clinicians.

Routes (OpenAPI docs at ``/docs``):

* ``GET /`` — the page: upload the two ultrasound views and the cytology, see the risk;
* ``GET /info`` — what the bundle is (models, primary model, thresholds, inputs, intended use,
  validation metrics, limits);
* ``POST /predict`` — one patient, ``multipart/form-data``: ``us_1``, ``us_2`` (PNG, JPEG, TIFF or
  DICOM), ``cytology`` (one slide file or image, or several patch images), ``cytology_mpp`` (µm per
  pixel, used only when the cytology records no resolution), ``clin_*`` covariates when the
  model takes them; the answer has one entry per model (the primary model first);
* ``GET /health``.

Each request's files live in a private temporary folder (:mod:`.uploads`) that is removed when
the request ends; they are scored by :func:`radiopath.serve.predict.predict_manifest` — the
code of ``radiopath predict`` — with a per-request feature cache inside that folder, so nothing
derived from a patient outlives the request except the audit record (:mod:`.audit`: input
hashes, bundle version, time, outputs). Scoring holds a lock: one patient at a time uses the
CPU cores, uploads still stream in concurrently. Logs carry request ids and hashes only.

Explanations: ``create_app(..., explainer=f)`` with ``f(bundle, manifest, predictions)`` returning
``[{"model", "modality", "title", "image": "data:image/png;base64,…"}]`` fills the answer's
``explanations`` field, which the page shows as Grad-CAM overlays (None: the page says there are
none). The explanations module plugs in there.
"""

from __future__ import annotations

import logging
import math
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from radiopath.errors import ImageReadError, RadiopathError
from radiopath.serve.audit import AuditLog
from radiopath.serve.bundle import Bundle, load_bundle
from radiopath.serve.predict import predict_manifest
from radiopath.serve.uploads import Upload, UploadError, label, private_folder, receive

log = logging.getLogger("radiopath.serve")
STATIC = Path(__file__).parent / "static"
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


def create_app(
    bundle: Bundle | str | Path,
    *,
    runtime: str = "torch",
    precision: str = "auto",
    device: str | None = None,
    audit_log: str | Path | None = None,
    max_upload_mb: int = 2048,
    max_image_mb: int = 64,
    explainer: Explainer | None = None,
    warm: bool = True,
) -> FastAPI:
    """The FastAPI application serving ``bundle`` (a :class:`Bundle` or its folder)."""
    b = bundle if isinstance(bundle, Bundle) else load_bundle(bundle, runtime)
    service = Service(
        b, precision=precision, device=device, audit_log=audit_log or "radiopath-audit.jsonl",
        max_upload_mb=max_upload_mb, max_image_mb=max_image_mb, explainer=explainer,
    )  # fmt: skip
    if warm:
        service.warm()
    app = FastAPI(
        title="radiopath",
        version=b.version,
        description=f"{b.metadata.get('task')}. Model bundle {b.metadata.get('name')} {b.version}. "
        + str(b.metadata.get("intended_use", "")),
    )
    app.state.service = service
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page() -> HTMLResponse:
        return HTMLResponse((STATIC / "index.html").read_text(encoding="utf-8"))

    @app.get("/info", summary="What the bundle is: models, thresholds, inputs, intended use, metrics")
    def info() -> dict[str, Any]:
        return service.info()

    @app.get("/health", summary="Liveness")
    def health() -> dict[str, str]:
        return {"status": "ok", "bundle": b.version}

    @app.post(
        "/predict",
        summary="Score one patient",
        description="multipart/form-data with us_1, us_2 (PNG, JPEG, TIFF or DICOM), cytology (a slide "
        "file or image, or several patch images), cytology_mpp (µm/px, used only when the cytology records "
        "no resolution) and clin_* fields when the model takes them. One result per model, primary first.",
        response_model=None,
        openapi_extra={"requestBody": {"required": True, "content": {"multipart/form-data": _FORM}}},
        responses={400: {"description": "bad form"}, 413: {"description": "too large"},
                   415: {"description": "not an accepted image type"}, 422: {"description": "not scorable"}},
    )  # fmt: skip
    async def predict(request: Request) -> JSONResponse:
        request_id = uuid.uuid4().hex[:12]
        try:
            with private_folder() as folder:
                upload = await receive(
                    request.headers.get("content-type"), request.headers.get("content-length"),
                    request.stream(), folder, service.max_bytes, service.file_limits,
                )  # fmt: skip
                answer = await run_in_threadpool(service.score, upload, request_id)
        except UploadError as exc:
            log.info("request %s: upload refused (%s)", request_id, exc.status)
            return _error(exc.status, exc.message, exc.fix, exc.field, request_id)
        except ScoringError as exc:
            return _error(422, exc.message, exc.fix, exc.field, request_id)
        except RadiopathError as exc:
            return _error(422, str(exc).split("; ")[0], "check the files and try again", None, request_id)
        return JSONResponse(answer)

    def _error(status: int, message: str, fix: str, field: str | None, rid: str) -> JSONResponse:
        return JSONResponse(
            {"error": message, "fix": fix, "field": field, "request_id": rid}, status_code=status
        )

    return app


def run_server(
    bundle: str | Path,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    runtime: str = "torch",
    precision: str = "auto",
    device: str | None = None,
    audit_log: str | Path | None = None,
    max_upload_mb: int = 2048,
    say: Callable[[str], None] = print,
) -> None:
    """Verify and load ``bundle``, then serve it with uvicorn until interrupted."""
    try:
        import uvicorn
    except ImportError:
        raise RadiopathError(
            "radiopath serve needs fastapi and uvicorn: pip install 'radiopath[deploy]'"
        ) from None
    audit = Path(audit_log or "radiopath-audit.jsonl")
    app = create_app(bundle, runtime=runtime, precision=precision, device=device, audit_log=audit,
                     max_upload_mb=max_upload_mb)  # fmt: skip
    b: Bundle = app.state.service.bundle
    for w in b.warnings:
        say(f"warning: {w}")
    if host not in ("127.0.0.1", "localhost", "::1"):
        say(
            f"warning: listening on {host}: anyone who can reach this address can use the page "
            "(there is no login)"
        )
    say(f"serving {b.metadata.get('name')} {b.version} ({b.primary_model} first) at http://{host}:{port}/ "
        f"— API docs at /docs, audit log {audit.resolve()}")  # fmt: skip
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    uvicorn.run(app, host=host, port=port, log_level="info")


_FORM = {
    "schema": {
        "type": "object",
        "properties": {
            "us_1": {
                "type": "string",
                "format": "binary",
                "description": "ultrasound view 1 (PNG, JPEG, TIFF, DICOM)",
            },
            "us_2": {"type": "string", "format": "binary", "description": "ultrasound view 2 (optional)"},
            "us_1_mask": {
                "type": "string",
                "format": "binary",
                "description": "nodule mask of view 1 (optional)",
            },
            "us_2_mask": {
                "type": "string",
                "format": "binary",
                "description": "nodule mask of view 2 (optional)",
            },
            "us_1_box": {
                "type": "string",
                "description": "nodule box of view 1, x0,y0,x1,y1 in pixels (optional)",
            },
            "us_2_box": {
                "type": "string",
                "description": "nodule box of view 2, x0,y0,x1,y1 in pixels (optional)",
            },
            "cytology": {
                "type": "array",
                "items": {"type": "string", "format": "binary"},
                "description": "one slide file (SVS, NDPI, tiled TIFF) or image, or several patch images",
            },
            "cytology_mpp": {
                "type": "number",
                "description": "µm per pixel of cytology images without a resolution",
            },
        },
    }
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
