"""Ultrasound preprocessing cost: the full transform against the plain way, per image.

* **plain**: the screenshot read and resized to 224 x 224 as it is (chrome, calipers and all),
  what a pipeline without preprocessing feeds a network.
* **ours, marks off**: scan area, percentile normalisation, nodule crop, resize.
* **ours**: the default transform (also finds and inpaints burned-in marks and colour).

Same files, same process, image decoding included in every contestant, one warm-up pass
first. Synthetic screenshots (512x400, half of them with calipers and text) and, when
``../shared/data/real`` is present, the 89 real DDTI crops with their masks. Run::

    .venv/bin/python benchmarks/bench_ultrasound.py                # 40 synthetic views + DDTI
    .venv/bin/python benchmarks/bench_ultrasound.py --patients 50
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import pandas as pd

from radiopath.cohort import Cohort
from radiopath.io.images import read_image
from radiopath.synth import SynthConfig, synthesize
from radiopath.ultrasound import MarksConfig, UltrasoundConfig, UltrasoundTransform, load_view

REAL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real" / "ddti_thyroid_us"


def plain(path: str) -> object:
    return cv2.resize(read_image(path), (224, 224), interpolation=cv2.INTER_AREA)


def timed(fn: Callable[[], object], repeat: int) -> float:
    fn()  # warm-up
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def report(name: str, n: int, t_plain: float, t_nomarks: float, t_full: float) -> None:
    print(f"{name}: {n} images")
    print(f"  plain read+resize   {1000 * t_plain / n:7.1f} ms/image")
    print(f"  ours, marks off     {1000 * t_nomarks / n:7.1f} ms/image   ({t_nomarks / t_plain:.1f}x plain)")
    print(f"  ours (default)      {1000 * t_full / n:7.1f} ms/image   ({t_full / t_plain:.1f}x plain)")
    print(f"  1000 patients x 2 views, default: {2000 * t_full / n / 60:.1f} min on one core")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--patients", type=int, default=20)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    cv2.setNumThreads(1)
    full = UltrasoundTransform()
    nomarks = UltrasoundTransform(UltrasoundConfig(marks=MarksConfig(enabled=False)))
    with tempfile.TemporaryDirectory() as tmp:
        cfg = SynthConfig(
            patients=args.patients,
            seed=1,
            workers=2,
            missing_cytology=1.0,
            marks_positive=0.5,
            marks_negative=0.5,
        )
        table = Cohort.from_manifest(synthesize(Path(tmp) / "c", cfg).manifest).table
        rows = [(row, view) for _, row in table.iterrows() for view in ("us_1", "us_2")]
        t_plain = timed(lambda: [plain(row[v]) for row, v in rows], args.repeat)
        t_nomarks = timed(lambda: [load_view(row, v, nomarks) for row, v in rows], args.repeat)
        t_full = timed(lambda: [load_view(row, v, full) for row, v in rows], args.repeat)
        report("synthetic screenshots 512x400", len(rows), t_plain, t_nomarks, t_full)
    if REAL.exists():
        labels = pd.read_csv(REAL / "labels.csv")
        pairs = [(str(REAL / r.image), str(REAL / r.mask)) for r in labels.itertuples()]

        def ours(tf: UltrasoundTransform) -> list[object]:
            return [tf(read_image(i), mask=read_image(m)) for i, m in pairs]

        t_plain = timed(lambda: [plain(i) for i, _ in pairs], args.repeat)
        t_nomarks = timed(lambda: ours(nomarks), args.repeat)
        t_full = timed(lambda: ours(full), args.repeat)
        report("DDTI crops 300x300 with masks", len(pairs), t_plain, t_nomarks, t_full)


if __name__ == "__main__":
    main()
