"""A contact sheet: a few patients per center, both ultrasound views and the slide.

It exists so a human looks at the data before trusting any number computed from it. Each
row is one patient: view 1 with the manifest's nodule box, view 2, a thumbnail of the
whole slide and a crop at full resolution where the slide is most cellular.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from radiopath.cohort.schema import parse_box
from radiopath.io.atomic import atomic_path
from radiopath.io.images import read_image

CELL = 240  # side of one panel, px


def contact_sheet(manifest: str | Path, out: str | Path, per_center: int = 2) -> Path:
    """Write a PNG of ``per_center`` patients per center (LNM− and LNM+ when both exist)."""
    manifest = Path(manifest)
    root = manifest.parent
    df = pd.read_csv(manifest, dtype=str, keep_default_na=False)
    rows = []
    for _, group in df.groupby("center", sort=True):
        picks = []
        for label in ("0", "1"):
            picks += group[group["lnm"] == label].head((per_center + 1) // 2).to_dict("records")
        for rec in picks[:per_center]:
            rows.append(_patient_row(rec, root))
    sheet = np.concatenate(rows, axis=0) if rows else np.full((CELL, CELL * 4, 3), 255, np.uint8)
    header = np.full((28, sheet.shape[1], 3), 255, np.uint8)
    for i, title in enumerate(
        ["ultrasound view 1 (box)", "ultrasound view 2", "slide", "slide, full resolution"]
    ):
        cv2.putText(
            header, title, (i * CELL + 6, 19), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA
        )
    sheet = np.concatenate([header, sheet], axis=0)
    out = Path(out)
    with atomic_path(out) as tmp:
        cv2.imwrite(str(tmp), sheet[:, :, ::-1])
    return out


def _patient_row(rec: dict[str, str], root: Path) -> np.ndarray:
    panels = [_us_panel(rec, root, 1), _us_panel(rec, root, 2), *_slide_panels(rec, root)]
    row = np.concatenate(panels, axis=1)
    label = f"{rec['patient_id']}  {rec['center']}  LNM={rec['lnm'] or '?'}"
    cv2.rectangle(row, (0, 0), (len(label) * 8 + 8, 18), (255, 255, 255), -1)
    cv2.putText(row, label, (4, 13), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.rectangle(row, (0, 0), (row.shape[1] - 1, row.shape[0] - 1), (255, 255, 255), 2)
    return row


def _fit(img: np.ndarray) -> np.ndarray:
    h, w = img.shape[:2]
    s = CELL / max(h, w)
    small = cv2.resize(img, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
    panel = np.zeros((CELL, CELL, 3), np.uint8)
    y, x = (CELL - small.shape[0]) // 2, (CELL - small.shape[1]) // 2
    panel[y : y + small.shape[0], x : x + small.shape[1]] = small
    return panel


def _us_panel(rec: dict[str, str], root: Path, k: int) -> np.ndarray:
    path = rec.get(f"us_{k}", "")
    if not path:
        return _fit(np.full((CELL, CELL, 3), 40, np.uint8))
    img = read_image(root / path).copy()
    box = rec.get(f"us_{k}_box", "")
    if box:
        x0, y0, x1, y1 = parse_box(box)
        cv2.rectangle(img, (x0, y0), (x1, y1), (80, 255, 80), 2)
    return _fit(img)


def _slide_panels(rec: dict[str, str], root: Path) -> list[np.ndarray]:
    import openslide

    path = rec.get("cytology", "")
    if not path:
        blank = np.full((CELL, CELL, 3), 255, np.uint8)
        return [blank, blank]
    with openslide.OpenSlide(str(root / path)) as slide:
        thumb = np.asarray(slide.get_thumbnail((CELL, CELL)).convert("RGB"))
        level = slide.level_count - 1
        low = np.asarray(slide.read_region((0, 0), level, slide.level_dimensions[level]).convert("RGB"))
        ds = slide.level_downsamples[level]
        dark = cv2.boxFilter((low.mean(axis=2) < 215).astype(np.float32), -1, (max(3, int(CELL / ds)),) * 2)
        y, x = np.unravel_index(int(np.argmax(dark)), dark.shape)
        w0, h0 = slide.dimensions
        x0 = int(min(max(x * ds - CELL / 2, 0), max(w0 - CELL, 0)))
        y0 = int(min(max(y * ds - CELL / 2, 0), max(h0 - CELL, 0)))
        crop = np.asarray(slide.read_region((x0, y0), 0, (CELL, CELL)).convert("RGB"))
    return [_fit(thumb), crop.copy()]
