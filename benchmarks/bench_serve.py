"""Benchmark: one patient through a deployed bundle, torch against onnxruntime, in one run.

The study's shape — two ultrasound views and 64 cytology tiles of 224 px through ResNet-101
(random weights: nothing is downloaded) — is trained once on a small synthetic cohort and
exported with ``--onnx``; then one new patient (a one-row manifest, an empty feature cache
every time, so every view is preprocessed, the slide tiled and every image run through the
backbone) is scored end to end by ``radiopath predict``'s code with

* torch: :class:`radiopath.features.deep.FeatureExtractor` in fp32 (and in bf16 autocast when
  the processor has native bf16 — AVX-512 BF16 / AMX; elsewhere bf16 is emulated and slow, so
  it is timed only with ``--bf16``);
* onnxruntime: the bundle's ONNX graphs (fp32), the same preprocessing, padding and ensemble.

Prints seconds per patient for both and the ratio, and the largest probability difference.
Never part of the test run.

    .venv/bin/python benchmarks/bench_serve.py               # builds its study in ./bench-serve
    .venv/bin/python benchmarks/bench_serve.py --repeats 5 --bf16
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch

from radiopath.compute import cpu_bf16_supported
from radiopath.run_config import RunConfig
from radiopath.serve import export_bundle, load_bundle
from radiopath.serve.predict import predict_manifest
from radiopath.synth import SynthConfig, synthesize
from radiopath.train.run import train_run


def build(root: Path, patients: int) -> tuple[Path, pd.Series]:
    """A ResNet-101 study at the paper's input sizes, exported with ONNX (reused when present)."""
    bundle = root / "bundle"
    manifest = root / "cohort" / "manifest.csv"
    if not bundle.exists():
        if not manifest.exists():
            synthesize(root / "cohort", SynthConfig(patients=patients, seed=3, slide_um=2000, workers=2))
        cfg = RunConfig()
        cfg.model.weights = "none"
        cfg.model.models = ["fusion_concat"]
        cfg.protocol.n_folds = 2
        cfg.train.epochs, cfg.train.min_epochs = 3, 1
        cfg.cache_dir = str(root / "cache")
        train_run(manifest, root / "run", cfg)
        export_bundle(root / "run", bundle, onnx=True)
    rows = pd.read_csv(manifest)
    row = rows[rows["cohort"] == "external"].iloc[0].copy()
    for col in ("us_1", "us_2", "cytology"):
        row[col] = str(manifest.parent / row[col])
    return bundle, row


def time_patient(
    bundle_dir: Path, row: pd.Series, runtime: str, precision: str, repeats: int
) -> tuple[float, float]:
    """Best-of-``repeats`` seconds for one patient, and its probability (cold feature cache each time)."""
    bundle = load_bundle(bundle_dir, runtime=runtime)
    times, prob = [], float("nan")
    with tempfile.TemporaryDirectory() as tmp:
        manifest = Path(tmp) / "one.csv"
        cols = ["patient_id", "us_1", "us_2", "us_1_box", "us_2_box", "cytology"]
        pd.DataFrame([row[cols]]).to_csv(manifest, index=False)
        for i in range(repeats + 1):  # the first call builds the backbone and loads the folds
            start = time.perf_counter()
            res = predict_manifest(bundle, manifest, precision=precision, cache_dir=Path(tmp) / f"cache{i}")
            if i:
                times.append(time.perf_counter() - start)
            prob = float(res.predictions["prob"].iloc[0])
            assert len(res.predictions) == 1 and not res.failures
    return min(times), prob


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--root", type=Path, default=Path("bench-serve"))
    ap.add_argument("--patients", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--bf16", action="store_true", help="also time torch bf16 where it is emulated")
    args = ap.parse_args()
    bundle, row = build(args.root, args.patients)
    meta = load_bundle(bundle).metadata
    cyto = meta["inputs"]["cytology"]
    native = cpu_bf16_supported()
    print(
        f"one patient: 2 ultrasound views at {meta['inputs']['ultrasound']['crop_px']} px + "
        f"{cyto['tiles']} tiles of {cyto['input_px']} px, {meta['backbones'][0]['name']}; "
        f"{torch.get_num_threads()} threads; "
        f"native bf16 on this CPU: {'yes' if native else 'no (AVX-512 BF16 / AMX absent: bf16 is emulated)'}"
    )
    t_torch, p_torch = time_patient(bundle, row, "torch", "fp32", args.repeats)
    t_onnx, p_onnx = time_patient(bundle, row, "onnx", "fp32", args.repeats)
    print(f"torch fp32        {t_torch:7.2f} s per patient")
    print(f"onnxruntime fp32  {t_onnx:7.2f} s per patient   (torch / onnxruntime = {t_torch / t_onnx:.2f}x)")
    print(
        f"probability: torch {p_torch:.6f}, onnxruntime {p_onnx:.6f}, "
        f"|difference| {abs(p_torch - p_onnx):.2e}"
    )
    if native or args.bf16:
        t_bf16, p_bf16 = time_patient(bundle, row, "torch", "bf16", args.repeats)
        kind = "native" if native else "emulated"
        print(
            f"torch bf16 ({kind}) {t_bf16:6.2f} s per patient   (fp32 / bf16 = {t_torch / t_bf16:.2f}x; "
            f"probability moves by {abs(p_bf16 - p_torch):.3f})"
        )


if __name__ == "__main__":
    main()
