"""``radiopath predict BUNDLE MANIFEST``: score new patients row by row, never refitting anything.

A manifest of new patients follows the study's contract (README "Quick start") with three
allowances: ``lnm`` may be empty or absent (labels are never read), ``cohort`` may be absent
(``external``) and so may ``center`` (``unknown``; a center the model never saw is scored
without per-center standardisation and flagged by the ultrasound transform). Every row is
validated on its own (:func:`radiopath.cohort.validate_manifest`): a row with an unreadable
image, a missing file or a bad cell is reported with its row, column and fix, and the other
rows are still scored. Rows that pass validation but fail while their inputs are made (a slide
without a resolution, say) are found by scoring them one at a time after a batch fails.

Scoring is :meth:`radiopath.runs.Run.predict` on the bundle: the saved preprocessing, the
run's backbones in the run's own precision (``auto``) and batch shape, the fold ensemble and
the frozen threshold — the path that scored the study's external centers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from radiopath.cohort import Problem, validate_manifest
from radiopath.cohort.schema import EXTERNAL
from radiopath.errors import ManifestError, RadiopathError
from radiopath.io.atomic import atomic_path
from radiopath.runs import PREDICT_COLUMNS
from radiopath.serve.bundle import Bundle

Say = Callable[[str], None]

#: Columns of the predictions table: the manifest row, then :data:`PREDICT_COLUMNS`.
OUTPUT_COLUMNS = ["row", *PREDICT_COLUMNS]
#: Columns of the failures table.
FAILURE_COLUMNS = ["row", "line", "patient_id", "column", "error", "fix"]
#: Columns a manifest of new patients may leave out, and the value they take.
OPTIONAL_COLUMNS = {"lnm": None, "cohort": EXTERNAL, "center": "unknown"}


@dataclass
class RowFailure:
    """A manifest row that could not be scored, and why."""

    row: int
    patient_id: str
    error: str
    fix: str
    column: str | None = None
    line: int | None = None

    def __str__(self) -> str:
        where = f"row {self.row}" + (f" (line {self.line})" if self.line else "")
        where += f", column {self.column}" if self.column else ""
        return f"{where}: {self.error}; fix: {self.fix}"


@dataclass
class PredictResult:
    """What :func:`predict_manifest` produced."""

    predictions: pd.DataFrame
    failures: list[RowFailure] = field(default_factory=list)
    rows: int = 0
    warnings: list[str] = field(default_factory=list)

    @property
    def scored(self) -> int:
        """Patients with at least one prediction."""
        return int(self.predictions["patient_id"].nunique()) if len(self.predictions) else 0

    def failures_table(self) -> pd.DataFrame:
        return pd.DataFrame(
            [(f.row, f.line, f.patient_id, f.column, f.error, f.fix) for f in self.failures],
            columns=FAILURE_COLUMNS,
        )


def predict_manifest(
    bundle: Bundle,
    manifest: str | Path,
    *,
    models: Sequence[str] | None = None,
    device: str | None = None,
    precision: str = "auto",
    cache_dir: str | Path | None = None,
    mpp_table: Any = None,
    say: Say | None = None,
) -> PredictResult:
    """Score every valid row of ``manifest`` with the bundle's models (default: all, primary first).

    Raises:
        ManifestError: only when the manifest as a whole is unusable (unreadable, no rows, no
            patient_id or modality column); bad rows are returned as failures instead.
    """
    say = say or (lambda _m: None)
    report = validate_manifest(manifest, check_files=True, n_folds=2)
    fatal = [p for p in report.errors if p.row is None and not _ignorable(p)]
    if fatal:
        raise ManifestError(manifest, fatal)
    failures = _row_failures(report.errors, report.table)
    bad = {f.row for f in failures}
    table = report.table[~report.table["row"].isin(bad)].reset_index(drop=True)
    table = _fill_optional(table)
    result = PredictResult(
        pd.DataFrame(columns=OUTPUT_COLUMNS), failures, len(report.table), list(bundle.warnings)
    )
    if not len(table):
        return result
    kwargs = {"device": device, "precision": precision, "cache_dir": cache_dir, "mpp_table": mpp_table}
    chosen = list(models) if models else bundle.models
    for m in chosen:
        bundle.spec(m)  # an unknown model is an error before anything runs
    try:
        preds = bundle.predict(table, chosen, say=say, **kwargs)
    except Exception as exc:  # one bad row fails a batch: find it by scoring rows one by one
        say(f"scoring all rows together failed ({_short(exc)}); scoring row by row")
        parts = []
        for i in range(len(table)):
            one = table.iloc[[i]].reset_index(drop=True)
            try:
                parts.append(bundle.predict(one, chosen, **kwargs))
            except Exception as row_exc:
                failures.append(_failure(one.iloc[0], row_exc))
        preds = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=PREDICT_COLUMNS)
    rows = dict(zip(table["patient_id"].astype(str), table["row"].astype(int), strict=True))
    preds.insert(0, "row", preds["patient_id"].astype(str).map(rows).astype("Int64"))
    order = {m: i for i, m in enumerate(chosen)}
    preds = preds.assign(_m=preds["model"].map(order)).sort_values(["row", "_m"], kind="stable")
    result.predictions = preds[OUTPUT_COLUMNS].reset_index(drop=True)
    result.failures = sorted(failures, key=lambda f: f.row)
    return result


def write_predictions(result: PredictResult, out: str | Path) -> Path | None:
    """Write the predictions (CSV, or Parquet for ``.parquet``) atomically, and the failed rows
    beside them as ``<out>.failed.csv`` (returned; None when every row was scored)."""
    out = Path(out)
    with atomic_path(out) as tmp:
        if out.suffix.lower() in (".parquet", ".pq"):
            result.predictions.to_parquet(tmp, index=False)
        else:
            result.predictions.to_csv(tmp, index=False)
    failed = out.with_name(out.stem + ".failed.csv")
    if result.failures:
        with atomic_path(failed) as tmp:
            result.failures_table().to_csv(tmp, index=False)
        return failed
    if failed.exists():  # a stale list from an earlier run would mislead
        failed.unlink()
    return None


def _ignorable(problem: Problem) -> bool:
    """Whole-manifest errors that concern training, not prediction: a missing label, cohort
    or center column (filled in), and the development cohort's class balance."""
    if problem.column in OPTIONAL_COLUMNS and "missing" in problem.message:
        return True
    return problem.column is None and "development cohort" in problem.message


