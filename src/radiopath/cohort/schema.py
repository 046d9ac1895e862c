"""The manifest contract (DESIGN.md): column names, allowed values, and how to parse them.

One row per patient; image paths are relative to the manifest file's folder.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Iterable

#: Columns every manifest must have.
REQUIRED_COLUMNS: tuple[str, ...] = ("patient_id", "center", "cohort", "lnm")
#: Ultrasound views, in order.
US_VIEWS: tuple[str, ...] = ("us_1", "us_2")
#: Optional nodule region per view, as a mask image…
MASK_COLUMNS: dict[str, str] = {"us_1": "us_1_mask", "us_2": "us_2_mask"}
#: … or as a box ``x0,y0,x1,y1`` in pixels of that view.
BOX_COLUMNS: dict[str, str] = {"us_1": "us_1_box", "us_2": "us_2_box"}
CYTOLOGY_COLUMN = "cytology"
#: Columns that hold file paths (checked for existence and readability).
PATH_COLUMNS: tuple[str, ...] = (*US_VIEWS, *MASK_COLUMNS.values(), CYTOLOGY_COLUMN)
#: Columns that carry a modality; a patient needs at least one of them filled.
MODALITY_COLUMNS: tuple[str, ...] = (*US_VIEWS, CYTOLOGY_COLUMN)
CLINICAL_PREFIX = "clin_"
KNOWN_COLUMNS: frozenset[str] = frozenset((*REQUIRED_COLUMNS, *PATH_COLUMNS, *BOX_COLUMNS.values()))

DEVELOPMENT = "development"
EXTERNAL = "external"
COHORTS: tuple[str, ...] = (DEVELOPMENT, EXTERNAL)

LABEL_FIX = "use 1 for metastasis, 0 for none, or leave the cell empty for a patient to predict"


def parse_label(text: str) -> int | None:
    """``'1'``/``'0'`` (also ``'1.0'``, ``'0.0'``) → 1/0; empty → None.

    Raises:
        ValueError: anything else (``'yes'``, ``'2'``, ``'0.5'``).
    """
    text = text.strip()
    if text == "" or text.lower() in {"nan", "none", "null", "na", "<na>"}:
        return None
    try:
        value = float(text)
    except ValueError:
        raise ValueError(text) from None
    if value in (0.0, 1.0):
        return int(value)
    raise ValueError(text)


def parse_box(text: str) -> tuple[int, int, int, int]:
    """``'x0,y0,x1,y1'`` (pixels; separators ``,`` ``;`` or white space) → four ints, x0<x1, y0<y1.

    Raises:
        ValueError: with a sentence saying what is wrong (never another exception type).
    """
    parts = [p for p in re.split(r"[,;\s]+", text) if p]
    if len(parts) != 4:
        raise ValueError(f"expected four numbers x0,y0,x1,y1, got {text!r}")
    try:
        values = [float(p) for p in parts]
    except ValueError:
        raise ValueError(f"box {text!r} has a part that is not a number") from None
    if not all(math.isfinite(v) for v in values):
        raise ValueError(f"box {text!r} has a part that is not a finite number")
    if max(abs(v) for v in values) >= 2**31:
        raise ValueError(f"box {text!r} has coordinates larger than any image")
    x0, y0, x1, y1 = (round(v) for v in values)
    if x0 >= x1 or y0 >= y1:
        raise ValueError(f"box {text!r} is empty: need x0 < x1 and y0 < y1")
    if min(x0, y0) < 0:
        raise ValueError(f"box {text!r} has negative coordinates")
    return x0, y0, x1, y1


def suggest(name: str, candidates: Iterable[str]) -> str | None:
    """Closest candidate to ``name`` (case-insensitive), or None when nothing is close."""
    pool = {_norm(c): c for c in candidates}
    key = _norm(name)
    if key in pool:
        return pool[key]
    match = difflib.get_close_matches(key, list(pool), n=1, cutoff=0.6)
    if match:
        return pool[match[0]]
    # one name is a word of the other: 'LNM status' <-> 'lnm'
    hits = [orig for k, orig in pool.items() if key in k.split("_") or k in key.split("_")]
    return hits[0] if len(hits) == 1 else None


def _norm(text: str) -> str:
    return "_".join(text.lower().replace("-", " ").replace("_", " ").split())
