"""Before/after contact sheets of the ultrasound preprocessing, for a human to look at.

``radiopath validate MANIFEST --preview DIR`` calls :func:`write_preview`: for a sample of
patients (spread over centers), each view is shown as the screenshot with what the transform
found drawn on it — scan area (green), nodule region (yellow), crop (cyan), removed marks
(red), colour pixels (blue) — next to the model-ready crop. A table lists every flag, so
images without a scan area are reported, not hidden.

Output (each file written atomically)::

    DIR/contact_sheet.png   one row per patient: view 1 before | after | view 2 before | after
    DIR/preview.csv         one row per view: flags, scan-area source, marks found, crop box
"""

from __future__ import annotations

import errno
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from radiopath.errors import RadiopathError
from radiopath.io.atomic import atomic_path
from radiopath.ultrasound.transform import ProcessedView, UltrasoundTransform, load_view

PANEL = 240  # side of one panel, px
#: Longer side the preview reads images at: the panels are 240 px, and a 9,000-px export
#: processed at full size takes minutes (the scan-area filters grow with the image).
PREVIEW_MAX_SIDE = 1600
VIEWS = ("us_1", "us_2")


@dataclass(frozen=True)
class Preview:
    """What :func:`write_preview` wrote and found."""

    sheet: Path
    table: Path
    views: int
    no_scan_area: int
    marks_removed: int
    errors: int


