"""Reading a manifest file (CSV or Parquet) into a table of stripped strings.

Everything is read as text so validation sees exactly what the user wrote (``'1.0'`` vs
``'yes'``); typing happens after validation, in :mod:`radiopath.cohort.validation`.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from radiopath.errors import ManifestError

SUFFIXES = (".csv", ".parquet", ".pq")


def is_csv(path: Path) -> bool:
    """CSV manifests report CSV line numbers beside row numbers."""
    return path.suffix.lower() == ".csv"


def read_manifest_table(path: str | Path) -> pd.DataFrame:
    """Read ``path`` as a DataFrame of stripped strings (empty cells are ``''``).

    CSV files may carry an Excel byte-order mark and may use ``;`` as the separator (as
    Excel writes in many European locales); both are handled.

    Raises:
        ManifestError: the file is missing, empty, not CSV/Parquet, or cannot be parsed.
    """
    path = Path(path)
    if not path.is_file():
        raise ManifestError(
            path, message=f"{path}: manifest not found; give the path to a .csv or .parquet file"
        )
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise ManifestError(
            path, message=f"{path}: unsupported manifest type '{suffix}'; save it as .csv or .parquet"
        )
    try:
        df = _read_csv(path) if suffix == ".csv" else pd.read_parquet(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError, ValueError) as exc:
        raise ManifestError(
            path,
            message=f"{path}: cannot be parsed as {suffix[1:].upper()} ({exc}); "
            "save it again as UTF-8 CSV with one header row, or as Parquet",
        ) from None
    df.columns = [str(c).strip() for c in df.columns]
    return df.apply(lambda col: col.map(_cell_text)).reset_index(drop=True)


def _read_csv(path: Path) -> pd.DataFrame:
    kwargs = {"dtype": str, "keep_default_na": False, "encoding": "utf-8-sig", "skipinitialspace": True}
    df = pd.read_csv(path, **kwargs)
    if df.shape[1] == 1 and ";" in str(df.columns[0]):
        df = pd.read_csv(path, sep=";", **kwargs)
    return df


def _cell_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        if value != value:  # NaN
            return ""
        return repr(int(value)) if value.is_integer() else repr(value)
    try:
        if pd.isna(value):  # type: ignore[arg-type]
            return ""
    except (TypeError, ValueError):
        pass
    return str(value).strip()
