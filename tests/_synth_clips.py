"""Tiny expression clips made per test from a real photo (skimage's astronaut): the face is warped smoothly
along a smile with an ease-in/ease-out intensity curve, with optional head motion and blur. Truth (intensity
per frame, landmarks) comes back with the frames. Used by the analysis tests (quality, tracking, pipeline)."""
from __future__ import annotations

import functools

import cv2
import numpy as np


@functools.lru_cache(maxsize=None)
def base_face(scale: float = 1.0):
    """(image RGB uint8, landmarks (68,2)) of the astronaut photo at `scale`."""
    import skimage.data

    from ckpp_tools.landmarks.dlib_backend import DlibLandmarker

    img = skimage.data.astronaut()
    if scale != 1.0:
        img = cv2.resize(img, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    lm = DlibLandmarker.shared()
    boxes = lm.detect(img, upsample=1, max_side=None)
    return img, lm.predict(img, boxes[0]).astype(np.float64)


def expression_field(landmarks: np.ndarray, kind: str = "smile") -> np.ndarray:
    """Per-landmark displacement (68,2) at full intensity, in pixels."""
    d = np.zeros((68, 2))
    iod = np.linalg.norm(landmarks[36] - landmarks[45])
    if kind == "smile":
        d[48] = (-0.14, -0.10)
        d[54] = (0.14, -0.10)
        d[[49, 59, 60]] = (-0.07, -0.04)
        d[[53, 55, 64]] = (0.07, -0.04)
        d[[57, 58, 56, 66, 65, 67]] += (0, 0.05)
    elif kind == "surprise":
        d[17:27] = (0, -0.12)
        d[[56, 57, 58, 65, 66, 67]] = (0, 0.25)
        d[7:10] = (0, 0.2)
    return d * iod


def warp(img: np.ndarray, src_pts: np.ndarray, disp: np.ndarray, sigma: float) -> np.ndarray:
    """Move image content near src_pts by disp (Gaussian-weighted, smooth); backward map for cv2.remap."""
    h, w = img.shape[:2]
    moving = np.abs(disp).sum(1) > 1e-9
    if not moving.any():
        return img.copy()
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    mx, my = xs.copy(), ys.copy()
    dst = src_pts[moving] + disp[moving]
    num_x = np.zeros_like(xs)
    num_y = np.zeros_like(xs)
    den = np.full_like(xs, 1e-6)
    for p, dv in zip(dst, disp[moving]):
        g = np.exp(-((xs - p[0]) ** 2 + (ys - p[1]) ** 2) / (2 * sigma ** 2)).astype(np.float32)
        num_x += g * dv[0]
        num_y += g * dv[1]
        den += g
    wgt = np.minimum(den, 1.0) / den
    mx -= num_x * wgt
    my -= num_y * wgt
    return cv2.remap(img, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def intensity_curve(n_pre: int, n_rise: int, n_tail: int) -> np.ndarray:
    """0 for n_pre frames, smoothstep rise over n_rise frames, 1 for n_tail frames."""
    u = np.arange(1, n_rise + 1) / n_rise
    return np.concatenate([np.zeros(n_pre), 3 * u ** 2 - 2 * u ** 3, np.ones(n_tail)])


def make_clip(kind: str = "smile", n_pre: int = 6, n_rise: int = 10, n_tail: int = 6, scale: float = 1.0,
              shift_iod: float = 0.0, roll_deg: float = 0.0, blur_sigma: float = 0.0, gray: bool = False,
              noise: float = 0.0, seed: int = 0, crop: tuple | None = None):
    """Frames list + truth dict (intensity, landmarks, onset, peak). Head motion grows linearly over the clip.

    crop: (x0, y0, x1, y1) region of the photo to keep (smaller frames, faster tests).
    """
    img, lm0 = base_face(scale)
    if crop is not None:
        x0, y0, x1, y1 = (int(round(v * scale)) for v in crop)
        img, lm0 = img[y0:y1, x0:x1], lm0 - (x0, y0)
    field = expression_field(lm0, kind)
    iod = np.linalg.norm(lm0[36] - lm0[45])
    inten = intensity_curve(n_pre, n_rise, n_tail) if kind != "none" else np.zeros(n_pre + n_rise + n_tail)
    n = len(inten)
    rng = np.random.default_rng(seed)
    frames, truth_lm = [], []
    cx, cy = lm0[list(range(36, 48))].mean(0)
    for t in range(n):
        f = warp(img, lm0, field * inten[t], sigma=0.18 * iod)
        pts = lm0 + field * inten[t]
        a = t / max(n - 1, 1)
        if shift_iod or roll_deg:
            m = cv2.getRotationMatrix2D((cx, cy), roll_deg * a, 1.0)
            m[0, 2] += shift_iod * iod * a
            f = cv2.warpAffine(f, m, (f.shape[1], f.shape[0]), borderMode=cv2.BORDER_REFLECT)
            pts = pts @ m[:, :2].T + m[:, 2]
        if blur_sigma:
            f = cv2.GaussianBlur(f, (0, 0), blur_sigma)
        if noise:
            f = np.clip(f + rng.normal(0, noise, f.shape), 0, 255).astype(np.uint8)
        if gray:
            f = cv2.cvtColor(f, cv2.COLOR_RGB2GRAY)
        frames.append(np.ascontiguousarray(f))
        truth_lm.append(pts)
    onset = n_pre - 1 if kind != "none" else -1
    peak = n_pre + n_rise - 1 if kind != "none" else -1
    return frames, {"intensity": inten, "landmarks": np.array(truth_lm), "onset": onset, "peak": peak, "iod": iod}
