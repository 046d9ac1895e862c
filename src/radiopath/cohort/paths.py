"""Resolving a manifest's file columns: absolute paths, existence, and the ``strict`` rule.

Paths are relative to the manifest's folder (absolute ones are kept). Each *distinct* path
is resolved and looked up once (``os.stat``, in a few threads, which matters on network
file systems), so 100,000 rows take about a second. Problems are returned as arrays of
messages so the caller can locate them by row.
"""

from __future__ import annotations

import os
import stat
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

#: Text that pathlib would normalise (``./``, ``//``, a trailing ``/``): joined with pathlib.
_ODD = r"^\./|//|/\./|/\.?$|^\.$"


@dataclass(frozen=True)
class PathColumn:
    """One file column resolved: absolute path per row (None when empty or unusable)."""

    paths: np.ndarray  # object: str | None
    full: np.ndarray  # object: the resolved path of every filled cell, found or not
    not_found: np.ndarray  # bool
    is_dir: np.ndarray  # bool
    escapes: np.ndarray  # object: message | None (strict mode only)


def resolve_column(texts: pd.Series, root: Path, strict: bool, workers: int = 4) -> PathColumn:
    """Resolve, stat and (with ``strict``) confine one column of path cells."""
    text = texts.astype(object).reset_index(drop=True)
    n = len(text)
    filled = (text != "").to_numpy()
    paths = np.full(n, None, dtype=object)
    full_all = np.full(n, None, dtype=object)
    not_found = np.zeros(n, bool)
    is_dir = np.zeros(n, bool)
    escapes = np.full(n, None, dtype=object)
    if not filled.any():
        return PathColumn(paths, full_all, not_found, is_dir, escapes)
    code, unique = pd.factorize(text[filled].to_numpy())
    full = join_paths(pd.Series(unique, dtype=object), root)
    modes = _stat_all(full, workers)
    resolved = np.asarray(full, dtype=object)[code]
    mode = np.asarray(modes, dtype=object)[code]
    missing = np.array([m is None for m in mode], bool)
    folder = np.array([m is not None and stat.S_ISDIR(m) for m in mode], bool)
    idx = np.flatnonzero(filled)
    paths[idx[~missing]] = resolved[~missing]
    full_all[idx] = resolved
    not_found[idx] = missing
    is_dir[idx] = folder
    if strict:
        real_root = Path(os.path.realpath(root))
        messages = [_escape(str(u), f, real_root) for u, f in zip(unique, full, strict=True)]
        escapes[idx] = np.asarray(messages, dtype=object)[code]
    return PathColumn(paths, full_all, not_found, is_dir, escapes)


def join_paths(texts: pd.Series, root: Path) -> list[str]:
    """``root / text`` for every cell, as pathlib would write it (absolute cells unchanged)."""
    base = str(root)
    plain = ~texts.str.contains(_ODD, regex=True).to_numpy()
    out: list[str] = []
    for text, simple in zip(texts, plain, strict=True):
        if simple:
            out.append(text if text.startswith("/") else f"{base}/{text}")
        else:
            out.append(str(root / text))
    return out


def _stat_all(paths: list[str], workers: int) -> list[int | None]:
    """``st_mode`` of each path, None when it does not exist or cannot be looked up."""

    def mode(path: str) -> int | None:
        try:
            return os.stat(path).st_mode
        except (OSError, ValueError):  # missing, a file where a folder should be, a NUL byte
            return None

    def modes(chunk: list[str]) -> list[int | None]:
        return [mode(p) for p in chunk]

    if len(paths) < 2000 or workers <= 1:
        return modes(paths)
    size = -(-len(paths) // (workers * 4))  # a few chunks per thread: one future per chunk, not per path
    chunks = [paths[k : k + size] for k in range(0, len(paths), size)]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return [m for part in pool.map(modes, chunks) for m in part]


def _escape(text: str, full: str, real_root: Path) -> str | None:
    """Why ``text`` leaves the manifest's folder (``strict``), or None when it stays inside."""
    raw = Path(text)
    real = Path(os.path.realpath(full))
    if real == real_root or real_root in real.parents:
        return None
    if raw.is_absolute():
        how = "an absolute path"
    elif ".." in raw.parts and real_root not in Path(os.path.normpath(full)).parents:
        how = "'..'"
    else:
        how = "a symbolic link"
    return f"'{text}' leaves the manifest's folder {real_root} through {how} (resolves to {real})"
