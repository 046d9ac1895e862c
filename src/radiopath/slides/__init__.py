"""Cytology slides: reading at physical resolution, cell detection, tiling, QC, stain handling.

The model stage calls::

    from radiopath.slides import TilingConfig, tile_slide, tile_cohort, read_tiles
    table = tile_slide(path, TilingConfig())            # top-K tiles, best first
    out = tile_cohort("manifest.csv", "tiles/", cfg)    # tiles/tiles.parquet, resumable
    patches = read_tiles(path, table)                   # (K, S, S, 3) uint8 at target mpp
"""

from radiopath.slides.cohort import SlideTilingError, read_tile_folder, tile_cohort, tile_slides_cached
from radiopath.slides.config import TilingConfig
from radiopath.slides.reader import Slide, load_mpp_table, open_slide
from radiopath.slides.tiling import TILE_COLUMNS, SlideTiling, read_tiles, tile_slide, tile_slide_result

__all__ = [
    "TILE_COLUMNS",
    "Slide",
    "SlideTiling",
    "SlideTilingError",
    "TilingConfig",
    "load_mpp_table",
    "open_slide",
    "read_tile_folder",
    "read_tiles",
    "tile_cohort",
    "tile_slide",
    "tile_slide_result",
    "tile_slides_cached",
]
