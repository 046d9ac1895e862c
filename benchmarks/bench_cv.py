"""Benchmark: five-fold cross-validation in ``features`` mode against one epoch of ``finetune``.

Both on the same synthetic cohort, backbone, input sizes and tiles, in one run:

* features mode, cold cache: tiling + extracting every view and tile once + 5 folds of a
  fusion head (what the first run of a study costs);
* features mode, warm cache: the 5 folds alone (what every further model, seed or fusion
  costs);
* finetune: ONE epoch of ONE fold, end to end through the backbones (a finetune study needs
  tens of epochs × 5 folds).

Prints the times and the ratios. Never part of the test run.

    .venv/bin/python benchmarks/bench_cv.py                    # 60 patients, ResNet-101 at 112 px
    .venv/bin/python benchmarks/bench_cv.py --patients 40 --backbone resnet18
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from radiopath.cohort import Cohort
from radiopath.compute import plan
from radiopath.features import load_images
from radiopath.modalities import StageContext
from radiopath.run_config import fast_profile
from radiopath.synth import SynthConfig, synthesize
from radiopath.train.loop import train_fold
from radiopath.train.run import _factory, _finetune_augment, train_run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--patients", type=int, default=60)
    ap.add_argument("--backbone", default="resnet101")
    ap.add_argument("--size", type=int, default=112)
    ap.add_argument("--top-k", type=int, default=8)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench_cv_"))
    cohort = synthesize(work / "cohort", SynthConfig(patients=args.patients, seed=5, slide_um=600))
    cfg = fast_profile()
    cfg.model.backbone = args.backbone
    cfg.model.models = ["fusion_concat"]
    cfg.ultrasound.size = cfg.cytology.input_size = args.size
    cfg.cytology.tiling.top_k = args.top_k
    cfg.cache_dir = str(work / "cache")
    print(
        f"{args.patients} patients, {args.backbone} at {args.size}px, {args.top_k} tiles, "
        f"{torch.get_num_threads()} threads"
    )

    start = time.perf_counter()
    train_run(cohort.manifest, work / "cold", cfg)
    t_cold = time.perf_counter() - start
    start = time.perf_counter()
    train_run(cohort.manifest, work / "warm", cfg)  # every tile and feature now comes from the cache
    t_warm = time.perf_counter() - start

    ft = cfg.model_copy(deep=True)
    ft.train.mode = "finetune"
    ft.train.epochs = 1
    ft.train.min_epochs = 1
    compute = plan("auto", "auto")
    c = Cohort.from_manifest(cohort.manifest)
    inputs, _, _ = load_images(c.table, ft, StageContext(Path(ft.cache_dir)))
    spec = ft.model.specs()[0]
    model = _factory(ft, inputs.in_dims(), compute)(spec)
    folds = c.folds(5, 0).to_numpy()
    train_idx = np.flatnonzero(folds > 0)
    start = time.perf_counter()
    train_fold(
        model, inputs, train_idx[:-8], train_idx[-8:], ft.train, 0, compute, None, _finetune_augment(ft)
    )
    t_epoch = time.perf_counter() - start

    print(f"features mode, 5-fold CV, cold cache (tiling + extraction + heads): {t_cold:7.1f} s")
    print(f"features mode, 5-fold CV, warm cache (heads only)                 : {t_warm:7.1f} s")
    print(f"finetune, ONE epoch of ONE fold                                    : {t_epoch:7.1f} s")
    print(
        f"ratio: one finetune epoch / whole warm-cache CV = {t_epoch / t_warm:.1f}x; "
        f"a 5-fold x 30-epoch finetune study ≈ {5 * 30 * t_epoch / 60:.0f} min vs {t_cold / 60:.1f} min"
    )


if __name__ == "__main__":
    main()
