"""DDTI out-of-fold AUC of the radiomics signature per bin width, and with the bin width
chosen inside each training fold (nested), beside the pixel baseline; per repeat.

The default ``bin_width`` (32 grey levels of the 0-255 view, 8 bins) was chosen by looking at
these same 89 views, which flatters the test's AUC; ``--nested`` estimates what the whole
procedure "pick the bin width by inner cross-validation, then fit the signature" achieves
on patients it never saw (the inner CV is grouped by case too). Run::

    .venv/bin/python benchmarks/ddti_radiomics.py              # per bin width, 5 repeats
    .venv/bin/python benchmarks/ddti_radiomics.py --nested     # + nested choice (minutes)
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedGroupKFold

from radiopath.features.radiomics import RadiomicsConfig, processed_view_radiomics
from radiopath.io.images import read_image
from radiopath.models.signature import RadiomicsSignature
from radiopath.ultrasound import UltrasoundTransform

REAL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real" / "ddti_thyroid_us"
WIDTHS = (8.0, 16.0, 24.0, 32.0, 48.0)


def features(widths: tuple[float, ...]) -> tuple[dict[float, np.ndarray], np.ndarray, np.ndarray, list[str]]:
    labels = pd.read_csv(REAL / "labels.csv")
    tf = UltrasoundTransform()
    views = []
    for rec in labels.itertuples():
        mask = read_image(REAL / rec.mask)
        views.append((tf.process(read_image(REAL / rec.image), mask=mask), mask))
    out, names = {}, []
    for w in widths:
        cfg = RadiomicsConfig(bin_width=w)
        rows = [processed_view_radiomics(v, mask=m, cfg=cfg).features for v, m in views]
        names = list(rows[0])
        out[w] = np.array([[r[k] for k in names] for r in rows], float)
    return out, labels["label"].to_numpy(), labels["case_id"].to_numpy(), names


def oof(A: np.ndarray, y: np.ndarray, g: np.ndarray, names: list[str], rep: int) -> np.ndarray:
    p = np.zeros(len(y))
    for tr, te in StratifiedGroupKFold(5, shuffle=True, random_state=rep).split(A, y, g):
        p[te] = RadiomicsSignature(seed=rep).fit(A[tr], y[tr], names, groups=g[tr]).predict_proba(A[te])[:, 1]
    return p


def nested(feats: dict[float, np.ndarray], y: np.ndarray, g: np.ndarray, names: list[str], rep: int) -> tuple:
    p = np.zeros(len(y))
    chosen = []
    any_a = next(iter(feats.values()))
    for tr, te in StratifiedGroupKFold(5, shuffle=True, random_state=rep).split(any_a, y, g):
        inner = {w: roc_auc_score(y[tr], oof(A[tr], y[tr], g[tr], names, rep)) for w, A in feats.items()}
        best = max(inner, key=inner.get)
        chosen.append(best)
        A = feats[best]
        p[te] = RadiomicsSignature(seed=rep).fit(A[tr], y[tr], names, groups=g[tr]).predict_proba(A[te])[:, 1]
    return p, chosen


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--nested", action="store_true")
    args = ap.parse_args()
    cv2.setNumThreads(1)
    start = time.perf_counter()
    feats, y, g, names = features(WIDTHS)
    print(f"features of 89 views at {len(WIDTHS)} bin widths: {time.perf_counter() - start:.0f} s")
    for w, A in feats.items():
        aucs = [roc_auc_score(y, oof(A, y, g, names, rep)) for rep in range(args.repeats)]
        print(f"bin width {w:4.0f}: AUC per repeat {np.round(aucs, 3).tolist()} mean {np.mean(aucs):.3f}")
    if args.nested:
        aucs, picks = [], []
        for rep in range(args.repeats):
            p, chosen = nested(feats, y, g, names, rep)
            aucs.append(roc_auc_score(y, p))
            picks += chosen
        print(
            f"nested (bin width chosen in each training fold): AUC per repeat {np.round(aucs, 3).tolist()} "
            f"mean {np.mean(aucs):.3f}; widths chosen {pd.Series(picks).value_counts().to_dict()}"
        )
    print(f"total {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
