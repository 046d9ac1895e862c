"""What a bundle says about itself in words: intended use, input specification, data formats
(MONAI's ``network_data_format``), and the ``docs/README.md`` a recipient reads first."""

from __future__ import annotations

from typing import Any

from radiopath.io.images import IMAGE_SUFFIXES
from radiopath.run_config import RunConfig

SLIDE_FORMATS = "SVS, NDPI, SCN, tiled TIFF (any format OpenSlide reads, as one file)"


def default_intended_use() -> str:
    """The intended-use statement of a bundle whose exporter gave none."""
    return (
        "Research use only; not a medical device and not cleared by any regulator. Estimates the probability "
        "of cervical lymph-node metastasis before surgery in adults with papillary thyroid carcinoma (PTC) "
        "diagnosed or suspected on fine-needle aspiration, from two ultrasound views of the index nodule and "
        "the liquid-based cytology slide of the same nodule. It supports, and never replaces, the clinical "
        "decision about neck dissection; the result must be read by a clinician together with the full "
        "clinical picture. It was validated only on the centers, scanners, stains and population listed "
        "under data_source and eval_metrics; for other settings, validate it locally first. Not for "
        "children, for other thyroid cancers or for patients without cytology-confirmed or suspected PTC."
    )


def input_spec(
    cfg: RunConfig, info: dict[str, Any], preprocessing: dict[str, Any], cohort: Any = None
) -> dict[str, Any]:
    """Per modality the model was built with: the files it takes and what is done to them
    (``cohort``: the run's cohort table, to say how the training views marked the nodule)."""
    out: dict[str, Any] = {}
    dims = info.get("in_dims", {})
    suffixes = sorted(IMAGE_SUFFIXES)
    if "us" in dims:
        out["ultrasound"] = {
            "columns": ["us_1", "us_2"],
            "views": 2,
            "required_views": 1,
            "formats": ["PNG", "JPEG", "TIFF", "BMP", "DICOM"],
            "suffixes": [*suffixes, ".dcm"],
            "crop_px": int(cfg.ultrasound.size),
            "nodule_region": "optional mask (us_k_mask) or box (us_k_box); else the scan area",
            "preprocessing": "scan area, burned-in marks removed, intensity normalised, square crop",
            "region_in_training": _region_note(cohort),
        }
    if "cytology" in dims:
        t = cfg.cytology.tiling
        out["cytology"] = {
            "columns": ["cytology"],
            "formats": [SLIDE_FORMATS, "a folder of patch images (PNG, JPEG, TIFF)", "one image"],
            "tiles": int(t.top_k),
            "tile_px": int(t.tile_size),
            "tile_mpp": float(t.target_mpp),
            "input_px": int(cfg.cytology.input_size),
            "stain_normalization": cfg.cytology.stain_normalization,
            "resolution": "from the slide's metadata; images without it need their µm/px (mpp)",
        }
    clinical = (preprocessing.get("modalities") or {}).get("clinical")
    if clinical and info.get("clinical_columns") and cfg.model.clinical:
        out["clinical"] = {"columns": clinical.get("columns", [])}
    return out


def network_data_format(cfg: RunConfig) -> dict[str, Any]:
    """MONAI-style tensor format specifiers of the inputs and outputs of one patient."""
    us = {
        "type": "image",
        "format": "magnitude",
        "modality": "US",
        "num_channels": 3,
        "spatial_shape": ["*", "*"],
        "dtype": "uint8",
        "value_range": [0, 255],
        "is_patch_data": False,
        "channel_def": {"0": "R", "1": "G", "2": "B"},
        "model_input_shape": [int(cfg.ultrasound.size), int(cfg.ultrasound.size)],
    }
    t = cfg.cytology.tiling
    return {
        "inputs": {
            "us_1": us,
            "us_2": {**us, "optional": True},
            "cytology": {
                "type": "image",
                "format": "magnitude",
                "modality": "cytology (FNA, liquid-based)",
                "num_channels": 3,
                "spatial_shape": ["*", "*"],
                "dtype": "uint8",
                "value_range": [0, 255],
                "is_patch_data": False,
                "channel_def": {"0": "R", "1": "G", "2": "B"},
                "tiles": {"count": int(t.top_k), "size_px": int(t.tile_size), "mpp": float(t.target_mpp)},
            },
        },
        "outputs": {
            "prob": {
                "type": "probabilities",
                "format": "classes",
                "num_channels": 1,
                "spatial_shape": [],
                "dtype": "float64",
                "value_range": [0, 1],
                "is_patch_data": False,
                "channel_def": {"0": "probability of lymph-node metastasis (mean of the fold models)"},
            },
            "decision": {
                "type": "classes",
                "format": "classes",
                "num_channels": 1,
                "spatial_shape": [],
                "dtype": "int8",
                "value_range": [0, 1],
                "is_patch_data": False,
                "channel_def": {"0": "1 = prob at or above the frozen threshold (metastasis predicted)"},
            },
        },
    }


