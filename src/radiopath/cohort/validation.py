"""Check a manifest completely and report *every* problem in one pass.

A clinical group fixing its spreadsheet should not have to run the checker ten times. Each
problem names the row (and CSV line), the column and the fix. Checks, in order:

1. columns: required ones present, no duplicates, unknown ones flagged (with a suggestion);
2. cells: patient id, center, cohort (``development``/``external``), label (0/1/empty),
   boxes ``x0,y0,x1,y1``, at least one modality per patient, mask without its image;
3. paths: exist, are files (or a folder of patches for cytology), and with ``strict`` do not
   escape the manifest's folder through ``..``, an absolute path or a symbolic link;
4. files: every image decodes (truncated, empty and non-image files are caught), masks match
   their image's size and are not empty, boxes lie inside their image, slides open;
5. cohort: duplicate patient ids (and one patient in two centers), the same image content
   under two patients (a leak between folds), a development cohort with one class or too
   few patients per class for cross-validation.
"""

from __future__ import annotations

import hashlib
import os
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from radiopath.cohort.manifest import is_csv, read_manifest_table
from radiopath.cohort.problems import Problem
from radiopath.cohort.schema import (
    BOX_COLUMNS,
    CLINICAL_PREFIX,
    COHORTS,
    CYTOLOGY_COLUMN,
    DEVELOPMENT,
    KNOWN_COLUMNS,
    LABEL_FIX,
    MASK_COLUMNS,
    MODALITY_COLUMNS,
    PATH_COLUMNS,
    REQUIRED_COLUMNS,
    US_VIEWS,
    parse_box,
    parse_label,
    suggest,
)
from radiopath.errors import ImageReadError, ManifestError
from radiopath.io.images import read_image
from radiopath.io.slides import probe_cytology

#: Folds the default protocol uses; fewer patients of a class than this is an error for CV.
DEFAULT_FOLDS = 5


@dataclass
class ValidationReport:
    """Everything :func:`validate_manifest` found.

    Attributes:
        manifest: the manifest file.
        problems: every error and warning, in row order.
        table: the typed, normalised table (absolute paths, ``lnm`` as nullable int) —
            complete only when there are no errors.
    """

    manifest: Path
    problems: list[Problem] = field(default_factory=list)
    table: pd.DataFrame = field(default_factory=pd.DataFrame)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "warning"]

    @property
    def ok(self) -> bool:
        return not self.errors

    def raise_for_errors(self) -> None:
        """Raise :class:`ManifestError` listing every error, if there is any."""
        if self.errors:
            raise ManifestError(self.manifest, self.errors)


class _Collector:
    """Accumulates problems with row → CSV-line bookkeeping."""

    def __init__(self, csv: bool) -> None:
        self.csv = csv
        self.problems: list[Problem] = []

    def error(self, message: str, fix: str, row: int | None = None, column: str | None = None) -> None:
        self._add("error", message, fix, row, column)

    def warn(self, message: str, fix: str, row: int | None = None, column: str | None = None) -> None:
        self._add("warning", message, fix, row, column)

    def _add(self, sev: str, message: str, fix: str, row: int | None, column: str | None) -> None:
        line = row + 1 if (row is not None and self.csv) else None
        self.problems.append(Problem(sev, message, fix, row, column, line))  # type: ignore[arg-type]


def validate_manifest(
    path: str | Path,
    strict: bool = False,
    check_files: bool = True,
    n_folds: int = DEFAULT_FOLDS,
    workers: int | None = None,
) -> ValidationReport:
    """Validate a manifest and return every problem found (never raises for content errors).

    Args:
        path: CSV or Parquet manifest; image paths in it are relative to its folder.
        strict: also reject paths that leave the manifest's folder (``..``, absolute paths,
            symbolic links pointing outside) — use it before sharing a study folder.
        check_files: decode every image and open every slide (the thorough default); ``False``
            only checks that the files exist.
        n_folds: cross-validation folds the cohort must support.
        workers: threads used to decode images (default: CPU count, at most 8).

    Raises:
        ManifestError: only when the manifest itself cannot be read at all.
    """
    path = Path(path)
    df = read_manifest_table(path)
    root = path.resolve().parent
    out = _Collector(is_csv(path))
    report = ValidationReport(manifest=path)

    _check_columns(df, out)
    if df.empty:
        out.error("the manifest has no patient rows", "add one row per patient below the header")
    rows = _check_cells(df, root, strict, out)
    _check_patients(df, rows, out, n_folds)
    if check_files:
        _check_files(rows, out, workers)
    report.problems = sorted(out.problems, key=lambda p: (p.row or 0, p.severity != "error"))
    report.table = _typed_table(df, rows)
    return report


