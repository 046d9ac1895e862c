"""Regression: two runs of different cohorts started at the same time with one cache gave one
cohort the other's cytology features (patient ids like PTC0001 repeat across cohorts)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from radiopath.features import FeatureSet
from radiopath.synth import SynthConfig, synthesize
from runconfigs import tiny


@pytest.mark.slow
def test_two_cohorts_with_the_same_ids_extracted_at_once_match_their_solo_runs(tmp_path: Path) -> None:
    cohorts = [
        synthesize(tmp_path / f"c{i}", SynthConfig(patients=16, seed=40 + i, slide_um=400, workers=1))
        for i in (0, 1)
    ]
    ids = [set(pd.read_csv(c.manifest)["patient_id"]) for c in cohorts]
    assert ids[0] == ids[1]  # the same patient ids, different patients
    cfg = tiny(tmp_path / "shared_cache")
    cfg.to_yaml(tmp_path / "cfg.yaml")

    def extract(manifest: Path, out: Path, cache: Path) -> subprocess.Popen[str]:
        cmd = [sys.executable, "-m", "radiopath", "extract", str(manifest), "--out", str(out)]
        cmd += ["--config", str(tmp_path / "cfg.yaml"), "--cache-dir", str(cache)]
        return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    # both at once, one cache; then each alone, each in its own cache
    together = [
        extract(c.manifest, tmp_path / f"together{i}", tmp_path / "shared") for i, c in enumerate(cohorts)
    ]
    for p in together:
        out, _ = p.communicate(timeout=600)
        assert p.returncode == 0, out[-2000:]
    for i, c in enumerate(cohorts):
        p = extract(c.manifest, tmp_path / f"solo{i}", tmp_path / f"solo_cache{i}")
        out, _ = p.communicate(timeout=600)
        assert p.returncode == 0, out[-2000:]
    for i, c in enumerate(cohorts):
        table = pd.read_csv(c.manifest)
        a = FeatureSet.load(tmp_path / f"together{i}").inputs(table)
        b = FeatureSet.load(tmp_path / f"solo{i}").inputs(table)
        for key in ("us", "cytology"):
            np.testing.assert_array_equal(a.arrays[key], b.arrays[key], err_msg=f"cohort {i} {key}")
    other = FeatureSet.load(tmp_path / "together1").inputs(pd.read_csv(cohorts[1].manifest))
    mine = FeatureSet.load(tmp_path / "together0").inputs(pd.read_csv(cohorts[0].manifest))
    assert not np.array_equal(mine.arrays["cytology"], other.arrays["cytology"])  # really different data
