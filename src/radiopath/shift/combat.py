"""Location/scale harmonisation of one center's features to a reference: z-scores and ComBat.

Both methods model a feature ``g`` of an instance ``j`` at center ``i`` as
``x_ijg = α_g + γ_ig + δ_ig · ε_ijg`` — a center shifts (``γ``) and scales (``δ``) every
feature — and map the center onto the *reference* (the development cohort), whose mean
``α_g`` and sd ``σ_g`` are fitted once and saved:

* ``standardize`` — ``γ̂`` and ``δ̂`` are the center's own mean and sd of the reference
  z-scores, per feature (per-center standardisation);
* ``combat`` — the same, shrunk by empirical Bayes across the center's features (Johnson, Li
  & Rabinovic, "Adjusting batch effects in microarray expression data using empirical Bayes
  methods", Biostatistics 8, 2007; for imaging features Fortin et al., "Harmonization of
  cortical thickness measurements across scanners and sites", NeuroImage 167, 2018, the
  neuroCombat code): ``γ_ig ~ N(γ̄_i, τ̄²_i)`` and ``δ²_ig ~ InvGamma(λ_i, θ_i)``, the priors
  estimated by moments from all features of that center, and the posterior means found by
  iterating the two conditional estimates. With the reference as a fixed batch (Zhang et al.,
  "Alternative empirical Bayes models for adjusting for batch effects in genomic studies", BMC
  Bioinformatics 19, 2018), a center's adjustment needs only the reference's saved statistics
  and that center's own features, so a new center can be harmonised alone.

The adjusted features are ``x* = α_g + σ_g · (z - γ*_ig) / δ*_ig``. No outcome and no covariate
enters (the label-free form): a center's whole difference from the reference is removed,
including any true difference in case mix — which is why harmonisation is an option, reported
wherever it was used, never a silent default.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Smallest sd a feature may have (near-constant features are left as they are).
MIN_SD = 1e-6
#: Empirical-Bayes iterations stop when no estimate moves by more than this (relative).
TOL = 1e-4
MAX_ITER = 200


@dataclass
class Reference:
    """The development cohort's per-feature mean ``alpha`` and sd ``sigma`` (D,); ``fixed``: the
    features without spread there (sd 1 stands in; they are never adjusted)."""

    alpha: np.ndarray
    sigma: np.ndarray
    fixed: np.ndarray


@dataclass
class CenterAdjustment:
    """One center's estimated shift ``gamma`` and scale ``delta`` (D,), in reference sd units."""

    gamma: np.ndarray
    delta: np.ndarray
    n_instances: int


def _finite(x: np.ndarray) -> np.ndarray:
    """``x`` as float64 with every non-finite entry NaN (missing: a handcrafted feature that a
    region could not give); the statistics below ignore NaN and ``adjust`` keeps it."""
    x = np.asarray(x, np.float64)
    return np.where(np.isfinite(x), x, np.nan)


def _nan_stats(x: np.ndarray, ddof: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-column count, mean and variance of ``x`` ignoring NaN (0 mean, 0 variance when empty)."""
    n = (~np.isnan(x)).sum(0)
    mean = np.where(n > 0, np.nansum(x, 0) / np.maximum(n, 1), 0.0)
    ss = np.nansum((x - mean) ** 2, 0)
    return n, mean, np.where(n > ddof, ss / np.maximum(n - ddof, 1), 0.0)


def fit_reference(x: np.ndarray) -> Reference:
    """Mean and sd of the reference instances ``x`` (n, D), missing entries ignored."""
    x = _finite(x)
    if x.ndim != 2:
        raise ValueError(f"expected instances × features, got shape {x.shape}")
    n, alpha, var = _nan_stats(x)
    sigma = np.where(n > 1, np.sqrt(var), 0.0)
    fixed = sigma <= MIN_SD
    return Reference(alpha, np.where(fixed, 1.0, sigma), fixed)


def estimate(x: np.ndarray, ref: Reference, method: str) -> CenterAdjustment:
    """A center's adjustment from its instances ``x`` (n, D): ``standardize`` or ``combat``."""
    z = (_finite(x) - ref.alpha) / ref.sigma
    count, gamma_hat, delta2_hat = _nan_stats(z, ddof=1)
    delta2_hat = np.where((count > 1) & (delta2_hat > MIN_SD), delta2_hat, 1.0)
    # a feature the center never has is left as it is
    fixed = ref.fixed | (count == 0)
    if method == "standardize":
        gamma, delta2 = gamma_hat, delta2_hat
    elif method == "combat":
        gamma, delta2 = _empirical_bayes(z, gamma_hat, delta2_hat, count)
    else:
        raise ValueError(f"unknown harmonisation method {method!r}")
    gamma = np.where(fixed, 0.0, gamma)
    delta = np.where(fixed, 1.0, np.sqrt(delta2))
    return CenterAdjustment(gamma, delta, len(z))


def _empirical_bayes(
    z: np.ndarray, gamma_hat: np.ndarray, delta2_hat: np.ndarray, count: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Posterior means of ``γ`` and ``δ²`` under ComBat's priors (Johnson et al. 2007, eqs. 2.3–2.4),
    each feature with its own number ``count`` of present instances."""
    n = np.maximum(count, 1).astype(np.float64)
    gamma_bar = float(gamma_hat.mean())
    tau2 = float(gamma_hat.var(ddof=1)) if len(gamma_hat) > 1 else 1.0
    v_bar = float(delta2_hat.mean())
    s2 = float(delta2_hat.var(ddof=1)) if len(delta2_hat) > 1 else 0.0
    if s2 <= 1e-12:  # every feature scaled alike: no spread to shrink towards
        lam, theta = 1e6, v_bar * 1e6
    else:
        lam = (v_bar**2 + 2 * s2) / s2
        theta = (v_bar**3 + v_bar * s2) / s2
    gamma, delta2 = gamma_hat.copy(), delta2_hat.copy()
    for _ in range(MAX_ITER):
        g_new = (n * tau2 * gamma_hat + delta2 * gamma_bar) / (n * tau2 + delta2)
        ss = np.nansum((z - g_new) ** 2, 0)
        d_new = (theta + 0.5 * ss) / (n / 2.0 + lam - 1.0)
        change = max(
            float(np.max(np.abs(g_new - gamma) / (np.abs(gamma) + 1e-8))),
            float(np.max(np.abs(d_new - delta2) / (delta2 + 1e-8))),
        )
        gamma, delta2 = g_new, d_new
        if change < TOL:
            break
    return gamma, delta2


def adjust(x: np.ndarray, ref: Reference, adj: CenterAdjustment) -> np.ndarray:
    """``x`` (…, D) of the center mapped onto the reference (same shape, float32)."""
    z = (_finite(x) - ref.alpha) / ref.sigma
    return (ref.alpha + ref.sigma * (z - adj.gamma) / adj.delta).astype(np.float32)
