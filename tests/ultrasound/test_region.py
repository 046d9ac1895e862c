"""Nodule region: square crops with margin from masks or boxes, inside the scan, undistorted."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from radiopath.errors import ConfigError
from radiopath.io.images import read_image
from radiopath.ultrasound import UltrasoundConfig, UltrasoundTransform, choose_region
from radiopath.ultrasound.region import binary_mask, crop_padded, mask_box
from support import real_path

SCAN = (72, 44, 456, 364)


def test_box_grows_by_the_margin_and_becomes_a_square() -> None:
    # 40 x 20 px nodule: the larger side 40 plus 15 % on each side is 52, centred on (120, 110)
    region = choose_region((400, 512), SCAN, 0.15, box=(100, 100, 140, 120))
    assert region.crop == (94, 84, 146, 136) and region.source == "box" and region.flags == ()
    assert choose_region((400, 512), SCAN, 0.5, box=(100, 100, 140, 120)).crop == (80, 70, 160, 150)
    # tall nodules widen the same way: the square never stretches the nodule's shape
    tall = choose_region((400, 512), SCAN, 0.15, box=(200, 100, 220, 160))
    assert tall.crop == (171, 91, 249, 169)


def test_square_is_shifted_into_the_scan_not_shrunk() -> None:
    # a nodule at the scan's left edge: the square keeps its size and moves right
    region = choose_region((400, 512), SCAN, 0.15, box=(74, 200, 114, 240))
    assert region.crop == (72, 194, 124, 246)
    # larger than the scan (tiny scan area): centred on it, the rest is padding
    small_scan = (100, 100, 150, 140)
    big = choose_region((400, 512), small_scan, 0.15, box=(110, 105, 140, 135))
    assert big.crop[2] - big.crop[0] == 39 and big.crop[1] == 120 - 20
    # tiny nodules are not blown up beyond the minimum side
    assert choose_region((400, 512), SCAN, 0.15, box=(200, 200, 204, 203), min_side=32).crop == (
        186,
        186,
        218,
        218,
    )


def test_mask_wins_over_box_and_problems_are_flagged() -> None:
    mask = np.zeros((400, 512), np.uint8)
    mask[150:190, 250:270] = 255
    region = choose_region((400, 512), SCAN, 0.15, mask=mask, box=(100, 100, 140, 120))
    assert region.source == "mask" and region.nodule == (250, 150, 270, 190)
    empty = choose_region(
        (400, 512), SCAN, 0.15, mask=np.zeros((400, 512), np.uint8), box=(100, 100, 140, 120)
    )
    assert empty.source == "box" and empty.flags == ("empty_mask",)
    outside = choose_region((400, 512), SCAN, 0.15, box=(600, 500, 640, 520))
    assert outside.source == "scan" and "box_outside_image" in outside.flags
    in_chrome = choose_region((400, 512), SCAN, 0.15, box=(5, 60, 40, 100))
    assert "region_outside_scan" in in_chrome.flags
    with pytest.raises(ConfigError, match="mask is 256x200 px but the image is 512x400 px"):
        choose_region((400, 512), SCAN, 0.15, mask=np.ones((200, 256), np.uint8))


def test_without_a_region_the_scan_is_letterboxed() -> None:
    region = choose_region((400, 512), SCAN, 0.15)
    assert region.source == "scan" and region.crop == (72, 12, 456, 396)  # 384 x 384 around 384 x 320
    image = np.full((400, 512), 200, np.uint8)
    valid = np.zeros((400, 512), bool)
    valid[44:364, 72:456] = True
    crop = crop_padded(image, region.crop, valid)
    assert crop.shape == (384, 384)
    assert (crop[:32] == 0).all() and (crop[-32:] == 0).all() and (crop[32:-32] == 200).all()


def test_mask_images_in_every_format_annotators_write() -> None:
    m = np.zeros((20, 30), np.uint8)
    m[5:10, 7:12] = 1
    assert mask_box(binary_mask(m)) == (7, 5, 12, 10)
    assert mask_box(binary_mask(m * 255)) == (7, 5, 12, 10)
    rgb = np.repeat((m * 255)[:, :, None], 3, axis=2)
    assert mask_box(binary_mask(rgb)) == (7, 5, 12, 10)
    assert mask_box(binary_mask(np.zeros((4, 4), np.uint8))) is None


def test_ddti_masks_give_centred_nodules_of_the_expected_size() -> None:
    """On the 89 real DDTI images and their GIF masks, the nodule fills the model's square as
    designed: centred, its larger side 1/(1 + 2 * 15 %) of the square whenever the square fits."""
    folder = real_path("ddti_thyroid_us")
    labels = pd.read_csv(folder / "labels.csv")
    tf = UltrasoundTransform(UltrasoundConfig(size=224))
    fitted, checked, empty, outside = 0, 0, [], []
    for row in labels.itertuples():
        image = read_image(folder / row.image)
        mask = read_image(folder / row.mask)
        view = tf.process(image, mask=mask)
        assert view.image.shape == (224, 224, 3)
        if "empty_mask" in view.flags:  # flagged, and the whole scan area is used instead
            assert view.region.source == "scan" and not mask.any()
            empty.append(row.mask)
            continue
        assert view.region.source == "mask"
        if "region_outside_scan" in view.flags:
            outside.append(row.image)
            continue
        x0, y0, x1, y1 = view.region.crop
        out = crop_padded(binary_mask(mask).astype(np.uint8), view.region.crop)
        # the whole nodule is inside the square, always
        assert out.sum() == binary_mask(mask).sum()
        sx0, sy0, sx1, sy1 = view.scan.box
        if sx0 <= x0 and sy0 <= y0 and x1 <= sx1 and y1 <= sy1:
            nb = mask_box(out)
            assert nb is not None
            side = max(nb[2] - nb[0], nb[3] - nb[1])
            assert abs(side * 1.3 - (x1 - x0)) <= 1.5
            fitted += 1
        checked += 1
    # two of DDTI's GIF masks are blank; DDTI nodules are large, so many squares leave the 300 px crop
    assert sorted(empty) == ["masks/358_1(2).gif", "masks/378_1(2).gif"]
    # and one mask was drawn on the text panel below the scan, not on the scan: flagged
    assert outside == ["images/338_2(1).png"]
    assert checked == 86 and fitted >= 20
