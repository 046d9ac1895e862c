"""The report's Grad-CAM section, read from ``RUN/explain/summary.json`` (``radiopath explain``).

It states how the maps were made (method, layer and map size per modality, the explained
class, how fold models were combined) and gives the checks beside the gallery: nuclear
enrichment of the CAM mass against the randomised twin, deletion against random removal,
and each modality's contribution to the fused prediction. Nothing is recomputed here.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

#: References the section cites (added to the report's list when the section is there).
REFERENCES: dict[str, str] = {
    "selvaraju2017": "Selvaraju RR, et al. Grad-CAM: visual explanations from deep networks via "
    "gradient-based localization. ICCV 2017.",
    "chattopadhay2018": "Chattopadhay A, et al. Grad-CAM++: generalized gradient-based visual explanations "
    "for deep convolutional networks. WACV 2018.",
    "adebayo2018": "Adebayo J, et al. Sanity checks for saliency maps. NeurIPS 2018.",
    "samek2017": "Samek W, et al. Evaluating the visualization of what a deep neural network has learned. "
    "IEEE TNNLS 2017.",
    "lu2021": "Lu MY, et al. Data-efficient and weakly supervised computational pathology on whole-slide "
    "images (CLAM). Nat Biomed Eng 2021.",
}


def _ci(block: dict[str, Any] | None, digits: int = 2) -> str:
    if not block or block.get("mean") is None:
        return "–"
    text = f"{block['mean']:.{digits}f}"
    if block.get("ci_low") is not None and block.get("ci_high") is not None:
        text += f" ({block['ci_low']:.{digits}f}–{block['ci_high']:.{digits}f})"
    return text


def _png(path: Path) -> str | None:
    if not path.is_file():
        return None
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def _fractions(models: dict[str, Any]) -> str:
    """The ultrasound deletion fractions the summary used, as text ("10, 25 and 50%")."""
    for b in models.values():
        us = (b.get("deletion") or {}).get("ultrasound") or {}
        if us.get("fractions"):
            pcts = [f"{100 * float(f):g}" for f in us["fractions"]]
            return (", ".join(pcts[:-1]) + " and " + pcts[-1] if len(pcts) > 1 else pcts[0]) + "%"
    return "10, 25 and 50%"


def _inputs(s: dict[str, Any]) -> str:
    """What the explained inputs are, when not plain deep features (hybrid, harmonised)."""
    label = {"us": "ultrasound", "cytology": "cytology"}
    sets = s.get("feature_sets") or {}
    grouped: dict[str, list[str]] = {}
    for m, v in sets.items():
        if not str(v).startswith(("deep", "finetuned")):
            grouped.setdefault(str(v), []).append(label.get(m, m))
    parts = [f"{' and '.join(ms)}: {v}" for v, ms in grouped.items()]
    method = s.get("harmonization")
    if method and method not in ("none", "adabn"):
        parts.append(
            f"features harmonised per center ({method}) as the run scored them; the maps carry the "
            "harmonisation's per-feature slope"
        )
    if s.get("adabn"):
        parts.append(s["adabn"])
    return "; ".join(parts)


def explain_section(run: Path) -> dict[str, Any] | None:
    """Template context for the section, or None when the run has no ``explain/summary.json``.

    A summary that cannot be read gives ``{"error": …}`` (shown as a note, never a crash).
    """
    path = run / "explain" / "summary.json"
    if not path.is_file():
        return None
    try:
        s = json.loads(path.read_text(encoding="utf-8"))
        models = s["models"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return {"error": f"{path}: cannot read the explanation summary ({exc}); rerun `radiopath explain`"}
    layers = s.get("target_layers", {})
    grid = s.get("cam_grid", {})
    label = {"us": "ultrasound", "cytology": "cytology"}
    how = [
        f"{label.get(m, m)}: layer {layer}"
        + (f" ({grid[m][0]}×{grid[m][1]} map per image)" if m in grid else "")
        for m, layer in layers.items()
    ]
    enrichment, deletion, contribution = [], [], []
    for name, b in models.items():
        if b.get("nuclear_enrichment"):
            enrichment.append(
                {
                    "model": name,
                    "n": b["nuclear_enrichment"].get("n"),
                    "mass": _ci(b.get("cam_mass_on_nuclei")),
                    "area": _ci(b.get("nuclear_area_fraction")),
                    "trained": _ci(b["nuclear_enrichment"]),
                    "randomized": _ci(b.get("nuclear_enrichment_randomized")),
                    "difference": _ci(b.get("nuclear_enrichment_difference")),
                    "empty": b.get("patients_without_cam_mass"),
                    "by_class": [
                        {
                            "cls": cls,
                            "n": c.get("n_explained"),
                            "trained": _ci(c.get("trained")),
                            "randomized": _ci(c.get("randomized")),
                        }
                        for cls, c in (b.get("nuclear_enrichment_by_class") or {}).items()
                    ],
                }
            )
        for kind, what in (("tiles", "tiles removed from the bag"), ("ultrasound", "view pixels blurred")):
            d = (b.get("deletion") or {}).get(kind)
            if not d:
                continue
            deletion.append(
                {
                    "model": name,
                    "what": what,
                    "n": d.get("n_patients"),
                    "cam": _ci(d.get("drop_cam"), 3),
                    "attention": _ci(d.get("drop_attention"), 3),
                    "random": _ci(d.get("drop_random"), 3),
                    "difference": _ci(d.get("drop_cam_minus_random"), 3),
                }
            )
        for scope, mods in (b.get("modality_contribution") or {}).items():
            for m, c in mods.items():
                contribution.append(
                    {
                        "model": name,
                        "scope": scope,
                        "modality": label.get(m, m),
                        "n": (c.get("abs_delta") or {}).get("n"),
                        "abs_delta": _ci(c.get("abs_delta"), 3),
                        "delta": _ci(c.get("delta"), 3),
                        "share": _ci(c.get("share"), 2),
                    }
                )
    families = []
    for name, b in models.items():
        for m, scopes in (b.get("feature_family_contribution") or {}).items():
            for scope, fams in (scopes or {}).items():
                for key, c in fams.items():
                    families.append(
                        {
                            "model": name,
                            "scope": scope,
                            "modality": label.get(m, m),
                            "family": key.split(":", 1)[-1],
                            "n": (c.get("abs_delta") or {}).get("n"),
                            "abs_delta": _ci(c.get("abs_delta"), 3),
                            "delta": _ci(c.get("delta"), 3),
                            "share": _ci(c.get("share"), 2),
                        }
                    )
    return {
        "method": {"gradcam": "Grad-CAM", "gradcam++": "Grad-CAM++"}.get(s.get("method"), s.get("method")),
        "layers": how,
        "explained_class": s.get("explained_class", ""),
        "ensemble": s.get("ensemble", ""),
        "inputs": _inputs(s),
        "us_fractions": _fractions(models),
        "randomization": s.get("randomization", ""),
        "precision": s.get("precision", ""),
        "n_patients": len(s.get("patients", [])),
        "seconds_per_patient": s.get("seconds_per_patient"),
        "enrichment": enrichment,
        "deletion": deletion,
        "contribution": contribution,
        "families": families,
        "enrichment_figure": _png(run / "explain" / "enrichment.png"),
        "deletion_figure": _png(run / "explain" / "deletion.png"),
    }
