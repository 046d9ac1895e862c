"""Per-center standardisation and ComBat against a fixed reference: known shifts are removed,
empirical Bayes shrinks the noisy estimates of a small center, and a center like the reference
is left alone."""

from __future__ import annotations

import numpy as np
import pytest

from radiopath.shift.combat import adjust, estimate, fit_reference


def _batch(rng: np.random.Generator, n: int, d: int, gamma: np.ndarray, delta: np.ndarray) -> np.ndarray:
    """Reference features N(alpha, sigma) shifted by gamma·sigma and scaled by delta."""
    alpha, sigma = np.linspace(-2, 2, d), np.linspace(0.5, 3, d)
    return alpha + sigma * (gamma + delta * rng.standard_normal((n, d)))


def test_standardize_maps_a_center_exactly_onto_the_reference_moments() -> None:
    rng = np.random.default_rng(0)
    d = 40
    ref = fit_reference(_batch(rng, 400, d, np.zeros(d), np.ones(d)))
    x = _batch(rng, 60, d, rng.normal(0.8, 0.3, d), rng.uniform(0.5, 2.0, d))
    out = adjust(x, ref, estimate(x, ref, "standardize"))
    np.testing.assert_allclose(out.mean(0), ref.alpha, atol=1e-4)
    np.testing.assert_allclose(out.std(0, ddof=1), ref.sigma, rtol=1e-4)


def test_combat_recovers_a_known_shift_and_shrinks_small_center_noise() -> None:
    rng = np.random.default_rng(1)
    d = 200
    ref = fit_reference(_batch(rng, 2000, d, np.zeros(d), np.ones(d)))
    gamma = rng.normal(0.5, 0.2, d)  # every feature shifted about half a reference sd
    delta = np.exp(rng.normal(0.2, 0.1, d))
    x = _batch(rng, 8, d, gamma, delta)  # a small center: its own moments are noisy
    std, cb = estimate(x, ref, "standardize"), estimate(x, ref, "combat")
    err_std = np.mean((std.gamma - gamma) ** 2)
    err_cb = np.mean((cb.gamma - gamma) ** 2)
    assert err_cb < 0.7 * err_std  # shrinkage towards the center's mean shift helps (James-Stein)
    assert np.mean(np.abs(np.log(cb.delta) - np.log(delta))) < np.mean(
        np.abs(np.log(std.delta) - np.log(delta))
    )
    big = _batch(rng, 3000, d, gamma, delta)  # with many instances both agree with the truth
    cb_big = estimate(big, ref, "combat")
    np.testing.assert_allclose(cb_big.gamma, gamma, atol=0.1)
    np.testing.assert_allclose(cb_big.delta, delta, rtol=0.1)


def test_a_center_like_the_reference_is_barely_touched_and_constant_features_never() -> None:
    rng = np.random.default_rng(2)
    d = 30
    x_ref = _batch(rng, 1000, d, np.zeros(d), np.ones(d))
    x_ref[:, 0] = 4.0  # a feature without spread in the reference
    ref = fit_reference(x_ref)
    x = _batch(rng, 500, d, np.zeros(d), np.ones(d))
    x[:, 0] = 7.0
    adj = estimate(x, ref, "combat")
    assert adj.gamma[0] == 0.0 and adj.delta[0] == 1.0
    out = adjust(x, ref, adj)
    assert np.all(out[:, 0] == 7.0)
    assert np.abs(out[:, 1:] - x[:, 1:]).mean() < 0.1 * ref.sigma[1:].mean()
    with pytest.raises(ValueError, match="unknown harmonisation"):
        estimate(x, ref, "quantile")
