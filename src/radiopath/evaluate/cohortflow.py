"""Cohort flow: patients per cohort and center, outcomes, and which modalities they had.

From the run's cohort table (``RUN/cohort.parquet``, or the manifest named in
``provenance.json``) when there is one, else derived from the predictions alone. This is the
table behind TRIPOD+AI items 20a/20b (flow and characteristics of participants).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from radiopath.cohort.summary import outcome_counts
from radiopath.evaluate.predictions import DEVELOPMENT, EXTERNAL
from radiopath.modalities import MODALITIES

_ORDER = {DEVELOPMENT: 0, EXTERNAL: 1}
#: Manifest columns counted per cohort and center (every registered modality's columns).
MODALITY_COLUMNS: tuple[str, ...] = tuple(c for m in MODALITIES.values() for c in m.columns)


def _read_table(path: Path) -> pd.DataFrame | None:
    try:
        if path.suffix.lower() == ".parquet":
            return pd.read_parquet(path)
        if path.suffix.lower() in {".csv", ".txt"}:
            return pd.read_csv(path, dtype=str, keep_default_na=True)
    except Exception:  # an unreadable cohort table only costs the detailed flow
        return None
    return None


def find_cohort_table(run: Path, provenance: dict[str, Any]) -> tuple[pd.DataFrame | None, str]:
    """The cohort table and where it came from ('' when none was found)."""
    candidates = [run / "cohort.parquet"]
    manifest = provenance.get("manifest") if isinstance(provenance, dict) else None
    if isinstance(manifest, str) and manifest:
        p = Path(manifest)
        candidates.append(p if p.is_absolute() else run / p)
    for path in candidates:
        if path.is_file():
            table = _read_table(path)
            if table is not None and {"patient_id", "center", "cohort"} <= set(table.columns):
                return table, str(path)
    return None, ""


def _block(
    df: pd.DataFrame, cohort: str, center: str, in_pred: set[str], has_modalities: bool
) -> dict[str, Any]:
    lnm = df["lnm"] if "lnm" in df.columns else pd.Series(dtype=float)
    row: dict[str, Any] = {
        "cohort": cohort,
        "center": center,
        "patients": len(df),
        **outcome_counts(lnm),
        "with_predictions": int(df["patient_id"].astype(str).isin(in_pred).sum()),
    }
    for col in MODALITY_COLUMNS:
        if col in df.columns:
            row[col] = int(df[col].notna().sum() - (df[col].astype(str).str.strip() == "").sum())
    if has_modalities:
        counts = df["modalities"].dropna().astype(str).value_counts()
        row["modalities"] = " · ".join(f"{k} {v}" for k, v in counts.items())
    return row


def patient_modalities(predictions: pd.DataFrame) -> pd.Series:
    """Per patient, every input any model saw (``ultrasound+cytology``), in registry order.

    Regression: taking the first model's row (the ultrasound-only model) showed "us" as every
    patient's modalities.
    """
    seen: dict[str, set[str]] = {}
    for pid, mods in zip(predictions["patient_id"].astype(str), predictions["modalities"], strict=True):
        if isinstance(mods, str) and mods:
            seen.setdefault(pid, set()).update(mods.split("+"))
    order = list(MODALITIES)
    return pd.Series(
        {
            pid: "+".join(
                MODALITIES[k].label if k in MODALITIES else k for k in sorted(keys, key=_rank(order))
            )
            for pid, keys in seen.items()
        },
        dtype=object,
    )


def _rank(order: list[str]) -> Any:
    return lambda k: (order.index(k) if k in order else len(order), k)


def cohort_flow(run: Path, predictions: pd.DataFrame, provenance: dict[str, Any]) -> pd.DataFrame:
    """One row per (cohort, center), a total per cohort, and an overall total; ``source`` says from where."""
    table, source = find_cohort_table(Path(run), provenance)
    in_pred = set(predictions["patient_id"])
    if table is None:
        per_patient = predictions.drop_duplicates("patient_id").rename(columns={"label": "lnm"})
        table, source = per_patient, "predictions.parquet"
    table = table.copy()
    table["patient_id"] = table["patient_id"].astype(str)
    has_mod = "modalities" in predictions.columns
    if has_mod and "modalities" not in table.columns:
        table["modalities"] = table["patient_id"].map(patient_modalities(predictions))
    has_mod = "modalities" in table.columns
    rows = []
    for cohort in sorted(table["cohort"].astype(str).unique(), key=lambda c: (_ORDER.get(c, 9), c)):
        sub = table[table["cohort"].astype(str) == cohort]
        for center in sorted(sub["center"].astype(str).unique()):
            rows.append(_block(sub[sub["center"].astype(str) == center], cohort, center, in_pred, has_mod))
        rows.append(_block(sub, cohort, "(all)", in_pred, has_mod))
    rows.append(_block(table, "(all)", "(all)", in_pred, has_mod))
    out = pd.DataFrame(rows)
    out.insert(0, "source", source)
    return out
