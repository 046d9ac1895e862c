"""The results of an evaluation and their file forms: ``metrics.json`` and ``tables/*.csv``.

:class:`Evaluation` holds every table :func:`~radiopath.evaluate.evaluate_run` computes;
``to_json``/``from_json`` round-trip it through ``metrics.json`` (NaN written as ``null``), and
:func:`load_evaluation` returns it only while it still describes the run's current
``predictions.parquet`` (checked by SHA-256), so a report never shows stale numbers.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from radiopath.evaluate._checks import EvaluationError
from radiopath.evaluate.metrics import METRIC_LABELS
from radiopath.evaluate.nested import NESTED_METRICS, pooled_name
from radiopath.io.atomic import atomic_dir, write_text
from radiopath.io.fingerprint import file_sha256

#: 2: Wilson/Clopper–Pearson intervals, nested internal thresholds, conformal and recalibration tables.
SCHEMA_VERSION = 2
#: Tables written on every evaluation (``tables/<name>.csv``).
TABLES: tuple[str, ...] = (
    "table_main",
    "metrics",
    "confusion",
    "comparisons",
    "clinical_utility",
    "decision_curves",
    "cohort_flow",
    "internal_thresholds",
    "nested_thresholds",
)
#: Tables written only when their analysis ran (``conformal_alpha``, ``recalibrate``).
OPTIONAL_TABLES: tuple[str, ...] = ("conformal", "recalibration")
_FRAMES: tuple[str, ...] = (
    "metrics",
    "confusion",
    "comparisons",
    "clinical_utility",
    "decision_curves",
    "cohort_flow",
    "nested_thresholds",
    "conformal",
    "recalibration",
)


@dataclass
class Evaluation:
    """All results of one evaluation; ``to_json``/``from_json`` round-trip through ``metrics.json``."""

    run: Path
    settings: dict[str, Any]
    models: list[str]
    thresholds: dict[str, float]
    cohorts: list[dict[str, Any]]
    metrics: pd.DataFrame
    confusion: pd.DataFrame
    comparisons: pd.DataFrame
    clinical_utility: pd.DataFrame
    decision_curves: pd.DataFrame
    cohort_flow: pd.DataFrame
    nested_thresholds: pd.DataFrame = field(default_factory=pd.DataFrame)
    conformal: pd.DataFrame = field(default_factory=pd.DataFrame)
    recalibration: pd.DataFrame = field(default_factory=pd.DataFrame)
    notes: list[str] = field(default_factory=list)
    predictions_sha256: str = ""
    created: str = ""

    def metric(self, model: str, cohort: str, metric: str) -> pd.Series:
        """The row of ``metrics`` for one model, cohort key and metric (value, ci_low, ci_high, …)."""
        m = self.metrics
        rows = m[(m["model"] == model) & (m["cohort"] == cohort) & (m["metric"] == metric)]
        if rows.empty:
            raise KeyError(f"no {metric!r} for model {model!r} on cohort {cohort!r}")
        return rows.iloc[0]

    def main_table(self, digits: int = 3) -> pd.DataFrame:
        """The paper's table: one row per model × main cohort, each metric as "value (low–high)".

        Primary figures only; the column "threshold metrics at" says which calls the threshold
        metrics score (nested thresholds internally, the frozen threshold externally).
        """
        m = self.metrics[self.metrics["scope"] == "main"]
        if "primary" in m.columns:
            m = m[m["primary"].astype(bool)]
        rows = []
        for (cohort_label, model), sub in m.groupby(["cohort_label", "model"], sort=False):
            first = sub.iloc[0]
            row = {
                "cohort": cohort_label,
                "model": model,
                "n": int(first["n"]),
                "events": int(first["n_pos"]),
                "threshold metrics at": _calls_text(sub, self.thresholds.get(str(model))),
            }
            for r in sub.itertuples():
                row[METRIC_LABELS.get(r.metric, r.metric)] = format_ci(r.value, r.ci_low, r.ci_high, digits)
            rows.append(row)
        return pd.DataFrame(rows)

    def threshold_comparison(self, digits: int = 3) -> pd.DataFrame:
        """Internal threshold metrics two ways: at nested thresholds (primary) and at the pooled
        out-of-fold threshold (secondary, optimistic: chosen on the same predictions)."""
        m = self.metrics
        if "threshold_basis" not in m.columns:
            return pd.DataFrame()
        rows = []
        dev = m[m["cohort"].astype(str).str.startswith("internal")]
        for (cohort, model), sub in dev.groupby(["cohort", "model"], sort=False):
            by = {r.metric: r for r in sub.itertuples()}
            for name in NESTED_METRICS:
                a, b = by.get(name), by.get(pooled_name(name))
                if a is None or b is None or a.threshold_basis != "nested":
                    continue
                rows.append(
                    {
                        "cohort": cohort,
                        "cohort_label": a.cohort_label,
                        "model": model,
                        "metric": name,
                        "nested": a.value,
                        "nested_ci_low": a.ci_low,
                        "nested_ci_high": a.ci_high,
                        "pooled_threshold": b.value,
                        "pooled_ci_low": b.ci_low,
                        "pooled_ci_high": b.ci_high,
                        "optimism": b.value - a.value,
                        "nested_text": format_ci(a.value, a.ci_low, a.ci_high, digits),
                        "pooled_text": format_ci(b.value, b.ci_low, b.ci_high, digits),
                        "ci_method": a.ci_method,
                    }
                )
        return pd.DataFrame(rows)

    def tables(self) -> dict[str, pd.DataFrame]:
        out = {
            "table_main": self.main_table(),
            "metrics": self.metrics,
            "confusion": self.confusion,
            "comparisons": self.comparisons,
            "clinical_utility": self.clinical_utility,
            "decision_curves": self.decision_curves,
            "cohort_flow": self.cohort_flow,
            "internal_thresholds": self.threshold_comparison(),
            "nested_thresholds": self.nested_thresholds,
        }
        for name in OPTIONAL_TABLES:
            table = getattr(self, name)
            if not table.empty:
                out[name] = table
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "created": self.created,
            "run": str(self.run),
            "predictions_sha256": self.predictions_sha256,
            "settings": self.settings,
            "models": self.models,
            "thresholds": self.thresholds,
            "cohorts": self.cohorts,
            **{name: _records(getattr(self, name)) for name in _FRAMES},
            "notes": self.notes,
        }

    def to_json(self) -> str:
        return json.dumps(_jsonable(self.to_dict()), indent=1, allow_nan=False)

    @classmethod
    def from_json(cls, path: str | Path) -> Evaluation:
        path = Path(path)
        try:
            d = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise EvaluationError(
                f"{path}: cannot read metrics ({exc}); rerun `radiopath evaluate`"
            ) from None
        if d.get("schema_version") != SCHEMA_VERSION:
            raise EvaluationError(f"{path}: written by another radiopath version; rerun `radiopath evaluate`")

        def frame(key: str) -> pd.DataFrame:
            return pd.DataFrame.from_records(d.get(key) or []).fillna(value=np.nan)

        return cls(
            run=path.parent,
            settings=d["settings"],
            models=d["models"],
            thresholds=d["thresholds"],
            cohorts=d["cohorts"],
            **{name: frame(name) for name in _FRAMES},
            notes=d.get("notes", []),
            predictions_sha256=d.get("predictions_sha256", ""),
            created=d.get("created", ""),
        )


def _calls_text(sub: pd.DataFrame, threshold: float | None) -> str:
    basis = (
        sub["threshold_basis"].dropna() if "threshold_basis" in sub.columns else pd.Series([], dtype=object)
    )
    kind = str(basis.iloc[0]) if len(basis) else "frozen"
    if kind == "nested":
        return "nested thresholds (chosen on the other folds)"
    t = "" if threshold is None else f" {threshold:.3f}"
    if kind == "pooled_oof":
        return f"frozen threshold{t}, chosen on these predictions"
    return f"frozen threshold{t}"


def format_ci(value: float, low: float, high: float, digits: int = 3) -> str:
    """``0.891 (0.862–0.915)``; ``–`` for an undefined value; no interval when it is missing."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if low is None or high is None or math.isnan(low) or math.isnan(high):
        return f"{value:.{digits}f}"
    return f"{value:.{digits}f} ({low:.{digits}f}–{high:.{digits}f})"


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating, float)):
        return None if not np.isfinite(obj) else float(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, Path):
        return str(obj)
    if obj is pd.NA:
        return None
    return obj


def _records(df: pd.DataFrame) -> list[dict[str, Any]]:
    return [_jsonable(r) for r in df.to_dict(orient="records")]


def write_evaluation(ev: Evaluation) -> Path:
    """Write ``tables/`` (as one folder, atomically) and then ``metrics.json``; returns the JSON path."""
    with atomic_dir(ev.run / "tables", overwrite=True) as tmp:
        for name, table in ev.tables().items():
            table.to_csv(tmp / f"{name}.csv", index=False, float_format="%.6g")
    path = ev.run / "metrics.json"
    write_text(path, ev.to_json())
    return path


def load_evaluation(run: str | Path) -> Evaluation | None:
    """The evaluation in ``RUN/metrics.json`` if it matches the current predictions, else None."""
    run = Path(run)
    path = run / "metrics.json"
    pred = run / "predictions.parquet"
    if not path.is_file() or not pred.is_file():
        return None
    try:
        ev = Evaluation.from_json(path)
    except EvaluationError:
        return None
    return ev if ev.predictions_sha256 == file_sha256(pred) else None
