"""Benchmark: radiopath's vectorised statistics against the plain loop over scikit-learn, in one run.

1. The stratified bootstrap of all eleven metrics (AUC, accuracy, sensitivity, specificity,
   PPV, NPV, F1, AUCPR, Brier, calibration intercept and slope), n = 1,000 patients, 2,000
   resamples: ``radiopath.evaluate.bootstrap_metrics`` against a Python loop that resamples
   indices and calls scikit-learn per resample (``roc_auc_score``, ``average_precision_score``,
   ``confusion_matrix``, ``f1_score``, ``brier_score_loss``, ``LogisticRegression`` for the
   slope; scikit-learn has no offset term, so the intercept is a 1-D Newton fit in numpy).
   The same bootstrap resampled within center × outcome (three centers, as for a pooled
   external cohort) is timed too: it must cost about the same as the outcome-only one.
2. The AUC's uncertainty at n = 100,000: DeLong by the Sun & Xu fast algorithm
   (``delong_roc_variance``) against (a) the same bootstrap loop over ``roc_auc_score`` and
   (b) DeLong's original O(m·n) structural components (chunked numpy), which must agree.

Prints each time, the ratio, and agreement checks. Never part of the test run.

    .venv/bin/python benchmarks/bench_stats.py            # full (a few minutes on 2 cores)
    .venv/bin/python benchmarks/bench_stats.py --quick    # 200 loop resamples, for a smoke run
"""

from __future__ import annotations

import argparse
import time
import tracemalloc
import warnings

import numpy as np
from scipy.special import expit, logit
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import (
    average_precision_score,
    brier_score_loss,
    confusion_matrix,
    f1_score,
    roc_auc_score,
)

from radiopath.evaluate import bootstrap_metrics, delong_roc_variance
from radiopath.evaluate.metrics import METRIC_NAMES


def simulate(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.4).astype(int)
    p = expit(rng.normal(size=n) + 1.3 * y - 0.6)
    return y, p


def plain_bootstrap(
    y: np.ndarray, p: np.ndarray, threshold: float, n_boot: int, seed: int
) -> dict[str, np.ndarray]:
    """What one writes without radiopath: resample indices, call scikit-learn, repeat."""
    rng = np.random.default_rng(seed)
    pos, neg = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    x_all = logit(np.clip(p, 1e-8, 1 - 1e-8))
    out: dict[str, list[float]] = {k: [] for k in METRIC_NAMES}
    for _ in range(n_boot):
        idx = np.concatenate([rng.choice(pos, pos.size), rng.choice(neg, neg.size)])
        yy, pp, xx = y[idx], p[idx], x_all[idx]
        pred = (pp >= threshold).astype(int)
        tn, fp, fn, tp = confusion_matrix(yy, pred, labels=[0, 1]).ravel()
        out["auc"].append(roc_auc_score(yy, pp))
        out["auprc"].append(average_precision_score(yy, pp))
        out["brier"].append(brier_score_loss(yy, pp))
        out["accuracy"].append((tp + tn) / yy.size)
        out["sensitivity"].append(tp / (tp + fn))
        out["specificity"].append(tn / (tn + fp))
        out["ppv"].append(tp / (tp + fp) if tp + fp else np.nan)
        out["npv"].append(tn / (tn + fn) if tn + fn else np.nan)
        out["f1"].append(f1_score(yy, pred))
        out["cal_slope"].append(
            LogisticRegression(C=np.inf, tol=1e-10, max_iter=1000).fit(xx[:, None], yy).coef_[0, 0]
        )
        a = 0.0
        for _ in range(50):  # calibration-in-the-large: logistic fit with logit(p) as offset
            mu = expit(a + xx)
            step = (yy - mu).sum() / (mu * (1 - mu)).sum()
            a += step
            if abs(step) < 1e-10:
                break
        out["cal_intercept"].append(a)
    return {k: np.asarray(v) for k, v in out.items()}


def naive_delong_variance(y: np.ndarray, p: np.ndarray, chunk: int = 2000) -> tuple[float, float]:
    """DeLong 1988 structural components from all m·n pairs, chunked to bound memory."""
    pos, neg = p[y == 1], p[y == 0]
    m, n = pos.size, neg.size
    v10 = np.empty(m)
    v01 = np.zeros(n)
    for s in range(0, m, chunk):
        block = pos[s : s + chunk, None]
        psi = (block > neg[None, :]) + 0.5 * (block == neg[None, :])
        v10[s : s + chunk] = psi.mean(axis=1)
        v01 += psi.sum(axis=0)
    v01 /= m
    auc = v10.mean()
    return float(auc), float(v10.var(ddof=1) / m + v01.var(ddof=1) / n)


