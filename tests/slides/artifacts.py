"""Slide artifacts painted onto synthetic LBC slides for tests: pen marks, air bubbles, debris.

Each painter multiplies transmittance into a level-0 RGB image (Beer-Lambert, like the stains):
pen ink is a dense, coloured, nearly uniform stroke; a bubble is a thin grey refractive ring
on clear glass; debris is small dark grey specks (dust, precipitate).
"""

from __future__ import annotations

import cv2
import numpy as np

#: Transmittance (R, G, B) of common slide markers.
INK = {"blue": (0.12, 0.22, 0.55), "green": (0.10, 0.45, 0.25), "black": (0.08, 0.08, 0.10)}


def _apply(img: np.ndarray, transmittance: np.ndarray, box: tuple[int, int, int, int] | None = None) -> None:
    """Multiply ``transmittance`` into ``img`` (only inside ``box`` = x0, y0, x1, y1 when given)."""
    x0, y0, x1, y1 = box or (0, 0, img.shape[1], img.shape[0])
    part = img[y0:y1, x0:x1].astype(np.float32) * transmittance[y0:y1, x0:x1]
    img[y0:y1, x0:x1] = np.clip(part + 0.5, 0, 255).astype(np.uint8)


def _box(points: np.ndarray, pad: int, shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    x0, y0 = np.maximum(points.min(axis=0) - pad, 0)
    x1, y1 = np.minimum(points.max(axis=0) + pad, [shape[1], shape[0]])
    return int(x0), int(y0), int(x1), int(y1)


def pen_stroke(
    img: np.ndarray, points: list[tuple[int, int]], width_px: int, colour: str, rng: np.random.Generator
) -> None:
    """A marker stroke along ``points``: soft edges, slight streaks of uneven ink."""
    h, w = img.shape[:2]
    pts = np.array(points, np.int32)
    cover = np.zeros((h, w), np.float32)
    cv2.polylines(cover, [pts], False, 1.0, width_px, cv2.LINE_AA)
    cover = cv2.GaussianBlur(cover, (0, 0), max(width_px / 20, 1.0))
    noise = cv2.GaussianBlur(rng.standard_normal((h // 4 + 1, w // 4 + 1)).astype(np.float32), (0, 0), 1)
    streak = 1.0 + 0.06 * cv2.resize(noise, (w, h), interpolation=cv2.INTER_LINEAR)
    od = -np.log(np.asarray(INK[colour], np.float32))[None, None, :] * (cover * streak)[:, :, None]
    _apply(img, np.exp(-od), _box(pts, width_px, img.shape))


def bubble(img: np.ndarray, centre: tuple[int, int], radius_px: int, rim_px: int) -> None:
    """An air bubble: a grey ring (refraction darkens all channels alike) around clear glass."""
    h, w = img.shape[:2]
    ring = np.zeros((h, w), np.float32)
    cv2.circle(ring, centre, radius_px, 1.0, rim_px, cv2.LINE_AA)
    ring = cv2.GaussianBlur(ring, (0, 0), max(rim_px / 3, 0.8))
    corners = np.array([centre, centre]) + np.array([[-1, -1], [1, 1]]) * (radius_px + 2 * rim_px)
    _apply(img, (1.0 - 0.55 * ring)[:, :, None], _box(corners, 0, img.shape))


def debris(img: np.ndarray, count: int, max_radius_px: int, rng: np.random.Generator) -> None:
    """Dark grey specks of dust and precipitate, a few pixels to ``max_radius_px`` across."""
    h, w = img.shape[:2]
    for _ in range(count):
        x, y = int(rng.integers(0, w)), int(rng.integers(0, h))
        r = int(rng.integers(1, max_radius_px + 1))
        dark = np.zeros((2 * r + 1, 2 * r + 1), np.float32)
        cv2.circle(dark, (r, r), r, float(rng.uniform(0.6, 0.9)), -1)
        x0, y0, x1, y1 = max(x - r, 0), max(y - r, 0), min(x + r + 1, w), min(y + r + 1, h)
        sub = dark[y0 - (y - r) : y1 - (y - r), x0 - (x - r) : x1 - (x - r)]
        img[y0:y1, x0:x1] = np.clip(img[y0:y1, x0:x1] * (1.0 - sub)[:, :, None] + 0.5, 0, 255).astype(
            np.uint8
        )
