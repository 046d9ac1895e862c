"""The run folder's ``predictions.parquet``: its contract, its validation, and the cohorts in it.

One row per patient × model × fold (DESIGN.md, "the hub"):

=====================  =====================================================================
``patient_id`` (str)   the patient
``center`` (str)       the hospital
``cohort`` (str)       ``development`` or ``external``
``model`` (str)        e.g. ``ultrasound``, ``cytology``, ``fusion_concat``
``fold`` (int)         0…k−1: out-of-fold prediction of a development patient; −1: fold ensemble
                       (external patients, and unlabelled development patients)
``prob`` (float)       predicted probability of lymph-node metastasis, in [0, 1]
``label`` (float)      1 / 0, NaN when unknown
``threshold`` (float)  the model's decision threshold, frozen on out-of-fold data (one per model)
``modalities`` (str)   optional: inputs present for that patient, e.g. ``us+cytology``
``missing_modality``   optional (bool): an input was missing for that patient
=====================  =====================================================================

:func:`load_predictions` checks every rule and reports every violation at once
(:class:`PredictionsError`), naming the column, the offending rows and the fix. Nothing
downstream ever sees a table that breaks the contract: an external patient predicted twice,
say, would otherwise be counted twice in every metric.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from radiopath.errors import RadiopathError

REQUIRED: tuple[str, ...] = ("patient_id", "center", "cohort", "model", "fold", "prob", "label", "threshold")
OPTIONAL: tuple[str, ...] = ("modalities", "missing_modality")
DEVELOPMENT, EXTERNAL = "development", "external"
#: Models whose name starts with this are fusion models; these two are the single-modality baselines.
FUSION_PREFIX = "fusion"
SINGLE_MODALITY: tuple[str, ...] = ("ultrasound", "cytology")


class PredictionsError(RadiopathError):
    """``predictions.parquet`` breaks its contract; the message lists every problem."""

    def __init__(self, path: str | Path, problems: list[str]) -> None:
        self.path = Path(path)
        self.problems = problems
        lines = [f"{self.path}: {len(problems)} problem(s) in the predictions table"]
        lines += [f"  - {p}" for p in problems]
        lines.append("  fix: the stage that wrote this file (train) must follow the contract in DESIGN.md")
        super().__init__("\n".join(lines))


def _rows(mask: pd.Series | np.ndarray, limit: int = 5) -> str:
    idx = np.flatnonzero(np.asarray(mask))
    shown = ", ".join(str(i) for i in idx[:limit])
    more = f" and {idx.size - limit} more" if idx.size > limit else ""
    return f"row(s) {shown}{more}"


def validate_predictions(df: pd.DataFrame, path: str | Path = "predictions.parquet") -> pd.DataFrame:
    """Check ``df`` against the contract; return it normalised (documented types). Raises on any problem."""
    problems: list[str] = []
    missing = [c for c in REQUIRED if c not in df.columns]
    if missing:
        raise PredictionsError(path, [f"missing column(s) {missing}; present: {list(df.columns)}"])
    if len(df) == 0:
        raise PredictionsError(path, ["the table has no rows"])
    out = pd.DataFrame(index=pd.RangeIndex(len(df)))
    for col in ("patient_id", "center", "cohort", "model"):
        values = df[col].reset_index(drop=True)
        empty = values.isna() | (values.astype(str).str.strip() == "")
        if empty.any():
            problems.append(f"column '{col}' is empty in {_rows(empty)}")
        out[col] = values.astype(str).str.strip()
    bad_cohort = ~out["cohort"].isin([DEVELOPMENT, EXTERNAL])
    if bad_cohort.any():
        seen = sorted(out.loc[bad_cohort, "cohort"].unique())[:5]
        problems.append(
            f"column 'cohort' must be '{DEVELOPMENT}' or '{EXTERNAL}', got {seen} in {_rows(bad_cohort)}"
        )
    for col in ("fold", "prob", "label", "threshold"):
        out[col] = pd.to_numeric(df[col].reset_index(drop=True), errors="coerce").astype(float)
        not_num = out[col].isna() & df[col].reset_index(drop=True).notna()
        if not_num.any():
            problems.append(f"column '{col}' holds non-numbers in {_rows(not_num)}")
    fold = out["fold"]
    bad_fold = fold.isna() | (fold != np.round(fold))
    if bad_fold.any():
        problems.append(f"column 'fold' must be a whole number in {_rows(bad_fold)}")
    dev = out["cohort"] == DEVELOPMENT
    ext = out["cohort"] == EXTERNAL
    # Unlabelled development patients are outside the CV and scored by the fold ensemble (fold −1);
    # a *labelled* development patient without an out-of-fold fold would be an in-sample prediction.
    dev_in_sample = dev & (fold < 0) & out["label"].notna()
    if dev_in_sample.any():
        problems.append(
            f"labelled development rows must carry their out-of-fold fold (0, 1, …), found fold < 0 in "
            f"{_rows(dev_in_sample)}: in-sample predictions of development patients would inflate every "
            "metric"
        )
    if (ext & (fold != -1) & fold.notna()).any():
        problems.append(
            f"external rows must have fold -1 (the ensemble prediction) in {_rows(ext & (fold != -1))}"
        )
    prob = out["prob"]
    bad_prob = ~np.isfinite(prob) | (prob < 0) | (prob > 1)
    if bad_prob.any():
        problems.append(f"column 'prob' must be a probability in [0, 1] (not a logit) in {_rows(bad_prob)}")
    label = out["label"]
    bad_label = label.notna() & ~label.isin([0.0, 1.0])
    if bad_label.any():
        problems.append(f"column 'label' must be 1, 0 or empty in {_rows(bad_label)}")
    thr = out["threshold"]
    bad_thr = ~np.isfinite(thr) | (thr < 0) | (thr > 1)
    if bad_thr.any():
        problems.append(f"column 'threshold' must be a probability in [0, 1] in {_rows(bad_thr)}")
    else:
        spread = thr.groupby(out["model"]).agg(lambda s: s.max() - s.min())
        varying = spread[spread > 1e-12]
        if len(varying):
            problems.append(
                f"the decision threshold must be one frozen value per model, but it varies for "
                f"{sorted(varying.index)[:5]}"
            )
    dup = out.duplicated(["patient_id", "model"], keep=False)
    if dup.any():
        problems.append(
            f"each patient must have one prediction per model, found duplicates in {_rows(dup)} "
            f"(e.g. patient {out.loc[dup, 'patient_id'].iloc[0]!r}, model {out.loc[dup, 'model'].iloc[0]!r})"
        )
    per_patient = out.groupby("patient_id").agg(
        centers=("center", "nunique"),
        cohorts=("cohort", "nunique"),
        labels=("label", lambda s: s.dropna().nunique()),
    )
    for col, what in (("centers", "center"), ("cohorts", "cohort"), ("labels", "label")):
        bad = per_patient.index[per_patient[col] > 1]
        if len(bad):
            problems.append(f"patient(s) {list(bad[:5])} have more than one {what} across rows")
    if "modalities" in df.columns:
        out["modalities"] = df["modalities"].reset_index(drop=True).astype("string")
    if "missing_modality" in df.columns:
        out["missing_modality"] = df["missing_modality"].reset_index(drop=True).astype("boolean")
    if problems:
        raise PredictionsError(path, problems)
    out["fold"] = out["fold"].astype(int)
    return out


def load_predictions(path: str | Path) -> pd.DataFrame:
    """Read and validate ``predictions.parquet`` (or a run folder holding it)."""
    p = Path(path)
    if p.is_dir():
        p = p / "predictions.parquet"
    if not p.is_file():
        raise PredictionsError(p, ["file not found; run `radiopath train` first, or pass the run folder"])
    try:
        df = pd.read_parquet(p)
    except Exception as exc:  # pyarrow raises many types for a corrupt file
        raise PredictionsError(p, [f"cannot read it as Parquet ({type(exc).__name__}: {exc})"]) from None
    return validate_predictions(df, p)


@dataclass(frozen=True)
class CohortSpec:
    """A set of patients metrics are computed on."""

    key: str  #: "internal", "external", "internal/<center>", "external/<center>"
    label: str
    scope: str  #: "main" (internal, external pooled) or "center"
    cohort: str  #: development | external
    center: str | None = None

    def select(self, df: pd.DataFrame) -> pd.Series:
        mask = df["cohort"] == self.cohort
        if self.center is not None:
            mask &= df["center"] == self.center
        return mask


def cohort_specs(df: pd.DataFrame) -> list[CohortSpec]:
    """Internal (out-of-fold) and external (pooled) first, then every center of each."""
    specs: list[CohortSpec] = []
    n_folds = int(df.loc[df["cohort"] == DEVELOPMENT, "fold"].nunique())
    dev_centers = sorted(df.loc[df["cohort"] == DEVELOPMENT, "center"].unique())
    ext_centers = sorted(df.loc[df["cohort"] == EXTERNAL, "center"].unique())
    if dev_centers:
        specs.append(CohortSpec("internal", f"Internal ({n_folds}-fold out-of-fold)", "main", DEVELOPMENT))
    if ext_centers:
        label = "External (pooled)" if len(ext_centers) > 1 else f"External ({ext_centers[0]})"
        specs.append(CohortSpec("external", label, "main", EXTERNAL))
    if len(dev_centers) > 1:
        specs += [
            CohortSpec(f"internal/{c}", f"Internal · {c}", "center", DEVELOPMENT, c) for c in dev_centers
        ]
    if len(ext_centers) > 1:
        specs += [CohortSpec(f"external/{c}", f"External · {c}", "center", EXTERNAL, c) for c in ext_centers]
    return specs


def labelled(df: pd.DataFrame) -> pd.DataFrame:
    """Rows with a known label, in patient order (so resamples pair up across models)."""
    return df[df["label"].notna()].sort_values("patient_id", kind="stable")


def default_pairs(models: list[str]) -> list[tuple[str, str]]:
    """Each fusion model against each single-modality baseline present."""
    fusion = [m for m in models if m.startswith(FUSION_PREFIX)]
    single = [m for m in SINGLE_MODALITY if m in models]
    return [(f, s) for f in fusion for s in single]


def model_order(models: list[str] | np.ndarray) -> list[str]:
    """Baselines first (ultrasound, cytology), then fusion models, then anything else, each sorted."""
    ms = list(dict.fromkeys(str(m) for m in models))
    single = [m for m in SINGLE_MODALITY if m in ms]
    fusion = sorted(m for m in ms if m.startswith(FUSION_PREFIX))
    rest = sorted(m for m in ms if m not in single and m not in fusion)
    return single + rest + fusion
