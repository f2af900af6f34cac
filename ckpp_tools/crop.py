"""One square, fixed-over-time face crop per clip (DESIGN §4): centred on the face, big enough for the
whole head, padded (never shifted) where it leaves the image.

Shared by `prepare` (writing shards) and `generate` (cropping a user's photo the same way).
"""
from __future__ import annotations

import cv2
import numpy as np

#: crop side as a multiple of the landmark extent (brow-to-chin / cheek-to-cheek); ~2 holds the whole head
HEAD_SCALE = 2.0
#: the head's centre sits above the landmark centre (landmarks stop at the brows): fraction of the extent
CENTER_SHIFT_UP = 0.12


def crop_box(landmarks: np.ndarray, scale: float = HEAD_SCALE, shift_up: float = CENTER_SHIFT_UP) -> np.ndarray:
    """Square box [x0, y0, x1, y1] (float, source pixels) from landmarks (68,2) or a stack (T,68,2).

    With a stack the box covers the union of all frames' extents, so it is fixed over time.
    """
    pts = np.asarray(landmarks, dtype=np.float64).reshape(-1, 2)
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    extent = float(max(hi - lo))
    cx, cy = (lo + hi) / 2.0
    cy -= shift_up * extent
    side = scale * extent
    return np.array([cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2], dtype=np.float64)


def _affine(box, size: int) -> np.ndarray:
    x0, y0, x1, y1 = (float(v) for v in box)
    s = size / (x1 - x0)
    return np.array([[s, 0.0, -x0 * s], [0.0, s, -y0 * s]], dtype=np.float64)


def crop_image(image: np.ndarray, box, size: int, border: str = "constant") -> np.ndarray:
    """Crop `box` out of `image` and resize to size×size; outside the image is padded (black, or edge
    pixels with border='replicate'). Grayscale input is replicated to 3 channels."""
    img = np.asarray(image)
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    elif img.shape[2] == 1:
        img = np.repeat(img, 3, axis=2)
    m = _affine(box, size)
    zoom = (float(box[2]) - float(box[0])) / size
    if zoom >= 2.0:
        # warpAffine has no area filter: shrink by an integer factor first (anti-aliasing), then map the
        # shrunk pixel u' (centre at k*u' + (k-1)/2 in the original) through the same affine.
        k = int(zoom)
        h, w = img.shape[:2]
        img = cv2.resize(img[: h - h % k or h, : w - w % k or w], (max(1, w // k), max(1, h // k)), interpolation=cv2.INTER_AREA)
        m = m.copy()
        m[:, 2] += np.array([m[0, 0], m[1, 1]]) * (k - 1) / 2.0
        m[:, :2] *= k
    mode = cv2.BORDER_REPLICATE if border == "replicate" else cv2.BORDER_CONSTANT
    return cv2.warpAffine(img, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=mode, borderValue=(0, 0, 0))


def to_crop(points: np.ndarray, box, size: int) -> np.ndarray:
    """Map source-pixel (x, y) points (…,2) into the size×size crop."""
    x0, y0, x1, y1 = (float(v) for v in box)
    s = size / (x1 - x0)
    p = np.asarray(points, dtype=np.float64)
    return ((p - np.array([x0, y0])) * s).astype(np.float32)


def from_crop(points: np.ndarray, box, size: int) -> np.ndarray:
    """Inverse of to_crop: crop pixels back to source pixels."""
    x0, y0, x1, y1 = (float(v) for v in box)
    s = (x1 - x0) / size
    p = np.asarray(points, dtype=np.float64)
    return (p * s + np.array([x0, y0])).astype(np.float32)
