"""Region masks from landmarks: filled convex hulls in stored pixels (the mouth mask feeds the local
discriminator D_l, DESIGN §7)."""
from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

from .schema import MOUTH

_SHIFT = 4  # sub-pixel bits for cv2 polygon filling: hulls follow float landmarks to 1/16 px


def region_mask(landmarks: np.ndarray, indices: Sequence[int], size: int | tuple[int, int]) -> np.ndarray:
    """uint8 {0,1} mask (H,W) of the filled convex hull of `landmarks[indices]` ((68,2) x,y pixels).

    size: S (square) or (H, W). Points outside the image are fine (the hull is clipped).
    """
    h, w = (size, size) if np.isscalar(size) else size
    mask = np.zeros((int(h), int(w)), dtype=np.uint8)
    pts = np.asarray(landmarks, dtype=np.float64)[list(indices)]
    if not np.all(np.isfinite(pts)):
        return mask
    # pixel centres are at integer coordinates in OpenCV's raster convention
    hull = cv2.convexHull(np.round(pts * (1 << _SHIFT)).astype(np.int32))
    cv2.fillConvexPoly(mask, hull, 1, lineType=cv2.LINE_8, shift=_SHIFT)
    return mask


def mouth_masks(landmarks: np.ndarray, size: int) -> np.ndarray:
    """(T,S,S) uint8 {0,1}: the mouth hull (landmarks 48-67) of each frame of a (T,68,2) stack."""
    lm = np.asarray(landmarks)
    out = np.zeros((len(lm), size, size), dtype=np.uint8)
    for t in range(len(lm)):
        out[t] = region_mask(lm[t], MOUTH, size)
    return out
