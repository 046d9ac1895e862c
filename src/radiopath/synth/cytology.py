"""Synthetic liquid-based cytology (LBC) of a thyroid FNA, Papanicolaou-stained.

An LBC preparation is a thin layer of cells on a clear background: groups of follicular
cells (flat honeycomb sheets when benign; crowded, overlapping, papillary groups with
enlarged oval nuclei, pale powdery chromatin, grooves and intranuclear pseudoinclusions in
papillary carcinoma), a few lymphocytes and wisps of thin colloid.

Rendering is physical: each structure adds stain *concentration* to one of three maps
(hematoxylin in nuclei; light-green/EA in cyanophilic cytoplasm; eosin in colloid), and the
colour follows Beer–Lambert, ``I = I0 * exp(-sum_s c_s * OD_s)``, so stain normalisation
methods built on the same model (Macenko 2009, Reinhard 2001) behave on these slides as on
real ones. A center's stain hue, intensity and scanner blur change the optical-density
vectors, the concentrations and a final Gaussian blur.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from radiopath.synth.phenotype import CellPhenotype
from radiopath.synth.spec import CenterSpec

#: Unit optical-density vectors (R, G, B) of the Papanicolaou stains.
OD_HEMATOXYLIN = np.array([0.62, 0.68, 0.40])
OD_CYTOPLASM = np.array([0.78, 0.30, 0.55])  # light green SF / EA: blue-green cytoplasm
OD_EOSIN = np.array([0.10, 0.85, 0.52])  # eosin / orange: pink colloid
BACKGROUND = np.array([243.0, 242.0, 245.0])


def stain_matrix(hue_degrees: float) -> np.ndarray:
    """The three OD vectors as rows, rotated about the gray axis by ``hue_degrees``."""
    od = np.stack([OD_HEMATOXYLIN, OD_CYTOPLASM, OD_EOSIN])
    od = od / np.linalg.norm(od, axis=1, keepdims=True)
    k = np.ones(3) / np.sqrt(3.0)
    t = np.deg2rad(hue_degrees)
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    rot = np.eye(3) + np.sin(t) * kx + (1 - np.cos(t)) * kx @ kx  # Rodrigues
    return np.clip(od @ rot.T, 0.02, None)


@dataclass
class NucleusTruth:
    """Where the nuclei of a rendered image are: the ground truth of nuclear segmentation.

    Attributes:
        labels: ``(n, n)`` int32, 0 = no nucleus, ``k`` = the k-th nucleus stamped; where
            nuclei overlap, the later one owns the pixels (it is drawn on top in the image too,
            as hematoxylin adds up).
        centres: ``(N, 2)`` float, ``x, y`` of every nucleus in pixels (also of those hidden
            under others or cut by the edge).
        kinds: ``(N,)`` str, ``"follicular"`` or ``"lymphocyte"``.
        areas_px: ``(N,)`` int, pixels of each nucleus's own ellipse, before overlap and clipping.
    """

    labels: np.ndarray
    centres: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))
    kinds: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype="<U10"))
    areas_px: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=int))

    @property
    def mask(self) -> np.ndarray:
        """``(n, n)`` bool: pixels inside any nucleus."""
        return self.labels > 0

    @property
    def count(self) -> int:
        """Nuclei stamped (centres inside the image)."""
        return len(self.centres)


class _TruthRecorder:
    """Collects :class:`NucleusTruth` while nuclei are stamped (draws no random numbers)."""

    def __init__(self, n: int) -> None:
        self.labels = np.zeros((n, n), np.int32)
        self.centres: list[tuple[float, float]] = []
        self.kinds: list[str] = []
        self.areas: list[int] = []

    def add(self, body: np.ndarray, x: float, y: float, kind: str) -> None:
        n = self.labels.shape[0]
        if not (0 <= x < n and 0 <= y < n):
            return
        self.centres.append((x, y))
        self.kinds.append(kind)
        self.areas.append(int(body.sum()))
        k = len(self.centres)
        r = body.shape[0] // 2
        xi, yi = round(x) - r, round(y) - r
        x0, y0 = max(xi, 0), max(yi, 0)
        x1, y1 = min(xi + body.shape[1], n), min(yi + body.shape[0], n)
        if x0 < x1 and y0 < y1:
            window = self.labels[y0:y1, x0:x1]
            window[body[y0 - yi : y1 - yi, x0 - xi : x1 - xi]] = k

    def result(self) -> NucleusTruth:
        return NucleusTruth(
            self.labels,
            np.array(self.centres, float).reshape(-1, 2),
            np.array(self.kinds, dtype="<U10"),
            np.array(self.areas, int),
        )


def render_slide(
    cells: CellPhenotype, center: CenterSpec, side_um: float, rng: np.random.Generator
) -> np.ndarray:
    """Level-0 RGB uint8 image of a ``side_um`` × ``side_um`` area at ``center.mpp``."""
    return _render(cells, center, side_um, rng, None)


def render_slide_with_nuclei(
    cells: CellPhenotype, center: CenterSpec, side_um: float, rng: np.random.Generator
) -> tuple[np.ndarray, NucleusTruth]:
    """:func:`render_slide` and where its nuclei are (the same image for the same ``rng``).

    A nucleus's ground-truth region is its ellipse (the pixels where the sprite's body is at
    least half on), before the optics' blur; lymphocytes count as nuclei too.
    """
    recorder = _TruthRecorder(round(side_um / center.mpp))
    image = _render(cells, center, side_um, rng, recorder)
    return image, recorder.result()


def _render(
    cells: CellPhenotype,
    center: CenterSpec,
    side_um: float,
    rng: np.random.Generator,
    truth: _TruthRecorder | None,
) -> np.ndarray:
    mpp = center.mpp
    n = round(side_um / mpp)
    maps = np.zeros((n, n, 3), np.float32)  # concentrations: hematoxylin, cytoplasm, eosin
    sprites = _nucleus_sprites(cells, mpp, rng, _texture(rng))
    placed: list[tuple[float, float, float]] = []
    for _ in range(max(1, round(cells.cellularity * (side_um / 1000.0) ** 2))):
        _follicular_group(maps, cells, mpp, rng, sprites, placed, truth)
    lymph = _nucleus_sprites(_LYMPHOCYTE, mpp, rng, _texture(rng), count=8)
    area_mm2 = (side_um / 1000.0) ** 2
    for _ in range(round(rng.uniform(12, 28) * area_mm2)):
        _lymphocyte(maps, mpp, rng, lymph, truth)
    for _ in range(round(rng.uniform(1.5, 5.0) * area_mm2)):
        _colloid(maps, mpp, rng)
    # Beer-Lambert in one affine transform: ln I = ln I0 - conc @ OD (OpenCV kernels: this is
    # the slow part of a slide otherwise)
    od = stain_matrix(center.stain_hue) * center.stain_intensity
    affine = np.concatenate([-od.T, np.log(BACKGROUND - _GRAIN_MEAN)[:, None]], axis=1).astype(np.float32)
    img = np.empty((n, n, 3), np.uint8)
    for y in range(0, n, 128):  # in bands: small float buffers stay in cache
        img[y : y + 128] = cv2.convertScaleAbs(cv2.exp(cv2.transform(maps[y : y + 128], affine)))
    img = cv2.add(img, _grain(n, rng))  # camera noise (mean _GRAIN_MEAN), saturating
    sigma = max(center.blur / mpp, 0.0) + 0.35  # the optics always blur a little
    return cv2.GaussianBlur(img, (0, 0), sigma)


_GRAIN_MEAN = 4


def _grain(n: int, rng: np.random.Generator) -> np.ndarray:
    """(n, n, 3) uint8 sensor noise, mean ``_GRAIN_MEAN``, sd 1.5: a random 256-px tile repeated
    (drawing n*n*3 normals per slide would cost more than the rest of the slide)."""
    tile = np.clip(np.round(rng.normal(_GRAIN_MEAN, 1.5, (256, 256, 3))), 0, 2 * _GRAIN_MEAN).astype(np.uint8)
    reps = n // 256 + 1
    return np.ascontiguousarray(np.tile(tile, (reps, reps, 1))[:n, :n])


#: Background lymphocytes: small, round, dense nuclei.
_LYMPHOCYTE = CellPhenotype(
    nuclear_diameter_um=6.2,
    elongation=1.05,
    pleomorphism=0.08,
    chromatin_density=1.35,
    spacing=1.0,
    groove_fraction=0.0,
    inclusion_fraction=0.0,
    cellularity=0.0,
)


def _texture(rng: np.random.Generator) -> np.ndarray:
    """A 256×256 field of fine chromatin granules, mean 0, sd about 1."""
    t = cv2.GaussianBlur(rng.standard_normal((256, 256)).astype(np.float32), (0, 0), 0.9)
    return (t - t.mean()) / (t.std() + 1e-6)


def _free_spot(
    n: int, radius_px: float, placed: list[tuple[float, float, float]], rng: np.random.Generator
) -> tuple[float, float]:
    """A centre where a group of ``radius_px`` overlaps earlier groups little (20 tries)."""
    best, best_gap = (n / 2.0, n / 2.0), -np.inf
    margin = min(radius_px, n / 4)
    for _ in range(20):
        x, y = rng.uniform(margin, n - margin, 2)
        gap = min((np.hypot(x - px, y - py) - pr - radius_px for px, py, pr in placed), default=np.inf)
        if gap > 0:
            return float(x), float(y)
        if gap > best_gap:
            best, best_gap = (float(x), float(y)), gap
    return best


def _follicular_group(
    maps: np.ndarray,
    cells: CellPhenotype,
    mpp: float,
    rng: np.random.Generator,
    sprites: list[tuple[np.ndarray, np.ndarray]],
    placed: list[tuple[float, float, float]],
    truth: _TruthRecorder | None = None,
) -> None:
    """A group of follicular cells: a sheet whose crowding follows ``cells.spacing``."""
    n = maps.shape[0]
    d_px = cells.nuclear_diameter_um / mpp
    step = cells.spacing * d_px
    count = int(np.clip(rng.lognormal(np.log(22), 0.6), 5, 90))
    radius = step * np.sqrt(count / np.pi) * 1.1
    cx, cy = _free_spot(n, radius + 2 * step, placed, rng)
    placed.append((cx, cy, radius + step))
    # cell centres: a jittered hexagonal lattice inside an irregular blob
    k = int(np.ceil(radius / step)) + 2
    ii, jj = np.meshgrid(np.arange(-k, k + 1), np.arange(-k, k + 1))
    px = (ii + 0.5 * (jj % 2)) * step
    py = jj * step * 0.866
    ang = np.arctan2(py, px)
    wob = 1.0 + 0.25 * np.sin(2 * ang + rng.uniform(0, 6.3)) + 0.15 * np.sin(3 * ang + rng.uniform(0, 6.3))
    keep = np.hypot(px, py) < radius * wob
    px, py = px[keep], py[keep]
    theta = rng.uniform(0, np.pi)
    rx = px * np.cos(theta) - py * np.sin(theta) + cx + rng.normal(0, 0.12 * step, px.shape)
    ry = px * np.sin(theta) + py * np.cos(theta) + cy + rng.normal(0, 0.12 * step, px.shape)
    inside = (rx > 2) & (rx < n - 3) & (ry > 2) & (ry < n - 3)
    rx, ry = rx[inside], ry[inside]
    if len(rx) == 0:
        return
    # cytoplasm: union of discs, smoothed
    pad = int(step * 1.5) + 4
    x0, y0 = max(int(rx.min()) - pad, 0), max(int(ry.min()) - pad, 0)
    x1, y1 = min(int(rx.max()) + pad, n), min(int(ry.max()) + pad, n)
    cyto = np.zeros((y1 - y0, x1 - x0), np.uint8)
    for x, y in zip(rx, ry, strict=True):
        cv2.circle(cyto, (int(x - x0), int(y - y0)), max(int(step * 0.75), 2), 255, -1, cv2.LINE_AA)
    soft = cv2.GaussianBlur(cyto, (0, 0), max(step * 0.15, 0.8))
    maps[y0:y1, x0:x1, 1] += soft.astype(np.float32) * (rng.uniform(0.22, 0.32) / 255.0)
    for x, y, k in zip(rx, ry, rng.integers(0, len(sprites), len(rx)), strict=True):
        _stamp(maps, sprites[k][0], x, y)
        if truth is not None:
            truth.add(sprites[k][1], float(x), float(y), "follicular")


def _nucleus(
    size_px: float,
    elongation: float,
    density: float,
    groove_p: float,
    inclusion_p: float,
    angle: float,
    rng: np.random.Generator,
    texture: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Hematoxylin concentration of one nucleus: ellipse, chromatin, membrane, groove, inclusion.

    Lower chromatin ``density`` gives the pale, powdery nucleus of papillary carcinoma with an
    accentuated membrane; density near 1 or above gives the dense, evenly dark benign nucleus.
    Also returns the nucleus's region (bool, where its body is at least half on).
    """
    e = elongation * float(np.exp(rng.normal(0, 0.05)))
    a = size_px / 2 * np.sqrt(e)
    b = size_px / 2 / np.sqrt(e)
    r = int(np.ceil(a)) + 2
    dy = np.arange(-r, r + 1, dtype=np.float32)[:, None]
    dx = np.arange(-r, r + 1, dtype=np.float32)[None, :]
    c, s = np.float32(np.cos(angle)), np.float32(np.sin(angle))
    u = (dx * c + dy * s) * np.float32(1 / a)
    v = (dy * c - dx * s) * np.float32(1 / b)
    rho = np.sqrt(u * u + v * v)
    body = np.minimum(np.maximum((1.0 - rho) * np.float32(min(a, b) * 1.2), 0.0), 1.0)
    rim_w = max(1.15 - density, 0.0) * 1.6
    ty, tx = (int(t) for t in rng.integers(0, texture.shape[0] - 2 * r - 1, 2))
    grain = texture[ty : ty + 2 * r + 1, tx : tx + 2 * r + 1]
    conc = np.float32(0.95 * density) + np.float32(0.22 * (1.3 - 0.5 * density)) * grain
    if rim_w > 0:
        conc = conc + np.float32(rim_w) * np.exp(-(((rho - 0.9) * np.float32(1 / 0.12)) ** 2))
    if rng.random() < groove_p:
        conc = conc + 0.9 * np.exp(-((v * np.float32(b / 0.7)) ** 2)) * (np.abs(u) < 0.75)
    if rng.random() < inclusion_p:
        iu, iv = rng.uniform(-0.3, 0.3), rng.uniform(-0.2, 0.2)
        hole = ((u - iu) / 0.38) ** 2 + ((v - iv) / 0.5) ** 2 < 1.0
        conc = np.where(hole, conc * 0.12, conc)
    return np.maximum(conc * body, 0.0), body >= 0.5


