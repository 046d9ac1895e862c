"""The one-screen summary of a cohort: patients, prevalence and modalities per center."""

from __future__ import annotations

import pandas as pd

from radiopath.cohort.schema import BOX_COLUMNS, COHORTS, MASK_COLUMNS


def outcome_counts(lnm: pd.Series) -> dict[str, float | int]:
    """``labelled``, ``lnm_pos`` and ``prevalence`` (positives / labelled) of an LNM column."""
    label = pd.to_numeric(lnm, errors="coerce")
    labelled = int(label.notna().sum())
    pos = int((label == 1).sum())
    return {"labelled": labelled, "lnm_pos": pos, "prevalence": pos / labelled if labelled else float("nan")}


def cohort_summary(table: pd.DataFrame) -> pd.DataFrame:
    """One row per (cohort, center) plus a total row per cohort and overall.

    Columns: ``cohort, center, patients, labelled, lnm_pos, prevalence, us_1, us_2,
    cytology, region`` (region = a mask or a box for at least one view).
    """
    t = table.copy()
    region = pd.Series(False, index=t.index)
    for view in ("us_1", "us_2"):
        region |= t[MASK_COLUMNS[view]].notna() | t[BOX_COLUMNS[view]].notna()
    t["_region"] = region
    order = {c: i for i, c in enumerate(COHORTS)}

    def block(df: pd.DataFrame, cohort: str, center: str) -> dict[str, object]:
        return {
            "cohort": cohort,
            "center": center,
            "patients": len(df),
            **outcome_counts(df["lnm"]),
            "us_1": int(df["us_1"].notna().sum()),
            "us_2": int(df["us_2"].notna().sum()),
            "cytology": int(df["cytology"].notna().sum()),
            "region": int(df["_region"].sum()),
        }

    out = []
    for cohort in sorted(t["cohort"].unique(), key=lambda c: order.get(c, 99)):
        sub = t[t["cohort"] == cohort]
        for center in sorted(sub["center"].unique()):
            out.append(block(sub[sub["center"] == center], cohort, center))
        if sub["center"].nunique() > 1:
            out.append(block(sub, cohort, "(all)"))
    out.append(block(t, "(all)", "(all)"))
    return pd.DataFrame(out)
