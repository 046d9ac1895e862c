"""Bundles: what export writes, and that a tampered, incomplete, foreign or version-incompatible
bundle is refused before anything in it is used."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from safetensors import safe_open

from radiopath.errors import ConfigError, OutputExistsError
from radiopath.serve import BundleError, export_bundle, load_bundle, verify_bundle
from radiopath.serve.bundle import METADATA, file_sha256, fingerprint, version_tuple


def _linked_copy(src: Path, dst: Path) -> Path:
    """A copy sharing the big files' inodes (edit only by replacing a file, never in place)."""
    shutil.copytree(src, dst, copy_function=os.link)
    return dst


def _replace(path: Path, data: bytes) -> None:
    path.unlink()
    path.write_bytes(data)


def _rewrite_metadata(bundle: Path, edit: object) -> None:
    meta = json.loads((bundle / METADATA).read_text())
    edit(meta)  # type: ignore[operator]
    _replace(bundle / METADATA, json.dumps(meta).encode())


def test_export_writes_a_self_describing_bundle(study) -> None:
    b = study.bundle
    meta = json.loads((b / METADATA).read_text())
    assert meta["format"] == 1 and meta["primary_model"] == "fusion_concat"
    assert [m["name"] for m in meta["models"]] == ["fusion_concat", "ultrasound"]  # primary first
    assert meta["models"][0]["primary"] and not meta["models"][1]["primary"]
    assert all(m["n_folds"] == 3 and len(m["weights"]) == 3 and len(m["onnx"]) == 3 for m in meta["models"])
    # one frozen backbone for both modalities and all six fold models, stored once
    assert [x["name"] for x in meta["backbones"]] == ["resnet18"]
    assert sorted(meta["backbones"][0]["modalities"]) == ["cytology", "us"]
    assert len(list((b / "models" / "backbones").iterdir())) == 1
    assert meta["backbones"][0]["source_weights"].startswith("none:seed=")
    # every file listed with its sha256; the fingerprint covers the list
    files = sorted(p.relative_to(b).as_posix() for p in b.rglob("*") if p.is_file())
    assert sorted([*meta["files"], METADATA]) == files
    assert all(file_sha256(b / f) == sha for f, sha in meta["files"].items())
    assert meta["fingerprint"] == fingerprint(meta["files"])
    # weights are safetensors, the rest text; nothing that unpickles
    for f in meta["files"]:
        if f.endswith(".safetensors"):
            with safe_open(str(b / f), "pt") as fh:
                assert len(list(fh.keys())) > 0
    assert not [f for f in meta["files"] if f.endswith((".pt", ".pth", ".pkl", ".bin"))]
    thresholds = json.loads((b / "configs" / "thresholds.json").read_text())
    run_thresholds = json.loads((study.run / "thresholds.json").read_text())
    assert thresholds == run_thresholds
    for key in (
        "radiopath_version",
        "pytorch_version",
        "numpy_version",
        "intended_use",
        "task",
        "references",
    ):
        assert meta[key]
    nd = meta["network_data_format"]
    assert nd["inputs"]["us_1"]["modality"] == "US" and nd["outputs"]["prob"]["value_range"] == [0, 1]
    cyto = meta["inputs"]["cytology"]
    assert (cyto["tiles"], cyto["tile_mpp"], cyto["input_px"]) == (4, 0.5, 32)
    assert meta["inputs"]["ultrasound"]["crop_px"] == 32
    auc = meta["eval_metrics"]["fusion_concat"]["external"]["auc"]
    assert 0 <= auc["ci_low"] <= auc["value"] <= auc["ci_high"] <= 1
    assert "patient_id" not in (b / "configs" / "metadata.json").read_text()
    assert "Intended use" in (b / "docs" / "README.md").read_text()
    bundle = load_bundle(b)
    assert bundle.models == ["fusion_concat", "ultrasound"] and bundle.primary_model == "fusion_concat"
    assert bundle.warnings == [] and bundle.config.cache_dir is None


def test_tampered_incomplete_foreign_or_newer_bundles_are_refused(study, tmp_path: Path) -> None:
    verify_bundle(study.bundle)
    tampered = _linked_copy(study.bundle, tmp_path / "tampered")
    path = tampered / "configs" / "thresholds.json"
    _replace(path, path.read_bytes().replace(b"0.", b"0.0", 1))
    with pytest.raises(BundleError, match=r"thresholds\.json differ from the sha256"):
        load_bundle(tampered)

    incomplete = _linked_copy(study.bundle, tmp_path / "incomplete")
    (incomplete / "models" / "fusion_concat" / "fold1.safetensors").unlink()
    with pytest.raises(BundleError, match=r"incomplete bundle, 1 listed file\(s\) missing"):
        load_bundle(incomplete)

    extra = _linked_copy(study.bundle, tmp_path / "extra")
    (extra / "models" / "fusion_concat" / "fold3.safetensors").write_bytes(b"x")
    with pytest.raises(BundleError, match="not part of the bundle"):
        load_bundle(extra)

    newer = _linked_copy(study.bundle, tmp_path / "newer")
    _rewrite_metadata(newer, lambda m: m.update(radiopath_version="99.0.0"))
    with pytest.raises(BundleError, match=r"made by radiopath 99\.0\.0, newer than"):
        load_bundle(newer)

    other = _linked_copy(study.bundle, tmp_path / "format")
    _rewrite_metadata(other, lambda m: m.update(format=2))
    with pytest.raises(BundleError, match="bundle format 2"):
        load_bundle(other)

    edited = _linked_copy(study.bundle, tmp_path / "edited")
    _rewrite_metadata(edited, lambda m: m["files"].pop("docs/README.md"))
    with pytest.raises(BundleError, match="not part of the bundle"):
        load_bundle(edited)

    with pytest.raises(BundleError, match="is a run folder"):
        load_bundle(study.run)


def test_a_pickle_in_place_of_weights_is_never_unpickled(study, tmp_path: Path) -> None:
    """Even with its sha256 and the fingerprint rewritten to match, a pickled 'weights' file
    is refused by the safetensors reader (nothing runs)."""
    import pickle

    bad = _linked_copy(study.bundle, tmp_path / "pickled")
    target = bad / "models" / "ultrasound" / "fold0.safetensors"
    _replace(target, pickle.dumps({"weight": [1.0, 2.0]}))

    def fix(meta: dict) -> None:
        meta["files"]["models/ultrasound/fold0.safetensors"] = file_sha256(target)
        meta["fingerprint"] = fingerprint(meta["files"])

    _rewrite_metadata(bad, fix)
    bundle = load_bundle(bad)  # consistent hashes: verification passes …
    with pytest.raises(ConfigError, match="never unpickles"):
        bundle.fold_models("ultrasound")  # … but the weights are read with safetensors only


def test_export_refuses_what_it_cannot_bundle(study, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not a run folder"):
        export_bundle(tmp_path, tmp_path / "b")
    with pytest.raises(OutputExistsError, match="exists and is not empty"):
        export_bundle(study.run, study.bundle)
    with pytest.raises(ConfigError, match="inside the run folder"):
        export_bundle(study.run, study.run / "bundle")
    assert not (study.run / "bundle").exists()


def test_version_tuple() -> None:
    assert version_tuple("0.1.0") == (0, 1, 0)
    assert version_tuple("2.4.1+cu130") == (2, 4, 1)
    assert version_tuple("0.2.0rc1") == (0, 2, 0)
    assert version_tuple("x") == ()
