"""PatientInputs with known structure, without images (fast tests of the training code)."""

from __future__ import annotations

import numpy as np

from radiopath.cohort.splits import assign_folds
from radiopath.models.inputs import PatientInputs


def feature_cohort(
    n: int = 160, n_dev: int = 110, dim: int = 16, k: int = 6, seed: int = 0, missing_cytology: float = 0.0
) -> tuple[PatientInputs, np.ndarray, np.ndarray]:
    """Features whose mean shifts with latents u (ultrasound) and c (cytology); LNM = 1[u+c+e>0].

    Returns the inputs, the folds (5, development only) and the oracle score u + c.
    """
    rng = np.random.default_rng(seed)
    u, c, e = rng.standard_normal((3, n))
    y = ((u + c + e) > 0).astype(float)
    w_us, w_cy = rng.standard_normal(dim), rng.standard_normal(dim)
    us = rng.standard_normal((n, 2, dim)) + 0.8 * u[:, None, None] * w_us
    cy = rng.standard_normal((n, k, dim)) + 0.8 * c[:, None, None] * w_cy
    cy_mask = np.ones((n, k), bool)
    cy_mask[rng.random(n) < missing_cytology] = False
    cohort = np.where(np.arange(n) < n_dev, "development", "external")
    ids = np.array([f"P{i:04d}" for i in range(n)])
    inputs = PatientInputs(
        ids,
        np.where(cohort == "development", "A", "B"),
        cohort,
        y,
        {
            "us": us.astype(np.float32),
            "us_mask": np.ones((n, 2), bool),
            "cytology": cy.astype(np.float32),
            "cytology_mask": cy_mask,
        },
    )
    folds = np.full(n, -1)
    folds[:n_dev] = assign_folds(y[:n_dev], ids[:n_dev], 5, seed)
    return inputs, folds, u + c
