"""The CLI: every verb has --help; errors are one clean message with exit status 2."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.main import get_command
from typer.testing import CliRunner

from manifests import clean_manifest
from radiopath.cli import app

runner = CliRunner()
VERBS = sorted(get_command(app).commands)  # type: ignore[attr-defined]


def test_design_verbs_that_exist_are_registered() -> None:
    assert {"synth", "validate", "demo"} <= set(VERBS)


@pytest.mark.parametrize("verb", VERBS)
def test_every_verb_has_help(verb: str) -> None:
    result = runner.invoke(app, [verb, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output and len(result.output) > 200


def test_validate_clean_manifest_exits_0_with_summary(tmp_path: Path) -> None:
    result = runner.invoke(app, ["validate", str(clean_manifest(tmp_path))])
    assert result.exit_code == 0, result.output
    assert "is valid" in result.output and "prev." in result.output and "Hospital" not in result.output


def test_validate_reports_every_error_and_exits_2(tmp_path: Path) -> None:
    manifest = clean_manifest(tmp_path)
    text = manifest.read_text().replace("us/p2_1.png", "us/gone.png").replace("P004", "P003")
    manifest.write_text(text)
    out_csv = tmp_path / "problems.csv"
    result = runner.invoke(app, ["validate", str(manifest), "--problems-csv", str(out_csv)])
    assert result.exit_code == 2
    assert "row 3 (line 4), column us_1" in result.output and "gone.png" in result.output
    assert "duplicate patient_id 'P003'" in result.output
    assert "Traceback" not in result.output
    assert out_csv.read_text().count("\nerror,") == 2


def test_synth_with_a_config_file_then_validate(tmp_path: Path) -> None:
    cfg = tmp_path / "synth.yaml"
    cfg.write_text("slide_um: 300\nprevalence: 0.5\n")
    out = tmp_path / "cohort"
    result = runner.invoke(
        app, ["synth", "--out", str(out), "--patients", "6", "--config", str(cfg), "--workers", "1"]
    )
    assert result.exit_code == 0, result.output
    assert (out / "manifest.csv").exists() and "wrote 6 patients" in result.output
    assert "slide_um: 300" in (out / "synth.yaml").read_text()
    again = runner.invoke(app, ["synth", "--out", str(out), "--patients", "6"])
    assert again.exit_code == 2 and "--overwrite" in again.output and "Traceback" not in again.output


def test_bad_config_key_is_named(tmp_path: Path) -> None:
    cfg = tmp_path / "synth.yaml"
    cfg.write_text("slide_size: 300\n")
    result = runner.invoke(app, ["synth", "--out", str(tmp_path / "x"), "--config", str(cfg)])
    assert result.exit_code == 2 and "slide_size" in result.output


@pytest.mark.slow
def test_demo_runs_end_to_end_and_says_what_it_made(tmp_path: Path) -> None:
    """The demo's whole path (a small, fast configuration; `make demo` runs the real one)."""
    from radiopath.train.config import RunConfig

    cfg = RunConfig()
    cfg.model.backbone, cfg.model.weights = "resnet18", "none"
    cfg.model.models = ["ultrasound", "cytology", "fusion_late"]
    cfg.ultrasound.size = cfg.cytology.input_size = 32
    cfg.cytology.tiling.top_k = 4
    cfg.protocol.n_folds = 3
    cfg.train.epochs = 10
    cfg.train.augment_passes = 0  # the passes are tested in tests/features and tests/train
    cfg.to_yaml(tmp_path / "run.yaml")
    args = [
        "demo",
        "--out",
        str(tmp_path / "demo"),
        "--patients",
        "40",
        "--config",
        str(tmp_path / "run.yaml"),
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    out = tmp_path / "demo"
    assert "study's table" in result.output and "oracle both" in result.output
    for made in ("cohort/manifest.csv", "run/predictions.parquet", "run/metrics.json", "run/report.html"):
        assert (out / made).exists(), made
    rerun = runner.invoke(app, args)
    assert rerun.exit_code == 0 and "reusing" in rerun.output and "done earlier" in rerun.output


def test_an_unexpected_failure_prints_a_short_message_and_a_log_not_a_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import radiopath.report as report_pkg

    def boom(*_a: object, **_k: object) -> None:
        raise ZeroDivisionError("a bug in radiopath")

    monkeypatch.setattr(report_pkg, "write_report", boom)
    monkeypatch.setenv("RADIOPATH_LOG_DIR", str(tmp_path / "logs"))
    result = CliRunner().invoke(app, ["report", str(tmp_path)])
    assert result.exit_code == 1
    assert "Traceback" not in result.output and "failed unexpectedly" in result.output
    logs = list((tmp_path / "logs").glob("radiopath-report-*.log"))
    assert len(logs) == 1 and "ZeroDivisionError: a bug in radiopath" in logs[0].read_text()
    assert str(logs[0]) in result.output.replace("\n", "")


def test_an_error_message_with_brackets_is_printed_as_text(tmp_path: Path) -> None:
    """Regression: an error naming `[/]` (a patient id, a path) crashed rich's markup parser."""
    bad = tmp_path / "weird[/]name"
    result = CliRunner().invoke(
        app, ["train", str(bad / "m.csv"), "--out", str(tmp_path / "r"), "--weights", "none"]
    )
    assert result.exit_code == 2 and "[/]" in result.output and "Traceback" not in result.output
