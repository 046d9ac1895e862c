"""Pictures of explanations: one panel per patient and model, and the cohort checks.

A patient's panel answers what a pathologist asks of a prediction: the two ultrasound views
with the Grad-CAM of the model's explained class; the slide thumbnail with tile attention
and with tile Grad-CAM stitched at the tile positions (glass left clear); the most-attended
tiles at the tiling resolution with their CAM, the nuclei the segmentation found outlined,
their attention weight and nuclear enrichment; and the probability against the frozen
threshold. Matplotlib's object API (no pyplot state), written as JPEG for the report.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import Any

import cv2
import numpy as np
from matplotlib.figure import Figure
from PIL import Image

from radiopath.explain.cases import Case
from radiopath.explain.engine import CaseResult
from radiopath.explain.heatmaps import Thumbnail, cam_overlay, slide_heatmap
from radiopath.explain.nuclear import Focus, TileNuclei, upsample

#: Tiles shown per patient panel (the most attended).
PANEL_TILES = 4


def outcome(label: float, decision: int) -> str:
    """TP / FP / TN / FN, or "unlabelled"."""
    if not np.isfinite(label):
        return "unlabelled"
    return {(1, 1): "TP", (0, 1): "FP", (0, 0): "TN", (1, 0): "FN"}[(int(label), int(decision))]


def to_jpeg(fig: Figure, dpi: int = 100, quality: int = 88) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight", pad_inches=0.05, facecolor="white")
    out = io.BytesIO()
    Image.open(io.BytesIO(buf.getvalue())).convert("RGB").save(out, format="JPEG", quality=quality)
    return out.getvalue()


def to_png(fig: Figure, dpi: int = 110) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight", pad_inches=0.05, facecolor="white")
    return buf.getvalue()


def _outlined(tile: np.ndarray, mask: np.ndarray) -> np.ndarray:
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    out = tile.copy()
    cv2.drawContours(out, contours, -1, (255, 255, 255), 1)
    return out


def _blank(ax: Any, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=9, color="#666", wrap=True)
    ax.set_axis_off()


def case_panel(
    case: Case,
    model: str,
    result: CaseResult,
    threshold: float,
    *,
    thumb: Thumbnail | None,
    nuclei: TileNuclei | None,
    focus: Focus | None,
    layers: Mapping[str, str],
) -> Figure:
    """The panel of one patient for one model (see the module docstring)."""
    fig = Figure(figsize=(13.5, 6.6))
    grid = fig.add_gridspec(2, 4, height_ratios=[1.15, 1], hspace=0.28, wspace=0.06)
    decision = int(result.prob >= threshold)
    lab = "unknown" if not np.isfinite(case.label) else ("LNM+" if case.label == 1 else "LNM−")
    cls = "LNM" if result.sign > 0 else "no LNM"
    fig.suptitle(
        f"{case.patient_id} · {case.cohort} ({case.center}) · truth {lab} · {model}: "
        f"p = {result.prob:.3f} vs threshold {threshold:.3f} → {'LNM+' if decision else 'LNM−'} "
        f"[{outcome(case.label, decision)}] · maps explain “{cls}”",
        fontsize=10.5,
        y=0.995,
    )
    us = result.cams.get("us")
    for v in range(2):
        ax = fig.add_subplot(grid[0, v])
        if us is None or v >= len(us):
            _blank(ax, "no ultrasound input" if us is None else "view missing")
            continue
        vmax = float(us.max()) or 1.0
        ax.imshow(cam_overlay(case.images["us"][v], us[v], vmax=vmax))
        att = result.attention.get("us")
        extra = f" · view weight {att[v]:.2f}" if att is not None and len(att) > v else ""
        ax.set_title(
            f"ultrasound {case.names['us'][v]}{extra}\nGrad-CAM at {layers.get('us', '')}", fontsize=8.5
        )
        ax.set_axis_off()
    cyto = result.cams.get("cytology")
    att = result.attention.get("cytology")
    ax_att, ax_cam = fig.add_subplot(grid[0, 2]), fig.add_subplot(grid[0, 3])
    if cyto is None or thumb is None or case.tiles is None or att is None:
        _blank(ax_att, "no cytology input")
        _blank(ax_cam, "")
    else:
        tiles = case.tiles.iloc[case.slots["cytology"]]
        pic, _ = slide_heatmap(thumb, list(att / max(float(att.max()), 1e-12)), tiles)
        ax_att.imshow(pic)
        ax_att.set_title(f"slide: tile attention ({len(tiles)} tiles; glass clear)", fontsize=8.5)
        vmax = float(cyto.max()) or 1.0
        pic, _ = slide_heatmap(thumb, list(upsample(cyto, cyto.shape[1] * 4) / vmax), tiles, by_value=True)
        ax_cam.imshow(pic)
        enr = (
            f"; nuclear enrichment {focus.enrichment:.2f}"
            if focus is not None and np.isfinite(focus.enrichment)
            else "; no CAM mass"
            if focus is not None
            else ""
        )
        ax_cam.set_title(f"slide: tile Grad-CAM{enr}", fontsize=8.5)
        for ax in (ax_att, ax_cam):
            ax.set_axis_off()
    order = np.argsort(-att, kind="stable")[:PANEL_TILES] if att is not None else []
    per_tile = focus.tile_enrichment() if focus is not None else None
    for j in range(PANEL_TILES):
        ax = fig.add_subplot(grid[1, j])
        if cyto is None or j >= len(order):
            _blank(ax, "" if cyto is not None else "no cytology input")
            continue
        k = int(order[j])
        tile = case.native["cytology"][k]
        up = upsample(cyto[k : k + 1], tile.shape[0])[0]
        pic = cam_overlay(tile, up, vmax=float(cyto.max()) or 1.0)
        if nuclei is not None:
            pic = _outlined(pic, nuclei.masks[k])
        ax.imshow(pic)
        e = per_tile[k] if per_tile is not None else float("nan")
        rank = int(case.slots["cytology"][k])
        ax.set_title(
            f"tile {rank} · attention {att[k]:.2f} · CAM share {cyto[k].sum() / max(cyto.sum(), 1e-12):.2f}"
            f"\nnuclei {int(nuclei.counts[k]) if nuclei is not None else 0} · enrichment "
            f"{'–' if not np.isfinite(e) else f'{e:.2f}'}",
            fontsize=8,
        )
        ax.set_axis_off()
    return fig


def enrichment_figure(summary: Mapping[str, Any]) -> Figure | None:
    """Nuclear enrichment per model, trained against randomised, with 95% CIs; 1 = chance."""
    models = [(k, v) for k, v in summary.items() if v.get("nuclear_enrichment")]
    if not models:
        return None
    fig = Figure(figsize=(6.4, 0.6 + 0.55 * len(models)))
    ax = fig.add_subplot()
    for i, (_, v) in enumerate(models):
        for off, key, colour, lab in (
            (0.12, "nuclear_enrichment", "#0b5cad", "trained"),
            (-0.12, "nuclear_enrichment_randomized", "#b42318", "randomised twin"),
        ):
            e = v.get(key) or {}
            if e.get("mean") is None:
                continue
            lo, hi = e.get("ci_low"), e.get("ci_high")
            xerr = None if lo is None else [[e["mean"] - lo], [hi - e["mean"]]]
            ax.errorbar(
                e["mean"], i + off, xerr=xerr, fmt="o", color=colour, capsize=3, label=lab if i == 0 else None
            )
    ax.axvline(1.0, color="#888", ls="--", lw=1)
    ax.set_yticks(range(len(models)), [m for m, _ in models])
    ax.set_xlabel("nuclear enrichment of Grad-CAM mass (1 = nuclei get their area's share)")
    ax.legend(fontsize=8, loc="best")
    ax.invert_yaxis()
    return fig


def deletion_figure(summary: Mapping[str, Any]) -> Figure | None:
    """Mean predicted-class probability as tiles (left) or ultrasound regions (right) are removed."""
    rows = [(k, v.get("deletion") or {}) for k, v in summary.items()]
    rows = [(k, d) for k, d in rows if d.get("tiles") or d.get("ultrasound")]
    if not rows:
        return None
    fig = Figure(figsize=(10, 2.6))
    axes = fig.subplots(1, 2)
    styles = {
        "cam": ("-", "Grad-CAM order"),
        "attention": ("--", "attention order"),
        "random": (":", "random"),
    }
    colours = ["#0b5cad", "#1a7f37", "#9a6700", "#b42318", "#6e40c9", "#444"]
    for c, (name, d) in enumerate(rows):
        for ax, kind, xs in (
            (axes[0], "tiles", None),
            (axes[1], "ultrasound", [0.0, *(d.get("ultrasound") or {}).get("fractions", [])]),
        ):
            block = d.get(kind)
            if not block:
                continue
            for order, (ls, lab) in styles.items():
                curve = block.get(f"curve_{order}")
                if curve is None:
                    continue
                x = xs if xs is not None else list(range(len(curve)))
                ax.plot(x, curve, ls=ls, color=colours[c % len(colours)], label=f"{name}: {lab}")
    axes[0].set_xlabel("tiles removed from the bag (best first)")
    axes[1].set_xlabel("share of each view's pixels blurred away")
    for ax in axes:
        ax.set_ylabel("predicted-class probability")
        ax.legend(fontsize=6.5)
    return fig


def thumbnails_needed(cases: Sequence[Case]) -> list[int]:
    """Indices of cases with a slide and tiles (the ones whose panels draw a heatmap)."""
    return [i for i, c in enumerate(cases) if c.slide is not None and c.tiles is not None]
