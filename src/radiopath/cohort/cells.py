"""Whole-column parsing of manifest cells: labels, nodule boxes and missing-value markers.

Validation of 100,000 patients must take seconds, so each check works on a column at once
(pandas string methods, parsing each *distinct* value once) instead of a Python loop over
rows. The scalar parsers in :mod:`radiopath.cohort.schema` stay the single definition of
what a valid cell is: these functions give the same answer for every cell (a property test
holds them to it), falling back to the scalar parser for the rare odd cell.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from radiopath.cohort.schema import parse_box, parse_label

#: Cell texts that spreadsheets and pandas write for a missing value (compared case-insensitively).
NAN_LIKE: frozenset[str] = frozenset({"nan", "na", "n/a", "#n/a", "none", "null", "nil", "<na>", "nat"})


def nan_like(column: pd.Series) -> np.ndarray:
    """True where a (stripped) cell is empty or a missing-value marker such as ``nan``/``NA``/``None``."""
    text = column.astype(object)
    return ((text == "") | text.str.casefold().isin(NAN_LIKE)).to_numpy(dtype=bool)


def parse_labels(column: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """``lnm`` cells → (values as float with NaN for unlabelled, ok mask), via :func:`parse_label`."""
    uniques = pd.unique(column.astype(object))
    value: dict[object, float] = {}
    good: dict[object, bool] = {}
    for text in uniques:
        try:
            parsed = parse_label(str(text))
            value[text], good[text] = (np.nan if parsed is None else float(parsed)), True
        except ValueError:
            value[text], good[text] = np.nan, False
    values = column.map(value).to_numpy(dtype=float)
    ok = column.map(good).to_numpy(dtype=bool)
    return values, ok


def parse_boxes(column: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Box cells → (``(x0, y0, x1, y1)`` tuples or None, error message or None), per row.

    Empty cells give ``(None, None)``. Plain decimal boxes are parsed column-wise; any cell
    the fast path cannot settle goes to :func:`parse_box`, whose message is reported.
    """
    n = len(column)
    boxes = np.full(n, None, dtype=object)
    errors = np.full(n, None, dtype=object)
    text = column.astype(object).reset_index(drop=True)
    filled = (text != "").to_numpy()
    if not filled.any():
        return boxes, errors
    idx = np.flatnonzero(filled)
    norm = text.iloc[idx].str.replace(r"[,;\s]+", ",", regex=True).str.strip(",")
    parts = norm.str.split(",", expand=True)
    fast = np.zeros(len(idx), bool)
    coords = np.zeros((len(idx), 4))
    if parts.shape[1] >= 4:
        count = parts.notna().sum(axis=1).to_numpy()
        numbers = np.column_stack(
            [pd.to_numeric(parts[k], errors="coerce").to_numpy(float) for k in range(4)]
        )
        fast = (count == 4) & np.isfinite(numbers).all(axis=1) & (np.abs(numbers) < 2**31).all(axis=1)
        coords = np.round(numbers)
        x0, y0, x1, y1 = (coords[:, k] for k in range(4))
        fast &= (x0 < x1) & (y0 < y1) & (np.minimum(x0, y0) >= 0)
    for k in np.flatnonzero(fast):
        boxes[idx[k]] = tuple(int(v) for v in coords[k])
    for k in np.flatnonzero(~fast):  # odd or wrong cells: the scalar parser decides and explains
        try:
            boxes[idx[k]] = parse_box(str(text.iloc[idx[k]]))
        except ValueError as exc:
            errors[idx[k]] = str(exc)
    return boxes, errors
