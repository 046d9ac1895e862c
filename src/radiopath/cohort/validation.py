"""Check a manifest completely and report *every* problem in one pass.

A clinical group fixing its spreadsheet should not have to run the checker ten times. Each
problem names the row (and the file's line), the column and the fix. Checks, in order:

1. reading (:mod:`.manifest`): delimiter and encoding (reported when not plain
   comma-separated UTF-8), comment and blank lines, rows with too many cells, repeated
   column names;
2. columns: required ones present, unknown ones flagged (with a suggestion);
3. cells (:mod:`.cells`, whole columns at once): patient id (empty or a missing-value marker
   such as ``nan``/``NA``/``None``), center, cohort (``development``/``external``), label
   (0/1/empty), boxes ``x0,y0,x1,y1``, at least one modality per patient, mask without image;
4. paths (:mod:`.paths`): exist, are files (or a folder of patches for cytology), and with
   ``strict`` do not escape the manifest's folder through ``..``, an absolute path or a link;
5. files (:mod:`.files`, with ``check_files``): every image and every patch decodes within the
   pixel budget, masks match their image and are not empty, boxes lie inside their image,
   slides open and have a resolution, no image content is shared between patients;
6. cohort: duplicate patient ids (and one patient in two centers), a development cohort with
   one class or too few patients per class for cross-validation.

Everything but the file checks works on whole columns, so 100,000 rows validate in seconds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from radiopath.cohort.cells import nan_like, parse_boxes, parse_labels
from radiopath.cohort.files import check_files as run_file_checks
from radiopath.cohort.manifest import read_manifest
from radiopath.cohort.paths import resolve_column
from radiopath.cohort.problems import Problem, Severity
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
    suggest,
)
from radiopath.errors import ConfigError, ManifestError

#: Folds the default protocol uses; fewer patients of a class than this is an error for CV.
DEFAULT_FOLDS = 5
#: What to do with a mask that has no foreground pixels.
EmptyMask = Literal["error", "ignore"]


@dataclass
class ValidationReport:
    """Everything :func:`validate_manifest` found.

    Attributes:
        manifest: the manifest file.
        problems: every error and warning, in row order.
        table: the typed, normalised table (absolute paths, ``lnm`` as nullable int) —
            complete only when there are no errors.
        delimiter: the delimiter a text manifest was read with (None for Parquet).
        encoding: the text encoding it was read with (None for Parquet).
    """

    manifest: Path
    problems: list[Problem] = field(default_factory=list)
    table: pd.DataFrame = field(default_factory=pd.DataFrame)
    delimiter: str | None = None
    encoding: str | None = None

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
    """Accumulates problems, giving each row its line in the file."""

    def __init__(self, lines: np.ndarray | None) -> None:
        self.lines = lines
        self.problems: list[Problem] = []

    def add(
        self, sev: str, message: str, fix: str, row: int | None = None, column: str | None = None
    ) -> None:
        line = int(self.lines[row - 1]) if (row is not None and self.lines is not None) else None
        self.problems.append(Problem(sev, message, fix, row, column, line))  # type: ignore[arg-type]

    def error(self, message: str, fix: str, row: int | None = None, column: str | None = None) -> None:
        self.add("error", message, fix, row, column)

    def warn(self, message: str, fix: str, row: int | None = None, column: str | None = None) -> None:
        self.add("warning", message, fix, row, column)

    def rows(
        self,
        sev: Severity,
        mask: np.ndarray,
        message: str | Callable[[int], str],
        fix: str | Callable[[int], str],
        column: str | None,
    ) -> None:
        """One problem for each row index where ``mask`` is true (messages may depend on it)."""
        for i in np.flatnonzero(mask):
            text = message(i) if callable(message) else message
            how = fix(i) if callable(fix) else fix
            self.add(sev, text, how, int(i) + 1, column)


@dataclass
class _Cells:
    """The parsed columns of a manifest (one entry per row)."""

    patient_id: np.ndarray
    center: np.ndarray
    cohort: np.ndarray
    lnm: np.ndarray  # float, NaN when unlabelled or invalid
    label_ok: np.ndarray
    id_ok: np.ndarray  # a usable id: not empty, not a missing-value marker
    boxes: dict[str, np.ndarray]
    paths: dict[str, np.ndarray] = field(default_factory=dict)


def validate_manifest(
    path: str | Path,
    strict: bool = False,
    check_files: bool = True,
    n_folds: int = DEFAULT_FOLDS,
    workers: int | None = None,
    empty_mask: EmptyMask = "error",
    max_pixels: int | None = None,
) -> ValidationReport:
    """Validate a manifest and return every problem found (never raises for content errors).

    Args:
        path: CSV/TSV or Parquet manifest; image paths in it are relative to its folder.
        strict: also reject paths that leave the manifest's folder (``..``, absolute paths,
            symbolic links pointing outside) — use it before sharing a study folder.
        check_files: decode every image and patch and open every slide (the thorough
            default); ``False`` only checks that the files exist.
        n_folds: cross-validation folds the cohort must support.
        workers: threads used to decode images (default: CPU count, at most 8).
        empty_mask: ``"error"`` (default) reports a mask without foreground pixels as an
            error; ``"ignore"`` reports it as a warning and treats the view as having no mask
            (its box, else the whole scan area, is used).
        max_pixels: pixel budget per image (default: ``$RADIOPATH_MAX_IMAGE_PIXELS`` or 100
            million); larger images are reported, never decoded.

    Raises:
        ManifestError: only when the manifest itself cannot be read at all.
        ConfigError: an invalid option.
    """
    if empty_mask not in ("error", "ignore"):
        raise ConfigError(f"empty_mask must be 'error' or 'ignore', got {empty_mask!r}")
    path = Path(path)
    read = read_manifest(path)
    df = read.frame
    root = path.resolve().parent
    out = _Collector(read.lines)
    out.problems.extend(read.notes)
    report = ValidationReport(manifest=path, delimiter=read.delimiter, encoding=read.encoding)

    _check_columns(df, out)
    if df.empty:
        out.error("the manifest has no patient rows", "add one row per patient below the header")
    cells = _check_cells(df, out)
    cells.paths = _check_paths(df, root, strict, out, workers)
    _check_patients(df, cells, out, n_folds)
    ignored: set[tuple[int, str]] = set()
    if check_files and len(df):
        rows = np.arange(1, len(df) + 1)
        ignored = run_file_checks(
            rows, cells.patient_id, cells.paths, cells.boxes, out.add, workers, empty_mask, max_pixels
        )
    report.problems = sorted(out.problems, key=lambda p: (p.row or 0, p.severity != "error"))
    report.table = _typed_table(df, cells, ignored)
    return report


# ---------------------------------------------------------------------------------------------
# columns


def _check_columns(df: pd.DataFrame, out: _Collector) -> None:
    cols = list(df.columns)
    for req in REQUIRED_COLUMNS:
        if req not in df.columns:
            hint = suggest(req, [c for c in cols if c not in KNOWN_COLUMNS])
            fix = f"rename column '{hint}' to '{req}'" if hint else f"add a column '{req}'"
            if len(cols) == 1 and not hint:
                fix += " (only one column was found: is the file separated by another character?)"
            out.error(f"required column '{req}' is missing", fix, column=req)
    if not any(c in df.columns for c in MODALITY_COLUMNS):
        out.error(
            "no modality column: the manifest needs 'us_1', 'us_2' or 'cytology'",
            "add the image columns described in the README",
            column=None,
        )
    for c in cols:
        if c in KNOWN_COLUMNS or c.startswith(CLINICAL_PREFIX):
            continue
        hint = suggest(c, KNOWN_COLUMNS)
        fix = (
            f"rename it to '{hint}'"
            if hint
            else f"prefix clinical covariates with '{CLINICAL_PREFIX}' "
            f"(e.g. '{CLINICAL_PREFIX}{c.lower()}'), or drop the column"
        )
        out.warn(f"column '{c}' is not part of the manifest contract and is ignored", fix, column=c)


# ---------------------------------------------------------------------------------------------
# cells


def _column(df: pd.DataFrame, name: str) -> pd.Series:
    if name in df.columns:
        return df[name].astype(object).reset_index(drop=True)
    return pd.Series([""] * len(df), dtype=object)


def _check_cells(df: pd.DataFrame, out: _Collector) -> _Cells:
    has = set(df.columns)
    pid, center, cohort = _column(df, "patient_id"), _column(df, "center"), _column(df, "cohort")
    pid_v, center_v, cohort_v = (s.to_numpy(dtype=object) for s in (pid, center, cohort))
    pid_empty = pid_v == ""
    pid_nan = nan_like(pid) & ~pid_empty
    if "patient_id" in has:
        out.rows("error", pid_empty, "patient_id is empty", "give every patient a unique id", "patient_id")
        out.rows(
            "error",
            pid_nan,
            lambda i: f"patient_id is '{pid_v[i]}', which reads as a missing value",
            lambda i: f"give the patient a real id (an empty cell may have been exported as '{pid_v[i]}')",
            "patient_id",
        )
    if "center" in has:
        c_empty = center_v == ""
        out.rows("error", c_empty, "center is empty", "name the hospital the patient was seen at", "center")
        out.rows(
            "warning",
            nan_like(center) & ~c_empty,
            lambda i: f"center is '{center_v[i]}', which reads as a missing value",
            "name the hospital the patient was seen at",
            "center",
        )
    if "cohort" in has:
        _check_cohorts(cohort_v, out)
    lnm, label_ok = parse_labels(_column(df, "lnm"))
    if "lnm" in has:
        lnm_v = _column(df, "lnm").to_numpy(dtype=object)
        out.rows("error", ~label_ok, lambda i: f"lnm is '{lnm_v[i]}', not 0, 1 or empty", LABEL_FIX, "lnm")
    filled = {c: (_column(df, c) != "").to_numpy() for c in (*PATH_COLUMNS, *BOX_COLUMNS.values())}
    boxes: dict[str, np.ndarray] = {}
    for view, col in BOX_COLUMNS.items():
        boxes[view], errors = parse_boxes(_column(df, col))
        has_error = np.array([e is not None for e in errors], bool)
        out.rows(
            "error",
            has_error,
            lambda i, e=errors: str(e[i]),
            "write the nodule box as x0,y0,x1,y1 in pixels of the image",
            col,
        )
        out.rows(
            "error",
            filled[col] & ~filled[view],
            f"{col} is given but {view} is empty",
            f"add the {view} image or clear {col}",
            col,
        )
    for view, col in MASK_COLUMNS.items():
        out.rows(
            "error",
            filled[col] & ~filled[view],
            f"{col} is given but {view} is empty",
            f"add the {view} image or clear {col}",
            col,
        )
        out.rows(
            "warning",
            filled[col] & filled[BOX_COLUMNS[view]],
            f"both {col} and {BOX_COLUMNS[view]} are given; the mask is used",
            f"clear one of {col} / {BOX_COLUMNS[view]}",
            BOX_COLUMNS[view],
        )
    if any(c in has for c in MODALITY_COLUMNS):
        none = ~np.logical_or.reduce([filled[c] for c in MODALITY_COLUMNS])
        out.rows(
            "error",
            none,
            "patient has no modality: us_1, us_2 and cytology are all empty",
            "add at least one ultrasound image or a cytology slide, or drop the row",
            None,
        )
        out.rows(
            "warning",
            ~none & filled["us_2"] & ~filled["us_1"],
            "us_2 is given but us_1 is empty",
            "put a single view in us_1",
            "us_1",
        )
    return _Cells(pid_v, center_v, cohort_v, lnm, label_ok, ~(pid_empty | pid_nan), boxes)


def _check_cohorts(cohort_v: np.ndarray, out: _Collector) -> None:
    bad = ~np.isin(cohort_v, COHORTS)
    advice: dict[str, tuple[str, str]] = {}
    for value in pd.unique(cohort_v[bad]):
        hint = suggest(value, COHORTS) if value else None
        fix = f"write '{hint}'" if hint else "write 'development' (used for cross-validation) or 'external'"
        shown = f"'{value}'" if value else "empty"
        advice[value] = (f"cohort is {shown}, not one of development/external", fix)
    out.rows("error", bad, lambda i: advice[cohort_v[i]][0], lambda i: advice[cohort_v[i]][1], "cohort")


def _check_paths(
    df: pd.DataFrame, root: Path, strict: bool, out: _Collector, workers: int | None
) -> dict[str, np.ndarray]:
    """Absolute usable path (or None) per row for each file column; problems reported."""
    result: dict[str, np.ndarray] = {}
    for col in PATH_COLUMNS:
        texts = _column(df, col)
        resolved = resolve_column(texts, root, strict, workers=min(workers or 4, 8))
        text_v = texts.to_numpy(dtype=object)
        if strict:
            escapes = np.array([m is not None for m in resolved.escapes], bool)
            out.rows(
                "error",
                escapes,
                lambda i, r=resolved: str(r.escapes[i]),
                "copy the file into the study folder and use a relative path, or drop --strict",
                col,
            )
        out.rows(
            "error",
            resolved.not_found,
            lambda i, r=resolved, t=text_v: f"file '{t[i]}' not found (looked for {r.full[i]})",
            lambda i, t=text_v: (
                "fix the path (relative to the manifest's folder) or clear the cell"
                + ("; write '/' between folders, not '\\'" if "\\" in t[i] else "")
            ),
            col,
        )
        paths = resolved.paths.copy()
        if col != CYTOLOGY_COLUMN:
            out.rows(
                "error",
                resolved.is_dir,
                lambda i, t=text_v: f"'{t[i]}' is a folder, not an image file",
                "point to one image file",
                col,
            )
            paths[resolved.is_dir] = None
        result[col] = paths
    return result


# ---------------------------------------------------------------------------------------------
# patients (whole-cohort checks that need no pixels)


def _check_patients(df: pd.DataFrame, cells: _Cells, out: _Collector, n_folds: int) -> None:
    _check_duplicates(cells, out)
    if "cohort" not in df.columns or "lnm" not in df.columns:
        return
    dev = cells.cohort == DEVELOPMENT
    if not dev.any():
        out.warn(
            "no development patients: this manifest can be predicted or evaluated, not trained on",
            "mark the patients to train on with cohort 'development'",
        )
        return
    out.rows(
        "warning",
        dev & np.isnan(cells.lnm) & cells.label_ok,
        "development patient has no lnm label and is left out of cross-validation",
        "add the label (0/1) or move the patient to the external cohort",
        "lnm",
    )
    labels = cells.lnm[dev & ~np.isnan(cells.lnm)]
    counts = {0: int((labels == 0).sum()), 1: int((labels == 1).sum())}
    if len(labels) and min(counts.values()) == 0:
        only = 1 if counts[1] else 0
        out.error(
            f"the development cohort has a single class: all {len(labels)} labelled patients have lnm={only}",
            "a model needs patients with and without metastasis; add the other class",
        )
    elif len(labels) and min(counts.values()) < n_folds:
        cls = min(counts, key=counts.get)  # type: ignore[arg-type]
        out.warn(
            f"the development cohort has only {counts[cls]} patient(s) with lnm={cls}; "
            f"{n_folds}-fold cross-validation needs at least {n_folds}, so training will refuse it",
            "add patients or train with fewer folds",
        )


def _check_duplicates(cells: _Cells, out: _Collector) -> None:
    """Repeated ids (an error; one patient in two centers named as such) and ids differing by case."""
    idx = np.flatnonzero(cells.id_ok)
    ids = pd.Series(cells.patient_id[idx], index=idx, dtype=object)
    repeated = ids[ids.duplicated(keep=False)]
    for pid, members in repeated.groupby(repeated, sort=False).groups.items():
        first, *dups = sorted(int(i) for i in members)
        c0 = cells.center[first]
        for d in dups:
            if cells.center[d] and c0 and cells.center[d] != c0:
                out.error(
                    f"patient '{pid}' appears in two centers: '{c0}' (row {first + 1}) and "
                    f"'{cells.center[d]}' (row {d + 1})",
                    "one patient belongs to one center; fix the center or the patient id",
                    d + 1,
                    "center",
                )
            else:
                out.error(
                    f"duplicate patient_id '{pid}' (first at row {first + 1})",
                    "one row per patient: merge the rows or fix the id",
                    d + 1,
                    "patient_id",
                )
    first_row = ids.drop_duplicates()
    folded = pd.Series(first_row.to_numpy(), index=first_row.index, dtype=object).str.casefold()
    clash = folded[folded.duplicated(keep=False)]
    for _, members in clash.groupby(clash, sort=False).groups.items():
        rows = sorted(int(i) for i in members)
        shown = ", ".join(f"'{cells.patient_id[i]}' (row {i + 1})" for i in rows)
        out.warn(
            f"patient ids differ only by upper/lower case: {shown}",
            "check whether these are the same patient",
            rows[1] + 1,
            "patient_id",
        )


# ---------------------------------------------------------------------------------------------
# typed table


def _typed_table(df: pd.DataFrame, cells: _Cells, ignored: set[tuple[int, str]]) -> pd.DataFrame:
    """One typed row per manifest row: absolute paths (or None), ``lnm`` as Int8, boxes as tuples."""
    n = len(df)
    data: dict[str, object] = {
        "row": np.arange(1, n + 1),
        "patient_id": cells.patient_id,
        "center": cells.center,
        "cohort": cells.cohort,
        "lnm": pd.array(np.where(np.isnan(cells.lnm), pd.NA, cells.lnm), dtype="Int8"),
    }
    for col in PATH_COLUMNS:
        paths = cells.paths.get(col, np.full(n, None, dtype=object)).copy()
        for i, c in ignored:
            if c == col:
                paths[i] = None
        data[col] = paths
    for view, col in BOX_COLUMNS.items():
        data[col] = cells.boxes[view]
    table = pd.DataFrame(data)
    for col in df.columns:
        if col.startswith(CLINICAL_PREFIX):
            table[col] = _clinical(df[col])
    return table


def _clinical(col: pd.Series) -> pd.Series:
    """Numeric when every non-empty value is a number, else categorical text (empty → NA)."""
    values = col.astype(object).replace("", np.nan)
    numeric = pd.to_numeric(values, errors="coerce")
    if numeric.notna().sum() == values.notna().sum():
        return numeric.astype(float).reset_index(drop=True)
    return values.astype("string").reset_index(drop=True)
