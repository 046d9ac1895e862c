"""Generate a whole synthetic multi-center cohort: images, slides, manifest and truth.

Output folder (written under a temporary name and renamed at the end, so a crash or an
interrupt never leaves a half-made cohort that looks complete)::

    manifest.csv        the DESIGN.md manifest (paths relative to this folder)
    truth.csv           latents, risk and phenotypes per patient (never given to models)
    synth.yaml          the resolved generator options
    contact_sheet.png   a few patients per center, for a human to look at
    ultrasound/         <patient>_1.png (transverse), <patient>_2.png (longitudinal)
    cytology/           <patient>.tiff, tiled pyramidal TIFF at the center's mpp

Every patient is drawn from its own seed (``SeedSequence([seed, index])``), so the cohort
is identical whatever the number of worker processes.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd

from radiopath.errors import OutputExistsError
from radiopath.io.atomic import atomic_dir
from radiopath.io.tiff import write_pyramid_tiff
from radiopath.parallel import process_pool
from radiopath.synth.cytology import render_slide
from radiopath.synth.latent import draw_outcomes
from radiopath.synth.phenotype import cells_from_latent, nodule_from_latent
from radiopath.synth.spec import CenterSpec, SynthConfig
from radiopath.synth.ultrasound import draw_marks, render_view

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class SynthResult:
    """Where a synthetic cohort was written and how long it took."""

    out_dir: Path
    manifest: Path
    truth: Path
    contact_sheet: Path
    patients: int
    seconds: float


@dataclass(frozen=True)
class _PatientJob:
    index: int
    patient_id: str
    center: CenterSpec
    us_latent: float
    cytology_latent: float
    has_us2: bool
    has_cytology: bool
    slide_um: float
    masks: bool
    seed: int
    folder: str
    marks_prob: float = 0.0  # chance that each view gets burned-in calipers and text


def center_counts(n: int, centers: list[CenterSpec]) -> list[int]:
    """Patients per center by weight (largest remainder), at least one per center."""
    if n < len(centers):
        raise ValueError(f"{n} patients cannot fill {len(centers)} centers")
    w = np.array([c.weight for c in centers], float)
    raw = n * w / w.sum()
    counts = np.maximum(np.floor(raw).astype(int), 1)
    while counts.sum() < n:
        counts[int(np.argmax(raw - counts))] += 1
    while counts.sum() > n:
        counts[int(np.argmax(counts))] -= 1
    return counts.tolist()


def synthesize(
    out_dir: str | Path,
    config: SynthConfig | None = None,
    overwrite: bool = False,
    progress: Progress | None = None,
) -> SynthResult:
    """Write a synthetic cohort to ``out_dir`` (see the module docstring for its layout).

    Raises:
        OutputExistsError: ``out_dir`` exists and is not empty, and ``overwrite`` is False.
    """
    cfg = config or SynthConfig()
    out_dir = Path(out_dir)
    start = time.perf_counter()
    try:
        with atomic_dir(out_dir, overwrite=overwrite) as tmp:
            _write_cohort(tmp, cfg, progress)
    except FileExistsError:
        raise OutputExistsError(
            f"{out_dir} already exists and is not empty; choose another --out or pass --overwrite"
        ) from None
    return SynthResult(
        out_dir=out_dir,
        manifest=out_dir / "manifest.csv",
        truth=out_dir / "truth.csv",
        contact_sheet=out_dir / "contact_sheet.png",
        patients=cfg.patients,
        seconds=time.perf_counter() - start,
    )


def _write_cohort(folder: Path, cfg: SynthConfig, progress: Progress | None) -> None:
    rng = np.random.default_rng(cfg.seed)
    n = cfg.patients
    centers = [c for c, k in zip(cfg.centers, center_counts(n, cfg.centers), strict=True) for _ in range(k)]
    weights = {"us": cfg.us_signal, "cytology": cfg.cytology_signal, "clinical": cfg.clinical_signal}
    truth = draw_outcomes(rng, n, weights, cfg.noise, cfg.prevalence)
    ids = [f"PTC{i + 1:04d}" for i in range(n)]
    z = truth["clinical_latent"].to_numpy()
    age = np.clip(np.round(46 - 7 * z + 9 * rng.standard_normal(n)), 18, 85).astype(int)
    male = rng.random(n) < 1 / (1 + np.exp(-(-1.2 + 0.7 * z)))
    has_us2 = rng.random(n) >= cfg.missing_us2
    has_cyto = rng.random(n) >= cfg.missing_cytology
    (folder / "ultrasound").mkdir()
    (folder / "cytology").mkdir()
    jobs = [
        _PatientJob(
            i,
            ids[i],
            centers[i],
            float(truth.at[i, "us_latent"]),
            float(truth.at[i, "cytology_latent"]),
            bool(has_us2[i]),
            bool(has_cyto[i]),
            cfg.slide_um,
            cfg.masks,
            cfg.seed,
            str(folder),
            marks_prob=float(cfg.marks_positive if truth.at[i, "lnm"] == 1 else cfg.marks_negative),
        )
        for i in range(n)
    ]
    results = _run(jobs, cfg.workers, progress)
    manifest = pd.DataFrame(
        {
            "patient_id": ids,
            "center": [c.name for c in centers],
            "cohort": [c.cohort for c in centers],
            "lnm": truth["lnm"].to_numpy(),
            "us_1": [r["us_1"] for r in results],
            "us_2": [r["us_2"] for r in results],
        }
    )
    if cfg.boxes:
        manifest["us_1_box"] = [r["us_1_box"] for r in results]
        manifest["us_2_box"] = [r["us_2_box"] for r in results]
    if cfg.masks:
        manifest["us_1_mask"] = [r["us_1_mask"] for r in results]
        manifest["us_2_mask"] = [r["us_2_mask"] for r in results]
    manifest["cytology"] = [r["cytology"] for r in results]
    manifest["clin_age"] = age
    manifest["clin_sex"] = np.where(male, "M", "F")
    manifest.to_csv(folder / "manifest.csv", index=False)
    phenotypes = pd.DataFrame([r["phenotype"] for r in results])
    truth.insert(0, "patient_id", ids)
    truth.insert(1, "center", manifest["center"])
    truth.insert(2, "cohort", manifest["cohort"])
    if cfg.marks_positive > 0 or cfg.marks_negative > 0:
        truth["us_1_marks"] = [r["us_1_marks"] for r in results]
        truth["us_2_marks"] = [r["us_2_marks"] for r in results]
    pd.concat([truth, phenotypes], axis=1).to_csv(folder / "truth.csv", index=False)
    cfg.to_yaml(folder / "synth.yaml")
    from radiopath.synth.contact_sheet import contact_sheet

    contact_sheet(folder / "manifest.csv", folder / "contact_sheet.png")


def _run(jobs: list[_PatientJob], workers: int, progress: Progress | None) -> list[dict[str, Any]]:
    n_workers = workers or (os.cpu_count() or 1)
    results: list[dict[str, Any]] = []
    if n_workers <= 1 or len(jobs) < 4:
        for job in jobs:
            results.append(_render_patient(job))
            if progress:
                progress(len(results), len(jobs))
        return results
    with process_pool(n_workers) as pool:
        for res in pool.map(_render_patient, jobs, chunksize=2):
            results.append(res)
            if progress:
                progress(len(results), len(jobs))
    return results


def _render_patient(job: _PatientJob) -> dict[str, Any]:
    """Render and write one patient's views and slide; return manifest cells and phenotype."""
    cv2.setNumThreads(1)  # one process per core already
    # separate streams, so skipping a missing modality changes nothing else
    rng_ph, rng_us, rng_cy = (np.random.default_rng([job.seed, job.index, k]) for k in range(3))
    folder = Path(job.folder)
    nodule = nodule_from_latent(job.us_latent, rng_ph)
    cells = cells_from_latent(job.cytology_latent, rng_ph)
    side = "RT" if rng_ph.random() < 0.5 else "LT"
    out: dict[str, Any] = {"us_2": "", "us_2_box": "", "us_2_mask": "", "cytology": ""}
    # burned-in marks have their own stream, drawn only when asked for: without them the
    # cohort is byte-identical to one made before the option existed
    rng_mk = np.random.default_rng([job.seed, job.index, 3]) if job.marks_prob > 0 else None
    marked = (rng_mk.random(2) < job.marks_prob) if rng_mk is not None else np.zeros(2, bool)
    for k, view in ((1, "transverse"), (2, "longitudinal")):
        out[f"us_{k}_marks"] = 0
        if k == 2 and not job.has_us2:
            continue
        r = render_view(nodule, view, job.center, rng_us, side=side)
        image = r.image
        if rng_mk is not None and marked[k - 1]:
            image = draw_marks(image, r.mask, rng_mk).image
            out[f"us_{k}_marks"] = 1
        rel = f"ultrasound/{job.patient_id}_{k}.png"
        cv2.imwrite(str(folder / rel), image[:, :, ::-1])
        out[f"us_{k}"] = rel
        out[f"us_{k}_box"] = _jitter_box(r.box, rng_us, r.image.shape)
        if job.masks:
            mrel = f"ultrasound/{job.patient_id}_{k}_mask.png"
            cv2.imwrite(str(folder / mrel), r.mask)
            out[f"us_{k}_mask"] = mrel
    if job.has_cytology:
        slide = render_slide(cells, job.center, job.slide_um, rng_cy)
        rel = f"cytology/{job.patient_id}.tiff"
        write_pyramid_tiff(folder / rel, slide, job.center.mpp, description="radiopath synthetic LBC slide")
        out["cytology"] = rel
    out["phenotype"] = {**nodule.as_dict(), **cells.as_dict()}
    return out


def _jitter_box(box: tuple[int, int, int, int], rng: np.random.Generator, shape: tuple[int, ...]) -> str:
    """A radiologist's region of interest: the nodule's box, drawn a little loosely."""
    x0, y0, x1, y1 = box
    j = rng.integers(0, 5, 4)
    x0, y0 = max(x0 - int(j[0]), 0), max(y0 - int(j[1]), 0)
    x1, y1 = min(x1 + int(j[2]), shape[1]), min(y1 + int(j[3]), shape[0])
    return f"{x0},{y0},{x1},{y1}"