def sample_patients(table: pd.DataFrame, patients: int, seed: int = 0) -> pd.DataFrame:
    """Up to ``patients`` rows with an ultrasound image, spread evenly over centers."""
    has_us = table["us_1"].notna() | table.get("us_2", pd.Series(None, index=table.index)).notna()
    pool = table[has_us]
    if pool.empty:
        return pool
    centers = sorted(pool["center"].astype(str).unique())
    per = max(1, -(-patients // len(centers)))
    picks = [
        group.sample(n=min(per, len(group)), random_state=seed)
        for _, group in pool.groupby(pool["center"].astype(str), sort=True)
    ]
    return pd.concat(picks).head(patients)


def write_preview(
    table: pd.DataFrame,
    out_dir: str | Path,
    transform: UltrasoundTransform | None = None,
    patients: int = 12,
    seed: int = 0,
) -> Preview:
    """Write the contact sheet and flag table for a sample of ``table`` (``Cohort.table``).

    An image that cannot be read is listed in the table with its error; it does not stop
    the preview.
    """
    tf = transform or UltrasoundTransform()
    out_dir = Path(out_dir)
    rows: list[np.ndarray] = []
    records: list[dict[str, object]] = []
    for _, row in sample_patients(table, patients, seed).iterrows():
        panels = []
        for view in VIEWS:
            rec: dict[str, object] = {"patient_id": row["patient_id"], "center": row["center"], "view": view}
            try:
                result = (
                    load_view(row, view, tf, details=True, max_side=PREVIEW_MAX_SIDE) if view in row else None
                )
            except RadiopathError as exc:
                rec["error"] = str(exc)
                records.append(rec)
                panels += [_blank("unreadable"), _blank("")]
                continue
            if result is None:
                panels += [_blank("no image"), _blank("")]
                continue
            records.append({**rec, **_describe(result)})
            panels += [_before(result, row[view]), _fit(result.image)]
        strip = np.concatenate(panels, axis=1)
        _label(strip, f"{row['patient_id']}  {row['center']}  LNM={_label_text(row.get('lnm'))}")
        rows.append(strip)
    sheet = np.concatenate([_header(), *rows], axis=0) if rows else _header()
    flags = pd.DataFrame.from_records(records)
    sheet_path, table_path = out_dir / "contact_sheet.png", out_dir / "preview.csv"
    with atomic_path(sheet_path) as tmp:  # makes out_dir; a file in the way is a clear error
        if not cv2.imwrite(str(tmp), sheet[:, :, ::-1]):  # OpenCV reports failure, never raises
            raise OSError(errno.EIO, "the contact sheet could not be written")
    with atomic_path(table_path) as tmp:
        flags.to_csv(tmp, index=False)
    col = flags["flags"] if "flags" in flags else pd.Series([], dtype=str)
    return Preview(
        sheet=sheet_path,
        table=table_path,
        views=int(col.notna().sum()),
        no_scan_area=int(col.fillna("").str.contains("no_scan_area").sum()),
        marks_removed=int(col.fillna("").str.contains("marks_removed").sum()),
        errors=int(flags["error"].notna().sum()) if "error" in flags else 0,
    )


def _describe(result: ProcessedView) -> dict[str, object]:
    marks = result.marks.summary() if result.marks is not None else {}
    return {
        "scan_found": result.scan.found,
        "scan_source": result.scan.source,
        "scan_box": ",".join(map(str, result.scan.box)),
        "region": result.region.source,
        "crop_box": ",".join(map(str, result.region.crop)),
        "flags": ";".join(result.flags),
        "reason": result.scan.reason,
        **marks,
    }


def _before(result: ProcessedView, path: object) -> np.ndarray:
    """The screenshot with the scan area, nodule, crop and removed marks drawn on it."""
    from radiopath.io.images import read_image

    img = read_image(str(path), max_side=PREVIEW_MAX_SIDE).copy()
    if result.marks is not None:
        img[result.marks.colour & ~result.marks.marks] = (0, 90, 255)
        img[result.marks.marks] = (255, 0, 0)
    x0, y0, x1, y1 = result.scan.box
    cv2.rectangle(img, (x0, y0), (x1 - 1, y1 - 1), (0, 255, 0) if result.scan.found else (255, 0, 255), 2)
    if result.region.nodule is not None:
        a, b, c, d = result.region.nodule
        cv2.rectangle(img, (a, b), (c - 1, d - 1), (255, 255, 0), 1)
    a, b, c, d = result.region.crop
    cv2.rectangle(img, (a, b), (c - 1, d - 1), (0, 255, 255), 1)
    panel = _fit(img)
    if not result.scan.found:
        cv2.putText(panel, "NO SCAN AREA", (6, PANEL - 10), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 0, 255), 1)
    return panel


def _fit(img: np.ndarray) -> np.ndarray:
    h, w = img.shape[:2]
    s = PANEL / max(h, w)
    interp = cv2.INTER_AREA if s < 1 else cv2.INTER_NEAREST
    small = cv2.resize(img, (max(1, round(w * s)), max(1, round(h * s))), interpolation=interp)
    panel = np.full((PANEL, PANEL, 3), 24, np.uint8)
    y, x = (PANEL - small.shape[0]) // 2, (PANEL - small.shape[1]) // 2
    panel[y : y + small.shape[0], x : x + small.shape[1]] = small
    return panel


def _blank(text: str) -> np.ndarray:
    panel = np.full((PANEL, PANEL, 3), 40, np.uint8)
    cv2.putText(panel, text, (8, PANEL // 2), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (200, 200, 200), 1, cv2.LINE_AA)
    return panel


def _label(strip: np.ndarray, text: str) -> None:
    cv2.rectangle(strip, (0, 0), (len(text) * 8 + 8, 18), (255, 255, 255), -1)
    cv2.putText(strip, text, (4, 13), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.rectangle(strip, (0, 0), (strip.shape[1] - 1, strip.shape[0] - 1), (255, 255, 255), 2)


def _label_text(value: object) -> str:
    return "?" if value is None or pd.isna(value) else str(int(value))  # type: ignore[call-overload]


def _header() -> np.ndarray:
    header = np.full((46, PANEL * 4, 3), 255, np.uint8)
    titles = ["view 1: found", "view 1: model input", "view 2: found", "view 2: model input"]
    font = cv2.FONT_HERSHEY_SIMPLEX
    for i, title in enumerate(titles):
        cv2.putText(header, title, (i * PANEL + 6, 17), font, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    legend = (
        ("scan area", (0, 160, 0)),
        ("nodule", (170, 150, 0)),
        ("crop", (0, 150, 170)),
        ("marks removed", (220, 0, 0)),
        ("colour", (0, 90, 255)),
        ("no scan area", (255, 0, 255)),
    )
    x = 6
    for text, colour in legend:
        cv2.rectangle(header, (x, 28), (x + 10, 38), colour, -1)
        cv2.putText(header, text, (x + 14, 38), font, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
        x += 24 + 8 * len(text)
    return header
