"""The outcome model of the synthetic cohorts: a liability-threshold model with known parts.

For patient *i* four independent standard-normal variables are drawn::

    u_i  ultrasound latent   (drives the nodule's look: size, echogenicity, shape, margin, calcifications)
    c_i  cytology latent     (drives the nuclei: size, shape, chromatin, crowding, grooves, inclusions)
    z_i  clinical latent     (drives age and sex)
    e_i  unexplained noise

    risk_i = a_us * u_i + a_cy * c_i + a_cl * z_i + sigma * e_i
    lnm_i  = 1[risk_i > tau],   tau = sd(risk) * Phi^-1(1 - prevalence)

so the expected prevalence is exactly ``prevalence``. Because every term is Gaussian and
independent, P(lnm | any subset of latents) is monotone in that subset's weighted sum:
the AUC of that sum is the best AUC *any* model seeing those modalities could reach (the
oracle AUC). :func:`oracle_auc` computes it from ``truth.csv``; images reveal the latents
only through noisy phenotypes, so real models stay below it.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd
from scipy.stats import norm
from sklearn.metrics import roc_auc_score

#: truth.csv column of each modality's latent, and the weight that goes with it.
LATENT_COLUMNS: dict[str, str] = {
    "us": "us_latent",
    "cytology": "cytology_latent",
    "clinical": "clinical_latent",
}


def threshold(weights: dict[str, float], noise: float, prevalence: float) -> float:
    """The liability threshold that gives ``prevalence`` in expectation."""
    sd = float(np.sqrt(sum(w * w for w in weights.values()) + noise * noise))
    return sd * float(norm.ppf(1.0 - prevalence))


def draw_outcomes(
    rng: np.random.Generator, n: int, weights: dict[str, float], noise: float, prevalence: float
) -> pd.DataFrame:
    """Latents, risk and label for ``n`` patients; ``weights`` keys are ``us``/``cytology``/``clinical``."""
    lat = {key: rng.standard_normal(n) for key in LATENT_COLUMNS}
    e = rng.standard_normal(n)
    risk = sum(weights[k] * lat[k] for k in LATENT_COLUMNS) + noise * e
    tau = threshold(weights, noise, prevalence)
    df = pd.DataFrame({LATENT_COLUMNS[k]: lat[k] for k in LATENT_COLUMNS})
    df["noise"] = e
    df["risk"] = risk
    df["lnm"] = (risk > tau).astype(int)
    for k, w in weights.items():
        df[f"weight_{k}"] = w
    return df


def oracle_score(truth: pd.DataFrame, modalities: Iterable[str]) -> np.ndarray:
    """The Bayes-optimal score given the latents of ``modalities`` (weighted sum)."""
    score = np.zeros(len(truth))
    for m in modalities:
        if m not in LATENT_COLUMNS:
            raise ValueError(f"unknown modality {m!r}; choose from {sorted(LATENT_COLUMNS)}")
        score = score + truth[f"weight_{m}"].to_numpy() * truth[LATENT_COLUMNS[m]].to_numpy()
    return score


def oracle_auc(
    truth: pd.DataFrame, modalities: Iterable[str] = ("us", "cytology"), mask: np.ndarray | None = None
) -> float:
    """Best reachable ROC-AUC for a model that sees ``modalities`` (0.5 when they carry no signal).

    Args:
        truth: the ``truth.csv`` table of a synthetic cohort.
        modalities: any of ``us``, ``cytology``, ``clinical``.
        mask: optional boolean row selection (e.g. one center).
    """
    t = truth if mask is None else truth[mask]
    y = t["lnm"].to_numpy()
    if len(np.unique(y)) < 2:
        return float("nan")
    return float(roc_auc_score(y, oracle_score(t, modalities)))