# ---------------------------------------------------------------------------------------------
# columns


def _check_columns(df: pd.DataFrame, out: _Collector) -> None:
    cols = list(df.columns)
    mangled = {c for c in cols if _mangled_duplicate(c, cols)}  # pandas renames a 2nd 'x' to 'x.1'
    for c in sorted(mangled):
        base = c.rsplit(".", 1)[0]
        out.error(f"column '{base}' appears more than once", "keep one column of each name", column=base)
    for req in REQUIRED_COLUMNS:
        if req not in df.columns:
            hint = suggest(req, [c for c in cols if c not in KNOWN_COLUMNS])
            fix = f"rename column '{hint}' to '{req}'" if hint else f"add a column '{req}'"
            out.error(f"required column '{req}' is missing", fix, column=req)
    if not any(c in df.columns for c in MODALITY_COLUMNS):
        out.error(
            "no modality column: the manifest needs 'us_1', 'us_2' or 'cytology'",
            "add the image columns described in the README",
            column=None,
        )
    for c in cols:
        if c in KNOWN_COLUMNS or c.startswith(CLINICAL_PREFIX) or c in mangled:
            continue
        hint = suggest(c, KNOWN_COLUMNS)
        fix = (
            f"rename it to '{hint}'"
            if hint
            else f"prefix clinical covariates with '{CLINICAL_PREFIX}' "
            f"(e.g. '{CLINICAL_PREFIX}{c.lower()}'), or drop the column"
        )
        out.warn(f"column '{c}' is not part of the manifest contract and is ignored", fix, column=c)


def _mangled_duplicate(name: str, cols: list[str]) -> bool:
    base, _, tail = name.rpartition(".")
    return bool(base) and tail.isdigit() and base in cols


# ---------------------------------------------------------------------------------------------
# cells


@dataclass
class _Row:
    """Parsed view of one manifest row (1-based ``row``)."""

    row: int
    patient_id: str
    center: str
    cohort: str
    lnm: int | None
    paths: dict[str, Path | None]
    boxes: dict[str, tuple[int, int, int, int] | None]
    label_ok: bool = True


def _cell(df: pd.DataFrame, i: int, col: str) -> str:
    return df.at[i, col] if col in df.columns else ""


def _check_cells(df: pd.DataFrame, root: Path, strict: bool, out: _Collector) -> list[_Row]:
    rows: list[_Row] = []
    real_root = Path(os.path.realpath(root))
    for i in range(len(df)):
        r = i + 1
        pid = _cell(df, i, "patient_id")
        if "patient_id" in df.columns and not pid:
            out.error("patient_id is empty", "give every patient a unique id", r, "patient_id")
        center = _cell(df, i, "center")
        if "center" in df.columns and not center:
            out.error("center is empty", "name the hospital the patient was seen at", r, "center")
        cohort = _cell(df, i, "cohort")
        if "cohort" in df.columns and cohort not in COHORTS:
            hint = suggest(cohort, COHORTS) if cohort else None
            fix = (
                f"write '{hint}'" if hint else "write 'development' (used for cross-validation) or 'external'"
            )
            shown = f"'{cohort}'" if cohort else "empty"
            out.error(f"cohort is {shown}, not one of development/external", fix, r, "cohort")
        label: int | None = None
        label_ok = True
        if "lnm" in df.columns:
            try:
                label = parse_label(_cell(df, i, "lnm"))
            except ValueError:
                label_ok = False
                out.error(f"lnm is '{_cell(df, i, 'lnm')}', not 0, 1 or empty", LABEL_FIX, r, "lnm")
        paths: dict[str, Path | None] = {}
        for col in PATH_COLUMNS:
            text = _cell(df, i, col)
            paths[col] = _check_path(text, col, r, root, real_root, strict, out) if text else None
        boxes: dict[str, tuple[int, int, int, int] | None] = {}
        for view, col in BOX_COLUMNS.items():
            text = _cell(df, i, col)
            boxes[view] = None
            if text:
                try:
                    boxes[view] = parse_box(text)
                except ValueError as exc:
                    out.error(str(exc), "write the nodule box as x0,y0,x1,y1 in pixels of the image", r, col)
                if not _cell(df, i, view):
                    out.error(
                        f"{col} is given but {view} is empty", f"add the {view} image or clear {col}", r, col
                    )
        for view, col in MASK_COLUMNS.items():
            if _cell(df, i, col) and not _cell(df, i, view):
                out.error(
                    f"{col} is given but {view} is empty", f"add the {view} image or clear {col}", r, col
                )
            if _cell(df, i, col) and _cell(df, i, BOX_COLUMNS[view]):
                out.warn(
                    f"both {col} and {BOX_COLUMNS[view]} are given; the mask is used",
                    f"clear one of {col} / {BOX_COLUMNS[view]}",
                    r,
                    BOX_COLUMNS[view],
                )
        present = [c for c in MODALITY_COLUMNS if _cell(df, i, c)]
        if not present and any(c in df.columns for c in MODALITY_COLUMNS):
            out.error(
                "patient has no modality: us_1, us_2 and cytology are all empty",
                "add at least one ultrasound image or a cytology slide, or drop the row",
                r,
                None,
            )
        elif _cell(df, i, "us_2") and not _cell(df, i, "us_1"):
            out.warn("us_2 is given but us_1 is empty", "put a single view in us_1", r, "us_1")
        rows.append(_Row(r, pid, center, cohort, label, paths, boxes, label_ok))
    return rows


