"""The file checks of validation: every image decodes, masks fit, slides open, no shared images.

These need pixels, so they run per file (in threads; decoding releases the GIL):

* every ultrasound image and mask decodes (truncated, empty, non-image and too-large files
  are caught, each naming the file), within the pixel budget;
* a mask has the size of its image and some foreground — or, with ``empty_mask="ignore"``,
  an empty mask is reported as a warning and treated as no mask;
* a box lies inside its image;
* a cytology slide opens, every patch of a patch folder decodes, and a slide without a usable
  resolution is reported (tiling needs one);
* the same pixels under two patients (a copied image leaks between folds).
"""

from __future__ import annotations

import hashlib
import os
from collections import defaultdict
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from radiopath.cohort.schema import BOX_COLUMNS, CYTOLOGY_COLUMN, MASK_COLUMNS, US_VIEWS
from radiopath.errors import ImageReadError
from radiopath.io.images import read_image
from radiopath.io.slides import probe_cytology

#: A problem sink: (severity, message, fix, row, column).
Report = Callable[[str, str, str, int, str], None]


@dataclass(frozen=True)
class _Probe:
    shape: tuple[int, int] | None = None
    digest: str | None = None
    error: str | None = None
    fix: str = "re-export the file or fix the path"
    foreground: bool | None = None
    note: str | None = None


def check_files(
    rows: np.ndarray,
    patient_ids: np.ndarray,
    paths: Mapping[str, np.ndarray],
    boxes: Mapping[str, np.ndarray],
    report: Report,
    workers: int | None = None,
    empty_mask: str = "error",
    max_pixels: int | None = None,
) -> set[tuple[int, str]]:
    """Run the file checks; return the ``(row index, mask column)`` of empty masks to ignore.

    Args:
        rows: 1-based row number per table row.
        patient_ids: patient id per row.
        paths: absolute path (or None) per row, for each file column.
        boxes: parsed box (or None) per row, for each ultrasound view.
        report: where problems go.
        workers: decoding threads (default: CPU count, at most 8).
        empty_mask: ``"error"`` or ``"ignore"`` (warn and treat the mask as absent).
        max_pixels: pixel budget for each image (default: the global budget).
    """
    jobs = [(i, col, Path(p)) for col, column in paths.items() for i, p in enumerate(column) if p is not None]
    n = workers or min(8, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=max(1, n)) as pool:
        results = list(pool.map(lambda job: _probe(job[1], job[2], max_pixels), jobs))
    shapes: dict[tuple[int, str], tuple[int, int]] = {}
    digests: dict[str, list[tuple[int, str]]] = defaultdict(list)
    ignored: set[tuple[int, str]] = set()
    for (i, col, path), probe in zip(jobs, results, strict=True):
        r = int(rows[i])
        if probe.error is not None:
            report("error", probe.error, probe.fix, r, col)
            continue
        if probe.note is not None:
            report(
                "warning",
                f"cytology '{path.name}' {probe.note}; tiling will refuse it without a resolution",
                "give it with radiopath tile --mpp-table (a CSV with columns slide,mpp)",
                r,
                col,
            )
        if probe.shape is not None:
            shapes[(i, col)] = probe.shape
        if probe.digest is not None:
            digests[probe.digest].append((i, col))
        if probe.foreground is False:
            if empty_mask == "ignore":
                ignored.add((i, col))
                report(
                    "warning",
                    f"mask '{path.name}' has no foreground pixels and is treated as no mask",
                    "draw the nodule region, or clear the cell to silence this",
                    r,
                    col,
                )
            else:
                report(
                    "error",
                    f"mask '{path.name}' has no foreground pixels",
                    "draw the nodule region or clear the cell (or validate with empty_mask='ignore')",
                    r,
                    col,
                )
    _check_geometry(rows, boxes, shapes, ignored, report)
    _check_shared(rows, patient_ids, digests, report)
    return ignored


def _check_geometry(
    rows: np.ndarray,
    boxes: Mapping[str, np.ndarray],
    shapes: dict[tuple[int, str], tuple[int, int]],
    ignored: set[tuple[int, str]],
    report: Report,
) -> None:
    """Masks the size of their image; boxes inside it."""
    for i, view in ((i, v) for (i, v) in shapes if v in US_VIEWS):
        img = shapes[(i, view)]
        mask_col = MASK_COLUMNS[view]
        mask = shapes.get((i, mask_col))
        if mask and img != mask and (i, mask_col) not in ignored:
            report(
                "error",
                f"mask is {mask[1]}x{mask[0]} px but the {view} image is {img[1]}x{img[0]} px",
                "use the mask drawn on this exact image",
                int(rows[i]),
                mask_col,
            )
        box = boxes[view][i] if view in boxes else None
        if box and (box[2] > img[1] or box[3] > img[0]):
            report(
                "error",
                f"box {','.join(map(str, box))} lies outside the {img[1]}x{img[0]} px {view} image",
                "give the box in pixels of this image",
                int(rows[i]),
                BOX_COLUMNS[view],
            )


def _check_shared(
    rows: np.ndarray, patient_ids: np.ndarray, digests: dict[str, list[tuple[int, str]]], report: Report
) -> None:
    """The same pixels in two patients' rows."""
    for holders in digests.values():
        owners = {patient_ids[i] for i, _ in holders}
        if len(owners) < 2:
            continue
        (i0, c0), *others = holders
        for i1, c1 in others:
            if patient_ids[i1] != patient_ids[i0]:
                report(
                    "error",
                    f"{c1} has the same image content as {c0} of patient '{patient_ids[i0]}' "
                    f"(row {int(rows[i0])})",
                    "each patient's images must be their own; a copied image leaks between folds",
                    int(rows[i1]),
                    c1,
                )


def _probe(col: str, path: Path, max_pixels: int | None) -> _Probe:
    """Shape, pixel digest, error, mask foreground and cytology note for one file."""
    try:
        if col == CYTOLOGY_COLUMN:
            probe = probe_cytology(path, decode=True, max_pixels=max_pixels)
            return _Probe(note=probe.mpp_note)
        arr = read_image(path, max_pixels=max_pixels)
    except ImageReadError as exc:  # a bad patch of a folder is named in the reason
        return _Probe(error=f"{exc.reason} ({path.name})", fix=exc.fix)
    shape = (int(arr.shape[0]), int(arr.shape[1]))
    if col in MASK_COLUMNS.values():
        return _Probe(shape=shape, foreground=bool(np.any(arr)))
    return _Probe(shape=shape, digest=hashlib.sha256(arr.tobytes()).hexdigest())