def timed(fn, *args, **kwargs):  # type: ignore[no-untyped-def]
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1000, help="patients for the bootstrap benchmark")
    ap.add_argument("--n-boot", type=int, default=2000, help="bootstrap resamples (both paths)")
    ap.add_argument("--n-delong", type=int, default=100_000, help="patients for the DeLong benchmark")
    ap.add_argument("--quick", action="store_true", help="200 resamples in the plain loops (smoke run)")
    args = ap.parse_args()
    n_boot = 200 if args.quick else args.n_boot
    warnings.filterwarnings("ignore")

    print(f"1. bootstrap of all 11 metrics, n = {args.n}, {n_boot} stratified resamples")
    y, p = simulate(args.n, 0)
    bootstrap_metrics(y, p, 0.5, n_boot=20, seed=0)  # warm-up (imports, caches)
    tracemalloc.start()
    ours, t_ours = timed(bootstrap_metrics, y, p, 0.5, n_boot=n_boot, seed=0, keep_samples=True)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    plain, t_plain = timed(plain_bootstrap, y, p, 0.5, n_boot, 1)
    print(f"   radiopath (vectorised)   {t_ours:8.2f} s   peak memory {peak / 2**20:.0f} MiB")
    print(f"   loop over scikit-learn   {t_plain:8.2f} s")
    print(f"   ratio                    {t_plain / t_ours:8.1f}x")
    centers = np.array(["A", "B", "C"])[np.arange(args.n) % 3]
    _, t_strat = timed(bootstrap_metrics, y, p, 0.5, n_boot=n_boot, seed=0, strata=centers)
    print(f"   radiopath, center-stratified {t_strat:6.2f} s   ({t_strat / t_ours:.2f}x outcome-only)")
    print("   agreement of the two bootstrap distributions (SD; they use different random draws):")
    for k in ("auc", "auprc", "sensitivity", "brier", "cal_intercept", "cal_slope"):
        sd_ours = float(np.nanstd(ours.samples[k], ddof=1))  # type: ignore[index]
        sd_plain = float(np.nanstd(plain[k], ddof=1))
        print(f"     {k:<14} {sd_ours:.4f} vs {sd_plain:.4f}")

    print(f"\n2. AUC uncertainty at n = {args.n_delong}")
    y2, p2 = simulate(args.n_delong, 1)
    delong_roc_variance(y2[:1000], p2[:1000])  # warm-up
    (auc, var), t_fast = timed(delong_roc_variance, y2, p2)
    rng = np.random.default_rng(2)
    pos, neg = np.flatnonzero(y2 == 1), np.flatnonzero(y2 == 0)

    def boot_loop() -> np.ndarray:
        return np.array(
            [
                roc_auc_score(y2[i], p2[i])
                for i in (
                    np.concatenate([rng.choice(pos, pos.size), rng.choice(neg, neg.size)])
                    for _ in range(n_boot)
                )
            ]
        )

    aucs, t_boot = timed(boot_loop)
    (auc_n, var_n), t_naive = timed(naive_delong_variance, y2, p2)
    print(f"   DeLong, Sun & Xu fast algorithm      {t_fast:8.3f} s   SE {np.sqrt(var):.5f}")
    print(
        f"   bootstrap loop over roc_auc_score    {t_boot:8.2f} s   SE {aucs.std(ddof=1):.5f}  ({n_boot} "
        "resamples)"
    )
    print(f"   DeLong, O(m·n) structural components {t_naive:8.2f} s   SE {np.sqrt(var_n):.5f}")
    print(f"   ratio vs bootstrap loop              {t_boot / t_fast:8.0f}x")
    print(f"   ratio vs O(m·n) DeLong               {t_naive / t_fast:8.0f}x")
    assert abs(auc - auc_n) < 1e-12 and abs(var - var_n) < 1e-12 * max(var, 1e-12) * 1e3, (
        auc,
        auc_n,
        var,
        var_n,
    )
    print("   fast and O(m·n) DeLong agree to machine precision")


if __name__ == "__main__":
    main()
