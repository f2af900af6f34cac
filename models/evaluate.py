"""Metrics for `ckpp benchmark` (paper §4 Fig. 3 and more): plain numpy (+ scikit-image), no torch.

Conventions, so numbers from different clips and models are comparable:
- images are (…,H,W,3) uint8 or float in [0,1]; every pixel metric works in [0,1] units;
- landmarks are (…,68,2) pixel (x, y); a frame whose face was not detected has NaN landmarks. Metrics that
  need landmarks use only detected frames (and say how many), the detection rate is reported beside them;
- landmark distances are the mean over the 68 points of the per-point Euclidean distance, divided by the
  inter-ocular distance (eye centres) of the reference face, so clips of any size and face scale compare;
- time is normalised to [0,1] (the expression degree a): the onset is 0, the peak 1.
"""
from __future__ import annotations

import math
from typing import Iterable, Sequence

import numpy as np

from ckpp_tools.schema import LEFT_EYE, RIGHT_EYE

#: number of points of the common time grid used to average curves sampled at different times
GRID_POINTS = 21
#: steps smaller than this (in inter-ocular units) count as "flat", not as a drop (detector jitter)
FLAT_TOL = 1e-3


# ---------------------------------------------------------------- helpers
def to_float01(images) -> np.ndarray:
    """uint8 [0,255] or float [0,1] -> float64 [0,1]."""
    arr = np.asarray(images)
    if arr.dtype == np.uint8:
        return arr.astype(np.float64) / 255.0
    return arr.astype(np.float64)


def interocular(landmarks) -> np.ndarray:
    """Distance between the two eye centres (iBUG 36–41 and 42–47) of (…,68,2) landmarks."""
    lm = np.asarray(landmarks, dtype=np.float64)
    right = lm[..., list(RIGHT_EYE), :].mean(axis=-2)
    left = lm[..., list(LEFT_EYE), :].mean(axis=-2)
    return np.linalg.norm(left - right, axis=-1)


def detected(landmarks) -> np.ndarray:
    """(N,) bool: which frames have landmarks (a face was found)."""
    lm = np.asarray(landmarks, dtype=np.float64)
    return np.isfinite(lm.reshape(lm.shape[0], -1)).all(axis=1)


# ---------------------------------------------------------------- Fig. 3 curve and its summaries
def landmark_curve(landmarks, reference=None) -> np.ndarray:
    """Paper Fig. 3: for each frame, the distance of its landmarks to the initial frame's.

    `landmarks` (N,68,2); `reference` (68,2), default the first frame. Returns (N,) in inter-ocular units
    (mean per-point distance / reference inter-ocular distance); NaN where the frame had no face.
    """
    lm = np.asarray(landmarks, dtype=np.float64)
    ref = lm[0] if reference is None else np.asarray(reference, dtype=np.float64)
    iod = float(interocular(ref))
    if not np.isfinite(iod) or iod <= 0:
        return np.full(lm.shape[0], np.nan)
    return np.linalg.norm(lm - ref[None], axis=-1).mean(axis=-1) / iod


def resample(times, values, grid) -> np.ndarray:
    """Linear interpolation of a curve onto `grid`, skipping NaN samples (all NaN -> all NaN)."""
    t = np.asarray(times, dtype=np.float64)
    v = np.asarray(values, dtype=np.float64)
    ok = np.isfinite(v) & np.isfinite(t)
    g = np.asarray(grid, dtype=np.float64)
    if not ok.any():
        return np.full(g.shape, np.nan)
    order = np.argsort(t[ok])
    return np.interp(g, t[ok][order], v[ok][order])


def curve_gap(times, curve, gt_times, gt_curve) -> float:
    """Mean |model − ground truth| over the model's own (detected) frames, the GT curve interpolated at the
    model's times. 0 means the model's face moves exactly as much as the real one did."""
    c = np.asarray(curve, dtype=np.float64)
    ref = resample(gt_times, gt_curve, times)
    d = np.abs(c - ref)
    d = d[np.isfinite(d)]
    return float(d.mean()) if d.size else float("nan")


def _finite(curve) -> np.ndarray:
    c = np.asarray(curve, dtype=np.float64)
    return c[np.isfinite(c)]


def trend(curve) -> float:
    """Spearman rank correlation of the curve with time, in [-1, 1]: +1 grows steadily (like a real
    expression), ~0 does not move / goes back and forth, −1 moves back toward the input (a reversed video)."""
    c = _finite(curve)
    if c.size < 3 or np.ptp(c) == 0:
        return float("nan")
    from scipy.stats import spearmanr

    return float(spearmanr(np.arange(c.size), c).statistic)


def largest_drop(curve) -> float:
    """Largest fall below the running maximum (inter-ocular units): the face "goes back" by this much
    (the paper's HP "smiles a little, goes back, and smiles again"). 0 for a non-decreasing curve."""
    c = _finite(curve)
    if c.size < 2:
        return float("nan")
    return float(np.max(np.maximum.accumulate(c) - c))


