"""The report names the feature set of each modality and what each signature selected."""

from __future__ import annotations

import json
from pathlib import Path

from radiopath.report.features import feature_sets, signatures


def test_feature_sets_and_signature_selections_are_read_from_the_run(tmp_path: Path) -> None:
    (tmp_path / "inputs.json").write_text(
        json.dumps(
            {
                "blocks": {
                    "us": [["deep", 0, 512], ["radiomics", 512, 653]],
                    "cytology": [["pathomics", 0, 79]],
                }
            }
        )
    )
    for k, coef in enumerate(([0.5, 0.0, -0.2], [0.4, 0.1, 0.0], [0.0, 0.3, -0.1])):
        d = tmp_path / "checkpoints" / "fusion_signature" / f"fold{k}"
        d.mkdir(parents=True)
        d.joinpath("signature.json").write_text(
            json.dumps(
                {
                    "names": ["a", "b", "c", "d"],
                    "selected": [0, 1, 3],
                    "coef": coef,
                    "frequency": [0.9, 0.5, 0.3],
                }
            )
        )
    assert feature_sets(tmp_path) == [
        {"modality": "ultrasound", "families": "deep (512) + radiomics (141)"},
        {"modality": "cytology", "families": "pathomics (79)"},
    ]
    (sig,) = signatures(tmp_path)
    assert sig["model"] == "fusion_signature" and sig["n_folds"] == 3 and sig["features_per_fold"] == "2–2"
    rows = {r["feature"]: r for r in sig["rows"]}
    assert rows["a"]["folds"] == 2 and abs(rows["a"]["coef"] - 0.45) < 1e-12
    assert rows["d"]["folds"] == 2 and abs(rows["d"]["coef"] + 0.15) < 1e-12
    assert rows["b"]["folds"] == 2 and sig["rows"][0]["feature"] == "a"  # most folds, largest weight first
