"""Benchmark: whole-column manifest validation against the plain per-row loop, in one run.

1. ``validate_manifest(check_files=False)`` on a 100,000-patient manifest (every patient with
   an image file of their own, a nodule box, a label; a few hundred planted errors: bad
   labels, misspelt cohorts, ``nan`` ids, broken boxes) against two per-row loops doing the
   same checks with the same per-cell rules (``parse_label``, ``parse_box``, ``suggest``,
   ``Path.exists``): the one radiopath had (cells read with ``df.at``, as most pandas code
   does) and a lean one (rows as plain dicts). All must report the same problems.
2. ``check_files=True`` (decode every image, hash its pixels, check each box fits) on a
   smaller manifest of 400x300 PNGs against the lean loop decoding one image after another.

Prints each time and the ratio. Never part of the test run.

    .venv/bin/python benchmarks/bench_validate.py            # 100k rows (a few minutes on 2 cores)
    .venv/bin/python benchmarks/bench_validate.py --quick    # 20k rows, for a smoke run
"""

from __future__ import annotations

import argparse
import hashlib
import os
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from radiopath.cohort import validate_manifest
from radiopath.cohort.cells import NAN_LIKE
from radiopath.cohort.schema import (
    BOX_COLUMNS,
    COHORTS,
    CYTOLOGY_COLUMN,
    DEVELOPMENT,
    MODALITY_COLUMNS,
    PATH_COLUMNS,
    parse_box,
    parse_label,
    suggest,
)
from radiopath.errors import ImageReadError
from radiopath.io.images import read_image


def make_cohort(folder: Path, n: int, real_images: bool, seed: int = 0) -> Path:
    """A manifest of ``n`` patients with one ultrasound file each, and planted errors."""
    rng = np.random.default_rng(seed)
    (folder / "us").mkdir(parents=True, exist_ok=True)
    for i in range(n):
        path = folder / "us" / f"p{i}_1.png"
        if real_images:  # a speckled 400x300 view (low entropy, so it is quick to write)
            view = np.linspace(0, 200, 400, dtype=np.uint8)[None, :] + rng.integers(
                0, 16, (300, 400), np.uint8
            )
            Image.fromarray(view).save(path, compress_level=1)
        else:
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o644))
    df = pd.DataFrame(
        {
            "patient_id": [f"P{i:06d}" for i in range(n)],
            "center": rng.choice(["Hospital A", "Hospital B", "Hospital C"], n),
            "cohort": np.where(rng.random(n) < 0.8, "development", "external"),
            "lnm": rng.integers(0, 2, n).astype(str),
            "us_1": [f"us/p{i}_1.png" for i in range(n)],
            "us_1_box": [f"{a},{b},{a + 30},{b + 20}" for a, b in rng.integers(0, 30, (n, 2))],
            "clin_age": rng.integers(20, 80, n).astype(str),
        }
    )
    df.loc[::1000, "lnm"] = "yes"
    df.loc[5::997, "cohort"] = "Developmnet"
    df.loc[7::1009, "patient_id"] = "nan"
    df.loc[11::1013, "us_1_box"] = "10,10,5,5"
    path = folder / "manifest.csv"
    df.to_csv(path, index=False)
    return path


def plain_loop(manifest: Path, check_files: bool, cells: str = "dict") -> tuple[int, int]:
    """The per-row validator one writes without radiopath; returns (errors, warnings).

    ``cells="at"`` reads every cell with ``df.at[i, col]`` (radiopath's previous validator),
    ``"dict"`` iterates rows as plain dicts.
    """
    df = pd.read_csv(manifest, dtype=str, keep_default_na=False)
    root = manifest.resolve().parent
    errors, warnings = 0, 0
    by_id: dict[str, list[int]] = defaultdict(list)
    files: list[tuple[int, Path, tuple[int, int, int, int] | None]] = []
    if cells == "at":
        rows = ({c: df.at[i, c] for c in df.columns} for i in range(len(df)))
    else:
        rows = iter(df.to_dict("records"))
    for i, row in enumerate(rows, start=1):
        pid = row.get("patient_id", "").strip()
        if not pid or pid.casefold() in NAN_LIKE:
            errors += 1
        else:
            by_id[pid].append(i)
        if not row.get("center", "").strip():
            errors += 1
        cohort = row.get("cohort", "")
        if cohort not in COHORTS:
            errors += 1
            suggest(cohort, COHORTS)
        try:
            label = parse_label(row.get("lnm", ""))
            if cohort == DEVELOPMENT and label is None:
                warnings += 1
        except ValueError:
            errors += 1
        box = None
        for view, col in BOX_COLUMNS.items():
            if row.get(col, ""):
                try:
                    box = parse_box(row[col]) if view == "us_1" else box
                except ValueError:
                    errors += 1
                if not row.get(view, ""):
                    errors += 1
        for col in PATH_COLUMNS:
            text = row.get(col, "")
            if text:
                full = root / text
                if not full.exists() or (full.is_dir() and col != CYTOLOGY_COLUMN):
                    errors += 1
                elif col == "us_1":
                    files.append((i, full, box))
        if not any(row.get(c, "") for c in MODALITY_COLUMNS):
            errors += 1
    errors += sum(len(rows) - 1 for rows in by_id.values())
    if check_files:
        digests: dict[str, int] = {}
        for i, path, box in files:
            try:
                arr = read_image(path)
            except ImageReadError:
                errors += 1
                continue
            if box is not None and (box[2] > arr.shape[1] or box[3] > arr.shape[0]):
                errors += 1
            if digests.setdefault(hashlib.sha256(arr.tobytes()).hexdigest(), i) != i:
                errors += 1
    return errors, warnings


def timed(fn):  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def compare(label: str, manifest: Path, check_files: bool, loops: tuple[str, ...]) -> None:
    report, ours = timed(lambda: validate_manifest(manifest, check_files=check_files))
    found = (len(report.errors), len(report.warnings))
    print(f"{label}: radiopath {ours:.2f} s ({found[0]} errors, {found[1]} warnings)")
    for cells in loops:
        counts, plain = timed(lambda cells=cells: plain_loop(manifest, check_files, cells))
        name = (
            "per-row loop, cells via df.at (radiopath before)" if cells == "at" else "per-row loop over dicts"
        )
        same = "same problems" if counts == found else f"DIFFERENT: {counts[0]} errors, {counts[1]} warnings"
        print(f"    {name}: {plain:.2f} s -> radiopath is {plain / ours:.1f}x faster ({same})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000, help="patients without decoding")
    parser.add_argument("--file-rows", type=int, default=1_000, help="patients whose images are decoded")
    parser.add_argument("--quick", action="store_true", help="20,000 / 500 rows")
    args = parser.parse_args()
    rows, file_rows = (20_000, 200) if args.quick else (args.rows, args.file_rows)
    print(f"cores: {os.cpu_count()}")
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        manifest = make_cohort(Path(tmp) / "big", rows, real_images=False)
        print(f"wrote {rows:,} patients (one empty image file each) in {time.perf_counter() - start:.1f} s")
        compare(f"validate {rows:,} rows, check_files=False", manifest, False, ("at", "dict"))
        manifest = make_cohort(Path(tmp) / "files", file_rows, real_images=True)
        compare(
            f"validate {file_rows:,} rows, check_files=True (decode every PNG)", manifest, True, ("dict",)
        )


if __name__ == "__main__":
    main()