def _nucleus_sprites(
    cells: CellPhenotype, mpp: float, rng: np.random.Generator, texture: np.ndarray, count: int = 64
) -> list[tuple[np.ndarray, np.ndarray]]:
    """A library of nuclei drawn from the phenotype, each with its region; cells stamp a random
    one (fast, and at 64 sprites per slide the repetition is invisible among a thousand nuclei)."""
    d_px = cells.nuclear_diameter_um / mpp
    return [
        _nucleus(
            d_px * float(np.exp(rng.normal(0, cells.pleomorphism))),
            cells.elongation,
            cells.chromatin_density,
            cells.groove_fraction,
            cells.inclusion_fraction,
            float(rng.uniform(0, np.pi)),
            rng,
            texture,
        )
        for _ in range(count)
    ]


def _stamp(maps: np.ndarray, sprite: np.ndarray, x: float, y: float, channel: int = 0) -> None:
    """Add ``sprite`` centred on (x, y) to one concentration channel, clipped at the edges."""
    n = maps.shape[0]
    r = sprite.shape[0] // 2
    xi, yi = round(x) - r, round(y) - r
    x0, y0 = max(xi, 0), max(yi, 0)
    x1, y1 = min(xi + sprite.shape[1], n), min(yi + sprite.shape[0], n)
    if x0 < x1 and y0 < y1:
        maps[y0:y1, x0:x1, channel] += sprite[y0 - yi : y1 - yi, x0 - xi : x1 - xi]


