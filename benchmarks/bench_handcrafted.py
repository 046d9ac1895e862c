"""Handcrafted feature extraction cost, ours against the plain way, on one core.

* **ultrasound, per view** — ours: :func:`radiopath.features.radiomics.processed_view_radiomics`
  (shape, first order, GLCM, GLRLM, GLSZM, GLDM, NGTDM, LBP, perinodular; bincount-vectorised)
  against PyRadiomics' ``RadiomicsFeatureExtractor`` with every class enabled (``force2D``, the
  same bin width, the view as a one-slice volume) when it is installed
  (``pip install -e '.[reference]'``). Both start from the same cleaned views and masks (the
  ultrasound transform is not timed).
* **cytology, per 224-px tile at 0.5 µm/px** — nuclear segmentation
  (:func:`radiopath.slides.nuclei.segment_nuclei`) and then ours
  (:func:`radiopath.features.pathomics.measure_tile`'s per-nucleus measures, all labels at
  once) against the plain way: ``skimage.measure.regionprops`` per nucleus plus a
  ``graycomatrix`` per nucleus for the chromatin texture, on the same segmentation.

Best of ``--repeat`` passes after a warm-up; OpenCV limited to one thread. Views: the 89 DDTI
crops with their masks when ``../shared/data/real`` is present, else synthetic screenshots.
Run::

    .venv/bin/python benchmarks/bench_handcrafted.py
    .venv/bin/python benchmarks/bench_handcrafted.py --views 20 --tiles 32
"""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from skimage.feature import graycomatrix, graycoprops
from skimage.measure import regionprops

from radiopath.features.pathomics import PathomicsConfig, cell_groups, measure_nuclei, measure_tile
from radiopath.features.radiomics import RadiomicsConfig, processed_view_radiomics
from radiopath.io.images import read_image
from radiopath.slides.nuclei import segment_nuclei
from radiopath.synth.cytology import render_slide
from radiopath.synth.phenotype import cells_from_latent, nodule_from_latent
from radiopath.synth.spec import default_centers
from radiopath.synth.ultrasound import render_view
from radiopath.ultrasound import UltrasoundTransform
from radiopath.ultrasound.region import binary_mask

REAL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real" / "ddti_thyroid_us"


def timed(fn: Callable[[], object], repeat: int) -> float:
    fn()  # warm-up
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def load_views(n: int) -> tuple[str, list[tuple[object, np.ndarray]]]:
    tf = UltrasoundTransform()
    if REAL.exists():
        labels = pd.read_csv(REAL / "labels.csv")
        out = []
        for rec in labels.itertuples():
            mask = binary_mask(read_image(REAL / rec.mask))
            if mask.any():
                out.append((tf.process(read_image(REAL / rec.image), mask=mask), mask))
        return "DDTI crops 300x300 with masks", out[:n]
    out = []
    for k in range(n):
        rng = np.random.default_rng(k)
        r = render_view(nodule_from_latent(rng.normal(), rng), "transverse", default_centers()[0], rng)
        out.append((tf.process(r.image, mask=r.mask), r.mask > 0))
    return "synthetic screenshots 512x400", out


def pyradiomics_extractor(bin_width: float) -> Callable[[np.ndarray, np.ndarray], object] | None:
    try:
        import SimpleITK as sitk
        from radiomics import featureextractor
    except ImportError:
        return None
    logging.getLogger("radiomics").setLevel(logging.ERROR)
    ex = featureextractor.RadiomicsFeatureExtractor(binWidth=bin_width, force2D=True, force2Ddimension=0)
    ex.enableAllFeatures()
    ex.enableImageTypeByName("Original")

    def run(gray: np.ndarray, mask: np.ndarray) -> object:
        ys, xs = np.nonzero(mask)
        sl = (slice(ys.min(), ys.max() + 1), slice(xs.min(), xs.max() + 1))
        img = sitk.GetImageFromArray(gray[sl][None].astype(np.float32))
        return ex.execute(img, sitk.GetImageFromArray(mask[sl][None].astype(np.uint8)))

    return run


