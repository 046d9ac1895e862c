"""Fixtures: a simulated run folder (known score distributions, 4 models, 4 centers) and its evaluation."""

from __future__ import annotations

from pathlib import Path

import pytest

from radiopath.evaluate import Evaluation, evaluate_run
from radiopath.evaluate.simulate import SimulatedRun, simulate_run


@pytest.fixture(scope="session")
def sim_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run folder as the training stage writes it; do not modify (copy it first)."""
    return simulate_run(tmp_path_factory.mktemp("runs") / "sim", SimulatedRun(seed=3))


@pytest.fixture(scope="session")
def sim_eval(sim_run: Path) -> Evaluation:
    """The run evaluated with 200 resamples (enough for plumbing; CIs are pinned elsewhere)."""
    return evaluate_run(sim_run, n_boot=200)
