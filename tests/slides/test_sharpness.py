"""Sharpness relative to the development slides: a uniformly softer center is seen, a similar one is not."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from radiopath.slides.config import TilingConfig
from radiopath.slides.detection import estimate_background
from radiopath.slides.qc import tile_qc
from radiopath.slides.sharpness import (
    SharpnessState,
    center_sharpness,
    cohort_sharpness,
    fit_sharpness,
    sharpness_warnings,
    sharpness_z,
)
from radiopath.synth.spec import default_centers
from slides.conftest import lbc_image


def _tiles(center_index: int, seed: int) -> pd.DataFrame:
    """The QC focus measure of the 224-px tiles of a 400-µm synthetic slide of a default center."""
    img = lbc_image(default_centers()[center_index], 400, seed=seed)
    bg = estimate_background(img)
    blur = [
        tile_qc(img[y : y + 224, x : x + 224], bg, 0.0, TilingConfig()).blur
        for y in range(0, 577, 224)
        for x in range(0, 577, 224)
    ]
    return pd.DataFrame({"rank": range(len(blur)), "blur": blur})


@pytest.fixture(scope="module")
def slides() -> dict[str, tuple[str, pd.DataFrame]]:
    """Three development slides (Hospital A), two each of the blurred Hospitals B and C."""
    out = {f"A{s}": ("Hospital A", _tiles(0, s)) for s in range(3)}
    out.update({f"B{s}": ("Hospital B", _tiles(1, 10 + s)) for s in range(2)})
    out.update({f"C{s}": ("Hospital C", _tiles(2, 20 + s)) for s in range(2)})
    return out


def test_the_absolute_threshold_flags_nothing_but_the_relative_measure_sees_the_blurred_centers(
    slides: dict[str, tuple[str, pd.DataFrame]],
) -> None:
    every = pd.concat([t for _, t in slides.values()])
    judged = every["blur"].dropna()
    assert (
        len(judged) > 40 and (judged > TilingConfig().blur_threshold).all()
    )  # the old QC: no tile is "blur"
    state = fit_sharpness([t for pid, (_, t) in slides.items() if pid.startswith("A")])
    assert state is not None and state.n_slides == 3
    table = center_sharpness(
        state, {p: t for p, (_, t) in slides.items()}, {p: c for p, (c, _) in slides.items()}
    )
    by = table.set_index("center")
    assert by.loc["Hospital A", "sharpness_z"] == pytest.approx(0.0, abs=1.0)
    assert not by.loc["Hospital A", "warn"] and by.loc["Hospital A", "blur_relative_share"] < 0.2
    # B (scanner sigma 1.35 px) is softer than C (0.85 px), and both far softer than A (0.35 px)
    assert by.loc["Hospital B", "laplacian_ratio"] < by.loc["Hospital C", "laplacian_ratio"] < 0.5
    assert by.loc["Hospital B", "warn"] and by.loc["Hospital C", "warn"]
    assert by.loc["Hospital B", "blur_relative_share"] == 1.0
    warnings = sharpness_warnings(table)
    assert len(warnings) == 2 and "Hospital B" in warnings[0] and "train.augment_passes" in warnings[0]


def test_z_scores_and_the_state_round_trip() -> None:
    rng = np.random.default_rng(0)
    dev = [pd.DataFrame({"blur": np.exp(rng.normal(8.0, 0.2, 16))}) for _ in range(6)]
    state = fit_sharpness(dev)
    assert state is not None and SharpnessState.from_dict(state.to_dict()) == state
    assert state.tile_median == pytest.approx(8.0, abs=0.1) and state.tile_scale == pytest.approx(
        0.2, rel=0.3
    )
    z = sharpness_z(state, [np.exp(8.0), np.exp(8.0 - 3 * state.tile_scale), np.nan, 0.0])
    assert z[0] == pytest.approx(0.0, abs=0.6) and z[1] == pytest.approx(z[0] - 3.0) and np.isnan(z[2:]).all()
    assert fit_sharpness(dev[:2]) is None  # too few development slides to judge others by


def test_cohort_sharpness_takes_development_slides_only() -> None:
    rng = np.random.default_rng(1)
    rows, table = [], []
    for i in range(8):
        dev = i < 5
        level = 8.0 if dev else 6.0  # the external center is e^2 ≈ 7x softer
        rows += [
            {"patient_id": f"P{i}", "rank": r, "blur": float(np.exp(rng.normal(level, 0.2)))}
            for r in range(6)
        ]
        table.append(
            {
                "patient_id": f"P{i}",
                "center": "A" if dev else "B",
                "cohort": "development" if dev else "external",
            }
        )
    state, centers, warnings = cohort_sharpness(pd.DataFrame(rows), pd.DataFrame(table), top_k=4)
    assert state is not None and state.n_slides == 5 and state.n_tiles == 20
    assert centers.set_index("center").loc["B", "laplacian_ratio"] == pytest.approx(np.exp(-2.0), rel=0.3)
    assert len(warnings) == 1 and warnings[0].startswith("center B")
