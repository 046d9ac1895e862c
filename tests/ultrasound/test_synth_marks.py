"""The synthetic generator's planted shortcut: calipers and text drawn by label, recorded in truth.csv."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from radiopath.io.images import read_image
from radiopath.synth import SynthConfig, synthesize
from radiopath.synth.phenotype import nodule_from_latent
from radiopath.synth.spec import default_centers
from radiopath.synth.ultrasound import draw_marks, render_view


def test_marks_are_off_by_default_and_leave_every_other_pixel_alone(tmp_path: Path) -> None:
    base = dict(patients=8, seed=5, workers=1, missing_cytology=1.0)
    plain = synthesize(tmp_path / "plain", SynthConfig(**base))
    marked = synthesize(tmp_path / "marked", SynthConfig(**base, marks_positive=1.0, marks_negative=0.0))
    assert SynthConfig().marks_positive == SynthConfig().marks_negative == 0.0
    t_plain = pd.read_csv(plain.truth)
    t_marked = pd.read_csv(marked.truth)
    assert "us_1_marks" not in t_plain and "us_2_marks" not in t_plain  # truth.csv as before
    assert (t_marked["us_1_marks"] == t_marked["lnm"]).all() and (
        t_marked["us_2_marks"] == t_marked["lnm"]
    ).all()
    assert t_plain.equals(t_marked.drop(columns=["us_1_marks", "us_2_marks"]))
    assert plain.manifest.read_bytes() == marked.manifest.read_bytes()
    assert 0 < t_marked["lnm"].sum() < 8
    for pid, lnm in zip(t_marked["patient_id"], t_marked["lnm"], strict=True):
        for k in (1, 2):
            a = (plain.out_dir / f"ultrasound/{pid}_{k}.png").read_bytes()
            b = (marked.out_dir / f"ultrasound/{pid}_{k}.png").read_bytes()
            if not lnm:  # no marks asked for: the very same file, no extra random draws
                assert a == b
                continue
            # marks change only pixels inside the scan area, near the nodule or in its corner
            diff = np.any(
                read_image(plain.out_dir / f"ultrasound/{pid}_{k}.png")
                != read_image(marked.out_dir / f"ultrasound/{pid}_{k}.png"),
                axis=2,
            )
            ys, xs = np.nonzero(diff)
            assert 100 < diff.sum() < 4000
            assert xs.min() >= 72 and xs.max() < 456 and ys.min() >= 44 and ys.max() < 364


def test_draw_marks_measures_the_nodule() -> None:
    rng = np.random.default_rng(3)
    view = render_view(nodule_from_latent(0.5, rng), "transverse", default_centers()[0], rng)
    out = draw_marks(view.image, view.mask, np.random.default_rng(1), colour=(255, 255, 0))
    marks = out.marks
    assert marks.any() and (out.image[marks] != view.image[marks]).any(axis=1).all()
    yellow = (out.image == (255, 255, 0)).all(axis=2)
    # the calipers of D1 sit on the nodule's widest row, at its two ends
    rows, counts = np.unique(np.nonzero(view.mask)[0], return_counts=True)
    cy = rows[np.argmax(counts)]
    xs = np.nonzero(view.mask[cy])[0]
    for x in (xs.min(), xs.max()):
        assert yellow[cy, x - 3 : x + 4].all() and yellow[cy - 3 : cy + 4, x].all()
    # nothing to measure without a nodule
    empty = draw_marks(view.image, np.zeros_like(view.mask), np.random.default_rng(1))
    assert not empty.marks.any()
