"""The two temporal filters the quality checks use -- running median and Gaussian smoothing along time (axis
0), edges extended ('nearest') -- in numpy, equal to scipy.ndimage's median_filter / gaussian_filter1d to
the bit for what quality.py asks of them (tests/test_quality.py checks). Importing scipy.ndimage costs
~0.2 s, paid by every `ckpp prepare` run and its workers, for filters over a few dozen frames.
"""
from __future__ import annotations

import numpy as np


def _check_axis0(x: np.ndarray, size) -> int:
    k = size if np.isscalar(size) else tuple(size)
    if not np.isscalar(k):
        if len(k) != x.ndim or any(int(s) != 1 for s in k[1:]):
            raise ValueError(f"only filters along axis 0 are supported, got size {size} for shape {x.shape}")
        k = k[0]
    k = int(k)
    if k < 1 or k % 2 == 0:
        raise ValueError(f"median size must be odd, got {k}")
    return k


def median_filter(x, size, mode: str = "nearest") -> np.ndarray:
    """Running median over `size` (odd) samples along axis 0; `size` may be (k, 1, ..., 1)."""
    if mode != "nearest":
        raise ValueError("only mode='nearest' is supported")
    a = np.asarray(x)
    k = _check_axis0(a, size)
    if k == 1 or len(a) == 0:
        return a.copy()
    r = k // 2
    p = np.concatenate([np.repeat(a[:1], r, axis=0), a, np.repeat(a[-1:], r, axis=0)])
    n = len(a)
    return np.median(np.stack([p[j:j + n] for j in range(k)]), axis=0).astype(a.dtype, copy=False)


def _gaussian_weights(sigma: float, radius: int) -> np.ndarray:
    # as scipy.ndimage._filters._gaussian_kernel1d (order 0)
    p = np.polynomial.Polynomial([0, 0, -0.5 / (sigma * sigma)])
    x = np.arange(-radius, radius + 1)
    w = np.exp(p(x), dtype=np.double)
    w /= w.sum()
    return w


def gaussian_filter1d(x, sigma: float, axis: int = -1, mode: str = "nearest", truncate: float = 4.0) -> np.ndarray:
    """Gaussian smoothing along axis 0 (sigma in samples), summed in scipy's order (centre, then the symmetric
    pairs from the outermost in), in double precision. `axis` as scipy's, but it must resolve to 0."""
    if mode != "nearest":
        raise ValueError("only mode='nearest' is supported")
    a = np.asarray(x)
    if a.ndim == 0 or axis % a.ndim != 0:
        raise ValueError("only filtering along axis 0 is supported")
    radius = int(truncate * float(sigma) + 0.5)
    w = _gaussian_weights(float(sigma), radius)
    d = a.astype(np.float64)
    n = len(d)
    if n == 0:
        return a.copy()
    p = np.concatenate([np.repeat(d[:1], radius, axis=0), d, np.repeat(d[-1:], radius, axis=0)])
    out = p[radius:radius + n] * w[radius]
    for j in range(radius, 0, -1):
        out = out + (p[radius - j:radius - j + n] + p[radius + j:radius + j + n]) * w[radius - j]
    return out.astype(a.dtype if a.dtype.kind == "f" else np.float64, copy=False)