def _lymphocyte(
    maps: np.ndarray,
    mpp: float,
    rng: np.random.Generator,
    sprites: list[tuple[np.ndarray, np.ndarray]],
    truth: _TruthRecorder | None = None,
) -> None:
    """A small round lymphocyte: dense nucleus, scant cytoplasm (nuisance background cell)."""
    n = maps.shape[0]
    x, y = rng.uniform(10, n - 10, 2)
    sprite, body = sprites[int(rng.integers(0, len(sprites)))]
    rim = np.zeros_like(sprite)
    cv2.circle(
        rim, (sprite.shape[1] // 2, sprite.shape[0] // 2), int(sprite.shape[0] * 0.45), 0.12, -1, cv2.LINE_AA
    )
    _stamp(maps, rim, float(x), float(y), channel=1)
    _stamp(maps, sprite, float(x), float(y))
    if truth is not None:
        truth.add(body, float(x), float(y), "lymphocyte")


def _colloid(maps: np.ndarray, mpp: float, rng: np.random.Generator) -> None:
    """Thin watery colloid: a faint pink wisp with a few folds."""
    n = maps.shape[0]
    size = min(int(rng.uniform(60, 180) / mpp), n // 2)
    coarse = cv2.GaussianBlur(rng.standard_normal((24, 24)).astype(np.float32), (0, 0), 2.4)
    blob = cv2.resize(coarse, (size, size), interpolation=cv2.INTER_CUBIC)
    g = np.linspace(-2.0, 2.0, size, dtype=np.float32)
    fall = np.exp(-(g[:, None] ** 2 + g[None, :] ** 2) / 2.0)
    wisp = np.maximum(blob / (blob.std() + 1e-6) * fall, 0.0)
    x0, y0 = rng.integers(0, n - size, 2)
    maps[y0 : y0 + size, x0 : x0 + size, 2] += 0.18 * wisp
