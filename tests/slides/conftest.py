"""Slides made for the slide tests: synthetic LBC with artifacts, empty glass, the real SVS as a pyramid."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from radiopath.io.tiff import write_pyramid_tiff
from radiopath.slides import TilingConfig, tile_cohort
from radiopath.synth import SynthResult
from radiopath.synth.cytology import BACKGROUND, render_slide
from radiopath.synth.phenotype import cells_from_latent
from radiopath.synth.spec import CenterSpec, default_centers
from slides.artifacts import bubble, debris, pen_stroke
from support import real_path

#: Options of the shared cohort run (``cohort_tiles``).
COHORT_CFG = TilingConfig(top_k=8)
SVS_PARTS = ("wsi", "CMU-1-Small-Region.svs")
#: Level-0 geometry of the artifact slide's marks (pixels at 0.5 µm/px).
BLUE_PEN = [(100, 2600), (900, 2300), (1800, 2500), (2900, 2000)]
BLACK_PEN = [(2500, 200), (2800, 900)]
BUBBLE = ((700, 700), 300)


def lbc_image(center: CenterSpec, side_um: float, seed: int, latent: float = 0.0) -> np.ndarray:
    """Level-0 RGB of a synthetic LBC slide of one center."""
    rng = np.random.default_rng(seed)
    return render_slide(cells_from_latent(latent, rng), center, side_um, rng)


def glass(side_px: int, seed: int) -> np.ndarray:
    """Clean glass with sensor noise: the background of an empty slide."""
    rng = np.random.default_rng(seed)
    img = BACKGROUND[None, None, :] + rng.normal(0, 1.5, (side_px, side_px, 3))
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


@pytest.fixture(scope="session")
def slide_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("slides")


@pytest.fixture(scope="session")
def lbc_pixels() -> np.ndarray:
    """Level 0 of a 1.5 mm synthetic LBC slide at 0.5 µm/px (3000 x 3000 px)."""
    return lbc_image(default_centers()[0], 1500, seed=3)


@pytest.fixture(scope="session")
def lbc_slide(slide_dir: Path, lbc_pixels: np.ndarray) -> Path:
    """The clean slide as a pyramidal TIFF with 3 levels (3000, 1500, 750 px)."""
    return write_pyramid_tiff(slide_dir / "lbc.tiff", lbc_pixels, 0.5)


@pytest.fixture(scope="session")
def artifact_slide(slide_dir: Path, lbc_pixels: np.ndarray) -> Path:
    """The same slide with a blue and a black pen stroke, an air bubble and dust."""
    img = lbc_pixels.copy()
    rng = np.random.default_rng(11)
    pen_stroke(img, BLUE_PEN, 160, "blue", rng)
    pen_stroke(img, BLACK_PEN, 120, "black", rng)
    bubble(img, *BUBBLE, rim_px=6)
    debris(img, 40, 6, rng)
    return write_pyramid_tiff(slide_dir / "artifacts.tiff", img, 0.5)


@pytest.fixture(scope="session")
def empty_slide(slide_dir: Path) -> Path:
    """Glass with only a bubble and dust on it: no cells at all."""
    img = glass(2000, seed=5)
    rng = np.random.default_rng(12)
    bubble(img, (1000, 1000), 400, rim_px=6)
    debris(img, 60, 6, rng)
    return write_pyramid_tiff(slide_dir / "empty.tiff", img, 0.5)


@pytest.fixture(scope="session")
def svs_path() -> Path:
    return real_path(*SVS_PARTS)


@pytest.fixture(scope="session")
def svs_pixels(svs_path: Path) -> np.ndarray:
    """Level 0 of the real SVS (2220 x 2967 px, small enough to hold)."""
    import openslide

    with openslide.OpenSlide(str(svs_path)) as s:
        return np.asarray(s.read_region((0, 0), 0, s.dimensions))[:, :, :3].copy()


@pytest.fixture(scope="session")
def svs_pyramid(slide_dir: Path, svs_pixels: np.ndarray) -> Path:
    """The real SVS rewritten as a 3-level pyramidal TIFF (2967, 1483, 741 px high) at 0.499 µm/px."""
    return write_pyramid_tiff(slide_dir / "cmu1_pyramid.tiff", svs_pixels, 0.499, quality=95, min_size=512)


@pytest.fixture(scope="session")
def cohort_tiles(small_cohort: SynthResult, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project's 15-patient synthetic cohort tiled with ``COHORT_CFG`` (two processes)."""
    out = tmp_path_factory.mktemp("tiles") / "run"
    tile_cohort(small_cohort.manifest, out, COHORT_CFG, workers=2)
    return out
