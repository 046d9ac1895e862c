"""Every option of the ultrasound preprocessing, in one validated model.

The same :class:`UltrasoundConfig` travels with a trained model (inside the transform's
``state_dict``), so training, prediction and the web page apply exactly the same steps.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from radiopath.config import StrictModel


class ScanAreaConfig(StrictModel):
    """How the scan (the B-mode image) is found inside a screenshot; see :mod:`.scan_area`."""

    use_dicom_regions: bool = Field(
        True, description="use the DICOM Sequence of Ultrasound Regions when it fits the pixels"
    )
    window: float = Field(
        0.04, gt=0, le=0.2, description="side of the texture-density window, as a share of the short side"
    )
    min_density: float = Field(
        0.5, gt=0, lt=1, description="share of textured pixels a window needs to count as scan"
    )
    min_area: float = Field(
        0.05, gt=0, le=1, description="smallest scan area accepted, as a share of the image"
    )
    trim: float = Field(
        0.15,
        ge=0,
        lt=1,
        description="edge rows/columns whose longest scan run is below this share of the widest are "
        "trimmed (text blocks touching the scan)",
    )
    on_failure: Literal["whole_image", "raise"] = Field(
        "whole_image",
        description="no scan area found: use the whole image and flag it, or raise ScanAreaError",
    )


class MarksConfig(StrictModel):
    """How burned-in calipers, dotted lines and text are found and removed; see :mod:`.marks`."""

    enabled: bool = Field(True, description="find and inpaint burned-in marks (off: leave them)")
    white_min: int = Field(230, ge=0, le=255, description="least brightness of a white mark")
    contrast: int = Field(60, ge=1, le=255, description="how much brighter than its surround a caliper is")
    line_length: int = Field(7, ge=3, le=64, description="shortest caliper arm pair, px (a '+' is 2 arms)")
    stroke_length: int = Field(5, ge=3, le=64, description="shortest vertical stroke of a text glyph, px")
    text_min: int = Field(120, ge=0, le=255, description="least brightness of an anti-aliased text stroke")
    text_contrast: int = Field(30, ge=1, le=255, description="how much brighter than its surround text is")
    colour_min: int = Field(60, ge=1, le=255, description="chroma (max-min of RGB) of a coloured pixel")
    colour: Literal["inpaint", "luma"] = Field(
        "inpaint",
        description="coloured pixels (Doppler, coloured overlays): fill from the grey image around "
        "them, or keep their luma",
    )
    method: Literal["telea", "ns"] = Field(
        "telea", description="inpainting: Telea 2004 fast marching, or Bertalmio 2001 Navier-Stokes"
    )
    radius: int = Field(3, ge=1, le=15, description="inpainting neighbourhood, px")
    texture: bool = Field(True, description="put speckle back into inpainted pixels (no smooth ghosts)")
    grow: int = Field(1, ge=0, le=5, description="px added around every mark (anti-aliased edges)")


class IntensityConfig(StrictModel):
    """Per-image normalisation and optional per-center standardisation; see :mod:`.intensity`."""

    percentiles: tuple[float, float] | None = Field(
        (1.0, 99.0), description="map these percentiles of the scan area to 0 and 255; None: keep"
    )
    equalize: Literal["none", "scan", "crop"] = Field(
        "none",
        description="histogram equalisation (removes each scanner's gain, gamma and dynamic range; keeps the "
        "order of grey levels): over the scan area, or over the model's crop (nodule and margin), which "
        "also evens out speckle differences between scanners; replaces the percentile step",
    )
    standardize: bool = Field(
        False,
        description="per-center histogram standardisation (Nyul & Udupa 2000), fitted on development data",
    )
    landmarks: tuple[float, ...] = Field(
        (1, 10, 20, 30, 40, 50, 60, 70, 80, 90, 99),
        description="percentiles used as standardisation landmarks",
    )

    @model_validator(mode="after")
    def _ordered(self) -> IntensityConfig:
        if self.percentiles is not None:
            lo, hi = self.percentiles
            if not 0 <= lo < hi <= 100:
                raise ValueError(f"percentiles must satisfy 0 <= low < high <= 100, got {self.percentiles}")
        lm = list(self.landmarks)
        if len(lm) < 3 or lm != sorted(set(lm)) or lm[0] < 0 or lm[-1] > 100:
            raise ValueError("landmarks must be at least 3 increasing percentiles between 0 and 100")
        return self


class AugmentConfig(StrictModel):
    """Training augmentation; see :mod:`.augment`. Zero turns a step off."""

    rotate_deg: float = Field(10.0, ge=0, le=45, description="largest rotation either way, degrees")
    hflip: float = Field(
        0.5, ge=0, le=1, description="chance of a left-right flip (no up-down flip: depth has a direction)"
    )
    gain: float = Field(0.15, ge=0, lt=1, description="brightness multiplier drawn from 1 ± gain")
    contrast: float = Field(0.2, ge=0, lt=1, description="gamma drawn from exp(± contrast)")
    speckle: float = Field(0.1, ge=0, le=1, description="sd of multiplicative speckle-like noise")
    scale: float = Field(0.1, ge=0, lt=0.5, description="zoom drawn from 1 ± scale")


class UltrasoundConfig(StrictModel):
    """The whole ultrasound preprocessing: screenshot in, model-ready square crop out.

    Steps, in order: scan area → grey conversion and mark removal → nodule region →
    intensity → resize. See :class:`radiopath.ultrasound.UltrasoundTransform`.
    """

    size: int = Field(224, ge=16, le=2048, description="side of the output square, px")
    margin: float = Field(
        0.15, ge=0, le=3, description="added around the nodule on every side, share of its size"
    )
    region: Literal["nodule", "scan"] = Field(
        "nodule", description="crop around the manifest's nodule region (when given) or keep the scan area"
    )
    scan_area: ScanAreaConfig = Field(default_factory=ScanAreaConfig)
    marks: MarksConfig = Field(default_factory=MarksConfig)
    intensity: IntensityConfig = Field(default_factory=IntensityConfig)
    augment: AugmentConfig = Field(default_factory=AugmentConfig)
