"""report.html: self-contained, every section present, numbers from the evaluation, nothing injected."""

from __future__ import annotations

import base64
import json
import re
import shutil
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from radiopath.cli import app
from radiopath.evaluate import Evaluation
from radiopath.evaluate.evaluate import format_ci
from radiopath.evaluate.predictions import load_predictions
from radiopath.report import ReportError, render_report, write_report

SECTIONS = (
    "key",
    "cohort",
    "performance",
    "thresholds",
    "comparisons",
    "calibration",
    "utility",
    "conformal",
    "centers",
    "shift",
    "confusion",
    "gallery",
    "methods",
    "tripod",
    "provenance",
)
FIGURES = ("roc", "pr", "calibration", "decision", "utility", "forest", "confusion", "conformal")


@pytest.fixture(scope="module")
def report(sim_report: Path) -> str:
    return sim_report.read_text(encoding="utf-8")


def test_every_section_and_figure_is_there(report: str, sim_run: Path) -> None:
    for s in SECTIONS:
        assert f'id="{s}"' in report, s
    for f in FIGURES:
        assert f'id="fig-{f}"' in report, f
        png = sim_run / "figures" / f"{f}.png"
        with Image.open(png) as im:
            assert im.width >= 1000 and im.height >= 300  # ≥ 200 dpi at print size
    assert "SIMULATED RUN" in report  # provenance.json says so; a reviewer must not miss it


def test_self_contained_images_decode(report: str) -> None:
    srcs = re.findall(r'<img src="([^"]+)"', report)
    assert len(srcs) == len(FIGURES) + 3  # eight figures + three Grad-CAM gallery images
    for src in srcs:
        assert src.startswith("data:image/png;base64,")
        raw = base64.b64decode(src.split(",", 1)[1])
        assert raw[:8] == b"\x89PNG\r\n\x1a\n"
    assert not re.search(r'(src|href)="(https?:)?//', report)  # nothing fetched from anywhere


def test_numbers_come_from_the_evaluation(report: str, sim_eval: Evaluation) -> None:
    auc = sim_eval.metric("fusion_concat", "external", "auc")
    assert f'{auc["value"]:.3f}<br><span class="ci">{auc["ci_low"]:.3f}–{auc["ci_high"]:.3f}' in report
    assert format_ci(auc["value"], auc["ci_low"], auc["ci_high"]) in report  # key results sentence
    row = sim_eval.comparisons.iloc[0]
    assert f"{row['auc_diff']:+.3f}" in report
    assert "Sun &amp; Xu" in report and "TRIPOD+AI" in report and "20a" in report


def test_report_says_which_threshold_and_which_interval(report: str, sim_eval: Evaluation) -> None:
    perf = report.split('id="performance"')[1].split('id="thresholds"')[0]
    assert "internal ones at nested thresholds" in perf and "Wilson intervals for accuracy" in perf
    assert "bootstrap, center-stratified" in perf  # the CI-method row of the main table
    nested = sim_eval.metric("fusion_concat", "internal", "accuracy")
    pooled = sim_eval.metric("fusion_concat", "internal", "accuracy_pooled_threshold")
    section = report.split('id="thresholds"')[1].split('id="comparisons"')[0]
    assert f"{nested['value']:.3f}<br>" in section
    assert f"{pooled['value']:.3f} ({pooled['value'] - nested['value']:+.3f})" in section
    assert "pooled-threshold" in section and "nested" in section
    methods = report.split('id="methods"')[1].split('id="tripod"')[0]
    assert "Evaluation details" in methods and "nested thresholds" in methods
    assert "Wilson binomial intervals" in methods and "Angelopoulos" in methods
    conf = report.split('id="conformal"')[1].split('id="centers"')[0]
    row = sim_eval.conformal
    r = row[(row["model"] == "fusion_concat") & (row["cohort"] == "external")].iloc[0]
    assert f"{r['coverage_pos']:.3f}<br>" in conf and "uncertain" in conf
    assert 'id="updating"' not in report and "Model updating, not external" not in report  # only when asked
    shift = report.split('id="shift"')[1].split('id="confusion"')[0]
    assert "Not measured for this run" in shift  # a simulated run has no features to compare


