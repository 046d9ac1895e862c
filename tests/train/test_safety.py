"""Runs never mix and resume only what they started: the run-folder lock and the data fingerprint."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from radiopath.errors import ConfigError
from radiopath.io.lock import FolderLockedError, folder_lock
from radiopath.synth import SynthConfig, SynthResult, synthesize
from radiopath.train.run import train_run
from runconfigs import tiny

HOLD = """import sys, time
from radiopath.io.lock import folder_lock
with folder_lock(sys.argv[1]):
    print("held", flush=True)
    time.sleep(120)
"""


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> SynthResult:
    return synthesize(
        tmp_path_factory.mktemp("safety") / "c", SynthConfig(patients=30, seed=13, slide_um=400, workers=2)
    )


def test_a_second_run_into_a_locked_folder_is_refused_and_a_killed_holder_releases_it(tmp_path: Path) -> None:
    folder = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(folder)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
        with pytest.raises(FolderLockedError) as info, folder_lock(folder):
            pass
        msg = str(info.value)
        assert f"process {proc.pid}" in msg and os.uname().nodename in msg and "started" in msg
        proc.send_signal(signal.SIGKILL)  # the holder dies without cleaning up
        proc.wait(timeout=30)
        with folder_lock(folder) as lock:  # the stale lock is taken over at once
            assert str(os.getpid()) in lock.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()


def test_train_refuses_a_folder_another_run_is_writing(cohort: SynthResult, tmp_path: Path) -> None:
    cfg = tiny(tmp_path / "cache")
    cfg.model.models = ["ultrasound"]
    with folder_lock(tmp_path / "run"), pytest.raises(FolderLockedError, match="in use by another run"):
        train_run(cohort.manifest, tmp_path / "run", cfg)
    assert not (tmp_path / "run" / "config.yaml").exists()
    train_run(cohort.manifest, tmp_path / "run", cfg)  # free again: it runs


def test_resume_refuses_a_run_whose_data_changed_and_says_what(cohort: SynthResult, tmp_path: Path) -> None:
    cfg = tiny(tmp_path / "cache")
    cfg.model.models = ["ultrasound", "cytology"]

    class Killed(Exception):
        pass

    def die(msg: str) -> None:
        if msg.startswith("cytology fold 1/3"):
            raise Killed

    with pytest.raises(Killed):
        train_run(cohort.manifest, tmp_path / "run", cfg, say=die)
    manifest = pd.read_csv(cohort.manifest)
    changed = tmp_path / "changed.csv"
    edited = manifest.copy()
    first_dev = edited.index[edited["cohort"] == "development"][0]
    edited.loc[first_dev, "lnm"] = 1 - edited.loc[first_dev, "lnm"]
    root = cohort.manifest.parent
    for col in ("us_1", "us_2", "us_1_mask", "us_2_mask", "cytology"):
        if col in edited.columns:
            edited[col] = [str(root / p) if isinstance(p, str) else None for p in edited[col]]
    edited.to_csv(changed, index=False)
    with pytest.raises(
        ConfigError, match=r"labels changed for 1 patient\(s\): " + str(manifest.loc[first_dev, "patient_id"])
    ):
        train_run(changed, tmp_path / "run", resume=True)
    # the same data under another manifest file (absolute paths) is the same data: resume works
    same = tmp_path / "same.csv"
    edited.loc[first_dev, "lnm"] = manifest.loc[first_dev, "lnm"]
    edited.to_csv(same, index=False)
    start = time.perf_counter()
    result = train_run(same, tmp_path / "run", resume=True)
    assert (
        set(result.predictions["model"]) == {"ultrasound", "cytology"} and time.perf_counter() - start < 120
    )
