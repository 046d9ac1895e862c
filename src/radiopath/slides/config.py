"""Options of the slide pipeline (``radiopath tile``): resolution, tile size, detection, QC.

Thresholds are in physical or optical-density units, never in pixels of one scanner, so the
same options work on slides scanned at 0.25 or 0.5 µm/px.
"""

from __future__ import annotations

from pydantic import Field

from radiopath.config import StrictModel


class TilingConfig(StrictModel):
    """How a slide becomes its ``top_k`` most informative tiles.

    The defaults suit Papanicolaou-stained liquid-based cytology (sparse cells on a clear
    background) and also find tissue on H&E sections.
    """

    target_mpp: float = Field(0.5, gt=0.05, le=16, description="µm per pixel of the tiles")
    tile_size: int = Field(224, ge=16, le=4096, description="tile side in pixels at target_mpp")
    top_k: int = Field(64, ge=1, description="tiles kept per slide, best first")
    # --- low-resolution cell-region detection -------------------------------------------
    detection_mpp: float = Field(4.0, gt=0.1, le=64, description="µm per pixel of the detection image")
    max_detection_side: int = Field(
        4096, ge=256, le=16384, description="cap on the detection image's longer side (coarser mpp beyond)"
    )
    thumbnail_side: int = Field(1024, ge=128, le=8192, description="longer side of the thumbnail PNG")
    od_threshold: float = Field(
        0.06, gt=0, lt=3, description="mean optical density above which a pixel holds stain"
    )
    saturation_threshold: float = Field(
        0.06, ge=0, lt=1, description="chroma (background-relative) above which a pixel is stained"
    )
    pen_od: float = Field(0.8, gt=0, lt=5, description="mean optical density from which a region may be ink")
    pen_uniformity: float = Field(
        0.08, gt=0, lt=1, description="ink is even: local OD variation (sd/mean) below this marks pen"
    )
    pen_min_area_um2: float = Field(
        4000.0, ge=0, description="uniform dark cores smaller than this are debris, not pen marks"
    )
    closing_um: float = Field(
        8.0, ge=0, description="gaps bridged inside a cell group (morphological closing)"
    )
    min_object_um2: float = Field(80.0, ge=0, description="stained specks smaller than this are dropped")
    min_cell_fraction: float = Field(
        0.05, gt=0, le=1, description="share of a tile the cell mask must cover to be a candidate"
    )
    # --- per-tile QC at the target resolution ---------------------------------------------
    min_stained_fraction: float = Field(
        0.02, ge=0, le=1, description="tiles with fewer stained pixels than this are 'background'"
    )
    max_pen_fraction: float = Field(0.02, ge=0, le=1, description="tiles with more ink than this are 'pen'")
    blur_threshold: float = Field(
        100.0,
        ge=0,
        description="Laplacian variance (on stained pixels) below which a tile is 'blur'; at 0.5 µm/px, "
        "in-focus tiles score > 200 and a 2 µm defocus < 60",
    )
    max_reads: int = Field(
        0, ge=0, description="candidate tiles read at most per slide (0 = 4 x top_k, at least 256)"
    )
    threads: int = Field(2, ge=1, le=64, description="threads reading tiles of one slide")

    @property
    def read_budget(self) -> int:
        """How many candidate tiles one slide may read before giving up on finding clean ones."""
        return self.max_reads or max(4 * self.top_k, 256)