def _check_path(
    text: str, col: str, r: int, root: Path, real_root: Path, strict: bool, out: _Collector
) -> Path | None:
    raw = Path(text)
    full = raw if raw.is_absolute() else root / raw
    if strict:
        real = Path(os.path.realpath(full))
        if real != real_root and real_root not in real.parents:
            if raw.is_absolute():
                how = "an absolute path"
            elif ".." in raw.parts and real_root not in Path(os.path.normpath(full)).parents:
                how = "'..'"
            else:
                how = "a symbolic link"
            out.error(
                f"'{text}' leaves the manifest's folder {real_root} through {how} (resolves to {real})",
                "copy the file into the study folder and use a relative path, or drop --strict",
                r,
                col,
            )
    if not full.exists():
        out.error(
            f"file '{text}' not found (looked for {full})",
            "fix the path (relative to the manifest's folder) or clear the cell",
            r,
            col,
        )
        return None
    if full.is_dir() and col != CYTOLOGY_COLUMN:
        out.error(f"'{text}' is a folder, not an image file", "point to one image file", r, col)
        return None
    return full


# ---------------------------------------------------------------------------------------------
# patients (whole-cohort checks that need no pixels)


def _check_patients(df: pd.DataFrame, rows: list[_Row], out: _Collector, n_folds: int) -> None:
    by_id: dict[str, list[_Row]] = defaultdict(list)
    for row in rows:
        if row.patient_id:
            by_id[row.patient_id].append(row)
    for pid, group in by_id.items():
        if len(group) < 2:
            continue
        first = group[0]
        for dup in group[1:]:
            if dup.center and first.center and dup.center != first.center:
                out.error(
                    f"patient '{pid}' appears in two centers: '{first.center}' (row {first.row}) and "
                    f"'{dup.center}' (row {dup.row})",
                    "one patient belongs to one center; fix the center or the patient id",
                    dup.row,
                    "center",
                )
            else:
                out.error(
                    f"duplicate patient_id '{pid}' (first at row {first.row})",
                    "one row per patient: merge the rows or fix the id",
                    dup.row,
                    "patient_id",
                )
    folded: dict[str, list[str]] = defaultdict(list)
    for pid in by_id:
        folded[pid.casefold()].append(pid)
    for variants in folded.values():
        if len(variants) > 1:
            rows_of = ", ".join(f"'{v}' (row {by_id[v][0].row})" for v in variants)
            out.warn(
                f"patient ids differ only by upper/lower case: {rows_of}",
                "check whether these are the same patient",
                by_id[variants[1]][0].row,
                "patient_id",
            )
    if "cohort" not in df.columns or "lnm" not in df.columns:
        return
    dev = [r for r in rows if r.cohort == DEVELOPMENT]
    if not dev:
        out.warn(
            "no development patients: this manifest can be predicted or evaluated, not trained on",
            "mark the patients to train on with cohort 'development'",
        )
        return
    for r in dev:
        if r.lnm is None and r.label_ok:
            out.warn(
                "development patient has no lnm label and is left out of cross-validation",
                "add the label (0/1) or move the patient to the external cohort",
                r.row,
                "lnm",
            )
    labels = [r.lnm for r in dev if r.lnm is not None]
    counts = {0: labels.count(0), 1: labels.count(1)}
    if labels and min(counts.values()) == 0:
        only = 1 if counts[1] else 0
        out.error(
            f"the development cohort has a single class: all {len(labels)} labelled patients have lnm={only}",
            "a model needs patients with and without metastasis; add the other class",
        )
    elif labels and min(counts.values()) < n_folds:
        cls = min(counts, key=counts.get)  # type: ignore[arg-type]
        out.warn(
            f"the development cohort has only {counts[cls]} patient(s) with lnm={cls}; "
            f"{n_folds}-fold cross-validation needs at least {n_folds}, so training will refuse it",
            "add patients or train with fewer folds",
        )


