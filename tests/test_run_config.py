"""The one typed configuration: importable without torch, every earlier key still valid,
the primary model named before the run, and the report reading the same model."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from radiopath.errors import ConfigError
from radiopath.evaluate.cohortflow import patient_modalities
from radiopath.run_config import RunConfig, model_presets
from support import PROJECT_ROOT

OLD = PROJECT_ROOT / "tests" / "data" / "config_before_stages.yaml"


def test_the_config_evaluation_and_report_import_without_torch() -> None:
    code = (
        "import sys; import radiopath.run_config, radiopath.evaluate, radiopath.report, "
        "radiopath.modalities; "
        "assert 'torch' not in sys.modules, sorted(m for m in sys.modules if m.startswith('torch'))[:5]"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]


def test_every_key_of_an_earlier_config_yaml_is_still_accepted() -> None:
    cfg = RunConfig.from_yaml(OLD)
    old = yaml.safe_load(OLD.read_text())
    new = cfg.model_dump(mode="json")

    def leaves(d: dict, prefix: str = "") -> dict:
        out = {}
        for k, v in d.items():
            out.update(leaves(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
        return out

    old_leaves, new_leaves = leaves(old), leaves(new)
    assert set(old_leaves) <= set(new_leaves)  # nothing was dropped or renamed
    changed = {k for k in old_leaves if old_leaves[k] != new_leaves[k]}
    assert changed == set(), changed  # and the file's values are what is loaded


def test_the_primary_model_is_named_before_the_run() -> None:
    cfg = RunConfig()
    assert cfg.protocol.primary_model is None and cfg.primary_model() == "fusion_concat"
    assert cfg.resolved().protocol.primary_model == "fusion_concat"
    cfg.model.models = ["ultrasound", "cytology", "fusion_gated"]
    assert cfg.primary_model() == "fusion_gated"  # no concat: the first fusion model
    cfg.model.models = ["cytology", "ultrasound"]
    assert cfg.primary_model() == "cytology"
    with pytest.raises(ConfigError, match="primary_model 'fusion_late' is not among"):
        RunConfig.from_dict(
            {"protocol": {"primary_model": "fusion_late"}, "model": {"models": ["ultrasound"]}}
        )


def test_unknown_keys_and_values_name_the_key() -> None:
    with pytest.raises(ConfigError, match=r"model\.backbon"):
        RunConfig.from_dict({"model": {"backbon": "resnet18"}})
    with pytest.raises(ConfigError, match=r"train\.device"):
        RunConfig.from_dict({"train": {"device": "gpu"}})
    with pytest.raises(ConfigError, match="unknown model 'fusion_cat'"):
        RunConfig.from_dict({"model": {"models": ["fusion_cat"]}})


def test_model_presets_come_from_the_modality_registry() -> None:
    presets = model_presets()
    assert presets["ultrasound"] == (["us"], "none") and presets["cytology"] == (["cytology"], "none")
    assert presets["fusion_bilinear"] == (["us", "cytology"], "bilinear")
    assert set(RunConfig.model_fields) >= {"ultrasound", "cytology"}  # one section per modality with options


def test_the_cohort_flow_shows_every_input_a_patient_had() -> None:
    """Regression: the report's cohort flow showed "us" as every patient's modalities."""
    pred = pd.DataFrame(
        {
            "patient_id": ["A", "A", "A", "B", "B"],
            "model": ["ultrasound", "cytology", "fusion_concat", "ultrasound", "fusion_concat"],
            "modalities": ["us", "cytology", "us+cytology", "us", "us"],
        }
    )
    assert patient_modalities(pred).to_dict() == {"A": "ultrasound+cytology", "B": "ultrasound"}


def test_the_report_methods_read_the_typed_config(tmp_path: Path) -> None:
    """Regression: the methods said "fusion not recorded" in every real report."""
    from radiopath.evaluate import evaluate_run
    from radiopath.evaluate.simulate import SimulatedRun, simulate_run
    from radiopath.report.html import render_report

    run = simulate_run(tmp_path / "sim", SimulatedRun(seed=1))
    ev = evaluate_run(run, n_boot=50, write=False, conformal_alpha=None)
    html = render_report(run, ev, pd.read_parquet(run / "predictions.parquet"), figures=[])
    methods = html.split('id="methods"')[1].split('id="tripod"')[0]
    assert "fusion not recorded" not in methods
    assert "fusion_concat (ultrasound + cytology; feature-level fusion" in methods
    assert "named in the configuration before the run (protocol.primary_model), is fusion_concat" in methods
    assert "Primary model (named before the run), fusion_concat" in html