def frac_nondecreasing(curve, tol: float = FLAT_TOL) -> float:
    """Fraction of frame-to-frame steps that do not go down (by more than `tol`)."""
    c = _finite(curve)
    if c.size < 2:
        return float("nan")
    return float(np.mean(np.diff(c) >= -tol))


def jump_ratio(curve, min_range: float = 1e-6) -> float:
    """Largest single-step change divided by the curve's whole range (max − min).

    A steady rise over n steps gives ~1/n; one sudden jump gives ~1 (the paper's "HP jumps"). NaN when the
    curve does not move at all (range < min_range): then there is nothing to jump over.
    """
    c = _finite(curve)
    if c.size < 2:
        return float("nan")
    rng = float(np.ptp(c))
    if rng < min_range:
        return float("nan")
    return float(np.max(np.abs(np.diff(c))) / rng)


def curve_summary(times, curve, gt_times=None, gt_curve=None) -> dict[str, float]:
    """All Fig. 3 numbers for one video: gap to GT (when given), trend, largest drop, fraction of
    non-decreasing steps, largest jump / range, and the final (peak) distance."""
    c = np.asarray(curve, dtype=np.float64)
    fin = _finite(c)
    out = {
        "curve_trend": trend(c),
        "curve_largest_drop": largest_drop(c),
        "curve_frac_nondecreasing": frac_nondecreasing(c),
        "curve_jump_ratio": jump_ratio(c),
        "curve_peak": float(fin[-1]) if fin.size else float("nan"),
    }
    if gt_curve is not None:
        out["curve_gap"] = curve_gap(times, c, gt_times, gt_curve)
    return out


# ---------------------------------------------------------------- per-frame comparisons with ground truth
def nme(pred, gt) -> np.ndarray:
    """(N,) normalised mean error of landmarks: mean per-point distance / GT inter-ocular distance.
    NaN where either side has no landmarks."""
    p = np.asarray(pred, dtype=np.float64)
    g = np.asarray(gt, dtype=np.float64)
    return np.linalg.norm(p - g, axis=-1).mean(axis=-1) / interocular(g)


def psnr(pred, gt) -> np.ndarray:
    """(N,) PSNR in dB of each frame pair (images in [0,1])."""
    from skimage.metrics import peak_signal_noise_ratio

    p, g = to_float01(pred), to_float01(gt)
    out = []
    for a, b in zip(p, g):
        if np.array_equal(a, b):
            out.append(float("inf"))
        else:
            out.append(float(peak_signal_noise_ratio(b, a, data_range=1.0)))
    return np.asarray(out)


#: PSNR reported for identical videos (the ground-truth rows), instead of infinity
PSNR_IDENTICAL = 100.0


def video_psnr(pred, gt) -> float:
    """PSNR (dB) of a whole video: the MSE pooled over all its frames, so one perfect frame (f(I,0) = I)
    cannot make the mean infinite. Identical videos give PSNR_IDENTICAL."""
    p, g = to_float01(pred), to_float01(gt)
    mse = float(np.mean((p - g) ** 2))
    return PSNR_IDENTICAL if mse == 0 else float(min(PSNR_IDENTICAL, 10.0 * np.log10(1.0 / mse)))


def ssim(pred, gt) -> np.ndarray:
    """(N,) SSIM of each frame pair (colour, [0,1]; window shrinks for tiny frames)."""
    from skimage.metrics import structural_similarity

    p, g = to_float01(pred), to_float01(gt)
    win = min(7, p.shape[1], p.shape[2])
    win -= (win + 1) % 2  # odd
    return np.asarray([
        float(structural_similarity(b, a, data_range=1.0, channel_axis=-1, win_size=max(win, 3)))
        for a, b in zip(p, g)
    ])


def l1(pred, gt) -> np.ndarray:
    """(N,) mean absolute pixel difference, [0,1] units."""
    p, g = to_float01(pred), to_float01(gt)
    return np.abs(p - g).reshape(p.shape[0], -1).mean(axis=1)


def masked_l1(pred, gt, mask) -> np.ndarray:
    """(N,) mean absolute difference inside `mask` (N,H,W) — the mouth, where expressions happen.
    NaN for a frame whose mask is empty."""
    p, g = to_float01(pred), to_float01(gt)
    m = np.asarray(mask).astype(bool)
    out = []
    for a, b, k in zip(p, g, m):
        out.append(float(np.abs(a - b)[k].mean()) if k.any() else float("nan"))
    return np.asarray(out)


def frame_changes(frames) -> np.ndarray:
    """(N−1,) mean absolute change between consecutive frames, [0,1] units."""
    f = to_float01(frames)
    if f.shape[0] < 2:
        return np.zeros(0)
    return np.abs(np.diff(f, axis=0)).reshape(f.shape[0] - 1, -1).mean(axis=1)


def smoothness(frames) -> dict[str, float]:
    """Temporal smoothness: mean and max frame-to-frame change. A jump shows as max ≫ mean; a frozen
    video as both ≈ 0. Compare with the ground truth sampled at the same times."""
    d = frame_changes(frames)
    if d.size == 0:
        return {"change_mean": float("nan"), "change_max": float("nan")}
    return {"change_mean": float(d.mean()), "change_max": float(d.max())}


