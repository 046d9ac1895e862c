"""Deploying a study model: bundles (export, verify, load), prediction on new patients,
ONNX graphs, and the web service with its page for clinicians.

* :func:`export_bundle` — ``radiopath export RUN --out BUNDLE [--onnx]``;
* :func:`load_bundle` → :class:`Bundle` (a :class:`radiopath.runs.Run` read from a bundle);
* :func:`predict_manifest` — ``radiopath predict BUNDLE MANIFEST``, row by row;
* :func:`create_app` — ``radiopath serve BUNDLE`` (FastAPI, imported only when serving).
"""

from __future__ import annotations

from typing import Any

from radiopath.serve.bundle import Bundle, BundleError, load_bundle, verify_bundle
from radiopath.serve.export import ExportResult, export_bundle

__all__ = [
    "Bundle",
    "BundleError",
    "ExportResult",
    "create_app",
    "export_bundle",
    "load_bundle",
    "verify_bundle",
]


def create_app(*args: Any, **kwargs: Any) -> Any:
    """:func:`radiopath.serve.app.create_app` (FastAPI is imported only when serving)."""
    from radiopath.serve.app import create_app as _create

    return _create(*args, **kwargs)
