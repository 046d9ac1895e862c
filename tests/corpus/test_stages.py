"""The bad-input corpus of the stages: configuration files, options, output folders and a
folder in use — each exits with status 2, names the key, file or holder and the fix, prints no
traceback, and leaves no run or features folder behind."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from radiopath.cli import app
from radiopath.io.lock import folder_lock
from radiopath.synth import SynthConfig, SynthResult, synthesize
from runconfigs import tiny

runner = CliRunner()


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> SynthResult:
    """Enough patients of each class for 2 folds: every case fails on its own problem."""
    return synthesize(
        tmp_path_factory.mktemp("stage_corpus") / "c", SynthConfig(patients=24, seed=3, slide_um=300)
    )


@dataclass(frozen=True)
class StageCase:
    kind: str
    fragment: str
    make: Callable[[Path, Path], list[str]]  # (tmp folder, manifest) -> CLI arguments


def _yaml(tmp: Path, text: str) -> str:
    (tmp / "c.yaml").write_text(text, encoding="utf-8")
    return str(tmp / "c.yaml")


def _train(tmp: Path, m: Path, *extra: str, config: str | None = None) -> list[str]:
    cfg = config or str(_base(tmp))
    return ["train", str(m), "--out", str(tmp / "run"), "--config", cfg, *extra]


def _base(tmp: Path) -> Path:
    cfg = tiny(tmp / "cache")
    cfg.protocol.n_folds = 2
    cfg.to_yaml(tmp / "base.yaml")
    return tmp / "base.yaml"


def _r18_weights(tmp: Path) -> str:
    from safetensors.torch import save_file

    from radiopath.models.backbones import create_backbone

    sd = {k: v.contiguous() for k, v in create_backbone("resnet18", "none").body.state_dict().items()}
    save_file(sd, str(tmp / "r18.safetensors"))
    return str(tmp / "r18.safetensors")


def _locked(tmp: Path, m: Path) -> list[str]:
    return _train(tmp, m)


def _no_cytology_manifest(tmp: Path, m: Path) -> Path:
    t = pd.read_csv(m)
    t["cytology"] = None
    for col in ("us_1", "us_2", "us_1_mask", "us_2_mask"):
        if col in t.columns:
            t[col] = [str(m.parent / p) if isinstance(p, str) else None for p in t[col]]
    t.to_csv(tmp / "no_cyto.csv", index=False)
    return tmp / "no_cyto.csv"


CASES = [
    StageCase(
        "config/unknown-key",
        "model.backbon",
        lambda t, m: _train(t, m, config=_yaml(t, "model:\n  backbon: x\n")),
    ),
    StageCase(
        "config/wrong-type",
        "train.epochs",
        lambda t, m: _train(t, m, config=_yaml(t, "train:\n  epochs: many\n")),
    ),
    StageCase(
        "config/not-a-mapping", "expected a mapping", lambda t, m: _train(t, m, config=_yaml(t, "- a\n- b\n"))
    ),
    StageCase(
        "config/bad-yaml",
        "cannot read YAML",
        lambda t, m: _train(t, m, config=_yaml(t, "model: [unclosed\n")),
    ),
    StageCase(
        "config/missing-file", "cannot read YAML", lambda t, m: _train(t, m, config=str(t / "nope.yaml"))
    ),
    StageCase(
        "config/primary-not-trained",
        "primary_model 'fusion_late' is not among",
        lambda t, m: _train(
            t, m, config=_yaml(t, "protocol:\n  primary_model: fusion_late\nmodel:\n  models: [ultrasound]\n")
        ),
    ),
    StageCase(
        "options/unknown-backbone",
        "unknown backbone 'resnet99'",
        lambda t, m: _train(t, m, "--backbone", "resnet99"),
    ),
    StageCase(
        "options/weights-typo",
        "weights must be 'none', 'imagenet'",
        lambda t, m: _train(t, m, "--weights", "imagnet"),
    ),
    StageCase(
        "options/weights-missing",
        "not found",
        lambda t, m: _train(t, m, "--weights", str(t / "gone.safetensors")),
    ),
    StageCase(
        "options/weights-not-safetensors",
        "not a readable safetensors file",
        lambda t, m: (
            (t / "fake.safetensors").write_text("not weights")
            and _train(t, m, "--weights", str(t / "fake.safetensors"))
        ),
    ),
    StageCase(
        "options/weights-other-architecture",
        "does not fit the backbone",
        lambda t, m: _train(t, m, "--weights", _r18_weights(t), "--backbone", "resnet50"),
    ),
    StageCase(
        "options/unknown-model",
        "unknown model 'fusion_cat'",
        lambda t, m: _train(t, m, "--models", "fusion_cat"),
    ),
    StageCase(
        "options/too-many-folds", "40-fold cross-validation needs", lambda t, m: _train(t, m, "--folds", "40")
    ),
    StageCase(
        "options/bad-device", "device must be auto, cpu, cuda", lambda t, m: _train(t, m, "--device", "gpu")
    ),
    StageCase("options/bad-precision", "train.precision", lambda t, m: _train(t, m, "--precision", "fp8")),
    StageCase("options/bad-mode", "train.mode", lambda t, m: _train(t, m, "--mode", "ft")),
    StageCase(
        "options/features-not-a-folder",
        "is not a features folder",
        lambda t, m: _train(t, m, "--features", str(t / "nofeats")),
    ),
    StageCase(
        "options/tiles-unfinished",
        "is not a finished `radiopath tile` folder",
        lambda t, m: (t / "tiles").mkdir() or _train(t, m, "--tiles", str(t / "tiles")),
    ),
    StageCase("options/resume-nothing", "no run to resume", lambda t, m: _train(t, m, "--resume")),
    StageCase(
        "options/mpp-table-missing",
        "mpp.csv",
        lambda t, m: ["tile", str(m), "--out", str(t / "run"), "--mpp-table", str(t / "mpp.csv")],
    ),
    StageCase(
        "options/model-needs-absent-modality",
        "needs cytology inputs, but no patient has them",
        lambda t, m: [
            "train",
            str(_no_cytology_manifest(t, m)),
            "--out",
            str(t / "run"),
            "--config",
            str(_base(t)),
            "--models",
            "cytology",
        ],
    ),
    StageCase(
        "options/tile-bad-key",
        "top_kk",
        lambda t, m: ["tile", str(m), "--out", str(t / "run"), "--config", _yaml(t, "top_kk: 3\n")],
    ),
    StageCase("manifest/missing", "m-does-not-exist.csv", lambda t, m: _train(t, t / "m-does-not-exist.csv")),
    StageCase(
        "fs/out-is-a-file",
        "is a file, not a folder",
        lambda t, m: (t / "run").write_text("x") and _train(t, m),
    ),
    StageCase(
        "fs/out-not-empty",
        "exists and is not empty",
        lambda t, m: (t / "run").mkdir() or ((t / "run" / "mine.txt").write_text("keep") and _train(t, m)),
    ),
    StageCase(
        "fs/extract-into-foreign-folder",
        "is not a features folder",
        lambda t, m: (
            (t / "run").mkdir()
            or (
                (t / "run" / "mine.txt").write_text("keep")
                and ["extract", str(m), "--out", str(t / "run"), "--config", str(_base(t))]
            )
        ),
    ),
    StageCase("concurrency/run-folder-in-use", "is in use by another run: process", _locked),
]


def _snapshot(root: Path) -> dict[str, int]:
    return {
        str(p.relative_to(root)): p.stat().st_size
        for p in root.rglob("*")
        if p.is_file() and p.name != ".lock"
    }


def test_the_stage_corpus_covers_configs_options_files_and_concurrency() -> None:
    kinds = [c.kind for c in CASES]
    assert len(set(kinds)) == len(kinds) >= 25
    assert {k.split("/")[0] for k in kinds} == {"config", "options", "manifest", "fs", "concurrency"}


@pytest.mark.parametrize("case", CASES, ids=[c.kind for c in CASES])
def test_bad_stage_input(case: StageCase, cohort: SynthResult, tmp_path: Path) -> None:
    torch.manual_seed(0)
    args = case.make(tmp_path, cohort.manifest)
    before = _snapshot(tmp_path)
    if case.kind.startswith("concurrency/"):
        with folder_lock(tmp_path / "run"):
            result = runner.invoke(app, args)
    else:
        result = runner.invoke(app, args)
    out = result.output.replace("\n", " ")
    assert result.exit_code == 2, out
    assert case.fragment in out, out
    assert "Traceback" not in out
    after = _snapshot(tmp_path)
    new = {k for k in after if k not in before and not k.startswith("cache/")}
    assert not new, f"left behind: {sorted(new)[:5]}"
    assert (
        not (tmp_path / "run" / "config.yaml").exists() and not (tmp_path / "run" / "features.json").exists()
    )
