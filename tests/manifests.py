"""Build small manifests with real files on disk for validation tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from radiopath.io.tiff import write_pyramid_tiff


def write_png(path: Path, seed: int, size: tuple[int, int] = (64, 48)) -> str:
    """A unique noise PNG (so no two patients share image content)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (size[1], size[0]), dtype=np.uint8)).save(path)
    return path.name if path.parent.name == "" else str(path)


def clean_manifest(folder: Path, n: int = 20, with_slide: bool = True) -> Path:
    """A valid manifest of ``n`` patients (two centers) with images, a mask, a box and a slide."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    slide_rel = ""
    if with_slide:
        rgb = np.full((600, 600, 3), 240, np.uint8)
        rgb[200:300, 200:300] = (80, 60, 150)
        write_pyramid_tiff(folder / "slides" / "s.tiff", rgb, mpp=0.5, min_size=128)
        slide_rel = "slides/s.tiff"
    for i in range(n):
        write_png(folder / "us" / f"p{i}_1.png", seed=i)
        write_png(folder / "us" / f"p{i}_2.png", seed=1000 + i)
        rows.append(
            {
                "patient_id": f"P{i:03d}",
                "center": "A" if i < n * 2 // 3 else "B",
                "cohort": "development" if i < n * 2 // 3 else "external",
                "lnm": str(i % 2),
                "us_1": f"us/p{i}_1.png",
                "us_2": f"us/p{i}_2.png",
                "us_1_box": "4,4,40,30" if i % 3 == 0 else "",
                "cytology": slide_rel if i == 0 else "",
                "clin_age": str(40 + i),
            }
        )
    mask = np.zeros((48, 64), np.uint8)
    mask[10:30, 10:40] = 255
    Image.fromarray(mask).save(folder / "us" / "p1_1_mask.png")
    df = pd.DataFrame(rows)
    df["us_1_mask"] = ["us/p1_1_mask.png" if i == 1 else "" for i in range(n)]
    path = folder / "manifest.csv"
    df.to_csv(path, index=False)
    return path
