"""Synthetic cohorts: valid, reproducible, with the signal where the truth says it is."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import openslide
import pandas as pd
import pytest
from scipy.stats import spearmanr

from radiopath.cohort import Cohort
from radiopath.errors import OutputExistsError
from radiopath.io.images import read_image
from radiopath.synth import CenterSpec, SynthConfig, SynthResult, oracle_auc, synthesize
from radiopath.synth.cohort import center_counts
from radiopath.synth.cytology import render_slide
from radiopath.synth.latent import draw_outcomes
from radiopath.synth.phenotype import cells_from_latent, nodule_from_latent
from radiopath.synth.spec import default_centers
from radiopath.synth.ultrasound import render_view


def test_small_cohort_is_a_valid_three_center_study(small_cohort: SynthResult) -> None:
    cohort = Cohort.from_manifest(small_cohort.manifest)
    assert all("cross-validation needs" in w.message for w in cohort.warnings)  # 15 patients only
    t = cohort.table
    assert len(t) == 15
    assert t.groupby("center").size().to_dict() == {"Hospital A": 9, "Hospital B": 3, "Hospital C": 3}
    assert set(t.loc[t["center"] == "Hospital A", "cohort"]) == {"development"}
    assert set(t.loc[t["center"] != "Hospital A", "cohort"]) == {"external"}
    assert t[["us_1", "us_2", "cytology"]].notna().all().all()
    assert t["us_1_box"].map(lambda b: b[2] > b[0] and b[3] > b[1]).all()
    truth = pd.read_csv(small_cohort.truth)
    assert truth["patient_id"].tolist() == t["patient_id"].tolist()
    assert truth["lnm"].tolist() == t["lnm"].astype(int).tolist()
    for col in (
        "us_latent",
        "cytology_latent",
        "clinical_latent",
        "risk",
        "us_echogenicity",
        "cyto_nuclear_diameter_um",
    ):
        assert truth[col].notna().all(), col


def test_slides_are_pyramidal_tiffs_with_the_centers_mpp(tmp_path: Path) -> None:
    centers = [
        CenterSpec(name="Dev", cohort="development", mpp=0.25),
        CenterSpec(name="Ext", cohort="external", mpp=0.5),
    ]
    res = synthesize(
        tmp_path / "c", SynthConfig(patients=4, seed=1, slide_um=400, centers=centers, workers=1)
    )
    df = pd.read_csv(res.manifest)
    for _, row in df.iterrows():
        with openslide.OpenSlide(str(res.out_dir / row["cytology"])) as slide:
            mpp = 0.25 if row["center"] == "Dev" else 0.5
            assert float(slide.properties[openslide.PROPERTY_NAME_MPP_X]) == pytest.approx(mpp)
            assert slide.dimensions == (round(400 / mpp),) * 2
            if mpp == 0.25:  # 1600 px: a 2-level pyramid
                assert slide.level_count == 2 and slide.level_downsamples[1] == pytest.approx(2.0)


def test_same_seed_same_cohort_whatever_the_workers(tmp_path: Path) -> None:
    cfg = dict(patients=6, seed=3, slide_um=300)
    a = synthesize(tmp_path / "a", SynthConfig(**cfg, workers=1))
    b = synthesize(tmp_path / "b", SynthConfig(**cfg, workers=2))
    assert a.manifest.read_text() == b.manifest.read_text()
    assert a.truth.read_text() == b.truth.read_text()
    for f in sorted((tmp_path / "a").rglob("*.png")) + sorted((tmp_path / "a").rglob("*.tiff")):
        if f.name != "contact_sheet.png":
            assert f.read_bytes() == (tmp_path / "b" / f.relative_to(tmp_path / "a")).read_bytes(), f
    c = synthesize(tmp_path / "c", SynthConfig(**cfg, workers=1).model_copy(update={"seed": 4}))
    assert c.truth.read_text() != a.truth.read_text()


def test_existing_output_is_never_overwritten_silently(tmp_path: Path) -> None:
    out = tmp_path / "cohort"
    out.mkdir()
    (out / "results.csv").write_text("precious")
    with pytest.raises(OutputExistsError, match="--overwrite"):
        synthesize(out, SynthConfig(patients=4, slide_um=300, workers=1))
    assert (out / "results.csv").read_text() == "precious"


def test_missing_modalities_option(tmp_path: Path) -> None:
    res = synthesize(
        tmp_path / "m",
        SynthConfig(patients=8, seed=2, slide_um=300, missing_us2=1.0, missing_cytology=0.5, workers=1),
    )
    cohort = Cohort.from_manifest(res.manifest)
    assert cohort.table["us_2"].isna().all()
    assert 0 < cohort.table["cytology"].isna().sum() < 8
    assert not list((tmp_path / "m" / "ultrasound").glob("*_2.png"))


def test_liability_model_prevalence_and_oracles() -> None:
    rng = np.random.default_rng(0)
    w = {"us": 1.0, "cytology": 1.0, "clinical": 0.3}
    truth = draw_outcomes(rng, 40_000, w, noise=1.0, prevalence=0.45)
    assert truth["lnm"].mean() == pytest.approx(0.45, abs=0.01)
    us, cy = oracle_auc(truth, ["us"]), oracle_auc(truth, ["cytology"])
    both, everything = (
        oracle_auc(truth, ["us", "cytology"]),
        oracle_auc(truth, ["us", "cytology", "clinical"]),
    )
    assert 0.72 < us < 0.80 and abs(us - cy) < 0.01
    assert both > max(us, cy) + 0.06 and everything > both
    silent = draw_outcomes(rng, 40_000, {"us": 0.0, "cytology": 1.0, "clinical": 0.0}, 1.0, 0.45)
    assert oracle_auc(silent, ["us"]) == pytest.approx(0.5, abs=0.01)
    assert oracle_auc(silent, ["us", "cytology"]) == pytest.approx(oracle_auc(silent, ["cytology"]), abs=1e-9)


def test_ultrasound_pixels_carry_the_ultrasound_latent() -> None:
    """Darker (hypoechoic) nodules as u rises: measured on rendered pixels, not on phenotypes."""
    center = default_centers()[0]
    latents = np.linspace(-2.5, 2.5, 11)
    contrast = []
    for i, u in enumerate(latents):
        rng = np.random.default_rng(i)
        view = render_view(nodule_from_latent(float(u), rng), "transverse", center, rng)
        gray = view.image[..., 0].astype(float)
        inside = view.mask > 0
        x0, y0, x1, y1 = view.box
        ring = np.zeros_like(inside)
        ring[max(y0 - 25, 44) : y1 + 25, max(x0 - 25, 72) : x1 + 25] = True
        ring &= ~inside
        contrast.append(gray[inside].mean() / gray[ring].mean())
    rho, _ = spearmanr(latents, contrast)
    assert rho < -0.8, contrast


def test_cytology_pixels_carry_the_cytology_latent() -> None:
    """Bigger nuclei as c rises: mean size of dark connected blobs on the rendered slide."""
    import cv2

    center = default_centers()[0]
    latents = np.linspace(-2.0, 2.0, 7)
    sizes = []
    for i, c in enumerate(latents):
        rng = np.random.default_rng(100 + i)
        img = render_slide(cells_from_latent(float(c), rng), center, 400, rng)
        nuclei = (img.min(axis=2) < 150).astype(np.uint8)
        _, _, stats, _ = cv2.connectedComponentsWithStats(nuclei)
        areas = stats[1:, cv2.CC_STAT_AREA]
        sizes.append(np.median(areas[areas > 10]))
    rho, _ = spearmanr(latents, sizes)
    assert rho > 0.85, sizes


def test_centers_differ_in_acquisition() -> None:
    a, b, c = default_centers()
    nod = nodule_from_latent(0.0, np.random.default_rng(0))
    means = [
        render_view(nod, "transverse", ctr, np.random.default_rng(1)).image[44:364, 72:456].mean()
        for ctr in (a, b, c)
    ]
    assert means[1] > means[0] * 1.1 and means[2] < means[0] * 0.9  # gain 1.15 / 0.85, contrast
    cells = cells_from_latent(0.0, np.random.default_rng(0))
    colours = []
    for ctr in (a, b, c):
        img = render_slide(cells, ctr, 300, np.random.default_rng(2)).reshape(-1, 3).astype(float)
        nuclei = img[img.min(axis=1) < 150]
        colours.append(nuclei.mean(axis=0))
    # B stains paler (x0.78), C darker (x1.3), both with rotated hue: nuclei differ by >10 levels
    assert (colours[1] - colours[0]).min() > 10 and (colours[0] - colours[2]).min() > 5, colours


def test_center_counts_follow_weights() -> None:
    assert center_counts(300, default_centers()) == [180, 60, 60]
    assert sum(center_counts(7, default_centers())) == 7
    assert min(center_counts(3, default_centers())) == 1


def test_contact_sheet_shows_patients(small_cohort: SynthResult) -> None:
    sheet = read_image(small_cohort.contact_sheet)
    assert sheet.shape[1] == 4 * 240 and sheet.shape[0] == 28 + 6 * 240  # 2 patients x 3 centers
    assert sheet.std() > 30


def test_config_rejects_nonsense() -> None:
    from radiopath.errors import ConfigError

    with pytest.raises(ConfigError, match="centers"):
        SynthConfig.from_dict({"centers": [{"name": "X", "cohort": "external"}]})
    with pytest.raises(ConfigError, match="prevalence"):
        SynthConfig.from_dict({"prevalence": 1.5})
    with pytest.raises(ConfigError, match="patients_typo"):
        SynthConfig.from_dict({"patients_typo": 3})
