"""The clinical modality: the manifest's ``clin_*`` covariates as one vector per patient.

Fitted on development rows only: which columns are numeric (kept raw, with a missing
indicator when any value is missing; standardised later inside each training fold) and the
levels of each categorical column (one-hot; a level never seen in development, or a missing
value, is an all-zero row). Applying the state to new patients gives the same columns in the
same order, whatever their own values are.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from radiopath.cohort.schema import CLINICAL_PREFIX
from radiopath.modalities.base import VectorModality


class Clinical(VectorModality):
    key = "clinical"
    label = "clinical"
    columns = ()

    def present(self, table: pd.DataFrame) -> np.ndarray:
        cols = [c for c in table.columns if c.startswith(CLINICAL_PREFIX)]
        if not cols:
            return np.zeros(len(table), bool)
        return table[cols].notna().any(axis=1).to_numpy()

    def fit(self, table: pd.DataFrame, development: np.ndarray) -> dict[str, Any]:
        dev = table[development]
        columns: list[dict[str, Any]] = []
        for c in [c for c in table.columns if c.startswith(CLINICAL_PREFIX)]:
            s = dev[c]
            if pd.api.types.is_numeric_dtype(table[c]):
                v = s.to_numpy(dtype=float, na_value=np.nan)
                whole = table[c].to_numpy(dtype=float, na_value=np.nan)
                columns.append(
                    {
                        "name": c,
                        "kind": "numeric",
                        "missing": bool(np.isnan(whole).any() or np.isnan(v).any()),
                    }
                )
            else:
                columns.append(
                    {"name": c, "kind": "categorical", "levels": sorted(s.dropna().astype(str).unique())}
                )
        return {"columns": columns}

    def apply(
        self, state: Mapping[str, Any], table: pd.DataFrame
    ) -> tuple[np.ndarray, np.ndarray, list[str]]:
        blocks: list[np.ndarray] = []
        names: list[str] = []
        known = np.zeros(len(table), bool)
        for col in state.get("columns", []):
            c = col["name"]
            s = table[c] if c in table.columns else pd.Series([None] * len(table), dtype=object)
            if col["kind"] == "numeric":
                v = pd.to_numeric(s, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
                blocks.append(v[:, None])
                names.append(c)
                if col["missing"]:
                    blocks.append(np.isnan(v)[:, None].astype(float))
                    names.append(f"{c}__missing")
                known |= ~np.isnan(v)
            else:
                text = s.astype("string")
                for lv in col["levels"]:
                    blocks.append((text == lv).fillna(False).to_numpy(dtype=float)[:, None])
                    names.append(f"{c}={lv}")
                known |= s.notna().to_numpy()
        if not blocks:
            return np.zeros((len(table), 0), np.float32), known, []
        return np.concatenate(blocks, 1).astype(np.float32), known, names