# ---------------------------------------------------------------------------------------------
# files


def _check_files(rows: list[_Row], out: _Collector, workers: int | None) -> None:
    jobs: list[tuple[_Row, str, Path]] = [
        (row, col, p) for row in rows for col, p in row.paths.items() if p is not None
    ]
    n = workers or min(8, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=max(1, n)) as pool:
        results = list(pool.map(lambda job: _probe(job[1], job[2]), jobs))
    shapes: dict[tuple[int, str], tuple[int, int]] = {}
    digests: dict[str, list[tuple[_Row, str]]] = defaultdict(list)
    for (row, col, p), (shape, digest, err, fg) in zip(jobs, results, strict=True):
        if err is not None:
            out.error(err, "re-export the file or fix the path", row.row, col)
            continue
        if shape is not None:
            shapes[(row.row, col)] = shape
        if digest is not None:
            digests[digest].append((row, col))
        if fg is False:
            out.error(
                f"mask '{p.name}' has no foreground pixels",
                "draw the nodule region or clear the cell",
                row.row,
                col,
            )
    for row in rows:
        for view in US_VIEWS:
            img = shapes.get((row.row, view))
            mask = shapes.get((row.row, MASK_COLUMNS[view]))
            if img and mask and img != mask:
                out.error(
                    f"mask is {mask[1]}x{mask[0]} px but the {view} image is {img[1]}x{img[0]} px",
                    "use the mask drawn on this exact image",
                    row.row,
                    MASK_COLUMNS[view],
                )
            box = row.boxes.get(view)
            if img and box and (box[2] > img[1] or box[3] > img[0]):
                out.error(
                    f"box {','.join(map(str, box))} lies outside the {img[1]}x{img[0]} px {view} image",
                    "give the box in pixels of this image",
                    row.row,
                    BOX_COLUMNS[view],
                )
    for holders in digests.values():
        owners = {r.patient_id for r, _ in holders}
        if len(owners) > 1:
            (r0, c0), *others = holders
            for r1, c1 in others:
                if r1.patient_id != r0.patient_id:
                    out.error(
                        f"{c1} has the same image content as {c0} of patient '{r0.patient_id}' "
                        f"(row {r0.row})",
                        "each patient's images must be their own; a copied image leaks between folds",
                        r1.row,
                        c1,
                    )


def _probe(col: str, path: Path) -> tuple[tuple[int, int] | None, str | None, str | None, bool | None]:
    """(shape, sha256 of pixels, error message, mask-has-foreground) for one file."""
    try:
        if col == CYTOLOGY_COLUMN:
            probe_cytology(path)
            return None, None, None, None
        arr = read_image(path)
    except ImageReadError as exc:
        return None, None, f"{exc.reason} ({path.name})", None
    shape = (int(arr.shape[0]), int(arr.shape[1]))
    if col in MASK_COLUMNS.values():
        return shape, None, None, bool(np.any(arr))
    return shape, hashlib.sha256(arr.tobytes()).hexdigest(), None, None


# ---------------------------------------------------------------------------------------------
# typed table


def _typed_table(df: pd.DataFrame, rows: list[_Row]) -> pd.DataFrame:
    """One typed row per manifest row: absolute paths (or None), ``lnm`` as Int8, boxes as tuples."""
    data: dict[str, list] = {
        "row": [r.row for r in rows],
        "patient_id": [r.patient_id for r in rows],
        "center": [r.center for r in rows],
        "cohort": [r.cohort for r in rows],
        "lnm": [r.lnm for r in rows],
    }
    for col in PATH_COLUMNS:
        data[col] = [str(r.paths[col]) if r.paths.get(col) else None for r in rows]
    for view, col in BOX_COLUMNS.items():
        data[col] = [r.boxes.get(view) for r in rows]
    table = pd.DataFrame(data)
    table["lnm"] = table["lnm"].astype("Int8")
    for col in df.columns:
        if col.startswith(CLINICAL_PREFIX):
            table[col] = _clinical(df[col])
    return table


def _clinical(col: pd.Series) -> pd.Series:
    """Numeric when every non-empty value is a number, else categorical text (empty → NA)."""
    values = col.replace("", np.nan)
    numeric = pd.to_numeric(values, errors="coerce")
    if numeric.notna().sum() == values.notna().sum():
        return numeric.astype(float).reset_index(drop=True)
    return values.astype("string").reset_index(drop=True)