def plain_nuclei(seg: object, cfg: PathomicsConfig) -> list[dict[str, float]]:
    """regionprops and one graycomatrix per nucleus: the same measures, one nucleus at a time."""
    levels = np.minimum((seg.hematoxylin / cfg.chromatin_bin_od).astype(np.int64), cfg.chromatin_levels - 1)
    rows = []
    angles = [0, np.pi / 4, np.pi / 2, 3 * np.pi / 4]
    for p in regionprops(seg.labels, intensity_image=seg.hematoxylin):
        sl = p.slice
        img = np.where(p.image, levels[sl], cfg.chromatin_levels).astype(np.uint8)
        glcm = graycomatrix(img, [1], angles, levels=cfg.chromatin_levels + 1, symmetric=True)
        glcm = glcm[: cfg.chromatin_levels, : cfg.chromatin_levels].sum(axis=3, keepdims=True)
        rows.append(
            {
                "area": p.area,
                "perimeter": p.perimeter,
                "major": p.axis_major_length,
                "minor": p.axis_minor_length,
                "eccentricity": p.eccentricity,
                "solidity": p.solidity,
                "od_mean": p.intensity_mean,
                "od_sd": float(np.std(seg.hematoxylin[sl][p.image])),
                "contrast": float(graycoprops(glcm, "contrast")[0, 0]),
                "homogeneity": float(graycoprops(glcm, "homogeneity")[0, 0]),
            }
        )
    return rows


def load_tiles(n: int) -> list[np.ndarray]:
    tiles = []
    for k, latent in enumerate(np.linspace(-1.5, 2.0, max(n // 4, 1))):
        rng = np.random.default_rng(k)
        img = render_slide(cells_from_latent(float(latent), rng), default_centers()[k % 3], 448, rng)
        for y in (0, 224, 448, 672):
            for x in (0, 224, 448, 672):
                tile = np.ascontiguousarray(img[y : y + 224, x : x + 224])
                if (tile.mean(axis=2) < 200).mean() > 0.02:  # cell-bearing, as the tiler keeps them
                    tiles.append(tile)
    return tiles[:n]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--views", type=int, default=40)
    ap.add_argument("--tiles", type=int, default=32)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    cv2.setNumThreads(1)

    name, views = load_views(args.views)
    rcfg = RadiomicsConfig()
    t_ours = timed(lambda: [processed_view_radiomics(v, mask=m, cfg=rcfg) for v, m in views], args.repeat)
    n = len(views)
    print(f"{name}: {n} views")
    n_features = len(processed_view_radiomics(views[0][0], mask=views[0][1]).features)
    print(f"  ours (all families, {n_features} features)   {1000 * t_ours / n:7.1f} ms/view")
    pyrad = pyradiomics_extractor(rcfg.bin_width)
    if pyrad is None:
        print("  PyRadiomics not installed (pip install -e '.[reference]') - no comparison")
    else:
        t_py = timed(lambda: [pyrad(v.cleaned, m) for v, m in views], max(args.repeat - 2, 1))
        print(
            f"  PyRadiomics, all classes        {1000 * t_py / n:7.1f} ms/view   ({t_py / t_ours:.1f}x ours)"
        )
    print(f"  1000 patients x 2 views, ours: {2000 * t_ours / n / 60:.1f} min on one core")

    tiles = load_tiles(args.tiles)
    pcfg = PathomicsConfig()
    segs = [segment_nuclei(t, 0.5, pcfg.nuclei) for t in tiles]
    groups = [cell_groups(t, 0.5, pcfg.group_closing_um) for t in tiles]
    t_seg = timed(lambda: [segment_nuclei(t, 0.5, pcfg.nuclei) for t in tiles], args.repeat)
    t_meas = timed(
        lambda: [measure_nuclei(s, g, pcfg) for s, g in zip(segs, groups, strict=True)], args.repeat
    )
    t_plain = timed(lambda: [plain_nuclei(s, pcfg) for s in segs], args.repeat)
    t_tile = timed(lambda: [measure_tile(t, 0.5, pcfg) for t in tiles], args.repeat)
    k = len(tiles)
    nuclei = np.mean([s.count for s in segs])
    print(f"synthetic LBC tiles 224x224 at 0.5 um/px: {k} tiles, {nuclei:.0f} nuclei per tile")
    print(f"  nuclear segmentation            {1000 * t_seg / k:7.1f} ms/tile")
    print(f"  ours, per-nucleus measures      {1000 * t_meas / k:7.1f} ms/tile")
    ratio = t_plain / t_meas
    print(f"  regionprops + graycomatrix      {1000 * t_plain / k:7.1f} ms/tile   ({ratio:.1f}x ours)")
    print(f"  measure_tile (all of it)        {1000 * t_tile / k:7.1f} ms/tile")
    print(f"  64 tiles x 1000 patients, ours: {64000 * t_tile / k / 60:.1f} min on one core")


if __name__ == "__main__":
    main()