def bundle_readme(meta: dict[str, Any]) -> str:
    """``docs/README.md``: what the bundle is, for whom, how to run it, and how it performed."""
    lines = [
        f"# {meta['name']} — radiopath model bundle {meta['version']}",
        "",
        meta["task"] + ".",
        "",
        "## Intended use",
        "",
        meta["intended_use"],
        "",
        "## Models",
        "",
        "| model | modalities | folds | frozen threshold |",
        "|---|---|---|---|",
    ]
    for m in meta["models"]:
        name = f"**{m['name']}** (primary)" if m["primary"] else m["name"]
        lines.append(f"| {name} | {' + '.join(m['modalities'])} | {m['n_folds']} | {m['threshold']:.4f} |")
    lines += ["", "## Inputs", ""]
    for key, spec in meta["inputs"].items():
        shown = {k: v for k, v in spec.items() if k not in ("suffixes",)}
        lines.append(f"- **{key}**: " + "; ".join(f"{k}: {v}" for k, v in shown.items()))
    lines += ["", "## Validation", ""]
    metrics = meta.get("eval_metrics") or {}
    if not metrics:
        lines.append(meta.get("eval_metrics_note") or "No metrics recorded.")
    for model, cohorts in metrics.items():
        for _, row in cohorts.items():
            auc = row.get("auc") or {}
            if auc.get("value") is None:
                continue
            lines.append(
                f"- {model}, {row.get('label')}: AUC {auc['value']:.3f} "
                f"({_ci(auc)}; n = {row.get('n')}, {row.get('n_pos')} with LNM)"
            )
    lines += [
        "",
        "## Running it",
        "",
        "```bash",
        "radiopath predict BUNDLE manifest.csv --out predictions.csv   # a manifest without labels",
        "radiopath serve BUNDLE                                         # web page at http://127.0.0.1:8000",
        "```",
        "",
        f"Made with radiopath {meta['radiopath_version']} and torch {meta['pytorch_version']}; "
        f"fingerprint `{meta.get('fingerprint', '(see metadata.json)')}` (sha256 of the file list in "
        "`configs/metadata.json`). Opening the bundle checks every file's sha256.",
        "",
    ]
    return "\n".join(lines)


def _ci(metric: dict[str, Any]) -> str:
    lo, hi = metric.get("ci_low"), metric.get("ci_high")
    return f"95% CI {lo:.3f}-{hi:.3f}" if lo is not None and hi is not None else "no CI"


def _region_note(cohort: Any) -> str | None:
    """How the development views marked the nodule: the page asks for the same."""
    if cohort is None or "us_1" not in getattr(cohort, "columns", []):
        return None
    dev = cohort[cohort["cohort"] == "development"]
    views = marked = 0
    for view in ("us_1", "us_2"):
        if view not in dev.columns:
            continue
        has = dev[view].notna() & (dev[view].astype(str) != "")
        region = False
        for col in (f"{view}_mask", f"{view}_box"):
            if col in dev.columns:
                region = region | (dev[col].notna() & (dev[col].astype(str) != ""))
        views += int(has.sum())
        marked += int((has & region).sum()) if not isinstance(region, bool) else 0
    if not views:
        return None
    share = marked / views
    if share >= 0.5:
        return (
            f"The model was trained on nodule crops ({100 * share:.0f}% of its views had a nodule box or "
            "mask):"
            " mark the nodule on each view."
        )
    return "The model was trained mostly on whole scan areas: a nodule box is optional."
