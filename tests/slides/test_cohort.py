"""Cohort tiling: outputs, resume after a crash, per-slide errors, mpp table, CLI verb."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from radiopath.cli import app
from radiopath.errors import ConfigError
from radiopath.slides import (
    SlideTilingError,
    TilingConfig,
    read_tile_folder,
    read_tiles,
    tile_cohort,
    tile_slides_cached,
)
from radiopath.slides import cohort as cohort_mod
from radiopath.synth import SynthResult
from slides.conftest import COHORT_CFG as CFG


def test_cohort_outputs(small_cohort: SynthResult, cohort_tiles: Path) -> None:
    manifest = pd.read_csv(small_cohort.manifest)
    tiles = pd.read_parquet(cohort_tiles / "tiles.parquet")
    assert set(tiles["patient_id"]) == set(manifest["patient_id"])
    assert tiles.groupby("patient_id").size().max() <= 8
    assert list(tiles.columns[:4]) == ["patient_id", "slide_key", "slide", "rank"]
    assert tiles.groupby("patient_id")["slide_key"].nunique().eq(1).all()
    slides = pd.read_csv(cohort_tiles / "slides.csv")
    assert (slides["status"] == "ok").all() and len(slides) == len(manifest)
    assert TilingConfig.from_yaml(cohort_tiles / "tiling.yaml") == CFG
    one = cohort_tiles / "slides" / manifest["patient_id"][0]
    thumb = cv2.imread(str(one / "thumbnail.png"))
    assert thumb is not None and thumb.shape[0] > 100
    b, g, r = (thumb[:, :, i].astype(int) for i in range(3))
    outline = (g > 150) & (r < 40) & (b < 40)  # the pure green of kept-tile outlines
    assert outline.sum() > 8 * 4 * 10  # eight tiles, four sides, at least 10 px each
    summary = json.loads((one / "summary.json").read_text())
    assert summary["status"] == "ok" and summary["tiles"] == len(pd.read_parquet(one / "tiles.parquet"))
    assert not list(cohort_tiles.rglob("patches"))  # no PNG export unless asked


def _subset(small_cohort: SynthResult, n: int = 5) -> dict[str, Path]:
    m = pd.read_csv(small_cohort.manifest).head(n)
    return {pid: small_cohort.out_dir / rel for pid, rel in zip(m["patient_id"], m["cytology"], strict=True)}


def test_rerun_skips_finished_slides_and_redoes_changed_options(
    small_cohort: SynthResult, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    slides, out = _subset(small_cohort), tmp_path / "rerun"
    tile_cohort(slides, out, CFG)
    before = pd.read_parquet(out / "tiles.parquet")
    calls: list[str] = []
    real = cohort_mod.tile_slide_result
    monkeypatch.setattr(cohort_mod, "tile_slide_result", lambda p, *a: calls.append(str(p)) or real(p, *a))
    tile_cohort(slides, out, CFG)
    assert calls == []  # nothing re-tiled
    pd.testing.assert_frame_equal(pd.read_parquet(out / "tiles.parquet"), before)
    tile_cohort(slides, out, TilingConfig(top_k=3))
    assert len(calls) == len(slides)  # options changed: all re-tiled
    assert pd.read_parquet(out / "tiles.parquet").groupby("patient_id").size().max() == 3


def test_crash_loses_at_most_the_slide_in_progress(
    small_cohort: SynthResult, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    slides, out = _subset(small_cohort, 6), tmp_path / "crash"
    real = cohort_mod.tile_slide_result
    seen: list[str] = []

    def crashing(path: str, *args: object) -> object:
        seen.append(path)
        if len(seen) == 4:
            raise KeyboardInterrupt  # the machine goes down while slide 4 is being tiled
        return real(path, *args)

    monkeypatch.setattr(cohort_mod, "tile_slide_result", crashing)
    with pytest.raises(KeyboardInterrupt):
        tile_cohort(slides, out, CFG)
    done = sorted(p.parent.name for p in out.glob("slides/*/summary.json"))
    assert done == sorted(slides)[:3] and not (out / "tiles.parquet").exists()
    assert not list(out.rglob("*.partial*"))  # no half-written file anywhere
    seen.clear()
    monkeypatch.setattr(cohort_mod, "tile_slide_result", lambda p, *a: seen.append(p) or real(p, *a))
    tile_cohort(slides, out, CFG)
    assert len(seen) == 3  # only the unfinished slides were tiled on the rerun
    assert pd.read_parquet(out / "tiles.parquet")["patient_id"].nunique() == 6


def _unlabelled_png(folder: Path, svs_pixels: np.ndarray) -> dict[str, Path]:
    folder.mkdir()
    good = folder / "good.png"
    nompp = folder / "nompp.png"
    cv2.imwrite(str(good), svs_pixels[1800:2600, 200:1000, ::-1])
    cv2.imwrite(str(nompp), svs_pixels[1000:1800, 200:1000, ::-1])
    return {"A": good, "B": nompp}


def test_failed_slides_are_listed_and_the_table_withheld(tmp_path: Path, svs_pixels: np.ndarray) -> None:
    slides = _unlabelled_png(tmp_path / "in", svs_pixels)
    out = tmp_path / "out"
    with pytest.raises(SlideTilingError) as err:
        tile_cohort(slides, out, CFG, mpp_table={"A": 0.499})
    assert list(err.value.failures) == ["B"] and "nompp.png" in str(err.value)
    assert "no physical resolution" in str(err.value)
    assert (out / "slides" / "A" / "summary.json").exists() and not (out / "tiles.parquet").exists()
    assert pd.read_csv(out / "slides.csv").set_index("patient_id")["status"].to_dict() == {
        "A": "ok",
        "B": "error",
    }
    table = tmp_path / "mpp.csv"
    table.write_text("slide,mpp\nA,0.499\nnompp.png,0.499\n", encoding="utf-8")
    tile_cohort(slides, out, CFG, mpp_table=table)
    tiles = pd.read_parquet(out / "tiles.parquet")
    assert set(tiles["patient_id"]) == {"A", "B"} and (tiles["slide_mpp"] == 0.499).all()


def test_export_patches_writes_the_kept_tiles(tmp_path: Path, lbc_slide: Path) -> None:
    out = tmp_path / "exp"
    tile_cohort({"P1": lbc_slide}, out, TilingConfig(top_k=3), export_patches=True)
    pngs = sorted((out / "slides" / "P1" / "patches").glob("*.png"))
    table = pd.read_parquet(out / "tiles.parquet")
    assert len(pngs) == 3
    first = cv2.imread(str(pngs[0]))[:, :, ::-1]
    np.testing.assert_array_equal(first, read_tiles(lbc_slide, table.head(1))[0])


def test_cli_tile_on_a_patch_folder_and_an_error(tmp_path: Path, svs_pixels: np.ndarray) -> None:
    folder = tmp_path / "patches"
    folder.mkdir()
    for i in range(3):  # three 450 px patches of tissue: 2 x 2 tiles each
        cv2.imwrite(str(folder / f"{i}.png"), svs_pixels[1900:2350, 300 + 300 * i : 750 + 300 * i, ::-1])
    table = tmp_path / "mpp.csv"
    table.write_text("slide,mpp\npatches,0.499\n", encoding="utf-8")
    runner = CliRunner()
    res = runner.invoke(
        app, ["tile", str(folder), "--out", str(tmp_path / "o"), "--mpp-table", str(table), "--top-k", "4"]
    )
    assert res.exit_code == 0, res.output
    assert "patches: ok" in res.output and len(pd.read_parquet(tmp_path / "o" / "tiles.parquet")) == 4
    res = runner.invoke(app, ["tile", str(folder), "--out", str(tmp_path / "o2")])
    assert res.exit_code == 2 and "no physical resolution" in res.output


def test_the_tile_cache_is_keyed_by_slide_content_not_patient_id(
    small_cohort: SynthResult, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Regression: two cohorts with the same patient ids shared one cached table per option set."""
    slides = _subset(small_cohort, 3)
    ids = list(slides)
    first = tile_slides_cached(list(slides.items()), tmp_path, CFG)
    calls: list[str] = []
    real = cohort_mod.tile_slide_result
    monkeypatch.setattr(cohort_mod, "tile_slide_result", lambda p, *a: calls.append(str(p)) or real(p, *a))
    # another cohort: the same ids, but each id now names another patient's slide
    other = [(ids[0], slides[ids[1]]), (ids[1], slides[ids[0]]), ("NEW", slides[ids[2]])]
    second = tile_slides_cached(other, tmp_path, CFG)
    assert calls == []  # every slide was found by its content
    for name, slide in other:
        source = next(pid for pid, s in slides.items() if s == slide)
        cols = ["x", "y", "level", "score"]
        pd.testing.assert_frame_equal(second[name][cols], first[source][cols])
        assert second[name]["slide_key"].iloc[0] == first[source]["slide_key"].iloc[0]


def test_a_tile_folder_is_only_reused_for_the_slides_it_was_made_from(
    small_cohort: SynthResult, tmp_path: Path
) -> None:
    slides = _subset(small_cohort, 3)
    out = tmp_path / "tiles"
    tile_cohort(slides, out, CFG)
    pairs = list(slides.items())
    tables = read_tile_folder(out, pairs, CFG)
    assert set(tables) == set(slides) and all(len(t) for t in tables.values())
    ids = list(slides)
    swapped = [(ids[0], slides[ids[1]]), (ids[1], slides[ids[0]]), (ids[2], slides[ids[2]])]
    with pytest.raises(ConfigError, match="another slide") as info:
        read_tile_folder(out, swapped, CFG)
    assert ids[0] in str(info.value) and ids[1] in str(info.value) and ids[2] not in str(info.value)
    with pytest.raises(ConfigError, match="other tiling options"):
        read_tile_folder(out, pairs, TilingConfig(top_k=2))
    with pytest.raises(ConfigError, match="not a finished"):
        read_tile_folder(tmp_path / "nothing", pairs, CFG)
