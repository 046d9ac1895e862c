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
#: A number that Python's ``float`` reads exactly as Arrow's cast does (ASCII decimal).
_DECIMAL = r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$"


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

    Empty cells give ``(None, None)``. Boxes of four plain decimal numbers are parsed in
    Arrow's compute kernels; any cell the fast path cannot settle (other separators, odd
    number syntax, wrong boxes) goes to :func:`parse_box`, whose message is reported.
    """
    n = len(column)
    boxes = np.full(n, None, dtype=object)
    errors = np.full(n, None, dtype=object)
    text = column.astype(object).to_numpy()
    idx = np.flatnonzero(text != "")
    if not len(idx):
        return boxes, errors
    coords, fast = _fast_boxes(text[idx])
    for k, values in zip(np.flatnonzero(fast), coords[fast].astype(np.int64).tolist(), strict=True):
        boxes[idx[k]] = tuple(values)
    for k in np.flatnonzero(~fast):  # odd or wrong cells: the scalar parser decides and explains
        try:
            boxes[idx[k]] = parse_box(str(text[idx[k]]))
        except ValueError as exc:
            errors[idx[k]] = str(exc)
    return boxes, errors


def _fast_boxes(cells: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(m, 4) rounded coordinates and a mask of the cells that are plain, valid boxes."""
    import pyarrow as pa
    import pyarrow.compute as pc

    m = len(cells)
    coords = np.zeros((m, 4))
    try:
        arr = pa.array(cells, type=pa.string())
    except (pa.ArrowException, TypeError, ValueError):  # odd objects: all go to the scalar parser
        return coords, np.zeros(m, bool)
    parts = pc.split_pattern(pc.utf8_trim(pc.replace_substring_regex(arr, r"[,;\s]+", ","), ","), ",")
    four = pc.fill_null(pc.equal(pc.list_value_length(parts), 4), False).to_numpy(zero_copy_only=False)
    if not four.any():
        return coords, four
    flat = pc.list_flatten(pc.filter(parts, pa.array(four)))
    plain = pc.match_substring_regex(flat, _DECIMAL).to_numpy(zero_copy_only=False).reshape(-1, 4).all(axis=1)
    numbers = np.zeros((int(four.sum()), 4))
    if plain.any():
        keep = pa.array(np.repeat(plain, 4))
        numbers[plain] = pc.cast(pc.filter(flat, keep), pa.float64()).to_numpy().reshape(-1, 4)
    good = plain & np.isfinite(numbers).all(axis=1) & (np.abs(numbers) < 2**31).all(axis=1)
    numbers = np.round(numbers)
    x0, y0, x1, y1 = numbers.T
    good &= (x0 < x1) & (y0 < y1) & (np.minimum(x0, y0) >= 0)
    fast = np.zeros(m, bool)
    fast[np.flatnonzero(four)[good]] = True
    coords[np.flatnonzero(four)] = numbers
    return coords, fast
