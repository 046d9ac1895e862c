"""Shared fixtures: paths to third-party real data and small synthetic cohorts."""

from __future__ import annotations

from pathlib import Path

import pytest

from radiopath.synth import SynthConfig, SynthResult, synthesize

PROJECT_ROOT = Path(__file__).resolve().parents[1]
#: Real third-party images (read-only, never copied into the repo); see its README.
REAL_DATA = PROJECT_ROOT.parent / "shared" / "data" / "real"


def real_path(*parts: str) -> Path:
    """Path under ``../shared/data/real``; skips the test with a reason when it is absent."""
    path = REAL_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real test data not available at {path} (needs ../shared/data/real)")
    return path


@pytest.fixture(scope="session")
def small_cohort(tmp_path_factory: pytest.TempPathFactory) -> SynthResult:
    """A 15-patient, three-center synthetic cohort with small slides (a few seconds)."""
    cfg = SynthConfig(patients=15, seed=7, slide_um=500, workers=1)
    return synthesize(tmp_path_factory.mktemp("cohort") / "small", cfg)
