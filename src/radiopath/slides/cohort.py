"""Tile a whole cohort, resumably: ``radiopath tile MANIFEST --out DIR``.

Output folder::

    tiling.yaml                    the resolved TilingConfig
    tiles.parquet                  every kept tile of every slide, with patient_id (written last)
    slides.csv                     one row per slide: status, tiles, message, seconds
    slides/<patient_id>/
        tiles.parquet              that slide's table
        thumbnail.png              the slide with kept tiles outlined
        patches/                   PNGs of the kept tiles (only with export_patches)
        summary.json               numbers and status; written last, it marks the slide done

Every file is written atomically and ``summary.json`` comes last, so a crash loses at most
the slide in progress. A rerun skips slides whose ``summary.json`` matches the current
options, the slide's *content* (:func:`radiopath.io.fingerprint.slide_identity`) and the
tiling code; the others are tiled again.

:func:`tile_slides_cached` is the same work for a shared cache: one folder per slide content
and options (``CACHE/tiles/<options>/<key>``), never per patient id, so cohorts whose patient
ids repeat (``P001`` everywhere) and concurrent runs share it safely.
:func:`read_tile_folder` reuses a finished ``radiopath tile`` folder, after checking that each
patient's slide and the options are the ones it was made from.
A slide that fails (unreadable, no resolution) does not stop the others; the run ends with
one error listing every failed slide, and ``tiles.parquet`` is only written when none failed,
so a later stage never trusts an incomplete table.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd

from radiopath.errors import ConfigError, RadiopathError
from radiopath.io.atomic import atomic_path, write_text
from radiopath.io.fingerprint import digest, slide_identity, source_digest
from radiopath.parallel import process_pool
from radiopath.slides.config import TilingConfig
from radiopath.slides.reader import load_mpp_table, lookup_mpp, open_slide
from radiopath.slides.tiling import empty_table, read_tiles, tile_slide_result

Progress = Callable[[int, int, str, dict[str, Any]], None]
MANIFEST_SUFFIXES = frozenset({".csv", ".parquet", ".pq"})


class SlideTilingError(RadiopathError):
    """One or more slides of a cohort could not be tiled; ``failures`` maps patient id → reason."""

    def __init__(self, out_dir: Path, failures: dict[str, str]) -> None:
        self.failures = failures
        lines = [f"{len(failures)} slide(s) could not be tiled (results so far are kept in {out_dir}):"]
        lines += [f"  - {pid}: {msg}" for pid, msg in failures.items()]
        lines.append("fix them and rerun the same command: finished slides are not tiled again")
        super().__init__("\n".join(lines))


@dataclass(frozen=True)
class _Job:
    patient_id: str
    slide: str
    folder: str
    cfg: dict[str, Any]
    mpp_override: float | None
    export_patches: bool
    fingerprint: dict[str, Any]


def slides_of(source: Any) -> list[tuple[str, Path]]:
    """``(patient_id, slide path)`` for a Cohort, a manifest path, a mapping, or one slide path.

    Patients without a slide are left out. A path that is not a ``.csv``/``.parquet`` manifest
    is taken as one slide (file, image or patch folder) named after its file stem.
    """
    from radiopath.cohort import Cohort

    if isinstance(source, Mapping):
        return [(str(k), Path(v)) for k, v in source.items()]
    if isinstance(source, (str, Path)):
        path = Path(source)
        if path.suffix.lower() not in MANIFEST_SUFFIXES:
            return [(path.stem if path.is_file() else path.name, path)]
        source = Cohort.from_manifest(path, check_files=False)
    if isinstance(source, Cohort):
        table = source.table
        return [
            (str(p), Path(s))
            for p, s in zip(table["patient_id"], table["cytology"], strict=True)
            if isinstance(s, str) and s
        ]
    raise ConfigError(f"cannot tile {type(source).__name__}: give a manifest path, a Cohort or a slide path")


def slug(patient_id: str) -> str:
    """A patient id as a safe folder name."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", patient_id).strip(".") or "_"


def config_hash(cfg: TilingConfig) -> str:
    """Hash of the options that change results (``threads`` does not)."""
    data = cfg.model_dump(mode="json")
    data.pop("threads", None)
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


#: The code whose changes change tiles: part of every slide's fingerprint.
TILING_CODE = (
    "radiopath.slides.tiling",
    "radiopath.slides.detection",
    "radiopath.slides.qc",
    "radiopath.slides.reader",
    "radiopath.io.slides",
)


