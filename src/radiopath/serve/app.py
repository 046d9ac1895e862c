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
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from radiopath.errors import RadiopathError
from radiopath.serve.bundle import Bundle, load_bundle
from radiopath.serve.service import Explainer, ScoringError, Service
from radiopath.serve.uploads import UploadError, private_folder, receive

log = logging.getLogger("radiopath.serve")
STATIC = Path(__file__).parent / "static"


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
