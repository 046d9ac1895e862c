"""Find burned-in measurement marks (calipers, dotted lines, text) and inpaint them.

Radiologists measure suspicious nodules more often than benign ones, so calipers and
measurement text are a shortcut a network learns happily (the marks, not the nodule,
then predict the label). They must go before a model sees the image.

Marks are what speckle never makes: bright or saturated **thin** strokes, one or two
pixels wide, that are **straight** over several pixels in a scanner's drawing directions.
Speckle grains are a few pixels wide and elongated only laterally, and punctate
calcifications are round blobs, so neither survives the tests below.

1. *Stroke pixels*: white-ish (``>= white_min``) and ``contrast`` brighter than a morphological
   opening across the stroke (a white top-hat with a line element perpendicular to it).
2. *Lines*: stroke pixels that survive an opening with a line of ``line_length`` along each of
   the four drawing directions (0°, 45°, 90°, 135°).
3. *Calipers*: a horizontal and a vertical line crossing ('+'), or the two diagonals ('x').
4. *Dotted lines*: between two calipers, small bright dots along at least a quarter of the
   segment joining them.
5. *Text*: vertical glyph strokes (``stroke_length`` or more) in a row of at least three, all
   of similar height (a line of text), and the bright pixels of that row.
6. *Coloured pixels*: chroma (max-min of RGB) of ``colour_min`` or more: thin coloured
   structures are marks; coloured blobs are colour Doppler, inpainted too unless the
   configuration keeps their luma.

Removal is OpenCV inpainting (``cv2.inpaint``): the fast-marching method of A. Telea, "An
image inpainting technique based on the fast marching method", J. Graphics Tools 9(1), 2004,
or the Navier-Stokes method of M. Bertalmio, A. Bertozzi and G. Sapiro, CVPR 2001. OpenCV's
implementations are used as they are; only the detection is ours, since no library detects
ultrasound calipers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from radiopath.ultrasound.config import MarksConfig

Box = tuple[int, int, int, int]

#: Largest share of saturated pixels around a caliper or a line of text (the mark left out).
MAX_SURROUND = 0.1


@dataclass
class Marks:
    """Burned-in marks found in one image.

    Attributes:
        mask: ``(H, W)`` bool, every pixel to inpaint (marks, and colour if configured).
        marks: ``(H, W)`` bool, the burned-in marks alone (calipers, dotted lines, text, thin colour).
        colour: ``(H, W)`` bool, coloured pixels (Doppler or coloured overlays).
        calipers: centres ``(x, y)`` of the caliper crosses found.
        text_boxes: ``x0, y0, x1, y1`` of each line of text found.
        dotted: number of dotted lines found between calipers.
    """

    mask: np.ndarray
    marks: np.ndarray
    colour: np.ndarray
    calipers: list[tuple[int, int]] = field(default_factory=list)
    text_boxes: list[Box] = field(default_factory=list)
    dotted: int = 0

    @property
    def found(self) -> bool:
        return bool(self.marks.any())

    def summary(self) -> dict[str, int]:
        """Counts for reports: calipers, text lines, dotted lines, mark and colour pixels."""
        return {
            "calipers": len(self.calipers),
            "text_lines": len(self.text_boxes),
            "dotted_lines": self.dotted,
            "mark_pixels": int(self.marks.sum()),
            "colour_pixels": int(self.colour.sum()),
        }


def _line_kernel(length: int, angle: int) -> np.ndarray:
    """A one-pixel line structuring element of ``length`` px at 0, 45, 90 or 135 degrees."""
    if angle == 0:
        return np.ones((1, length), np.uint8)
    if angle == 90:
        return np.ones((length, 1), np.uint8)
    k = np.eye(length, dtype=np.uint8)
    return k if angle == 135 else np.ascontiguousarray(k[::-1])


def _strokes(gray: np.ndarray, angle: int, cfg: MarksConfig) -> np.ndarray:
    """Bright pixels that are thin across ``angle`` (top-hat with the perpendicular line)."""
    across = _line_kernel(5, (angle + 90) % 180)
    tophat = cv2.morphologyEx(gray, cv2.MORPH_TOPHAT, across)
    return ((gray >= cfg.white_min) & (tophat >= cfg.contrast)).astype(np.uint8)


def _lines(strokes: np.ndarray, angle: int, length: int) -> np.ndarray:
    """Stroke pixels on a straight run of at least ``length`` px along ``angle``.

    One-pixel gaps are bridged first: where two arms cross, the crossing pixel is not thin
    across either arm.
    """
    bridged = cv2.morphologyEx(strokes, cv2.MORPH_CLOSE, _line_kernel(3, angle))
    return cv2.morphologyEx(bridged, cv2.MORPH_OPEN, _line_kernel(length, angle))


def find_marks(
    image: np.ndarray, config: MarksConfig | None = None, where: np.ndarray | None = None
) -> Marks:
    """Find burned-in marks in an ``(H, W, 3)`` uint8 RGB image (see the module docstring).

    Args:
        image: the screenshot or scan area.
        config: detection options.
        where: optional ``(H, W)`` bool mask; marks are looked for only there (the scan area).
    """
    cfg = config or MarksConfig()
    if where is not None:
        # look inside the scan area's box only: chrome next to it would fake contrast at its edge
        h, w = image.shape[:2]
        ys, xs = np.nonzero(where)
        if len(ys) == 0:
            empty = np.zeros((h, w), bool)
            return Marks(empty, empty.copy(), empty.copy())
        y0, y1, x0, x1 = int(ys.min()), int(ys.max()) + 1, int(xs.min()), int(xs.max()) + 1
        inner = find_marks(image[y0:y1, x0:x1], cfg, None)
        inside = where[y0:y1, x0:x1]
        planes = []
        for plane in (inner.mask, inner.marks, inner.colour):
            full = np.zeros((h, w), bool)
            full[y0:y1, x0:x1] = plane & inside
            planes.append(full)
        calipers = [(x + x0, y + y0) for x, y in inner.calipers if inside[y, x]]
        boxes = [(a + x0, b + y0, c + x0, d + y0) for a, b, c, d in inner.text_boxes]
        return Marks(planes[0], planes[1], planes[2], calipers, boxes, inner.dotted)
    h, w = image.shape[:2]
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    rgb = image.astype(np.int16)
    colour = (rgb.max(axis=2) - rgb.min(axis=2)) >= cfg.colour_min
    # coloured marks are drawn in the same strokes as white ones: look for both in one map
    bright = np.where(colour, 255, gray).astype(np.uint8)
    strokes = {a: _strokes(bright, a, cfg) for a in (0, 45, 90, 135)}
    thin = strokes[0] | strokes[45] | strokes[90] | strokes[135]
    lines = {a: _lines(strokes[a], a, cfg.line_length) for a in (0, 45, 90, 135)}
    marks = np.zeros((h, w), bool)
    calipers: list[tuple[int, int]] = []
    grow = np.ones((3, 3), np.uint8)
    saturated = bright >= cfg.white_min
    for a, b in ((0, 90), (45, 135)):
        meet = cv2.dilate(lines[a], grow) & cv2.dilate(lines[b], grow)
        n, _, _, cents = cv2.connectedComponentsWithStats(meet, connectivity=8)
        centres = np.zeros((h, w), np.uint8)
        for k in range(1, n):
            cx, cy = (round(float(c)) for c in cents[k])
            edge = cfg.line_length  # a caliper is drawn whole, on tissue, never cut by the scan's edge
            inside = edge <= cx < w - edge and edge <= cy < h - edge
            if inside and not _crowded(saturated, cx, cy, cfg.line_length, diagonal=a == 45):
                calipers.append((cx, cy))
                centres[cy, cx] = 1
        if centres.any():
            near = cv2.dilate(centres, np.ones((2 * cfg.line_length + 3,) * 2, np.uint8))
            arms = (lines[a] | lines[b]) & near
            marks |= _grow_into(arms, thin) > 0
    dotted = 0
    dots = _dots(bright, cfg)
    near_dots = cv2.dilate(dots.astype(np.uint8), grow) > 0
    for i in range(len(calipers)):
        for j in range(i + 1, len(calipers)):
            seg = _dotted_segment(dots, near_dots, calipers[i], calipers[j], cfg)
            if seg is not None:
                marks |= seg
                dotted += 1
    text_mask, text_boxes = _text(bright, cfg)
    marks |= text_mask
    thin_colour = _thin(colour, cfg.line_length)
    marks |= thin_colour
    if cfg.grow:
        k = np.ones((2 * cfg.grow + 1,) * 2, np.uint8)
        marks = cv2.dilate(marks.astype(np.uint8), k) > 0
        colour_grown = cv2.dilate(colour.astype(np.uint8), k) > 0
    else:
        colour_grown = colour
    mask = marks | colour_grown if cfg.colour == "inpaint" else marks.copy()
    return Marks(mask, marks, colour, calipers, text_boxes, dotted)


def _crowded(saturated: np.ndarray, cx: int, cy: int, arm: int, diagonal: bool) -> bool:
    """True when a would-be caliper at ``(cx, cy)`` sits among saturated pixels (skin line,
    bright reflector): a drawn mark lies on tissue, so little around it is saturated once
    the cross's own arms (±1 px) are left out."""
    h, w = saturated.shape
    y0, y1, x0, x1 = max(cy - arm, 0), min(cy + arm + 1, h), max(cx - arm, 0), min(cx + arm + 1, w)
    yy, xx = np.mgrid[y0:y1, x0:x1]
    dy, dx = yy - cy, xx - cx
    arms = (
        (np.abs(dy - dx) <= 1) | (np.abs(dy + dx) <= 1) if diagonal else (np.abs(dy) <= 1) | (np.abs(dx) <= 1)
    )
    rest = saturated[y0:y1, x0:x1][~arms]
    return bool(rest.size == 0 or rest.mean() > MAX_SURROUND)


