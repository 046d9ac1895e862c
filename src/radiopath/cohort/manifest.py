"""Reading a manifest file (CSV/TSV or Parquet) into a table of stripped strings.

Everything is read as text so validation sees exactly what the user wrote (``'1.0'`` vs
``'yes'``); typing happens after validation, in :mod:`radiopath.cohort.validation`.

Spreadsheets arrive in many shapes, and each is read correctly *and said out loud*
(a warning in :attr:`ManifestTable.notes`), never guessed silently:

* the delimiter is sniffed from the header line (``,`` ``;`` tab ``|``): Excel writes ``;``
  in many European locales and "Unicode Text" exports are tab-separated;
* the encoding: UTF-8 (with or without Excel's byte-order mark), UTF-16 with a byte-order
  mark, and otherwise Windows-1252/latin-1, which is reported;
* blank lines (and lines of nothing but delimiters) are skipped and lines starting with
  ``#`` are comments — every row keeps its real line number in the file;
* an Excel workbook, a Parquet file or other binary data saved under ``.csv`` is refused
  with the way to export it; a row with more cells than the header is an error naming its
  line, as is a column name used twice.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from radiopath.cohort.problems import Problem
from radiopath.errors import ManifestError

TEXT_SUFFIXES = (".csv", ".tsv", ".txt")
PARQUET_SUFFIXES = (".parquet", ".pq")
SUFFIXES = TEXT_SUFFIXES + PARQUET_SUFFIXES
#: Delimiters tried, in order of preference when several split the header equally well.
DELIMITERS: tuple[str, ...] = (",", ";", "\t", "|")
DELIMITER_NAMES = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe"}

_SAVE_AS = "in Excel use File > Save As > 'CSV UTF-8 (Comma delimited)', or save the table as Parquet"
_BINARY: tuple[tuple[bytes, str], ...] = (
    (b"PK\x03\x04", "an Excel workbook (.xlsx) or another zip archive"),
    (b"\xd0\xcf\x11\xe0", "an old-style Excel workbook (.xls)"),
    (b"PAR1", "a Parquet file"),
    (b"%PDF", "a PDF document"),
    (b"{\\rtf", "a Word/RTF document"),
)


@dataclass
class ManifestTable:
    """A manifest as text, with what reading it found.

    Attributes:
        frame: one row per patient, every cell a stripped string (``''`` when empty).
        lines: for text manifests, the 1-based line of the file each row starts on
            (the header's line is :attr:`header_line`); None for Parquet.
        delimiter: the delimiter used (text manifests), else None.
        encoding: the text encoding used (text manifests), else None.
        notes: problems found while reading (delimiter/encoding notices, comment lines,
            rows with too many cells, repeated column names), located by row and line.
    """

    frame: pd.DataFrame
    lines: np.ndarray | None = None
    delimiter: str | None = None
    encoding: str | None = None
    header_line: int | None = None
    notes: list[Problem] = field(default_factory=list)


def is_csv(path: Path) -> bool:
    """Text manifests report file line numbers beside row numbers."""
    return path.suffix.lower() in TEXT_SUFFIXES


def read_manifest_table(path: str | Path) -> pd.DataFrame:
    """Just the table of :func:`read_manifest` (stripped strings, empty cells ``''``)."""
    return read_manifest(path).frame


def read_manifest(path: str | Path) -> ManifestTable:
    """Read ``path`` (CSV/TSV/TXT or Parquet) as text cells, with line numbers and notes.

    Raises:
        ManifestError: the file is missing, empty, of another kind (Excel, PDF, binary), or
            cannot be parsed at all. Problems of single rows are :attr:`ManifestTable.notes`.
    """
    path = Path(path)
    if not path.is_file():
        what = "is a folder" if path.is_dir() else "not found"
        raise ManifestError(
            path, message=f"{path}: manifest {what}; give the path to a .csv or .parquet file"
        )
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        hint = (
            " (an Excel workbook: " + _SAVE_AS + ")" if suffix in (".xlsx", ".xls", ".xlsm", ".ods") else ""
        )
        raise ManifestError(
            path, message=f"{path}: unsupported manifest type '{suffix}'{hint}; save it as .csv or .parquet"
        )
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ManifestError(
            path, message=f"{path}: manifest cannot be read ({exc.strerror}); check its permissions"
        ) from None
    if suffix in PARQUET_SUFFIXES:
        return _read_parquet(path)
    return _read_text(path, raw)


# --------------------------------------------------------------------------------- text


def _read_text(path: Path, raw: bytes) -> ManifestTable:
    if not raw.strip():
        raise ManifestError(
            path,
            message=f"{path}: the manifest is empty; write a header row "
            "(patient_id,center,cohort,lnm,us_1,...) and one row per patient",
        )
    for magic, kind in _BINARY:
        if raw.startswith(magic):
            raise ManifestError(path, message=f"{path}: this '.csv' file is really {kind}; {_SAVE_AS}")
    text, encoding, note = _decode(path, raw)
    if "\x00" in text:
        raise ManifestError(
            path, message=f"{path}: the manifest holds binary data (NUL bytes), not text; {_SAVE_AS}"
        )
    table = _parse(path, text)
    table.encoding = encoding
    if note:
        table.notes.insert(0, Problem("warning", note[0], note[1]))
    return table


def _decode(path: Path, raw: bytes) -> tuple[str, str, tuple[str, str] | None]:
    """Text, the encoding's name, and a (message, fix) notice when it was not plain UTF-8."""
    if raw.startswith(codecs.BOM_UTF8):
        return _strict(path, raw, "utf-8-sig"), "utf-8-sig", None
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        notice = (
            "the manifest is UTF-16 text (Excel 'Unicode Text'); it was read as such",
            "nothing to do if the summary looks right; 'CSV UTF-8' is the safer export",
        )
        return _strict(path, raw, "utf-16"), "utf-16", notice
    try:
        return raw.decode("utf-8"), "utf-8", None
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
    try:
        text, used = raw.decode("cp1252"), "cp1252"
    except UnicodeDecodeError:
        text, used = raw.decode("latin-1"), "latin-1"
    notice = (
        f"the manifest is not UTF-8 (first non-UTF-8 byte on line {line}); it was read as "
        f"{'Windows-1252' if used == 'cp1252' else 'latin-1'}",
        "check accented names and paths in the summary; save the file as 'CSV UTF-8'",
    )
    return text, used, notice


def _strict(path: Path, raw: bytes, encoding: str) -> str:
    try:
        return raw.decode(encoding)
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ManifestError(
            path, message=f"{path}: not valid {encoding} text (line {line}); save it again as 'CSV UTF-8'"
        ) from None


def _parse(path: Path, text: str) -> ManifestTable:
    """Split ``text`` into cells with the sniffed delimiter, keeping each record's first line."""
    delimiter = sniff_delimiter(next(_content(text), ""))
    has_comments = re.search(r"^[^\S\r\n]*#", text, re.MULTILINE) is not None
    physical: list[int] = []  # file line of each line handed to the csv reader (with comments)
    comments: list[int] = []

    def without_comments() -> Iterator[str]:
        for number, line in enumerate(io.StringIO(text, newline=""), start=1):
            if line.lstrip().startswith("#"):
                comments.append(number)
                continue
            physical.append(number)
            yield line

    source = without_comments() if has_comments else io.StringIO(text, newline="")
    reader = csv.reader(source, delimiter=delimiter, skipinitialspace=True)
    strip = _needs_strip(text, delimiter)
    records: list[list[str]] = []
    starts: list[int] = []
    done = 0
    try:
        for record in reader:
            if has_comments:
                start = physical[done] if done < len(physical) else (physical[-1] if physical else 1)
            else:
                start = done + 1
            done = reader.line_num
            if not "".join(record).strip():
                continue  # blank line, or a row of empty cells left by a spreadsheet
            records.append([cell.strip() for cell in record] if strip else record)
            starts.append(start)
    except csv.Error as exc:
        line = (physical[done] if done < len(physical) else "?") if has_comments else done + 1
        raise ManifestError(
            path,
            message=f"{path}: line {line} cannot be parsed as CSV ({exc}); check its quotes, "
            "or save the file again as 'CSV UTF-8'",
        ) from None
    if not records:
        raise ManifestError(
            path, message=f"{path}: the manifest has only comments or blank lines; write a header row"
        )
    return _table(records, starts, delimiter, comments)


def _needs_strip(text: str, delimiter: str) -> bool:
    """Whether any cell can carry surrounding white space (a quote, or space next to a delimiter)."""
    if '"' in text:
        return True
    d = re.escape(delimiter)
    pattern = rf"[^\S\r\n]{d}|{d}[^\S\r\n]|[^\S\r\n]$|^[^\S\r\n]"
    return re.search(pattern, text, re.MULTILINE) is not None


def _content(text: str):  # type: ignore[no-untyped-def]
    """Lines that are neither blank nor comments (the first one is the header)."""
    for line in io.StringIO(text, newline=""):
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            yield line


def sniff_delimiter(header: str) -> str:
    """The delimiter that splits the header line into the most cells (``,`` on a tie or none)."""
    best, best_n = ",", 1
    for delim in DELIMITERS:
        try:
            n = len(next(csv.reader([header], delimiter=delim), []))
        except csv.Error:
            continue
        if n > best_n:
            best, best_n = delim, n
    return best


def _table(records: list[list[str]], starts: list[int], delimiter: str, comments: list[int]) -> ManifestTable:
    header, *rows = records
    names = [c.lstrip("\ufeff").strip() for c in header]
    width = len(names)
    notes: list[Problem] = []
    if delimiter != ",":
        name = DELIMITER_NAMES[delimiter]
        notes.append(
            Problem(
                "warning",
                f"the manifest is {name}-separated ({delimiter!r}), not comma-separated; "
                f"it was read with {delimiter!r} as the delimiter",
                "nothing to do if the summary looks right; save it as comma-separated CSV to silence this",
            )
        )
    if comments:
        shown = ", ".join(map(str, comments[:10])) + (", …" if len(comments) > 10 else "")
        notes.append(
            Problem(
                "warning",
                f"{len(comments)} comment line(s) starting with '#' were skipped (line(s) {shown})",
                "nothing to do if these are comments; remove the '#' to include a patient",
            )
        )
    cells = []
    for r, (record, line) in enumerate(zip(rows, starts[1:], strict=True), start=1):
        if len(record) > width and any(record[width:]):
            notes.append(
                Problem(
                    "error",
                    f"row has {len(record)} cells but the header has {width} (extra: "
                    f"{', '.join(repr(c) for c in record[width:] if c)[:120]})",
                    f'quote values that contain {delimiter!r} ("a{delimiter}b"), or remove the extra cells',
                    r,
                    None,
                    line,
                )
            )
        cells.append(record if len(record) == width else (record + [""] * (width - len(record)))[:width])
    frame = pd.DataFrame(cells, columns=range(width), dtype=object)
    keep, final = _name_columns(names, frame, notes)
    frame = frame.iloc[:, keep]
    frame.columns = final
    return ManifestTable(
        frame.reset_index(drop=True),
        np.asarray(starts[1:], dtype=np.int64),
        delimiter,
        None,
        starts[0],
        notes,
    )


def _name_columns(names: list[str], frame: pd.DataFrame, notes: list[Problem]) -> tuple[list[int], list[str]]:
    """Columns to keep and their unique names; nameless empty columns (trailing delimiters) go."""
    keep: list[int] = []
    final: list[str] = []
    seen: dict[str, int] = {}
    for k, name in enumerate(names):
        if not name:
            if (frame[k] != "").any():
                notes.append(
                    Problem(
                        "warning",
                        f"column {k + 1} has values but no name in the header and is ignored",
                        "give the column a name (clin_... for a clinical covariate) or delete it",
                    )
                )
            continue
        if name in seen:
            seen[name] += 1
            notes.append(
                Problem(
                    "error",
                    f"column '{name}' appears more than once (columns {names.index(name) + 1} and {k + 1})",
                    "keep one column of each name",
                    column=name,
                )
            )
            continue
        seen[name] = 0
        keep.append(k)
        final.append(name)
    return keep, final


# ------------------------------------------------------------------------------ parquet


def _read_parquet(path: Path) -> ManifestTable:
    try:
        df = pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises ArrowInvalid, OSError, … for damaged files
        raise ManifestError(
            path,
            message=f"{path}: cannot be parsed as Parquet ({type(exc).__name__}: {str(exc)[:200]}); "
            "write it again (DataFrame.to_parquet) or save the table as UTF-8 CSV",
        ) from None
    notes: list[Problem] = []
    names = [str(c).strip() for c in df.columns]
    frame = pd.DataFrame({k: column_text(df.iloc[:, k]) for k in range(len(names))})
    keep, final = _name_columns(names, frame, notes) if len(names) else ([], [])
    frame = frame.iloc[:, keep] if keep else pd.DataFrame(index=range(len(df)))
    frame.columns = final
    return ManifestTable(frame.reset_index(drop=True), notes=notes)


def column_text(col: pd.Series) -> pd.Series:
    """One column of any dtype as stripped text (vectorised): missing → ``''``, 1.0 → ``'1'``."""
    values = col.reset_index(drop=True)
    if pd.api.types.is_bool_dtype(values.dtype) and not values.isna().any():
        return values.map({True: "True", False: "False"}).astype(object)
    if pd.api.types.is_float_dtype(values.dtype):
        num = values.astype(float).to_numpy()
        out = np.full(len(num), "", dtype=object)
        finite = np.isfinite(num)
        whole = finite & (np.abs(num) < 2**53) & (np.mod(num, 1.0, where=finite, out=np.zeros_like(num)) == 0)
        out[whole] = num[whole].astype(np.int64).astype(str)
        other = ~np.isnan(num) & ~whole
        out[other] = [repr(float(v)) for v in num[other]]
        return pd.Series(out, dtype=object)
    missing = values.isna().to_numpy()
    text = values.astype(object).to_numpy()
    out = np.full(len(text), "", dtype=object)
    out[~missing] = [str(v).strip() for v in text[~missing]]
    return pd.Series(out, dtype=object)
