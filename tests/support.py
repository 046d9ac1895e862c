"""Helpers importable from any test module (``from support import real_path``)."""

from __future__ import annotations

from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
#: Real third-party images (read-only, never copied into the repo); see its README.
REAL_DATA = PROJECT_ROOT.parent / "shared" / "data" / "real"


def real_path(*parts: str) -> Path:
    """Path under ``../shared/data/real``; skips the test with a reason when it is absent."""
    path = REAL_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real test data not available at {path} (needs ../shared/data/real)")
    return path