def tiling_code_version() -> str:
    """Digest of the tiling code (:data:`TILING_CODE`)."""
    return source_digest(*TILING_CODE)


def _fingerprint(slide: Path, cfg: TilingConfig, mpp_override: float | None, export: bool) -> dict[str, Any]:
    """What a finished slide's tiles depend on: its content, the options and the code."""
    return {
        "slide_key": slide_identity(slide) if slide.exists() else None,
        "config": config_hash(cfg),
        "mpp_override": mpp_override,
        "export_patches": export,
        "code": tiling_code_version(),
    }


def _same(fingerprint: Any, wanted: dict[str, Any]) -> bool:
    """Fingerprints match on everything but ``export_patches`` when patches are not wanted."""
    if not isinstance(fingerprint, dict):
        return False
    keys = [k for k in wanted if k != "export_patches" or wanted[k]]
    return all(fingerprint.get(k) == wanted[k] for k in keys)


def _done(folder: Path, fingerprint: dict[str, Any]) -> dict[str, Any] | None:
    """The slide's summary when it was finished with the same inputs, else None."""
    try:
        summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not _same(summary.get("fingerprint"), fingerprint) or not (folder / "tiles.parquet").exists():
        return None
    return summary


def tile_cohort(
    cohort_or_manifest: Any,
    out_dir: str | Path,
    cfg: TilingConfig | None = None,
    *,
    mpp_table: str | Path | Mapping[str, float] | None = None,
    export_patches: bool = False,
    workers: int = 1,
    progress: Progress | None = None,
) -> Path:
    """Tile every slide of a cohort into ``out_dir``; return the path of ``tiles.parquet``.

    Args:
        cohort_or_manifest: a :class:`~radiopath.cohort.Cohort`, a manifest path, a mapping
            ``patient_id → slide``, or one slide path (see :func:`slides_of`).
        out_dir: output folder (layout in the module docstring); reused to resume.
        cfg: tiling options.
        mpp_table: per-slide resolution overrides (CSV ``slide,mpp`` or a mapping).
        export_patches: also write the kept tiles as PNGs.
        workers: slides tiled in parallel (processes).
        progress: called ``(done, total, patient_id, summary)`` after each slide.

    Raises:
        SlideTilingError: listing every slide that failed (the others are kept).
    """
    cfg = cfg or TilingConfig()
    out_dir = Path(out_dir)
    pairs = slides_of(cohort_or_manifest)
    overrides = _overrides(mpp_table)  # a bad resolution table fails before anything is written
    folders = {pid: out_dir / "slides" / slug(pid) for pid, _ in pairs}
    if len(set(folders.values())) != len(folders):
        raise ConfigError(
            "two patient ids map to the same folder name; make patient ids differ in letters or digits"
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    final = out_dir / "tiles.parquet"
    final.unlink(missing_ok=True)  # rewritten at the end; never left stale from an older run
    cfg.to_yaml(out_dir / "tiling.yaml")
    summaries = _tile_all(pairs, folders, cfg, overrides, export_patches, workers, progress)
    _write_index(out_dir, pairs, summaries)
    failures = {pid: s["message"] for pid, s in summaries.items() if s["status"] == "error"}
    if failures:
        raise SlideTilingError(out_dir, failures)
    tables = [_patient_table(pid, folders[pid], summaries[pid]) for pid, _ in pairs]
    combined = pd.concat(tables, ignore_index=True) if tables else _patient_table_empty()
    with atomic_path(final) as tmp:
        combined.to_parquet(tmp, index=False)
    return final


def tile_slides_cached(
    pairs: list[tuple[str, Path]],
    cache_dir: str | Path,
    cfg: TilingConfig | None = None,
    *,
    mpp_table: str | Path | Mapping[str, float] | None = None,
    workers: int = 1,
    progress: Progress | None = None,
) -> dict[str, pd.DataFrame]:
    """Tile slides into a shared, content-keyed cache; return each name's tile table.

    ``pairs`` are ``(name, slide)``; names only label progress and errors. A slide's folder is
    ``cache_dir/tiles/<options>/<key[:2]>/<key>`` with ``key`` from the slide's content and its
    resolution override, so the same slide under two patient ids (or two cohorts) is tiled
    once, and two different slides under one id never meet. Entries are written atomically
    (``summary.json`` last): concurrent runs at worst tile a slide twice, identically.

    Raises:
        SlideTilingError: listing every slide that failed.
    """
    cfg = cfg or TilingConfig()
    overrides = _overrides(mpp_table)
    root = Path(cache_dir) / "tiles" / config_hash(cfg)
    folders = {}
    for name, slide in pairs:
        key = digest(
            slide_identity(slide) if slide.exists() else str(slide), lookup_mpp(overrides, slide, name)
        )
        folders[name] = root / key[:2] / key
    summaries = _tile_all(pairs, folders, cfg, overrides, False, workers, progress)
    failures = {pid: s["message"] for pid, s in summaries.items() if s["status"] == "error"}
    if failures:
        raise SlideTilingError(root, failures)
    return {name: _patient_table(name, folders[name], summaries[name]) for name, _ in pairs}


def read_tile_folder(
    folder: str | Path,
    pairs: list[tuple[str, Path]],
    cfg: TilingConfig,
    *,
    mpp_table: str | Path | Mapping[str, float] | None = None,
) -> dict[str, pd.DataFrame]:
    """The tile tables of a finished ``radiopath tile`` folder, checked against ``pairs``.

    Every patient's slide must be the one the folder was made from (same content), with the
    same tiling options and resolution override; anything else would pair a patient with
    another slide's tiles.

    Raises:
        ConfigError: the folder is unfinished, was made with other options, or lacks or
            mismatches a patient's slide (every such patient is named).
    """
    folder = Path(folder)
    if not (folder / "tiles.parquet").is_file():
        raise ConfigError(
            f"{folder} holds no tiles.parquet: it is not a finished `radiopath tile` folder; run "
            f"`radiopath tile MANIFEST --out {folder}` first (it resumes), or leave out --tiles"
        )
    overrides = _overrides(mpp_table)
    problems: list[str] = []
    out: dict[str, pd.DataFrame] = {}
    for pid, slide in pairs:
        sub = folder / "slides" / slug(pid)
        wanted = _fingerprint(slide, cfg, lookup_mpp(overrides, slide, pid), False)
        summary = _done(sub, wanted)
        if summary is None:
            problems.append(f"{pid}: {_mismatch(sub, wanted)}")
            continue
        out[pid] = _patient_table(pid, sub, summary)
    if problems:
        shown = "\n".join(f"  - {p}" for p in problems[:20])
        more = f"\n  … and {len(problems) - 20} more" if len(problems) > 20 else ""
        raise ConfigError(
            f"{folder} does not match this manifest and these tiling options for {len(problems)} "
            f"slide(s):\n{shown}{more}\nrerun `radiopath tile MANIFEST --out {folder}` with the same "
            "--config (finished slides are kept), or leave out --tiles"
        )
    return out


def _mismatch(sub: Path, wanted: dict[str, Any]) -> str:
    try:
        have = json.loads((sub / "summary.json").read_text(encoding="utf-8")).get("fingerprint", {})
    except (OSError, ValueError):
        return "not tiled in that folder"
    if not isinstance(have, dict):
        return "tiled by an older radiopath; tile again"
    if have.get("slide_key") != wanted["slide_key"]:
        return "tiled from another slide (the file's content differs)"
    if have.get("config") != wanted["config"]:
        return "tiled with other tiling options"
    if have.get("mpp_override") != wanted["mpp_override"]:
        return f"tiled with resolution override {have.get('mpp_override')}, now {wanted['mpp_override']}"
    return "tiled by another version of the tiling code; tile again"


def _overrides(mpp_table: str | Path | Mapping[str, float] | None) -> Mapping[str, float]:
    if isinstance(mpp_table, (str, Path)):
        return load_mpp_table(mpp_table)
    return mpp_table or {}


def _tile_all(
    pairs: list[tuple[str, Path]],
    folders: Mapping[str, Path],
    cfg: TilingConfig,
    overrides: Mapping[str, float],
    export_patches: bool,
    workers: int,
    progress: Progress | None,
) -> dict[str, dict[str, Any]]:
    """Tile every slide not finished in its folder; return every slide's summary."""
    jobs, summaries = [], {}
    for pid, slide in pairs:
        override = lookup_mpp(overrides, slide, pid)
        fp = _fingerprint(slide, cfg, override, export_patches)
        done = _done(folders[pid], fp)
        if done is not None:
            summaries[pid] = {**done, "patient_id": pid, "skipped": True}
        else:
            jobs.append(
                _Job(pid, str(slide), str(folders[pid]), cfg.model_dump(), override, export_patches, fp)
            )
    total, finished = len(pairs), len(summaries)
    for pid, s in summaries.items():
        if progress:
            progress(finished, total, pid, s)
    for summary in _run(jobs, workers):
        summaries[summary["patient_id"]] = summary
        finished += 1
        if progress:
            progress(finished, total, summary["patient_id"], summary)
    return summaries


def _patient_table(pid: str, folder: Path, summary: Mapping[str, Any]) -> pd.DataFrame:
    """A slide's tile table with the patient id and the slide's content key in front."""
    t = pd.read_parquet(folder / "tiles.parquet")
    t.insert(0, "patient_id", pd.array([pid] * len(t), dtype="string"))
    key = (summary.get("fingerprint") or {}).get("slide_key")
    t.insert(1, "slide_key", pd.array([key] * len(t), dtype="string"))
    return t


def _patient_table_empty() -> pd.DataFrame:
    t = empty_table()
    t.insert(0, "patient_id", pd.array([], dtype="string"))
    t.insert(1, "slide_key", pd.array([], dtype="string"))
    return t


def _run(jobs: list[_Job], workers: int) -> Any:
    if workers <= 1 or len(jobs) <= 1:
        for job in jobs:
            yield _tile_one(job)
        return
    with process_pool(workers, initializer=cv2.setNumThreads, initargs=(1,)) as pool:
        yield from pool.map(_tile_one, jobs)


def _tile_one(job: _Job) -> dict[str, Any]:
    """Tile one slide and write its files; errors the user can fix become an 'error' summary."""
    folder = Path(job.folder)
    cfg = TilingConfig(**job.cfg)
    base = {"patient_id": job.patient_id, "slide": job.slide, "fingerprint": job.fingerprint}
    try:
        result = tile_slide_result(job.slide, cfg, job.mpp_override)
    except RadiopathError as exc:
        (folder / "summary.json").unlink(missing_ok=True)
        return {**base, "status": "error", "message": str(exc), "tiles": 0}
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_path(folder / "tiles.parquet") as tmp:
        result.table.to_parquet(tmp, index=False)
    _ok, png = cv2.imencode(".png", np.ascontiguousarray(result.thumbnail[:, :, ::-1]))
    with atomic_path(folder / "thumbnail.png") as tmp:
        tmp.write_bytes(png.tobytes())
    if job.export_patches and len(result.table):
        export_patches(job.slide, result.table, folder / "patches")
    summary = {**base, **result.summary()}
    write_text(folder / "summary.json", json.dumps(summary, indent=2))
    return summary


def export_patches(slide: str | Path, table: pd.DataFrame, folder: Path) -> list[Path]:
    """Write the tiles of ``table`` as ``<rank>_x<x>_y<y>.png`` into ``folder`` (atomically each)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    with open_slide(slide, mpp_override=float(table["slide_mpp"].iloc[0])) as s:
        patches = read_tiles(s, table)
    for (rank, x, y), patch in zip(table[["rank", "x", "y"]].itertuples(index=False), patches, strict=True):
        path = folder / f"{int(rank):04d}_x{int(x)}_y{int(y)}.png"
        _, png = cv2.imencode(".png", np.ascontiguousarray(patch[:, :, ::-1]))
        with atomic_path(path) as tmp:
            tmp.write_bytes(png.tobytes())
        paths.append(path)
    return paths


def _write_index(out_dir: Path, pairs: list[tuple[str, Path]], summaries: dict[str, dict[str, Any]]) -> None:
    rows = []
    for pid, slide in pairs:
        s = summaries[pid]
        rows.append(
            {
                "patient_id": pid,
                "slide": str(slide),
                "status": s["status"],
                "tiles": s.get("tiles", 0),
                "grid_tiles": s.get("grid_tiles", 0),
                "slide_mpp": s.get("slide_mpp"),
                "mpp_source": s.get("mpp_source"),
                "seconds": s.get("seconds"),
                "skipped": bool(s.get("skipped", False)),
                "message": s["message"],
            }
        )
    with atomic_path(out_dir / "slides.csv") as tmp:
        pd.DataFrame(rows).to_csv(tmp, index=False)
