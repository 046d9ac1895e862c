"""Shared fixtures: paths to third-party real data and small synthetic cohorts."""

from __future__ import annotations

import pytest

from radiopath.synth import SynthConfig, SynthResult, synthesize
from support import PROJECT_ROOT, REAL_DATA, real_path

__all__ = ["PROJECT_ROOT", "REAL_DATA", "real_path"]


@pytest.fixture(scope="session")
def small_cohort(tmp_path_factory: pytest.TempPathFactory) -> SynthResult:
    """A 15-patient, three-center synthetic cohort with small slides (a few seconds)."""
    cfg = SynthConfig(patients=15, seed=7, slide_um=500, workers=1)
    return synthesize(tmp_path_factory.mktemp("cohort") / "small", cfg)
