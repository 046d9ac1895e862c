"""Decision curves and dissections spared, against hand counts."""

from __future__ import annotations

import numpy as np
import pytest

from radiopath.evaluate import (
    EvaluationError,
    NetBenefit,
    decision_curve,
    net_benefit,
    net_benefit_treat_all,
    threshold_for_sensitivity,
    utility_at_threshold,
)

Y = np.array([1, 1, 1, 1, 0, 0, 0, 0, 0, 0])
P = np.array([0.9, 0.8, 0.45, 0.2, 0.7, 0.4, 0.3, 0.2, 0.1, 0.05])


def test_net_benefit_by_hand() -> None:
    # at pt = 0.25: treated = prob >= 0.25 → TP 3 (0.9, 0.8, 0.45), FP 3 (0.7, 0.4, 0.3); N = 10
    # NB = 3/10 − 3/10 · 0.25/0.75 = 0.3 − 0.1 = 0.2
    assert net_benefit(Y, P, [0.25])[0] == pytest.approx(0.2)
    # at pt = 0.5: TP 2, FP 1 → 0.2 − 0.1 · 1 = 0.1
    assert net_benefit(Y, P, [0.5])[0] == pytest.approx(0.1)
    # treat all at pt = 0.2: prevalence 0.4 − 0.6 · 0.25 = 0.25
    assert net_benefit_treat_all(Y, [0.2])[0] == pytest.approx(0.25)
    assert NetBenefit([0.25, 0.5])(Y, P) == pytest.approx([0.2, 0.1])


def test_decision_curve_holds_every_strategy() -> None:
    dc = decision_curve(Y, {"m": P, "useless": np.full(10, 0.5)}, [0.1, 0.3, 0.6])
    assert dc.n == 10 and dc.prevalence == pytest.approx(0.4)
    np.testing.assert_allclose(dc.treat_none, 0)
    # a constant 0.5 score treats everyone below 0.5 (= treat all) and no one above
    np.testing.assert_allclose(dc.models["useless"][:2], dc.treat_all[:2])
    assert dc.models["useless"][2] == 0
    with pytest.raises(EvaluationError, match="strictly between 0 and 1"):
        net_benefit(Y, P, [0.0, 0.5])


def test_threshold_for_sensitivity_is_the_highest_that_reaches_it() -> None:
    y, p = Y, P
    for target in (0.5, 0.75, 0.9, 1.0):
        t = threshold_for_sensitivity(y, p, target)
        sens = ((p >= t) & (y == 1)).sum() / 4
        assert sens >= target
        higher = p[p > t]
        if higher.size:  # the next higher candidate would fall short
            t2 = higher.min()
            assert ((p >= t2) & (y == 1)).sum() / 4 < target
    assert threshold_for_sensitivity(Y, P, 0.75) == pytest.approx(0.45)


def test_utility_counts_per_100() -> None:
    u = utility_at_threshold(Y, P, 0.45)
    # dissect 0.9, 0.8, 0.45, 0.7 → 4 of 10; spared 6 (1 metastasis among them: 0.2)
    assert u.dissections_per_100 == pytest.approx(40)
    assert u.spared_per_100 == pytest.approx(60)
    assert u.missed_per_100 == pytest.approx(10)
    assert u.unnecessary_spared_per_100 == pytest.approx(50)
    assert (u.sensitivity, u.specificity) == pytest.approx((0.75, 5 / 6))