def _grow_into(seed: np.ndarray, allowed: np.ndarray, steps: int = 2) -> np.ndarray:
    """Extend ``seed`` into connected ``allowed`` pixels (the arm's tips and anti-aliasing)."""
    out = seed.copy()
    k = np.ones((3, 3), np.uint8)
    for _ in range(steps):
        out = cv2.dilate(out, k) & (allowed | seed)
    return out


def _dots(bright: np.ndarray, cfg: MarksConfig) -> np.ndarray:
    """Small bright spots (one or two pixels) much brighter than a 5×5 opening around them."""
    tophat = cv2.morphologyEx(bright, cv2.MORPH_TOPHAT, np.ones((5, 5), np.uint8))
    return (bright >= cfg.white_min) & (tophat >= cfg.contrast)


def _dotted_segment(
    dots: np.ndarray, near: np.ndarray, p: tuple[int, int], q: tuple[int, int], cfg: MarksConfig
) -> np.ndarray | None:
    """Dot pixels along the segment ``p``–``q`` when dots cover at least a quarter of it."""
    length = float(np.hypot(q[0] - p[0], q[1] - p[1]))
    skip = cfg.line_length  # the calipers' own arms
    if length < 4 * skip:
        return None
    h, w = dots.shape
    t = np.arange(skip + 1, length - skip)
    xs = np.clip(np.round(p[0] + (q[0] - p[0]) * t / length).astype(int), 0, w - 1)
    ys = np.clip(np.round(p[1] + (q[1] - p[1]) * t / length).astype(int), 0, h - 1)
    if near[ys, xs].mean() < 0.25:
        return None
    band = np.zeros((h, w), np.uint8)
    cv2.line(band, (int(xs[0]), int(ys[0])), (int(xs[-1]), int(ys[-1])), 1, 5)
    return dots & (band > 0)


