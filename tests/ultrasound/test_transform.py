"""The transform as the model stage, prediction and the web page call it."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from radiopath.cohort import Cohort
from radiopath.errors import ConfigError, ImageReadError
from radiopath.synth import SynthConfig, SynthResult, synthesize
from radiopath.ultrasound import (
    IntensityConfig,
    UltrasoundConfig,
    UltrasoundTransform,
    load_view,
)
from radiopath.ultrasound.transform import STATE_VERSION
from ultrasound.views import MarkedView


def test_model_ready_output(marked_views: list[MarkedView]) -> None:
    view = marked_views[2]
    tf = UltrasoundTransform(UltrasoundConfig(size=128))
    crop = tf(view.marked, box=view.box, center=view.center)
    assert crop.shape == (128, 128, 3) and crop.dtype == np.uint8
    assert (crop[:, :, 0] == crop[:, :, 1]).all() and (crop[:, :, 1] == crop[:, :, 2]).all()
    # mask and box of the same nodule give (nearly) the same crop; the mask wins when both are given
    by_mask = tf.process(view.marked, mask=view.nodule, box=(0, 0, 10, 10))
    assert by_mask.region.source == "mask"
    by_box = tf.process(view.marked, box=view.box)
    assert np.abs(np.array(by_mask.region.crop) - np.array(by_box.region.crop)).max() <= 1
    # region="scan" ignores the nodule and letterboxes the scan area
    whole = UltrasoundTransform(UltrasoundConfig(region="scan")).process(view.marked, box=view.box)
    assert whole.region.source == "scan" and whole.region.crop == (72, 12, 456, 396)


def test_bad_inputs_are_clear_errors() -> None:
    tf = UltrasoundTransform()
    with pytest.raises(ConfigError, match=r"needs an \(H, W, 3\) uint8 RGB image, got float32"):
        tf(np.zeros((100, 100, 3), np.float32))
    with pytest.raises(ConfigError, match=r"scan\.png: the ultrasound transform needs"):
        tf(np.zeros((100, 100), np.uint8), source_path="scan.png")
    with pytest.raises(ConfigError, match="too small"):
        tf(np.zeros((8, 8, 3), np.uint8))


def test_state_dict_round_trips_through_json(marked_views: list[MarkedView]) -> None:
    cfg = UltrasoundConfig(size=96, margin=0.3, intensity=IntensityConfig(standardize=True))
    tf = UltrasoundTransform(cfg).fit(
        {
            "Hospital A": [v.clean for v in marked_views[:3]],
            "Hospital B": [v.clean for v in marked_views[3:6]],
        }
    )
    state = json.loads(json.dumps(tf.state_dict()))  # a model bundle stores it as JSON
    again = UltrasoundTransform.from_state(state)
    assert again.config == cfg
    for view in marked_views[6:]:
        a = tf(view.marked, box=view.box, center="Hospital A")
        b = again(view.marked, box=view.box, center="Hospital A")
        assert (a == b).all()
    with pytest.raises(ConfigError, match="version 99"):
        UltrasoundTransform.from_state({**state, "version": 99})
    assert state["version"] == STATE_VERSION
    with pytest.raises(ConfigError, match="invalid configuration"):
        UltrasoundTransform.from_state({**state, "config": {**state["config"], "size": -1}})


def test_load_view_reads_a_cohort_row(small_cohort: SynthResult) -> None:
    cohort = Cohort.from_manifest(small_cohort.manifest)
    row = cohort.table.iloc[0]
    tf = UltrasoundTransform(UltrasoundConfig(size=64))
    crop = load_view(row, "us_1", tf)
    assert crop.shape == (64, 64, 3)
    details = load_view(row, "us_1", tf, details=True)
    assert details.region.source == "box" and details.region.nodule == row["us_1_box"]
    assert (details.image == crop).all()
    # us_2 may be empty: no crop, no error
    empty = row.copy()
    empty["us_2"] = None
    assert load_view(empty, "us_2", tf) is None
    with pytest.raises(ConfigError, match="view must be one of"):
        load_view(row, "us_3", tf)
    broken = row.copy()
    broken["us_1"] = str(small_cohort.out_dir / "missing.png")
    with pytest.raises(ImageReadError, match=r"missing\.png: file not found"):
        load_view(broken, "us_1", tf)


def test_load_view_uses_masks_and_string_boxes(tmp_path) -> None:
    result = synthesize(
        tmp_path / "c", SynthConfig(patients=4, seed=2, workers=1, masks=True, missing_cytology=1.0)
    )
    table = Cohort.from_manifest(result.manifest).table
    tf = UltrasoundTransform(UltrasoundConfig(size=64))
    for _, row in table.iterrows():
        view = load_view(row, "us_2", tf, details=True)
        assert view.region.source == "mask"
        # a plain dict with a text box (a row read straight from the CSV) works too
        raw = {"us_2": row["us_2"], "us_2_box": ",".join(map(str, row["us_2_box"])), "center": row["center"]}
        boxed = load_view(raw, "us_2", tf, details=True)
        assert boxed.region.source == "box"
        # the jittered manifest box holds the mask's box
        mx0, my0, mx1, my1 = view.region.nodule
        bx0, by0, bx1, by1 = boxed.region.nodule
        assert bx0 <= mx0 and by0 <= my0 and bx1 >= mx1 and by1 >= my1
    bad = {"us_1": table.iloc[0]["us_1"], "us_1_box": "1,2,3", "patient_id": "PTC0001"}
    with pytest.raises(ConfigError, match="us_1_box of patient PTC0001: expected four numbers"):
        load_view(bad, "us_1", tf)
    assert load_view(pd.Series({"us_1": float("nan")}), "us_1", tf) is None
