"""The predictions contract: every violation is reported, with rows and a fix."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from radiopath.evaluate import PredictionsError, load_predictions
from radiopath.evaluate.predictions import cohort_specs, default_pairs, model_order, validate_predictions


def _frame() -> pd.DataFrame:
    rows = []
    for i in range(12):
        dev = i < 8
        for model, thr in (("ultrasound", 0.4), ("fusion_concat", 0.5)):
            rows.append(
                {
                    "patient_id": f"P{i}",
                    "center": "A" if dev else "C",
                    "cohort": "development" if dev else "external",
                    "model": model,
                    "fold": i % 4 if dev else -1,
                    "prob": (i + 1) / 14,
                    "label": float(i % 2),
                    "threshold": thr,
                }
            )
    return pd.DataFrame(rows)


def test_clean_table_is_normalised() -> None:
    df = validate_predictions(_frame())
    assert df["fold"].dtype.kind == "i" and df["label"].dtype == float
    assert list(df.columns[:8]) == [
        "patient_id",
        "center",
        "cohort",
        "model",
        "fold",
        "prob",
        "label",
        "threshold",
    ]


def test_every_violation_is_listed_at_once() -> None:
    df = _frame()
    df.loc[0, "prob"] = 1.7  # a logit, not a probability
    df.loc[1, "label"] = 2
    df.loc[2, "cohort"] = "validation"
    df.loc[3, "threshold"] = 0.9  # threshold varies within a model
    df.loc[20, "fold"] = 2  # external row with a CV fold
    with pytest.raises(PredictionsError) as exc:
        validate_predictions(df, "run/predictions.parquet")
    text = str(exc.value)
    # five planted errors, two of which also make a patient inconsistent across its rows
    assert "run/predictions.parquet: 7 problem(s)" in text
    for fragment in (
        "'prob' must be a probability",
        "row(s) 0",
        "'label' must be 1, 0 or empty",
        "'validation'",
        "varies for ['fusion_concat']",
        "external rows must have fold -1",
        "['P1'] have more than one cohort",
        "['P0'] have more than one label",
        "fix:",
    ):
        assert fragment in text


def test_duplicates_and_in_sample_development_rows_are_rejected() -> None:
    df = pd.concat([_frame(), _frame().iloc[[0]]], ignore_index=True)
    with pytest.raises(PredictionsError, match="one prediction per model"):
        validate_predictions(df)
    df = _frame()
    df.loc[0, "fold"] = -1  # labelled development patient without an out-of-fold fold
    with pytest.raises(PredictionsError, match="in-sample"):
        validate_predictions(df)


def test_unlabelled_development_patients_may_be_scored_by_the_ensemble() -> None:
    df = _frame()
    df.loc[df["patient_id"] == "P0", ["fold", "label"]] = [-1, np.nan]
    assert (validate_predictions(df)["fold"] == -1).sum() == 2 + 8  # P0 × 2 models + 4 external × 2


def test_missing_columns_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(PredictionsError, match="missing column"):
        validate_predictions(_frame().drop(columns=["threshold"]))
    with pytest.raises(PredictionsError, match="radiopath train"):
        load_predictions(tmp_path)
    (tmp_path / "predictions.parquet").write_text("not parquet")
    with pytest.raises(PredictionsError, match="cannot read it as Parquet"):
        load_predictions(tmp_path)


def test_cohorts_pairs_and_model_order() -> None:
    df = validate_predictions(_frame())
    keys = [s.key for s in cohort_specs(df)]
    assert keys == ["internal", "external"]  # one center each: no per-center duplicates
    assert default_pairs(["fusion_late", "cytology", "ultrasound", "fusion_concat"]) == [
        ("fusion_late", "ultrasound"),
        ("fusion_late", "cytology"),
        ("fusion_concat", "ultrasound"),
        ("fusion_concat", "cytology"),
    ]
    assert model_order(["fusion_late", "clinical", "cytology", "ultrasound", "fusion_concat"]) == [
        "ultrasound",
        "cytology",
        "clinical",
        "fusion_concat",
        "fusion_late",
    ]
