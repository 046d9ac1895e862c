"""A very large synthetic pyramidal slide, written in seconds from pre-encoded JPEG tiles.

Tiling must never load level 0 whole; checking that needs a slide whose level 0 would not
fit: 100,000 x 100,000 px (30 GB of RGB). Encoding that many tiles would take minutes, so
each level is made of a few tiles encoded once (glass, and cell-bearing tiles cut from a
rendered LBC image shrunk to the level's scale) and repeated: cell-bearing squares of a few
mm on clear glass, consistent across levels, as a real slide is.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import tifffile

TILE = 256


def _encoded_tiles(images: list[np.ndarray], quality: int) -> list[bytes]:
    """JPEG tile segments exactly as tifffile writes them (YCbCr 2x2, no shared tables)."""
    strip = np.concatenate(images, axis=1)
    with tifffile.TiffFile(_write_small(strip, quality)) as tif:
        page = tif.pages[0]
        fh = tif.filehandle
        out = []
        for off, n in zip(page.dataoffsets, page.databytecounts, strict=True):
            fh.seek(off)
            out.append(fh.read(n))
    return out


def _write_small(strip: np.ndarray, quality: int) -> object:
    import io

    buf = io.BytesIO()
    tifffile.imwrite(
        buf,
        strip,
        tile=(TILE, TILE),
        compression="jpeg",
        compressionargs={"level": quality},
        photometric="rgb",
    )
    buf.seek(0)
    return buf


def write_big_slide(
    path: Path, side: int = 100_000, mpp: float = 0.25, spots: int = 8, spot_px: int = 8192, seed: int = 0
) -> Path:
    """Write a ``side`` x ``side`` pyramidal generic TIFF with ``spots`` cell-bearing squares."""
    from radiopath.synth.cytology import BACKGROUND, render_slide
    from radiopath.synth.phenotype import cells_from_latent
    from radiopath.synth.spec import CenterSpec

    rng = np.random.default_rng(seed)
    center = CenterSpec(name="big", cohort="development", mpp=mpp)
    cells = render_slide(cells_from_latent(0.0, rng), center, 4 * TILE * mpp, rng)  # 1024 px
    glass = np.empty((TILE, TILE, 3), np.uint8)
    glass[:] = BACKGROUND.astype(np.uint8)
    corners = rng.integers(0, side - spot_px, (spots, 2))
    levels = []
    size = side
    while size >= 512:
        levels.append(size)
        size = math.ceil(size / 2)
    with tifffile.TiffWriter(path, bigtiff=True) as tw:
        for i, lsize in enumerate(levels):
            ds = 2**i
            small = cv2.resize(cells, (max(1024 // ds, 1),) * 2, interpolation=cv2.INTER_AREA)
            reps = math.ceil(4 * TILE / small.shape[0])
            texture = np.tile(small, (reps, reps, 1))[: 4 * TILE, : 4 * TILE]
            variants = [
                texture[r * TILE : (r + 1) * TILE, c * TILE : (c + 1) * TILE]
                for r in range(4)
                for c in range(4)
            ]
            coded = _encoded_tiles([glass, *variants], quality=80)
            n = math.ceil(lsize / TILE)

            mid = (np.arange(n) * TILE + TILE // 2) * ds  # level-0 centre of each tile row/column
            inside = np.zeros((n, n), bool)
            for cx, cy in corners:
                inside |= ((mid >= cy) & (mid < cy + spot_px))[:, None] & (
                    (mid >= cx) & (mid < cx + spot_px)
                )[None, :]
            which = np.where(inside, 1 + (np.arange(n)[None, :] % 4) + 4 * (np.arange(n)[:, None] % 4), 0)

            def tiles(which: np.ndarray = which, coded: list[bytes] = coded) -> Iterator[bytes]:
                for k in which.ravel().tolist():
                    yield coded[k]

            px_per_cm = 1e4 / (mpp * ds)
            tw.write(
                tiles(),
                shape=(lsize, lsize, 3),
                dtype=np.uint8,
                tile=(TILE, TILE),
                compression="jpeg",
                photometric="rgb",
                resolution=(px_per_cm, px_per_cm),
                resolutionunit="CENTIMETER",
                subfiletype=0 if i == 0 else 1,
                description="radiopath big synthetic slide" if i == 0 else None,
                metadata=None,
            )
    return path
