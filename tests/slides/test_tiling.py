"""Tiling: grid geometry, ranking and QC, coordinates that map back to the right pixels."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from radiopath.errors import ConfigError
from radiopath.slides import TILE_COLUMNS, TilingConfig, read_tiles, tile_slide, tile_slide_result
from radiopath.slides.qc import tile_qc
from radiopath.slides.reader import open_slide
from radiopath.slides.tiling import grid, mask_fractions
from slides.conftest import BLACK_PEN, BLUE_PEN


def test_grid_is_centred_and_covers_small_regions() -> None:
    xs, ys = grid([(0, 0, 1000, 500)], 224.0)
    assert len(xs) == 4 * 2
    assert xs.min() == 52 and xs.max() == 52 + 3 * 224  # (1000 - 4*224) / 2 = 52 margin
    assert ys.min() == 26
    xs, ys = grid([(10, 20, 100, 100), (500, 0, 300, 300)], 224.0)  # a patch smaller than a tile
    assert list(zip(xs, ys, strict=True)) == [(10, 20), (538, 38)]


def test_mask_fractions_match_brute_force() -> None:
    rng = np.random.default_rng(0)
    mask = (rng.random((60, 80)) < 0.3).astype(np.uint8)
    xs, ys = np.array([0, 40, 200, 296]), np.array([0, 80, 120, 200])
    frac = mask_fractions(mask, xs, ys, 24.0, 4.0)
    for x, y, f in zip(xs, ys, frac, strict=True):
        assert f == pytest.approx(mask[y // 4 : y // 4 + 6, x // 4 : x // 4 + 6].mean())


def test_tile_table_on_a_synthetic_slide(lbc_slide: Path) -> None:
    cfg = TilingConfig(top_k=20)
    result = tile_slide_result(lbc_slide, cfg)
    t = result.table
    assert list(t.columns) == list(TILE_COLUMNS)
    assert len(t) == 20 and result.status == "ok"
    assert t["rank"].tolist() == list(range(20))
    assert (t["level"] == 0).all() and (t["level_size"] == 224).all() and (t["mpp"] == 0.5).all()
    assert (t["mask_fraction"] >= cfg.min_cell_fraction).all()
    assert (t["score"] >= cfg.min_stained_fraction).all()
    clean = t["flags"] == ""
    # clean tiles first, each group by decreasing cellularity
    assert clean.iloc[: clean.sum()].all()
    assert (np.diff(t.loc[clean, "score"].to_numpy()) <= 0).all()
    assert result.n_read < result.n_candidates  # it stopped reading once 20 clean tiles were found
    assert result.n_grid == 13 * 13


def test_kept_tiles_avoid_pen_marks(artifact_slide: Path) -> None:
    result = tile_slide_result(artifact_slide, TilingConfig(top_k=200))
    t = result.table
    assert result.rejected["pen"] >= 5  # candidate tiles lost to the strokes
    assert (t["pen_fraction"] <= 0.02).all()
    ink = np.zeros((375, 375), np.uint8)  # the strokes as painted, at 1/8 scale
    for points, width in ((BLUE_PEN, 160), (BLACK_PEN, 120)):
        cv2.polylines(ink, [(np.array(points) / 8).round().astype(np.int32)], False, 1, width // 8)
    inked = [
        ink[y // 8 : (y + 224) // 8, x // 8 : (x + 224) // 8].any() for x, y in zip(t.x, t.y, strict=True)
    ]
    assert not any(inked)  # no kept tile holds ink
    everywhere = tile_slide_result(artifact_slide, TilingConfig(top_k=200, max_pen_fraction=1.0)).table
    assert any(
        ink[y // 8 : (y + 224) // 8, x // 8 : (x + 224) // 8].any()
        for x, y in zip(everywhere.x, everywhere.y, strict=True)
    )


def test_tile_coordinates_map_back_to_level0_pixels(svs_pyramid: Path, svs_pixels: np.ndarray) -> None:
    """A tile read at level 1 (target 1 µm/px) is the level-0 area its row names, shrunk: of all
    placements within ±3 px, the named one matches best, and 2 px off is clearly worse (JPEG
    re-encoding keeps the match from being exact)."""
    t = tile_slide(svs_pyramid, TilingConfig(target_mpp=1.0, tile_size=128, top_k=4))
    assert (t["level"] == 1).all() and (t["level_size"] == 128).all()
    patches = read_tiles(svs_pyramid, t)
    assert patches.shape == (4, 128, 128, 3) and patches.dtype == np.uint8
    e = 256  # level_size x the level's downsample (2.0003)

    def error(x: int, y: int, patch: np.ndarray) -> float:
        ref = cv2.resize(svs_pixels[y : y + e, x : x + e], (128, 128), interpolation=cv2.INTER_AREA)
        return float(np.abs(patch.astype(int) - ref).mean())

    for (x, y), patch in zip(t[["x", "y"]].itertuples(index=False), patches, strict=True):
        errs = {(dx, dy): error(x + dx, y + dy, patch) for dx in range(-3, 4) for dy in range(-3, 4)}
        assert min(errs, key=errs.__getitem__) == (0, 0)
        assert errs[(0, 0)] < 0.75 * min(errs[(2, 0)], errs[(0, 2)], errs[(-2, 0)], errs[(0, -2)])


def test_svs_and_its_pyramid_give_the_same_tiles(svs_path: Path, svs_pyramid: Path) -> None:
    cfg = TilingConfig(top_k=8)
    a = tile_slide(svs_path, cfg)
    b = tile_slide(svs_pyramid, cfg)
    assert a["slide_mpp"].iloc[0] == pytest.approx(0.499)
    assert len(a) == 8 and a["level_size"].iloc[0] == 224  # 224 * 0.5 / 0.499 = 224.4 px
    # the same positions come first (scores may swap neighbours after JPEG re-encoding)
    assert len(set(zip(a.x, a.y, strict=True)) & set(zip(b.x, b.y, strict=True))) >= 6
    pa, pb = read_tiles(svs_path, a.head(3)), read_tiles(svs_pyramid, a.head(3))
    moved = a.head(3).assign(x=a.x.head(3) + 4)
    same = np.abs(pa.astype(int) - pb).mean()  # same pixels through two formats (JPEG 4:2:0 vs RGB)
    assert same < 0.5 * np.abs(pa.astype(int) - read_tiles(svs_pyramid, moved)).mean()


def test_blur_is_flagged_by_laplacian_variance(lbc_slide: Path) -> None:
    cfg = TilingConfig()
    t = tile_slide(lbc_slide, cfg)
    sharp = read_tiles(lbc_slide, t.head(5))
    bg = np.array([243.0, 242.0, 245.0], np.float32)
    for tile in sharp:
        good = tile_qc(tile, bg, 0.0, cfg)
        bad = tile_qc(cv2.GaussianBlur(tile, (0, 0), 4.0), bg, 0.0, cfg)  # 2 µm defocus
        assert "blur" not in good.flags and "blur" in bad.flags
        assert bad.blur < good.blur / 10


def test_blurred_slide_keeps_flagged_tiles_after_sharp_ones(slide_dir: Path, lbc_pixels: np.ndarray) -> None:
    from radiopath.io.tiff import write_pyramid_tiff

    img = lbc_pixels.copy()
    img[:, :1500] = cv2.GaussianBlur(img[:, :1500], (0, 0), 4.0)  # left half out of focus
    path = write_pyramid_tiff(slide_dir / "half_blurred.tiff", img, 0.5)
    t = tile_slide(path, TilingConfig(top_k=200))
    flagged = t["flags"].str.contains("blur")
    assert flagged.any() and (~flagged).any()
    assert (t.loc[flagged, "x"] + t.loc[flagged, "extent"] <= 1500 + 224).all()  # blur only on the left
    assert flagged.to_numpy().argmax() == (~flagged).sum()  # every sharp tile ranks before any blurred


def test_target_mpp_is_physical(lbc_slide: Path) -> None:
    t = tile_slide(lbc_slide, TilingConfig(target_mpp=2.0, tile_size=64, top_k=4))
    assert (t["level"] == 2).all()  # 2 µm/px: level 2 of a 0.5 µm/px slide (downsample 4)
    assert (t["extent"] == 256).all() and (t["level_size"] == 64).all()


def test_plain_image_and_patch_folder(tmp_path: Path, svs_pixels: np.ndarray) -> None:
    crop = svs_pixels[1800:2800, 200:1200]
    image = tmp_path / "crop.png"
    cv2.imwrite(str(image), crop[:, :, ::-1])
    t = tile_slide(image, TilingConfig(top_k=5), mpp_override=0.499)
    assert len(t) == 5 and (t["level"] == 0).all()
    folder = tmp_path / "patches"
    folder.mkdir()
    for i in range(4):  # four 500 px patches of the crop
        y, x = divmod(i, 2)
        cv2.imwrite(str(folder / f"{i}.png"), crop[y * 500 : (y + 1) * 500, x * 500 : (x + 1) * 500, ::-1])
    t = tile_slide(folder, TilingConfig(top_k=8), mpp_override=0.499)
    assert len(t) == 8
    patches = read_tiles(folder, t)
    with open_slide(folder, mpp_override=0.499) as s:
        for (x, y, ls), patch in zip(
            t[["x", "y", "level_size"]].itertuples(index=False), patches, strict=True
        ):
            i = next(
                k for k, (rx, ry, rw, rh) in enumerate(s.regions) if rx <= x < rx + rw and ry <= y < ry + rh
            )
            rx, ry, rw, rh = s.regions[i]
            assert x + ls <= rx + rw and y + ls <= ry + rh  # never across two patches
            src = cv2.imread(str(s.files[i]))[:, :, ::-1][y - ry : y - ry + ls, x - rx : x - rx + ls]
            np.testing.assert_array_equal(patch, cv2.resize(src, (224, 224), interpolation=cv2.INTER_AREA))


def test_read_tiles_refuses_foreign_tables(lbc_slide: Path) -> None:
    with pytest.raises(ConfigError, match="lacks column"):
        read_tiles(lbc_slide, pd.DataFrame({"x": [0], "y": [0]}))
    empty = read_tiles(lbc_slide, tile_slide(lbc_slide, TilingConfig(top_k=1)).iloc[:0])
    assert empty.shape[0] == 0
