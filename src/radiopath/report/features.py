"""The report's "Features" section: which feature set each modality used, and which named
features each radiomics signature selected, in how many folds.

Read from the run folder alone — ``inputs.json`` (the feature families and their column
names) and each signature fold's ``signature.json`` — so the report says which handcrafted
features carry the signal without loading a model.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from radiopath.modalities import MODALITIES

#: How many selected features a signature's table lists.
TOP = 15


def feature_sets(run: Path) -> list[dict[str, Any]]:
    """One row per image modality: its families and how many columns each gave."""
    try:
        info = json.loads((run / "inputs.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    rows = []
    for key, blocks in (info.get("blocks") or {}).items():
        label = MODALITIES[key].label if key in MODALITIES else key
        rows.append(
            {
                "modality": label,
                "families": " + ".join(f"{fam} ({stop - start})" for fam, start, stop in blocks),
            }
        )
    return rows


def signatures(run: Path) -> list[dict[str, Any]]:
    """Per signature model: its selected features over the folds (name, folds selected, mean
    standardised coefficient among the folds that selected it, mean bag frequency)."""
    out = []
    for model_dir in sorted((run / "checkpoints").glob("*")):
        folds = sorted(model_dir.glob("fold*/signature.json"))
        if not folds:
            continue
        stats: dict[str, dict[str, Any]] = {}
        n_used = []
        for path in folds:
            try:
                s = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            used = 0
            for j, c, f in zip(s["selected"], s["coef"], s["frequency"], strict=True):
                if c == 0.0:
                    continue
                used += 1
                rec = stats.setdefault(s["names"][j], {"folds": 0, "coef": 0.0, "freq": 0.0})
                rec["folds"] += 1
                rec["coef"] += c
                rec["freq"] += f
            n_used.append(used)
        rows = [
            {
                "feature": name,
                "folds": rec["folds"],
                "coef": rec["coef"] / rec["folds"],
                "frequency": rec["freq"] / rec["folds"],
            }
            for name, rec in stats.items()
        ]
        rows.sort(key=lambda r: (-r["folds"], -abs(r["coef"])))
        out.append(
            {
                "model": model_dir.name,
                "n_folds": len(folds),
                "features_per_fold": f"{min(n_used)}–{max(n_used)}" if n_used else "–",
                "rows": rows[:TOP],
                "more": max(len(rows) - TOP, 0),
            }
        )
    return out
