"""From latent risk to what a radiologist or cytopathologist would see.

Each mapping is monotone in its latent, following the ACR TI-RADS suspicious ultrasound
features (hypoechogenicity, taller-than-wide shape, irregular margins, punctate echogenic
foci, size) and the nuclear features of papillary carcinoma in Bethesda cytology (enlarged,
oval, overlapping nuclei, pale powdery chromatin, grooves, intranuclear pseudoinclusions).
A little independent jitter per feature keeps the latent from being read off exactly.
Nuisance properties (nodule position, cellularity, cluster sizes) do not depend on any
latent.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


def _sigmoid(x: float) -> float:
    return float(1.0 / (1.0 + np.exp(-x)))


@dataclass(frozen=True)
class NodulePhenotype:
    """A thyroid nodule in physical units (mm)."""

    width_mm: float  # transverse extent (seen in the transverse view)
    length_mm: float  # cranio-caudal extent (seen in the longitudinal view)
    depth_mm: float  # antero-posterior extent (seen in both)
    echogenicity: float  # nodule / parenchyma echo ratio (<1 hypoechoic)
    irregularity: float  # relative amplitude of margin undulation
    calcifications: int  # punctate echogenic foci
    halo: float  # darkness of a thin hypoechoic rim (a benign feature), 0..1
    cystic: float  # share of the nodule that is fluid (anechoic), a benign feature
    lateral_pos: float  # 0..1 position across the lobe (nuisance)
    depth_pos: float  # 0..1 position in depth within the lobe (nuisance)

    def as_dict(self) -> dict[str, float]:
        return {f"us_{k}": v for k, v in asdict(self).items()}


def nodule_from_latent(u: float, rng: np.random.Generator) -> NodulePhenotype:
    """Nodule features for ultrasound latent ``u`` (higher = more suspicious)."""
    j = rng.standard_normal(7)
    size = 11.0 * float(np.exp(0.22 * u + 0.15 * j[0]))  # largest diameter, mm
    aspect = float(np.exp(0.22 * u + 0.06 * j[1]))  # depth / width; > 1 is taller-than-wide
    width = size / max(aspect, 1.0)
    depth = width * aspect
    length = size * float(np.exp(0.12 * j[2])) * 1.1
    echo = float(np.clip(0.72 - 0.17 * u + 0.04 * j[3], 0.12, 1.15))
    irregular = float(np.clip(0.03 + 0.22 * _sigmoid(1.7 * u - 0.6) + 0.015 * j[4], 0.0, 0.35))
    calcs = int(min(rng.poisson(2.5 * np.exp(0.85 * u)), 45))
    return NodulePhenotype(
        width_mm=width,
        length_mm=length,
        depth_mm=depth,
        echogenicity=echo,
        irregularity=irregular,
        calcifications=calcs,
        halo=float(np.clip(0.55 * _sigmoid(-1.6 * u - 0.3) + 0.05 * j[5], 0.0, 0.7)),
        cystic=float(np.clip(0.35 * _sigmoid(-1.8 * u - 1.2) + 0.03 * j[6], 0.0, 0.4)),
        lateral_pos=float(rng.uniform(0.3, 0.7)),
        depth_pos=float(rng.uniform(0.35, 0.65)),
    )


@dataclass(frozen=True)
class CellPhenotype:
    """Follicular-cell nuclei in physical units (µm)."""

    nuclear_diameter_um: float  # mean nuclear diameter
    elongation: float  # major / minor axis
    pleomorphism: float  # coefficient of variation of nuclear size
    chromatin_density: float  # relative hematoxylin uptake (lower = paler, powdery)
    spacing: float  # centre distance / nuclear diameter (lower = crowded, overlapping)
    groove_fraction: float  # share of nuclei with a longitudinal groove
    inclusion_fraction: float  # share of nuclei with an intranuclear pseudoinclusion
    cellularity: float  # follicular groups per mm² of slide (nuisance)

    def as_dict(self) -> dict[str, float]:
        return {f"cyto_{k}": v for k, v in asdict(self).items()}


def cells_from_latent(c: float, rng: np.random.Generator) -> CellPhenotype:
    """Nuclear features for cytology latent ``c`` (higher = more suspicious)."""
    j = rng.standard_normal(5)
    return CellPhenotype(
        nuclear_diameter_um=float(np.clip(7.6 + 1.25 * c + 0.3 * j[0], 4.5, 14.0)),
        elongation=float(np.clip(1.1 + 0.16 * _sigmoid(1.6 * c) * 2 + 0.03 * j[1], 1.0, 1.8)),
        pleomorphism=float(np.clip(0.08 + 0.06 * _sigmoid(1.5 * c), 0.04, 0.2)),
        chromatin_density=float(np.clip(1.0 - 0.13 * c + 0.03 * j[2], 0.5, 1.4)),
        spacing=float(np.clip(1.32 - 0.13 * c + 0.03 * j[3], 0.8, 1.7)),
        groove_fraction=float(np.clip(0.6 * _sigmoid(1.8 * c - 1.4) + 0.02 * j[4], 0.0, 0.7)),
        inclusion_fraction=float(0.22 * _sigmoid(1.8 * c - 2.6)),
        cellularity=float(rng.uniform(18.0, 34.0)),
    )
