"""The feature cache: one file per instance group, keyed by content, safe to share.

``CACHE/features/<family key>/<key[:2]>/<key>.safetensors`` holds the features of one
instance group (a view; a slide's tiles) and, as metadata, what the loader noted (e.g. the
ultrasound transform's flags). The family key covers the extractor (backbone, weights,
input size, precision, batch shape, its code) and :func:`preprocessing_code_version` — the
code that turns files into pixels; the group key covers every input file's content, the
coordinates and the fitted preprocessing state (:class:`radiopath.modalities.InstanceGroup`).
Nothing is keyed by a patient id or a path, so cohorts and concurrent runs share the cache:
entries are written atomically (a reader sees a whole entry or none; two writers of the same
key write the same bytes), and a damaged entry is a miss that is recomputed.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from radiopath.io.atomic import atomic_path
from radiopath.io.fingerprint import source_digest

#: Code that turns input files into model-ready pixels; part of every cache key.
PREPROCESSING_CODE = (
    "radiopath.modalities",
    "radiopath.ultrasound",
    "radiopath.slides.tiling",
    "radiopath.slides.reader",
    "radiopath.slides.stain",
    "radiopath.io.images",
    "radiopath.io.dicom",
)


def preprocessing_code_version() -> str:
    """Digest of :data:`PREPROCESSING_CODE` (changes whenever that code changes)."""
    return source_digest(*PREPROCESSING_CODE)


def default_cache_dir() -> Path:
    """``$RADIOPATH_CACHE`` or ``~/.cache/radiopath``."""
    return Path(os.environ.get("RADIOPATH_CACHE", Path.home() / ".cache" / "radiopath"))


class FeatureCache:
    """Entries of one feature family under ``root/features/<family_key>``."""

    def __init__(self, root: str | Path, family_key: str) -> None:
        self.dir = Path(root) / "features" / family_key
        self.hits = 0
        self.misses = 0

    def path(self, key: str) -> Path:
        return self.dir / key[:2] / f"{key}.safetensors"

    def has(self, key: str) -> bool:
        return self.path(key).is_file()

    def get(self, key: str) -> tuple[np.ndarray, list[list[str]]] | None:
        """``(features (n, D) float32, per-instance notes)``, or None when absent or damaged."""
        from safetensors import SafetensorError, safe_open
        from safetensors.numpy import load_file

        p = self.path(key)
        if not p.is_file():
            return None
        try:
            with safe_open(str(p), "np") as f:
                meta = f.metadata() or {}
            value = load_file(str(p))["features"]
            info = json.loads(meta.get("info", "[]"))
        except (SafetensorError, OSError, ValueError, KeyError):
            return None
        return value, info

    def put(self, key: str, value: np.ndarray, info: list[list[str]] | None = None) -> None:
        from safetensors.numpy import save_file

        p = self.path(key)
        p.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(p, durable=False) as tmp:
            save_file(
                {"features": np.ascontiguousarray(value, np.float32)},
                str(tmp),
                metadata={"info": json.dumps(info or [])},
            )
