"""Burned-in marks: found where they are (exact truth from the generator), nowhere else, removed well."""

from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np
import pandas as pd

from radiopath.io.images import read_image
from radiopath.synth.phenotype import nodule_from_latent
from radiopath.synth.spec import default_centers
from radiopath.synth.ultrasound import render_view
from radiopath.ultrasound import (
    MarksConfig,
    UltrasoundConfig,
    UltrasoundTransform,
    find_marks,
    find_scan_area,
    marks_debug_image,
    remove_marks,
)
from support import real_path
from ultrasound.views import SCAN_BOX, MarkedView

SCAN = np.zeros((400, 512), bool)
SCAN[SCAN_BOX[1] : SCAN_BOX[3], SCAN_BOX[0] : SCAN_BOX[2]] = True


def test_every_mark_pixel_is_found_in_every_colour(marked_views: list[MarkedView]) -> None:
    colours = set()
    for view in marked_views:
        marks = find_marks(view.marked, None, SCAN)
        truth = view.truth
        found = (marks.mask & truth).sum() / truth.sum()
        # calipers and dotted lines are found completely; anti-aliased text over bright speckle
        # can lose a few of its faintest pixels
        assert found > 0.9, (view.colour, found)
        assert len(marks.calipers) >= 2
        near = cv2.dilate(truth.astype(np.uint8), np.ones((9, 9), np.uint8)) > 0
        # little is flagged away from the marks (bright speckle inside a text line's box): < 0.3 %
        assert (marks.marks & ~near).sum() < 0.003 * SCAN.sum()
        colours.add(view.colour)
    assert len(colours) == 4
    overall = np.mean(
        [(find_marks(v.marked, None, SCAN).mask & v.truth).sum() / v.truth.sum() for v in marked_views]
    )
    assert overall > 0.97


def test_speckle_calcifications_and_skin_are_not_marks(marked_views: list[MarkedView]) -> None:
    for view in marked_views:
        assert not find_marks(view.clean, None, SCAN).found
    # a nodule with many punctate echogenic foci (bright round dots): kept, they are the signal
    rng = np.random.default_rng(5)
    nodule = replace(nodule_from_latent(2.5, rng), calcifications=40)
    for center in default_centers():  # three gains and contrasts, up to saturated skin lines
        view = render_view(nodule, "transverse", center, rng)
        assert not find_marks(view.image, None, SCAN).found


def test_no_false_marks_on_real_ddti_speckle() -> None:
    folder = real_path("ddti_thyroid_us")
    labels = pd.read_csv(folder / "labels.csv")
    flagged = []
    for row in labels.itertuples():
        image = read_image(folder / row.image)
        if find_marks(image, None, find_scan_area(image).mask).found:
            flagged.append(row.image)
    assert len(flagged) <= 2, flagged  # 0 of 89 when written; two allowed for tuning headroom


def test_inpainting_restores_the_tissue_and_its_speckle(marked_views: list[MarkedView]) -> None:
    errors_before, errors_after, grain_plain, grain_textured, grain_true = [], [], [], [], []
    for view in marked_views:
        gray_marked = cv2.cvtColor(view.marked, cv2.COLOR_RGB2GRAY).astype(np.float32)
        gray_clean = cv2.cvtColor(view.clean, cv2.COLOR_RGB2GRAY).astype(np.float32)
        marks = find_marks(view.marked, None, SCAN)
        textured = remove_marks(gray_marked.astype(np.uint8), marks.mask).astype(np.float32)
        plain = remove_marks(gray_marked.astype(np.uint8), marks.mask, MarksConfig(texture=False))
        t = view.truth
        errors_before.append(np.abs(gray_marked[t] - gray_clean[t]).mean())
        errors_after.append(np.abs(textured[t] - gray_clean[t]).mean())
        # speckle grain inside the filled strokes: local detail (value minus 3x3 mean)
        for img, acc in (
            (plain.astype(np.float32), grain_plain),
            (textured, grain_textured),
            (gray_clean, grain_true),
        ):
            detail = img - cv2.blur(img, (3, 3))
            acc.append(np.abs(detail[marks.mask]).mean())
    # the marks' pixels move most of the way back to the unmarked tissue
    assert np.mean(errors_after) < 0.6 * np.mean(errors_before)
    # plain inpainting leaves smooth strokes (ghost calipers); putting speckle back restores
    # most of the tissue's grain
    assert np.mean(grain_plain) < 0.5 * np.mean(grain_true)
    assert np.mean(grain_textured) > 0.7 * np.mean(grain_true)


def test_switch_off_keeps_the_marks_and_debug_image_shows_what_went(marked_views: list[MarkedView]) -> None:
    view = marked_views[0]
    on = UltrasoundTransform().process(view.marked, box=view.box)
    off = UltrasoundTransform(UltrasoundConfig(marks=MarksConfig(enabled=False))).process(
        view.marked, box=view.box
    )
    assert off.marks is None and "marks_removed" not in off.flags and "marks_removed" in on.flags
    assert on.marks is not None
    # with removal off the white calipers stay saturated in the model input
    assert (off.image == 255).sum() > (on.image == 255).sum() + 50
    debug = marks_debug_image(view.marked, on.marks, on.cleaned)
    assert debug.shape == (400, 512 * 2 + 4, 3)
    red = (debug[:, :512] == (255, 0, 0)).all(axis=2)
    # red is exactly what was removed (less where caliper circles and text boxes are drawn on top)
    assert not (red & ~on.marks.marks).any() and red.sum() > 0.8 * on.marks.marks.sum()
    assert (debug[:, 516:] == on.cleaned[:, :, None]).all()


def test_colour_doppler_is_filled_from_grey_or_kept_as_luma(marked_views: list[MarkedView]) -> None:
    image = marked_views[3].clean.copy()
    before = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)[150:250, 200:320].astype(float)
    rng = np.random.default_rng(1)
    noise = cv2.GaussianBlur(rng.standard_normal((100, 120)).astype(np.float32), (0, 0), 4)
    blob = noise > 0.5 * noise.std()  # about 30 % of the box: flow in a vessel-rich nodule
    roi = image[150:250, 200:320]
    roi[blob] = (255, 140, 0)  # an orange flow signal
    inpaint = UltrasoundTransform(UltrasoundConfig(intensity={"percentiles": None}))
    luma = UltrasoundTransform(UltrasoundConfig(intensity={"percentiles": None}, marks={"colour": "luma"}))
    a = inpaint.process(image).cleaned[150:250, 200:320].astype(float)
    b = luma.process(image).cleaned[150:250, 200:320].astype(float)
    assert blob.sum() > 3000
    assert "colour_doppler" in inpaint.process(image).flags
    # inpainted flow looks like the tissue around it, speckle included; luma shows a flat,
    # brighter plateau no B-mode image has
    assert abs(a[blob].mean() - before[blob].mean()) < 15
    assert a[blob].std() > 0.5 * before[blob].std()
    assert b[blob].mean() - before[blob].mean() > 30 and b[blob].std() < 1