def _text(gray: np.ndarray, cfg: MarksConfig) -> tuple[np.ndarray, list[Box]]:
    """Lines of text: at least four vertical glyph stems standing on one baseline (and the
    next line of the same block, just below it, which needs two).

    Anti-aliased glyphs are dimmer than calipers, so stems are looked for with the lower
    ``text_min``/``text_contrast``; what keeps speckle out is the geometry: stems of one
    glyph height whose bottoms lie within a pixel of each other, each within a few glyph
    widths of the next. Inside each line's box, the bright thin pixels are the text.
    """
    h, w = gray.shape
    tophat = cv2.morphologyEx(gray, cv2.MORPH_TOPHAT, _line_kernel(5, 0))
    stems = ((gray >= cfg.text_min) & (tophat >= cfg.text_contrast)).astype(np.uint8)
    vertical = cv2.morphologyEx(stems, cv2.MORPH_OPEN, _line_kernel(cfg.stroke_length, 90))
    _, lab, stats, _ = cv2.connectedComponentsWithStats(vertical, connectivity=8)
    out = np.zeros((h, w), bool)
    boxes: list[Box] = []
    heights = stats[1:, cv2.CC_STAT_HEIGHT]
    tops = stats[1:, cv2.CC_STAT_TOP]
    clear = (tops >= 3) & (tops + heights <= h - 3)  # glyphs are drawn whole, not cut by the edge
    ok = np.flatnonzero((heights <= 3 * cfg.stroke_length) & (stats[1:, cv2.CC_STAT_WIDTH] <= 3) & clear) + 1
    if len(ok) < 4:
        return out, boxes
    uniform = np.array([_uniform(gray, lab, stats[k], k) for k in ok])
    x = stats[ok, cv2.CC_STAT_LEFT] + stats[ok, cv2.CC_STAT_WIDTH] / 2.0
    top = stats[ok, cv2.CC_STAT_TOP]
    bottom = top + stats[ok, cv2.CC_STAT_HEIGHT]
    reach = 4 * cfg.stroke_length + 4  # a few glyph widths
    link = (np.abs(bottom[:, None] - bottom[None, :]) <= 1) & (np.abs(x[:, None] - x[None, :]) <= reach)
    # a line of text is seeded by uniform stems (drawn in one colour); stems dimmed by
    # anti-aliasing over bright speckle then join it when they stand on its baseline
    seeds = link & uniform[:, None] & uniform[None, :]
    groups = []
    for members in _components(seeds):
        if len(members) < 2 or not uniform[members[0]]:
            continue
        grown = set(members.tolist())
        while True:
            nxt = set(np.flatnonzero(link[sorted(grown)].any(axis=0)).tolist()) | grown
            if nxt == grown:
                break
            grown = nxt
        groups.append(np.array(sorted(grown)))
    glyph_pixels = (gray >= cfg.text_min) & (
        cv2.morphologyEx(gray, cv2.MORPH_TOPHAT, np.ones((5, 5), np.uint8)) >= cfg.text_contrast
    )
    lines = [(m, float(x[m].min()), float(x[m].max())) for m in groups if len(m) >= 4]
    # measurements come in left-aligned blocks: the line right below a found line, over the
    # same columns, needs only two stems on a common baseline, and spans the found line's width
    used = np.zeros(len(ok), bool)
    for m, _, _ in lines:
        used[m] = True
    for members, left, right in list(lines):  # from lines found on their own only: no chains
        cap = float(bottom[members].max() - top[members].min())
        base = float(np.median(bottom[members]))
        gap = bottom - base
        near = ~used & (gap >= 0.8 * cap) & (gap <= 2.2 * cap) & (x >= left - cap) & (x <= right + 2 * cap)
        idx = np.flatnonzero(near)
        if len(idx) < 2:
            continue
        best = max((idx[np.abs(bottom[idx] - bottom[i]) <= 1] for i in idx), key=len)
        if len(best) >= 2:
            lines.append((best, min(left, float(x[best].min())), max(right, float(x[best].max()))))
            used[best] = True
    # lines of one block share their width (a line's first glyphs may have no vertical stem)
    spans = [[left, right] for _, left, right in lines]
    for i, (a, _, _) in enumerate(lines):
        for j, (b, _, _) in enumerate(lines):
            cap = float(bottom[a].max() - top[a].min())
            step = float(np.median(bottom[b]) - np.median(bottom[a]))
            overlap = min(spans[i][1], spans[j][1]) - max(spans[i][0], spans[j][0])
            if 0.8 * cap <= step <= 2.2 * cap and overlap > 0:
                lo, hi = min(spans[i][0], spans[j][0]), max(spans[i][1], spans[j][1])
                spans[i] = spans[j] = [lo, hi]
    for (members, _, _), (left, right) in zip(lines, spans, strict=True):
        cap = int(bottom[members].max() - top[members].min())
        x0 = max(int(left) - cap, 0)
        x1 = min(int(right) + cap + 1, w)
        y0 = max(int(top[members].min()) - 2, 0)
        y1 = min(int(bottom[members].max()) + 2, h)
        glyphs = glyph_pixels[y0:y1, x0:x1]
        saturated = (gray[y0:y1, x0:x1] >= cfg.white_min) & ~glyphs
        if saturated.mean() > MAX_SURROUND:
            continue
        boxes.append((x0, y0, x1, y1))
        out[y0:y1, x0:x1] |= glyphs
    return out, boxes


