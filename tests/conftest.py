"""Shared fixtures: paths to third-party real data and small synthetic cohorts."""

from __future__ import annotations

import os

import pytest
import torch

from radiopath.synth import SynthConfig, SynthResult, synthesize
from support import PROJECT_ROOT, REAL_DATA, real_path

__all__ = ["PROJECT_ROOT", "REAL_DATA", "real_path"]

#: Under ``pytest -n N`` each worker takes its share of the cores, so N workers do not each
#: start a thread per core and oversubscribe the machine (CI has 2 cores and ``make test`` 2).
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if _WORKERS > 1:
    _THREADS = max(1, (os.cpu_count() or 1) // _WORKERS)
    torch.set_num_threads(_THREADS)
    os.environ.setdefault("OMP_NUM_THREADS", str(_THREADS))  # for the subprocesses tests start


@pytest.fixture(scope="session")
def small_cohort(tmp_path_factory: pytest.TempPathFactory) -> SynthResult:
    """A 15-patient, three-center synthetic cohort with small slides (a few seconds)."""
    cfg = SynthConfig(patients=15, seed=7, slide_um=500, workers=1)
    return synthesize(tmp_path_factory.mktemp("cohort") / "small", cfg)


#: The longest modules, started first: with ``pytest -n 2 --dist loadfile`` (``make test``) each
#: file goes whole to one worker in collection order, so the long ones must not be left for last.
LONGEST_FIRST = (
    "tests/train/test_learning.py",
    "tests/test_cli.py",
    "tests/train/test_real_ddti.py",
    "tests/train/test_kill.py",
    "tests/train/test_run.py",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Run :data:`LONGEST_FIRST` modules first (stable: the rest keeps its order)."""
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}

    def key(item: pytest.Item) -> int:
        rel = (
            item.path.relative_to(config.rootpath).as_posix()
            if item.path.is_relative_to(config.rootpath)
            else ""
        )
        return rank.get(rel, len(rank))

    items.sort(key=key)