def nearest_indices(times, gt_times) -> np.ndarray:
    """For each model time, the index of the GT frame with the nearest degree (exact when they match)."""
    t = np.asarray(times, dtype=np.float64)[:, None]
    g = np.asarray(gt_times, dtype=np.float64)[None, :]
    return np.argmin(np.abs(t - g), axis=1)


def nanmean(values) -> float:
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    return float(v.mean()) if v.size else float("nan")


# ---------------------------------------------------------------- one video, all metrics
def score_video(
    *,
    frames,
    times,
    landmarks,
    input_landmarks,
    gt_frames,
    gt_landmarks,
    gt_mouth_mask,
    gt_times=None,
    gt_curve=None,
    descriptors: Sequence | None = None,
    input_descriptor=None,
) -> tuple[dict[str, float], np.ndarray]:
    """Every per-clip metric of one generated (or reference) video against its ground truth.

    frames (N,H,W,3) at degrees `times` (N,); landmarks (N,68,2) detected on them (NaN = no face);
    gt_* are the ground-truth frames/landmarks/mouth masks at the same degrees (N,…), already at the
    frames' resolution; input_landmarks (68,2) of the input photo (the curve's reference). gt_times /
    gt_curve: the full ground-truth Fig. 3 curve the gap is measured against. descriptors: (N,) list of
    128-d identity descriptors (None = no face) and input_descriptor the input's.
    Returns (scalar metrics, the Fig. 3 curve (N,)).
    """
    ok = detected(landmarks)
    curve = landmark_curve(landmarks, reference=input_landmarks)
    m: dict[str, float] = {
        "n_frames": float(len(times)),
        "detection_rate": float(ok.mean()) if ok.size else float("nan"),
        "nme": nanmean(nme(landmarks, gt_landmarks)),
        "psnr": video_psnr(frames, gt_frames),
        "ssim": nanmean(ssim(frames, gt_frames)),
        "l1": nanmean(l1(frames, gt_frames)),
        "mouth_l1": nanmean(masked_l1(frames, gt_frames, gt_mouth_mask)),
    }
    m.update(smoothness(frames))
    m.update(curve_summary(times, curve, gt_times, gt_curve))
    if descriptors is not None:
        from ckpp_tools.identity import distance

        d = [distance(x, input_descriptor) for x in descriptors]
        m["identity_distance"] = nanmean(d)
    return m, curve


# ---------------------------------------------------------------- over clips
def bootstrap_ci(values: Iterable[float], n_boot: int = 2000, level: float = 0.95, seed: int = 0) -> dict[str, float]:
    """Mean and percentile-bootstrap `level` interval over clips (NaNs dropped; `n` = clips used).
    One clip gives a zero-width interval; none gives NaNs."""
    v = np.asarray(list(values), dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return {"mean": float("nan"), "lo": float("nan"), "hi": float("nan"), "n": 0}
    mean = float(v.mean())
    if v.size == 1:
        return {"mean": mean, "lo": mean, "hi": mean, "n": 1}
    rng = np.random.default_rng(seed)
    boots = v[rng.integers(0, v.size, size=(n_boot, v.size))].mean(axis=1)
    a = (1.0 - level) / 2.0
    lo, hi = np.quantile(boots, [a, 1.0 - a])
    return {"mean": mean, "lo": float(min(lo, mean)), "hi": float(max(hi, mean)), "n": int(v.size)}


def aggregate_curves(series: Sequence[tuple[Sequence[float], Sequence[float]]], n_boot: int = 2000, seed: int = 0) -> dict:
    """Mean curve with a pointwise 95% bootstrap band over clips.

    `series` is [(times, curve), …] per clip. When every clip was sampled at the same times (a model's 10
    frames) those times are kept; otherwise (ground truth of clips of different lengths) curves are
    interpolated onto a common grid of GRID_POINTS over [0,1].
    """
    if not series:
        return {"t": [], "mean": [], "lo": [], "hi": [], "n": 0}
    first = np.asarray(series[0][0], dtype=np.float64)
    same = all(len(t) == len(first) and np.allclose(np.asarray(t, np.float64), first) for t, _ in series)
    grid = first if same else np.linspace(0.0, 1.0, GRID_POINTS)
    rows = np.stack([
        np.asarray(c, np.float64) if same else resample(t, c, grid) for t, c in series
    ])
    mean, lo, hi = [], [], []
    for k in range(rows.shape[1]):
        s = bootstrap_ci(rows[:, k], n_boot=n_boot, seed=seed)
        mean.append(s["mean"]), lo.append(s["lo"]), hi.append(s["hi"])
    return {"t": [float(x) for x in grid], "mean": mean, "lo": lo, "hi": hi, "n": len(series)}


def summarize(per_clip: Sequence[dict[str, float]], n_boot: int = 2000, seed: int = 0) -> dict[str, dict]:
    """{metric: {mean, lo, hi, n}} over a list of per-clip metric dicts."""
    keys: list[str] = []
    for row in per_clip:
        keys += [k for k in row if k not in keys]
    return {k: bootstrap_ci([row.get(k, math.nan) for row in per_clip], n_boot=n_boot, seed=seed) for k in keys}
