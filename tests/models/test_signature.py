"""The radiomics signature: finds the informative features, keeps one of a correlated pair,
drops constants, predicts like scikit-learn, round-trips through JSON, needs no torch."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from radiopath.errors import ConfigError
from radiopath.models.signature import RadiomicsSignature

SRC = Path(__file__).resolve().parents[2] / "src" / "radiopath" / "models" / "signature.py"


def cohort(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Two informative features (one duplicated with noise, r > 0.99), a constant, 30 noise."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.5).astype(int)
    a = y * 1.2 + rng.normal(0, 1, n)
    b = -y * 1.0 + rng.normal(0, 1, n)
    twin = a * 3 + 10 + rng.normal(0, 0.05, n)  # a, rescaled: one of the pair must go
    const = np.full(n, 7.0)
    noise = rng.normal(0, 1, (n, 30)) * np.exp(rng.normal(0, 2, 30))  # any scale
    X = np.column_stack([a, twin, b, const, noise])
    names = ["signal_a", "signal_a_twin", "signal_b", "constant"] + [f"noise_{k}" for k in range(30)]
    return X, y, names


def test_selects_the_signal_and_predicts_well() -> None:
    X, y, names = cohort(200, 0)
    sig = RadiomicsSignature(seed=0).fit(X, y, names)
    chosen = [name for name, _, _ in sig.selected_features()]
    assert chosen[:2] in (["signal_a", "signal_b"], ["signal_a_twin", "signal_b"])
    assert not ({"signal_a", "signal_a_twin"} <= set(chosen))  # |r| > 0.9: only one kept
    assert "constant" not in [names[j] for j in sig.selected_]
    coef = dict((n, c) for n, c, _ in sig.selected_features())
    assert coef[chosen[0]] > 0 > coef["signal_b"]
    Xt, yt, _ = cohort(400, 1)
    proba = sig.predict_proba(Xt)
    assert proba.shape == (400, 2) and np.allclose(proba.sum(axis=1), 1)
    assert roc_auc_score(yt, proba[:, 1]) > 0.8
    freq = {n: f for n, _, f in sig.selected_features()}
    assert freq["signal_b"] > 0.9


def test_shuffled_labels_give_chance() -> None:
    X, y, names = cohort(150, 2)
    y = np.random.default_rng(3).permutation(y)
    sig = RadiomicsSignature(seed=0).fit(X, y, names)
    Xt, yt, _ = cohort(400, 4)
    assert abs(roc_auc_score(yt, sig.predict_proba(Xt)[:, 1]) - 0.5) < 0.1


def test_state_round_trips_through_json_and_is_deterministic() -> None:
    X, y, names = cohort(120, 5)
    X[::7, 5] = np.nan  # gaps are filled with the training median
    sig = RadiomicsSignature(seed=3).fit(X, y, names)
    again = RadiomicsSignature.from_state(json.loads(json.dumps(sig.state_dict())))
    Xt, _, _ = cohort(50, 6)
    Xt[0, :] = np.nan
    np.testing.assert_array_equal(again.predict_proba(Xt), sig.predict_proba(Xt))
    assert again.selected_features() == sig.selected_features() and again.C_ == sig.C_
    twin = RadiomicsSignature(seed=3).fit(X, y, names)
    np.testing.assert_array_equal(twin.predict_proba(Xt), sig.predict_proba(Xt))
    for key in ("selected", "coef", "intercept", "mean", "scale", "C"):
        assert key in sig.state_dict()


def test_groups_keep_a_patients_rows_in_one_inner_fold() -> None:
    X, y, names = cohort(120, 7)
    groups = np.repeat(np.arange(60), 2)
    y = y[::2].repeat(2)  # two views per patient share the label
    sig = RadiomicsSignature(seed=0).fit(X, y, names, groups=groups)
    assert np.isfinite(sig.C_) and len(sig.inner_auc_) == len(sig.Cs)


def test_plain_lasso_without_bags_or_clipping() -> None:
    X, y, names = cohort(200, 8)
    sig = RadiomicsSignature(n_bags=0, clip=None, seed=0).fit(X, y, names)
    assert set(sig.frequency_) <= {0.0, 1.0}
    assert {"signal_b"} <= {n for n, _, _ in sig.selected_features()}


def test_errors_name_the_problem() -> None:
    X, y, names = cohort(40, 9)
    with pytest.raises(ConfigError, match="not fitted"):
        RadiomicsSignature().predict_proba(X)
    with pytest.raises(ConfigError, match="0/1 labels"):
        RadiomicsSignature().fit(X, np.zeros(40))
    with pytest.raises(ConfigError, match="feature names"):
        RadiomicsSignature().fit(X, y, names[:3])
    sig = RadiomicsSignature(seed=0).fit(X, y, names)
    with pytest.raises(ConfigError, match="columns"):
        sig.predict_proba(X[:, :5])
    with pytest.raises(ConfigError, match="version"):
        RadiomicsSignature.from_state({"version": 99})


def test_module_imports_without_torch() -> None:
    """The file itself needs no torch (the models package's __init__ imports the backbones)."""
    saved = sys.modules.get("torch")
    sys.modules["torch"] = None  # type: ignore[assignment]  # any 'import torch' now fails
    try:
        spec = importlib.util.spec_from_file_location("signature_alone", SRC)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)  # type: ignore[union-attr]
        assert hasattr(module, "RadiomicsSignature")
    finally:
        if saved is None:
            del sys.modules["torch"]
        else:
            sys.modules["torch"] = saved