def test_recalibration_section_is_labelled_as_model_updating(sim_run: Path) -> None:
    from radiopath.evaluate import evaluate_run

    ev = evaluate_run(sim_run, n_boot=20, recalibrate=True, write=False, conformal_alpha=None)
    html = render_report(sim_run, ev, load_predictions(sim_run), figures=[])
    upd = html.split('id="updating"')[1].split('id="confusion"')[0]
    assert "Model updating, not external validation" in upd
    assert upd.count("intercept only (calibration-in-the-large)") == 4 * 3  # 4 models × (2 centers + pooled)
    r = ev.recalibration
    x = r[
        (r["model"] == "fusion_concat") & (r["cohort"] == "external/Center D") & (r["update"] == "logistic")
    ]
    assert f"β = {x['fitted_slope'].iloc[0]:.2f}" in upd
    conf = html.split('id="conformal"')[1].split('id="centers"')[0]
    assert "Not computed" in conf
    provenance = html.split('id="provenance"')[1]
    assert "recalibration: done (5-fold cross-fitting per external center)" in provenance


def test_methods_say_not_recorded_instead_of_guessing(
    sim_run: Path, sim_eval: Evaluation, tmp_path: Path
) -> None:
    run = tmp_path / "run"
    shutil.copytree(sim_run, run)
    (run / "config.yaml").write_text("protocol:\n  n_folds: 5\n")  # almost nothing recorded
    html = render_report(run, sim_eval, load_predictions(run), figures=[])
    methods = html.split('id="methods"')[1].split('id="tripod"')[0]
    assert "Backbone not recorded" in methods and "learning rate not recorded" in methods
    assert "resnet101" not in methods


def test_gallery_captions_are_escaped_and_missing_images_reported(
    sim_run: Path, sim_eval: Evaluation, tmp_path: Path
) -> None:
    run = tmp_path / "run"
    shutil.copytree(sim_run, run)
    index = run / "explain" / "gallery.json"
    entries = json.loads(index.read_text())
    entries[0]["caption"] = "<script>alert(1)</script>"
    entries.append(
        {"patient_id": "P9", "model": "fusion_concat", "modality": "us", "image": "explain/gone.png"}
    )
    index.write_text(json.dumps(entries))
    html = render_report(run, sim_eval, load_predictions(run), figures=[])
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "gallery entry 3: image &#39;explain/gone.png&#39; is missing" in html
    assert html.count('<img src="data:image/png;base64,') == 3  # the three images that exist


@pytest.mark.slow
def test_cli_report_evaluates_a_fresh_run_first(sim_run: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(
        sim_run, run, ignore=shutil.ignore_patterns("metrics.json", "tables", "figures", "report.html")
    )
    result = CliRunner().invoke(app, ["report", str(run), "--n-boot", "30"])
    assert result.exit_code == 0, result.output
    assert (run / "report.html").is_file() and (run / "tables" / "table_main.csv").is_file()
    assert json.loads((run / "metrics.json").read_text())["settings"]["n_boot"] == 30
    assert sorted(p.stem for p in (run / "figures").glob("*.png")) == sorted(FIGURES)


def test_missing_predictions_is_a_clean_error(tmp_path: Path) -> None:
    with pytest.raises(ReportError, match=r"no predictions\.parquet"):
        write_report(tmp_path / "empty")
    bad = CliRunner().invoke(app, ["report", str(tmp_path / "empty")])
    assert bad.exit_code == 2 and "no predictions.parquet" in bad.output and "Traceback" not in bad.output


def test_latest_run_finds_the_newest_run_folder(tmp_path: Path) -> None:
    import os

    from radiopath.report.finish import latest_run

    assert latest_run(tmp_path) is None
    for name, mtime in (("old", 1_000_000), ("new", 2_000_000)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "predictions.parquet").write_bytes(b"")
        os.utime(tmp_path / name / "predictions.parquet", (mtime, mtime))
    (tmp_path / "cohort").mkdir()  # a folder without predictions is never a run
    assert latest_run(tmp_path) == tmp_path / "new"
