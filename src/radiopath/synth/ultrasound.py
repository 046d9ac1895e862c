"""Synthetic thyroid ultrasound screenshots: one nodule seen in two views.

A B-mode image is rendered from a map of mean echogenicity (skin, subcutaneous fat, strap
muscles, thyroid lobe, trachea and carotid in the transverse view) times fully developed
speckle (the magnitude of low-pass filtered complex Gaussian noise, Rayleigh distributed,
elongated laterally as a linear probe's resolution cell is), then log-like display
compression, and placed in a vendor screenshot with text, depth scale and focus marker — the
"chrome" that real exports carry and that preprocessing must remove.

The transverse view shows the nodule's width × depth, the longitudinal view its length ×
depth; both share the nodule's echogenicity, margin irregularity and calcification load.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from radiopath.synth.phenotype import NodulePhenotype
from radiopath.synth.spec import CenterSpec

#: Screenshot size (width, height) and the scan area inside it.
SCREEN_W, SCREEN_H = 512, 400
SCAN_X0, SCAN_Y0, SCAN_W, SCAN_H = 72, 44, 384, 320
MM_PER_PX = 0.125  # 48 mm wide, 40 mm deep

_VENDOR_COLOURS: dict[str, tuple[int, int, int]] = {
    "SonoVista": (235, 235, 235),
    "EchoLine": (120, 220, 235),
    "UltraView": (235, 215, 120),
}


@dataclass(frozen=True)
class RenderedView:
    """One screenshot and where the nodule lies in it."""

    image: np.ndarray  # (H, W, 3) uint8
    box: tuple[int, int, int, int]  # x0, y0, x1, y1 of the nodule in screenshot pixels
    mask: np.ndarray  # (H, W) uint8, 255 inside the nodule


def render_view(
    nodule: NodulePhenotype, view: str, center: CenterSpec, rng: np.random.Generator, side: str = "RT"
) -> RenderedView:
    """Render the ``transverse`` or ``longitudinal`` view of ``nodule`` as ``center`` would."""
    if view not in ("transverse", "longitudinal"):
        raise ValueError(f"view must be 'transverse' or 'longitudinal', got {view!r}")
    h, w = SCAN_H, SCAN_W
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32) * MM_PER_PX
    echo = _anatomy(xx, yy, view, rng)
    # nodule geometry
    axis_mm = nodule.width_mm if view == "transverse" else nodule.length_mm
    lobe_x = _lobe_extent(view)
    cx = lobe_x[0] + nodule.lateral_pos * (lobe_x[1] - lobe_x[0])
    cy = 10.0 + nodule.depth_pos * 15.0
    inside, rim = _nodule_mask(xx, yy, cx, cy, axis_mm / 2, nodule.depth_mm / 2, nodule.irregularity, rng)
    hetero = 1.0 + 0.12 * _smooth_noise(rng, (h, w), 6.0)
    parenchyma = 0.66
    echo = echo * (1 - inside) + inside * parenchyma * nodule.echogenicity * hetero
    echo = echo * (1.0 - nodule.halo * rim)
    if nodule.cystic > 0.01:
        blobs = _smooth_noise(rng, (h, w), 7.0)
        cut = np.quantile(blobs[inside > 0.5], 1.0 - nodule.cystic) if (inside > 0.5).any() else np.inf
        fluid = inside * np.clip((blobs - cut) * 3.0, 0.0, 1.0)
        echo = echo * (1 - fluid) + 0.03 * fluid
    # attenuation along depth, partly compensated by time-gain compensation
    echo = echo * (1.0 - 0.22 * yy / yy.max())
    speckle = _speckle(rng, (h, w))
    k = 0.95 * center.us_speckle
    intensity = echo * np.clip(1.0 + k * (speckle - 1.0), 0.0, None)
    intensity += _calcifications(xx, yy, inside, nodule.calcifications, rng)
    # display: gain, then gamma (contrast) compression, then 8 bits
    display = np.clip(center.us_gain * intensity / 1.1, 0, None) ** center.us_contrast
    scan = np.clip(display * 235.0, 0, 255).astype(np.uint8)
    scan = cv2.GaussianBlur(scan, (3, 3), 0.6)
    screen, box, mask = _screenshot(scan, inside, view, center, side, cy, rng)
    return RenderedView(screen, box, mask)


def _lobe_extent(view: str) -> tuple[float, float]:
    return (12.0, 38.0) if view == "transverse" else (4.0, 44.0)


def _anatomy(xx: np.ndarray, yy: np.ndarray, view: str, rng: np.random.Generator) -> np.ndarray:
    """Mean echogenicity map of the neck around the thyroid lobe."""
    h, w = xx.shape
    echo = np.full((h, w), 0.24, np.float32)  # deep tissue
    wob = 0.6 * _smooth_noise(rng, (1, w), 20.0)[0]
    skin = 1.1 + wob * 0.2
    fat = 4.0 + wob
    muscle = 8.5 + 0.8 * wob
    echo[yy < muscle] = 0.3
    striation = 1.0 + 0.25 * np.sin(yy * 7.0 + 0.6 * _smooth_noise(rng, (h, w), 8.0))
    echo = np.where(yy < muscle, echo * striation, echo)
    echo[yy < fat] = 0.42
    echo[yy < skin] = 0.95
    if view == "transverse":
        lobe = _soft_ellipse(xx, yy, 25.0, 17.5, 14.5, 9.0, 0.6)
        lobe = np.maximum(lobe, _soft_ellipse(xx, yy, 9.0, 11.5, 7.0, 3.0, 0.6))  # isthmus
    else:
        lobe = _soft_ellipse(xx, yy, 24.0, 17.5, 26.0, 9.5, 0.8)
    echo = echo * (1 - lobe) + 0.66 * lobe
    if view == "transverse":
        # trachea: bright cartilage edge with reverberation and shadow beneath
        trachea = _soft_ellipse(xx, yy, 1.5, 19.0, 7.5, 7.0, 0.5)
        ring = np.clip(trachea - _soft_ellipse(xx, yy, 1.5, 19.0, 6.6, 6.1, 0.5), 0, 1)
        below = (yy > 19.0) & (xx < 8.0)
        echo = echo * (1 - trachea) + trachea * 0.08
        reverb = 0.05 + 0.2 * (np.sin(yy * 2.6) > 0.7) * np.exp(-(yy - 19.0) / 12.0)
        echo = np.where(below, reverb, echo)
        echo = echo + 0.9 * ring
        # carotid artery: anechoic lumen with bright wall, lateral to the lobe
        lumen = _soft_ellipse(xx, yy, 43.5, 20.0, 3.4, 3.2, 0.25)
        wall = np.clip(_soft_ellipse(xx, yy, 43.5, 20.0, 3.9, 3.7, 0.25) - lumen, 0, 1)
        echo = echo * (1 - lumen) + 0.02 * lumen + 0.6 * wall
        # posterior acoustic enhancement behind the fluid-filled carotid
        enh = ((np.abs(xx - 43.5) < 3.0) & (yy > 23.0)).astype(np.float32)
        echo = echo * (1 + 0.35 * enh)
    return echo.astype(np.float32)


def _soft_ellipse(
    xx: np.ndarray, yy: np.ndarray, cx: float, cy: float, a: float, b: float, soft: float
) -> np.ndarray:
    rho = np.sqrt(((xx - cx) / a) ** 2 + ((yy - cy) / b) ** 2)
    return _sigmoid((1.0 - rho) * min(a, b) / soft)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return (1.0 / (1.0 + np.exp(-np.clip(x, -30.0, 30.0)))).astype(np.float32)


def _nodule_mask(
    xx: np.ndarray,
    yy: np.ndarray,
    cx: float,
    cy: float,
    a: float,
    b: float,
    irregularity: float,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Soft mask of a nodule whose margin undulates with relative amplitude ``irregularity``,
    and a thin band just outside its margin (where a halo would be).

    Computed only in the nodule's bounding window; zero elsewhere.
    """
    ks = np.arange(3, 12)
    amp = rng.uniform(0.3, 1.0, len(ks)) / np.sqrt(ks)
    amp = amp / amp.sum()
    phase = rng.uniform(0, 2 * np.pi, len(ks))
    reach = (1.0 + irregularity) * max(a, b) + 2.5  # mm, margin and halo included
    cols = np.nonzero(np.abs(xx[0] - cx) <= reach)[0]
    rows = np.nonzero(np.abs(yy[:, 0] - cy) <= reach)[0]
    inside = np.zeros_like(xx)
    rim = np.zeros_like(xx)
    if len(cols) == 0 or len(rows) == 0:
        return inside, rim
    win = np.s_[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    dx, dy = (xx[win] - cx) / a, (yy[win] - cy) / b
    rho = np.sqrt(dx * dx + dy * dy)
    theta = np.arctan2(dy, dx)
    wave = np.tensordot(amp, np.cos(ks[:, None, None] * theta + phase[:, None, None]), 1)
    radius = 1.0 + irregularity * wave
    edge = 0.25 / min(a, b)  # soft edge of ~0.25 mm, in units of the radius
    rim_width = 0.6 / min(a, b)  # a halo ~0.6 mm thick
    rim[win] = np.exp(-(((rho - radius - rim_width) / rim_width) ** 2))
    inside[win] = _sigmoid((radius - rho) / edge)
    return inside, rim


def _calcifications(
    xx: np.ndarray, yy: np.ndarray, inside: np.ndarray, n: int, rng: np.random.Generator
) -> np.ndarray:
    """Punctate echogenic foci: bright sub-millimetre dots inside the nodule."""
    out = np.zeros_like(inside)
    ys, xs = np.nonzero(inside > 0.9)
    if n == 0 or len(ys) == 0:
        return out
    pick = rng.integers(0, len(ys), n)
    h, w = inside.shape
    for y, x in zip(ys[pick], xs[pick], strict=True):
        r = rng.uniform(0.8, 1.6)
        y0, y1, x0, x1 = max(0, y - 4), min(h, y + 5), max(0, x - 4), min(w, x + 5)
        gy, gx = np.mgrid[y0:y1, x0:x1]
        dist2 = (gy - y) ** 2 + ((gx - x) / 1.4) ** 2
        out[y0:y1, x0:x1] += rng.uniform(0.6, 1.0) * np.exp(-dist2 / (2 * r * r))
    return out


def _speckle(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """Fully developed speckle with mean 1 (Rayleigh magnitude of filtered complex noise)."""
    re = cv2.GaussianBlur(rng.standard_normal(shape).astype(np.float32), (0, 0), sigmaX=1.6, sigmaY=0.8)
    im = cv2.GaussianBlur(rng.standard_normal(shape).astype(np.float32), (0, 0), sigmaX=1.6, sigmaY=0.8)
    mag = np.sqrt(re * re + im * im)
    return mag / float(mag.mean())


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    """Zero-mean, unit-sd smooth noise (for heterogeneity and wobbly boundaries)."""
    n = cv2.GaussianBlur(
        rng.standard_normal(shape).astype(np.float32),
        (0, 0),
        sigmaX=sigma,
        sigmaY=sigma if shape[0] > 1 else 0.01,
    )
    return (n - n.mean()) / (n.std() + 1e-6)


def _screenshot(
    scan: np.ndarray,
    inside: np.ndarray,
    view: str,
    center: CenterSpec,
    side: str,
    focus_mm: float,
    rng: np.random.Generator,
) -> tuple[np.ndarray, tuple[int, int, int, int], np.ndarray]:
    """Place the scan in vendor chrome; return the screenshot, the nodule box and mask."""
    screen = np.zeros((SCREEN_H, SCREEN_W, 3), np.uint8)
    screen[SCAN_Y0 : SCAN_Y0 + SCAN_H, SCAN_X0 : SCAN_X0 + SCAN_W] = scan[:, :, None]
    colour = _VENDOR_COLOURS.get(center.us_vendor, (230, 230, 230))
    font = cv2.FONT_HERSHEY_SIMPLEX
    put = lambda text, org, scale=0.38: cv2.putText(screen, text, org, font, scale, colour, 1, cv2.LINE_AA)  # noqa: E731
    put(center.us_vendor, (8, 16), 0.5)
    put("THYROID  L12-5", (150, 16))
    put(f"MI 0.{rng.integers(6, 10)}  TIS 0.{rng.integers(1, 5)}", (330, 16))
    put(f"Gn {rng.integers(45, 70)}", (8, 70))
    put(f"DR {rng.integers(55, 75)}", (8, 86))
    put(f"FR {rng.integers(18, 34)}Hz", (8, 102))
    put("D 4.0cm", (8, 118))
    label = ("TRANS " if view == "transverse" else "SAG ") + side
    put(label, (8, SCREEN_H - 14), 0.45)
    # gray bar
    bar = np.linspace(255, 0, 120).astype(np.uint8)
    screen[150:270, 20:30] = bar[:, None, None]
    # depth scale with a tick per 5 mm and numbers per cm
    x_scale = SCAN_X0 + SCAN_W + 6
    for mm in range(0, 41, 5):
        y = SCAN_Y0 + int(mm / MM_PER_PX)
        ln = 7 if mm % 10 == 0 else 4
        cv2.line(screen, (x_scale, min(y, SCREEN_H - 1)), (x_scale + ln, min(y, SCREEN_H - 1)), colour, 1)
        if mm % 10 == 0 and mm:
            put(str(mm // 10), (x_scale + 10, y + 4), 0.35)
    # focus marker at the nodule's depth
    fy = SCAN_Y0 + int(focus_mm / MM_PER_PX)
    pts = np.array([[SCAN_X0 - 10, fy - 4], [SCAN_X0 - 3, fy], [SCAN_X0 - 10, fy + 4]], np.int32)
    cv2.fillPoly(screen, [pts], colour)
    mask = np.zeros((SCREEN_H, SCREEN_W), np.uint8)
    mask[SCAN_Y0 : SCAN_Y0 + SCAN_H, SCAN_X0 : SCAN_X0 + SCAN_W] = (inside > 0.5).astype(np.uint8) * 255
    ys, xs = np.nonzero(mask)
    box = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
    return screen, box, mask


#: Colours scanners draw calipers and measurement text in (RGB), with their chances.
MARK_COLOURS: tuple[tuple[tuple[int, int, int], float], ...] = (
    ((255, 255, 255), 0.5),
    ((255, 255, 0), 0.25),
    ((0, 255, 0), 0.15),
    ((0, 255, 255), 0.1),
)


@dataclass(frozen=True)
class MarkedView:
    """A screenshot with burned-in measurement marks, and exactly which pixels they changed."""

    image: np.ndarray  # (H, W, 3) uint8
    marks: np.ndarray  # (H, W) bool, True where a mark changed the pixel


def draw_marks(
    image: np.ndarray,
    nodule_mask: np.ndarray,
    rng: np.random.Generator,
    colour: tuple[int, int, int] | None = None,
) -> MarkedView:
    """Burn a radiologist's measurement into ``image``, as scanners do on exported screenshots.

    Draws caliper crosses ('+', 1 px arms) at both ends of the nodule's widest horizontal
    chord (D1) and, two times in three, at the top and bottom of its central column (D2);
    usually a dotted line between each pair; and the measurement text ("D1 12.3mm") just
    below the nodule or in the scan area's lower-left corner. One colour per image, from
    :data:`MARK_COLOURS`. These are the marks a model must not learn (they are drawn more
    often on suspicious nodules in real archives); ``radiopath.ultrasound.marks`` removes them.

    Args:
        image: screenshot from :func:`render_view` (not modified).
        nodule_mask: ``(H, W)`` mask of the nodule in screenshot pixels (non-zero inside).
        rng: the marks' own random stream.
        colour: RGB of the marks; drawn from :data:`MARK_COLOURS` when None.
    """
    out = image.copy()
    ys, xs = np.nonzero(nodule_mask)
    if len(ys) == 0:
        return MarkedView(out, np.zeros(image.shape[:2], bool))
    if colour is None:
        probs = np.array([p for _, p in MARK_COLOURS])
        colour = MARK_COLOURS[int(rng.choice(len(MARK_COLOURS), p=probs / probs.sum()))][0]
    arm = int(rng.integers(4, 7))
    # D1: the widest row of the nodule
    rows, counts = np.unique(ys, return_counts=True)
    cy = int(rows[int(np.argmax(counts))])
    row_x = xs[ys == cy]
    pairs = [((int(row_x.min()), cy), (int(row_x.max()), cy))]
    if rng.random() < 2 / 3:  # D2: the central column
        cx = int(np.median(xs))
        col_y = ys[xs == cx]
        pairs.append(((cx, int(col_y.min())), (cx, int(col_y.max()))))
    dotted = rng.random() < 0.75
    texts = []
    for k, (p, q) in enumerate(pairs, start=1):
        for x, y in (p, q):
            cv2.line(out, (x - arm, y), (x + arm, y), colour, 1, cv2.LINE_8)
            cv2.line(out, (x, y - arm), (x, y + arm), colour, 1, cv2.LINE_8)
        if dotted:
            _dotted_line(out, p, q, colour, gap=arm + 2)
        dist_mm = float(np.hypot(q[0] - p[0], q[1] - p[1])) * MM_PER_PX
        texts.append(f"D{k} {dist_mm:.1f}mm")
    font, scale = cv2.FONT_HERSHEY_SIMPLEX, 0.38
    if rng.random() < 0.5:  # just below the nodule
        x0, y0 = int(xs.min()), int(ys.max()) + 14
    else:  # the scan area's lower-left corner
        x0, y0 = SCAN_X0 + 6, SCAN_Y0 + SCAN_H - 8 - 13 * (len(texts) - 1)
    for i, text in enumerate(texts):
        y = min(y0 + 13 * i, SCAN_Y0 + SCAN_H - 4)
        x = min(max(x0, SCAN_X0 + 2), SCAN_X0 + SCAN_W - 80)
        cv2.putText(out, text, (x, y), font, scale, colour, 1, cv2.LINE_AA)
    marks = np.any(out != image, axis=2)
    return MarkedView(out, marks)


def _dotted_line(
    img: np.ndarray, p: tuple[int, int], q: tuple[int, int], colour: tuple[int, int, int], gap: int
) -> None:
    """2x2 px dots every 4 px from ``p`` to ``q``, leaving ``gap`` px free around each caliper."""
    length = float(np.hypot(q[0] - p[0], q[1] - p[1]))
    for t in np.arange(gap, length - gap + 1, 4.0):
        x = round(p[0] + (q[0] - p[0]) * t / length)
        y = round(p[1] + (q[1] - p[1]) * t / length)
        img[y : y + 2, x : x + 2] = colour