def _uniform(gray: np.ndarray, lab: np.ndarray, stat: np.ndarray, k: int, spread: int = 16) -> bool:
    """True when a vertical stroke keeps one brightness along its length, as a drawn glyph
    stem does (one colour, the same anti-aliasing in every row) and a speckle streak does not."""
    x, y, w, h = (int(v) for v in stat[:4])
    rows = np.where(lab[y : y + h, x : x + w] == k, gray[y : y + h, x : x + w], 0).max(axis=1)
    core = rows[1:-1] if h > 4 else rows
    return int(core.max()) - int(core.min()) <= spread


def _components(adjacency: np.ndarray) -> list[np.ndarray]:
    """Connected groups of a symmetric boolean adjacency matrix (scipy's graph routine)."""
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import connected_components

    n, labels = connected_components(csr_matrix(adjacency), directed=False)
    return [np.flatnonzero(labels == k) for k in range(n)]


def _thin(colour: np.ndarray, length: int) -> np.ndarray:
    """Coloured components that are mostly thin strokes (an opening with a 3×3 square erases
    them) at least ``length`` px long: a speck of Doppler noise is not a mark."""
    c = colour.astype(np.uint8)
    if not c.any():
        return colour.copy()
    n, lab, stats, _ = cv2.connectedComponentsWithStats(c, connectivity=8)
    opened = cv2.morphologyEx(c, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    kept = np.bincount(lab[opened > 0], minlength=n)
    extent = np.maximum(stats[:, cv2.CC_STAT_WIDTH], stats[:, cv2.CC_STAT_HEIGHT])
    thin = (kept < 0.2 * stats[:, cv2.CC_STAT_AREA]) & (extent >= length)
    thin[0] = False
    return thin[lab]


def remove_marks(image: np.ndarray, mask: np.ndarray, config: MarksConfig | None = None) -> np.ndarray:
    """Inpaint ``mask`` in a grey ``(H, W)`` or RGB ``(H, W, 3)`` uint8 image (OpenCV).

    Inpainting alone leaves smooth strokes where the marks were: "ghost" calipers that a
    network could learn as well as the marks themselves. With ``texture`` on (the default),
    speckle is put back: each filled pixel gets the fine texture (value minus its 7×7 local
    mean) of the nearest unmasked pixel a few pixels away, so the filled strokes have the
    grain of the tissue around them.
    """
    cfg = config or MarksConfig()
    if not mask.any():
        return image.copy()
    flag = cv2.INPAINT_TELEA if cfg.method == "telea" else cv2.INPAINT_NS
    filled = cv2.inpaint(image, mask.astype(np.uint8), cfg.radius, flag)
    if not cfg.texture:
        return filled
    return _retexture(filled, mask)


#: Where texture for a filled pixel is borrowed from, nearest first (dy, dx).
_OFFSETS: tuple[tuple[int, int], ...] = tuple(
    (round(r * np.sin(a)), round(r * np.cos(a)))
    for r in (4, 6, 9, 13)
    for a in np.linspace(0, 2 * np.pi, 8, endpoint=False)
)


def _retexture(filled: np.ndarray, mask: np.ndarray) -> np.ndarray:
    f = filled.astype(np.float32)
    resid = f - cv2.blur(f, (7, 7))
    out = f.copy()
    todo = mask.copy()
    free = ~mask
    h, w = mask.shape
    pad = max(max(abs(dy), abs(dx)) for dy, dx in _OFFSETS)
    free_p = np.pad(free, pad, constant_values=False)
    resid_p = np.pad(resid, [(pad, pad), (pad, pad)] + [(0, 0)] * (resid.ndim - 2))
    for dy, dx in _OFFSETS:
        src_free = free_p[pad + dy : pad + dy + h, pad + dx : pad + dx + w]
        take = todo & src_free
        if take.any():
            out[take] = f[take] + resid_p[pad + dy : pad + dy + h, pad + dx : pad + dx + w][take]
            todo &= ~take
        if not todo.any():
            break
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def marks_debug_image(image: np.ndarray, marks: Marks, cleaned: np.ndarray | None = None) -> np.ndarray:
    """What was removed: the image with marks in red and colour in blue, beside the cleaned one.

    Args:
        image: the RGB image the marks were found in.
        marks: the result of :func:`find_marks` on it.
        cleaned: the image after :func:`remove_marks` (shown on the right when given).
    """
    shown = image.copy()
    shown[marks.colour & ~marks.marks] = (0, 90, 255)
    shown[marks.marks] = (255, 0, 0)
    for x, y in marks.calipers:
        cv2.circle(shown, (x, y), 6, (255, 255, 0), 1)
    for x0, y0, x1, y1 in marks.text_boxes:
        cv2.rectangle(shown, (x0, y0), (x1 - 1, y1 - 1), (0, 255, 0), 1)
    if cleaned is None:
        return shown
    if cleaned.ndim == 2:
        cleaned = np.repeat(cleaned[:, :, None], 3, axis=2)
    gap = np.full((shown.shape[0], 4, 3), 255, np.uint8)
    return np.concatenate([shown, gap, cleaned], axis=1)