def _row_failures(errors: list[Problem], table: pd.DataFrame) -> list[RowFailure]:
    ids = dict(zip(table["row"].astype(int), table["patient_id"].astype(str), strict=True))
    by_row: dict[int, list[Problem]] = {}
    for p in errors:
        if p.row is not None:
            by_row.setdefault(p.row, []).append(p)
    out = []
    for row, problems in sorted(by_row.items()):
        first = problems[0]
        text = "; ".join(
            p.message if p.column in (None, first.column) else f"{p.column}: {p.message}" for p in problems
        )
        out.append(RowFailure(row, ids.get(row, ""), text, first.fix, first.column, first.line))
    return out


def _fill_optional(table: pd.DataFrame) -> pd.DataFrame:
    table = table.copy()
    table["cohort"] = [c if c else EXTERNAL for c in table["cohort"].astype(str)]
    table["center"] = [c if c else OPTIONAL_COLUMNS["center"] for c in table["center"].astype(str)]
    table["lnm"] = pd.array([pd.NA] * len(table), dtype="Int8")  # labels are never read
    return table


def _failure(rec: pd.Series, exc: BaseException) -> RowFailure:
    fix = "check the files of this row (open them in a viewer) and run again"
    if isinstance(exc, RadiopathError) and "resolution" in str(exc):
        fix = "give the slide's µm per pixel with --mpp-table (columns slide,mpp)"
    return RowFailure(int(rec["row"]), str(rec["patient_id"]), _short(exc), fix)


def _short(exc: BaseException) -> str:
    """The message on one line (a multi-line report's lines joined), at most 500 characters."""
    text = " ".join(line.strip(" -") for line in str(exc).splitlines() if line.strip())
    return (text if isinstance(exc, RadiopathError) else f"{type(exc).__name__}: {text}")[:500]
