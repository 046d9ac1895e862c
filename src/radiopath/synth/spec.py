"""Options of the synthetic cohort generator (``radiopath synth``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from radiopath.config import StrictModel


class CenterSpec(StrictModel):
    """One hospital: its share of patients and how its scanners differ.

    Acquisition differences are independent of the outcome (domain shift, not confounding):
    a model that learns them learns the hospital, not the disease.
    """

    name: str
    cohort: Literal["development", "external"]
    weight: float = Field(1.0, gt=0, description="relative share of patients")
    us_gain: float = Field(1.0, gt=0, description="ultrasound brightness multiplier")
    us_contrast: float = Field(1.0, gt=0, description="display gamma: >1 darker mid-tones, more contrast")
    us_speckle: float = Field(1.0, ge=0, description="speckle strength multiplier")
    us_vendor: str = Field("SonoVista", description="name drawn in the screenshot chrome")
    stain_hue: float = Field(0.0, ge=-45, le=45, description="rotation of stain colours, degrees")
    stain_intensity: float = Field(1.0, gt=0, description="stain concentration multiplier")
    blur: float = Field(0.0, ge=0, description="scanner defocus, Gaussian sigma in µm")
    mpp: float = Field(0.5, gt=0.05, le=4, description="slide resolution, µm per pixel at level 0")


def default_centers() -> list[CenterSpec]:
    """One development center and two external centers with different equipment."""
    return [
        CenterSpec(name="Hospital A", cohort="development", weight=0.6),
        CenterSpec(
            name="Hospital B",
            cohort="external",
            weight=0.2,
            us_gain=1.15,
            us_contrast=0.85,
            us_speckle=1.25,
            us_vendor="EchoLine",
            stain_hue=12.0,
            stain_intensity=0.78,
            blur=0.5,
        ),
        CenterSpec(
            name="Hospital C",
            cohort="external",
            weight=0.2,
            us_gain=0.85,
            us_contrast=1.2,
            us_speckle=0.85,
            us_vendor="UltraView",
            stain_hue=-12.0,
            stain_intensity=1.3,
            blur=0.25,
        ),
    ]


class SynthConfig(StrictModel):
    """A synthetic multi-center cohort with known ground truth.

    The outcome model is documented in :mod:`radiopath.synth.latent`; signal strengths of
    zero make a modality carry no information about LNM.
    """

    patients: int = Field(300, ge=4, description="number of patients over all centers")
    seed: int = Field(0, ge=0)
    prevalence: float = Field(0.45, gt=0.02, lt=0.98, description="expected LNM prevalence")
    us_signal: float = Field(1.0, ge=0, description="weight of the ultrasound latent in the risk")
    cytology_signal: float = Field(1.0, ge=0, description="weight of the cytology latent in the risk")
    clinical_signal: float = Field(0.3, ge=0, description="weight of the clinical latent (age, sex)")
    noise: float = Field(1.0, ge=0, description="sd of the unexplained part of the risk")
    centers: list[CenterSpec] = Field(default_factory=default_centers)
    slide_um: float = Field(1000.0, ge=200, le=20000, description="side of the square slide area, µm")
    missing_us2: float = Field(0.0, ge=0, le=1, description="fraction of patients without the second view")
    missing_cytology: float = Field(0.0, ge=0, le=1, description="fraction of patients without a slide")
    boxes: bool = Field(True, description="write the nodule box of each view (us_1_box, us_2_box)")
    masks: bool = Field(False, description="also write nodule mask images (us_1_mask, us_2_mask)")
    marks_positive: float = Field(
        0.0, ge=0, le=1, description="chance that a view of an LNM+ patient carries calipers and text"
    )
    marks_negative: float = Field(
        0.0, ge=0, le=1, description="same for LNM- patients; unequal chances plant a shortcut to learn"
    )
    workers: int = Field(0, ge=0, description="processes; 0 = one per CPU core")

    @field_validator("centers")
    @classmethod
    def _centers_ok(cls, v: list[CenterSpec]) -> list[CenterSpec]:
        names = [c.name for c in v]
        if len(set(names)) != len(names):
            raise ValueError(f"center names must be unique, got {names}")
        if not any(c.cohort == "development" for c in v):
            raise ValueError("at least one center must be a development center")
        return v

    @model_validator(mode="after")
    def _signal_ok(self) -> SynthConfig:
        if self.us_signal + self.cytology_signal + self.clinical_signal + self.noise == 0:
            raise ValueError("all signal strengths and the noise are zero: the outcome would be constant")
        return self
