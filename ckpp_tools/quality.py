"""Clip quality from landmark trajectories and pixels: blur score, head-motion score, expression intensity and
the neutral->peak trim.

Everything here works on (N,68,2) source-pixel landmark stacks (iBUG-68 order) and is normalised by the
inter-ocular distance (IOD, outer eye corners 36-45, as in 300-W NME), so the numbers mean the same at any
image size. The default thresholds and how they were measured are in docs/prepare-analysis.md.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from scipy.ndimage import gaussian_filter1d, median_filter

# ---- defaults (see docs/prepare-analysis.md for the measured distributions behind them) -------------------
#: blur: variance of the Laplacian of the contrast-normalised 128x128 grayscale face crop; below -> blurry
BLUR_THRESHOLD = 0.012
#: head motion: mean rigid displacement of the stable points from the first frame, in IOD; above -> head_motion
HEAD_MOTION_THRESHOLD = 0.35
#: head rotation (in-plane roll, or estimated yaw) from the first frame, degrees; above -> head_motion
HEAD_ROTATION_THRESHOLD = 7.0
#: smallest expression rise (projected landmark displacement, IOD units) that counts as an expression
MIN_RISE = 0.08
#: a rise must also stand this many noise standard deviations above the landmark jitter
MIN_RISE_SIGMAS = 8.0
#: onset / peak thresholds as fractions of the rise (below: still neutral; above: at the peak)
ONSET_FRACTION = 0.05
PEAK_FRACTION = 0.05

#: points that move with the head but hardly with expressions: upper face outline, nose bridge, eye corners.
#: (Jaw 4-12 moves when the mouth opens, brows and lips are the expression itself.)
STABLE = (0, 1, 2, 3, 13, 14, 15, 16, 27, 28, 29, 30, 36, 39, 42, 45)
#: points whose non-rigid motion is the expression: brows, eyes, nose bottom, mouth, chin
EXPRESSIVE = tuple(range(4, 13)) + tuple(range(17, 27)) + tuple(range(31, 68))
#: outer eye corners (IOD)
EYE_OUTER = (36, 45)


def iod(landmarks: np.ndarray) -> np.ndarray:
    """Inter-ocular distance (outer eye corners) of one (68,2) shape or each of a (N,68,2) stack."""
    pts = np.asarray(landmarks, dtype=np.float64)
    return np.linalg.norm(pts[..., EYE_OUTER[0], :] - pts[..., EYE_OUTER[1], :], axis=-1)


def similarity(src: np.ndarray, dst: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Least-squares similarity (Umeyama) mapping src (K,2) onto dst (K,2): returns (scale, R 2x2, t 2)."""
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    mu_s, mu_d = src.mean(0), dst.mean(0)
    a, b = src - mu_s, dst - mu_d
    var_s = (a ** 2).sum()
    if var_s <= 1e-12:
        return 1.0, np.eye(2), mu_d - mu_s
    u, sig, vt = np.linalg.svd(b.T @ a)
    d = np.sign(np.linalg.det(u @ vt)) or 1.0
    corr = np.diag([1.0, d])
    rot = u @ corr @ vt
    scale = float((sig * np.diag(corr)).sum() / var_s)
    t = mu_d - scale * rot @ mu_s
    return scale, rot, t


def smooth_track(landmarks: np.ndarray) -> np.ndarray:
    """Temporal median over 3 frames: removes single-frame predictor glitches, keeps ramps."""
    lm = np.asarray(landmarks, dtype=np.float64)
    if len(lm) < 3:
        return lm
    return median_filter(lm, size=(3, 1, 1), mode="nearest")


# ---- blur ----------------------------------------------------------------------------------------------------

def face_patch(gray: np.ndarray, landmarks: np.ndarray, size: int = 128) -> np.ndarray:
    """The face region (landmark extent, square, 10% margin) resampled to size x size float32 grayscale."""
    pts = np.asarray(landmarks, dtype=np.float64)
    lo, hi = pts.min(0), pts.max(0)
    side = float(max(hi - lo)) * 1.1
    cx, cy = (lo + hi) / 2
    s = size / max(side, 1.0)
    m = np.array([[s, 0, size / 2 - s * cx], [0, s, size / 2 - s * cy]], dtype=np.float64)
    g = gray if gray.ndim == 2 else cv2.cvtColor(np.ascontiguousarray(gray), cv2.COLOR_RGB2GRAY)
    if s < 0.5:  # shrink with an area filter first so fine texture is averaged, not aliased
        k = int(1 / s)
        g = cv2.resize(g, (max(1, g.shape[1] // k), max(1, g.shape[0] // k)), interpolation=cv2.INTER_AREA)
        m[:, 2] += np.array([m[0, 0], m[1, 1]]) * (k - 1) / 2.0
        m[:, :2] *= k
    return cv2.warpAffine(g, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT).astype(np.float32)


def blur_score(gray: np.ndarray, landmarks: np.ndarray) -> float:
    """Sharpness of the face: variance of the Laplacian of the contrast-normalised 128x128 face crop.

    Normalising the crop size makes it independent of image/face size; dividing by the crop's own variance
    makes it independent of lighting/contrast; gray and colour give the same number (luma only).
    """
    p = face_patch(gray, landmarks)
    p = (p - p.mean()) / (p.std() + 1e-6)
    return float(cv2.Laplacian(p, cv2.CV_32F, ksize=1).var())


# ---- head motion ---------------------------------------------------------------------------------------------

@dataclass
class HeadMotion:
    displacement: float   # max over frames of the mean rigid displacement of the stable points (IOD)
    translation: float    # max centroid translation (IOD)
    roll: float           # max |in-plane rotation| (degrees)
    yaw: float            # max |estimated out-of-plane turn| (degrees)
    scale: float          # max |scale change| (fraction)
    worst_frame: int


def _yaw_asym(pts: np.ndarray) -> np.ndarray:
    """Left/right asymmetry of nose-tip-to-outline distances along the eye axis, per frame (N,)."""
    eye_axis = pts[:, 45] - pts[:, 36]
    eye_axis /= np.linalg.norm(eye_axis, axis=1, keepdims=True) + 1e-9
    nose = pts[:, 30]
    right = pts[:, [0, 1, 2, 3]].mean(1)   # image-left side of the face (subject's right)
    left = pts[:, [13, 14, 15, 16]].mean(1)
    dr = ((nose - right) * eye_axis).sum(1)
    dl = ((left - nose) * eye_axis).sum(1)
    return (dr - dl) / (dr + dl + 1e-9)


#: asymmetry = YAW_GAIN * tan(yaw) for a face whose nose tip sits ~one half-face-width in front of the outline
YAW_GAIN = 1.0


def head_motion(landmarks: np.ndarray) -> HeadMotion:
    """Rigid head motion of a landmark stack relative to its first frames (3-frame median reference).

    A similarity fit on the STABLE points gives translation, roll and scale; yaw comes from the change in
    nose-to-outline asymmetry. Expression (mouth, brows, jaw) does not enter the fit.
    """
    lm = smooth_track(landmarks)
    n = len(lm)
    ref = np.median(lm[: min(3, n)], axis=0)
    ref_s = ref[list(STABLE)]
    d0 = float(iod(ref)) or 1.0
    disp = np.zeros(n)
    trans = np.zeros(n)
    roll = np.zeros(n)
    scl = np.zeros(n)
    for t in range(n):
        s, r, tr = similarity(ref_s, lm[t][list(STABLE)])
        moved = ref_s @ (s * r).T + tr
        disp[t] = np.linalg.norm(moved - ref_s, axis=1).mean() / d0
        trans[t] = np.linalg.norm(moved.mean(0) - ref_s.mean(0)) / d0
        roll[t] = abs(np.degrees(np.arctan2(r[1, 0], r[0, 0])))
        scl[t] = abs(s - 1.0)
    asym = _yaw_asym(lm)
    yaw = np.degrees(np.abs(np.arctan((asym - np.median(asym[: min(3, n)])) / YAW_GAIN)))
    score = np.maximum.reduce([disp / HEAD_MOTION_THRESHOLD, roll / HEAD_ROTATION_THRESHOLD, yaw / HEAD_ROTATION_THRESHOLD])
    return HeadMotion(float(disp.max()), float(trans.max()), float(roll.max()), float(yaw.max()), float(scl.max()),
                      int(score.argmax()))


# ---- expression intensity and trimming -----------------------------------------------------------------------

def aligned_displacement(landmarks: np.ndarray, n_ref: int = 3) -> np.ndarray:
    """Non-rigid displacement of the EXPRESSIVE points from the neutral reference (median of the first n_ref
    frames), after a similarity alignment on the STABLE points, in IOD units: (N, 2*len(EXPRESSIVE))."""
    lm = np.asarray(landmarks, dtype=np.float64)
    n = len(lm)
    ref = np.median(lm[: max(1, min(n_ref, n))], axis=0)
    d0 = float(iod(ref)) or 1.0
    stable = list(STABLE)
    expr = list(EXPRESSIVE)
    out = np.empty((n, 2 * len(expr)))
    for t in range(n):
        s, r, tr = similarity(lm[t][stable], ref[stable])
        aligned = lm[t][expr] @ (s * r).T + tr
        out[t] = ((aligned - ref[expr]) / d0).ravel()
    return out


def expression_intensity(landmarks: np.ndarray, n_ref: int = 3) -> np.ndarray:
    """Per-frame expression intensity (IOD units): the aligned displacement field projected on the clip's
    own expression direction (mean field of its strongest frames). A projection, unlike a norm, has no
    positive bias from landmark jitter, so the neutral level is ~0 and small rises stay visible."""
    d = aligned_displacement(landmarks, n_ref)
    if len(d) < 2:
        return np.zeros(len(d))
    ds = gaussian_filter1d(d, 1.0, axis=0, mode="nearest")
    norms = np.linalg.norm(ds, axis=1)
    top = norms >= 0.8 * norms.max()
    u = ds[top].mean(0)
    nu = np.linalg.norm(u)
    if nu <= 1e-12:
        return np.zeros(len(d))
    return d @ (u / nu)


@dataclass
class Trim:
    onset: int            # index of the last neutral frame before the rise
    peak: int             # index of the first frame of the stationary peak
    rise: float           # peak level - neutral level (IOD units)
    noise: float          # landmark-jitter noise of the intensity (IOD units)
    found: bool           # False: no rise (-> no_expression)
    detail: str = ""


def noise_sigma(signal: np.ndarray) -> float:
    """Robust noise std of a 1-D signal from its second differences (insensitive to smooth ramps)."""
    x = np.asarray(signal, dtype=np.float64)
    if len(x) < 4:
        return 0.0
    d2 = x[:-2] - 2 * x[1:-1] + x[2:]
    return float(np.median(np.abs(d2)) / 0.6745 / np.sqrt(6.0))


def find_trim(intensity: np.ndarray, *, min_rise: float = MIN_RISE, min_sigmas: float = MIN_RISE_SIGMAS,
              onset_fraction: float = ONSET_FRACTION, peak_fraction: float = PEAK_FRACTION) -> Trim:
    """Neutral->peak trim of an intensity curve.

    Soft (ease-in/ease-out) ramps: the onset is the last frame still within a small fraction of the rise
    (and a few noise sigmas) of the neutral level, walking back from the middle of the rise; the peak is the
    first frame within that margin of the peak level. The curve is median- then Gaussian-smoothed (sigma 1
    frame) so single-frame jitter cannot start or end a rise.
    """
    x = np.asarray(intensity, dtype=np.float64)
    n = len(x)
    sigma = noise_sigma(x)
    if n < 3:
        return Trim(0, max(0, n - 1), 0.0, sigma, False, "too few frames to find a rise")
    xs = gaussian_filter1d(median_filter(x, size=3, mode="nearest"), 1.0, mode="nearest")
    base = float(np.median(xs[: min(3, n)]))
    t_max = int(np.argmax(xs))
    top = float(xs[t_max])
    rise = top - base
    need = max(min_rise, min_sigmas * sigma)
    if rise < need:
        return Trim(0, n - 1, rise, sigma, False,
                    f"no expression rise: {rise:.3f} IOD < {need:.3f} (landmark noise {sigma:.4f})")
    mid = base + 0.5 * rise
    t_mid = int(np.argmax(xs >= mid))
    lo = base + max(onset_fraction * rise, 3.0 * sigma * 0.5)
    below = np.nonzero(xs[:t_mid] <= lo)[0]
    onset = int(below[-1]) if len(below) else 0
    # one frame of margin: an ease-in's first moving frames hide under the jitter, and the target allows
    # a little neutral pre-roll but no visible expression at the onset
    onset = max(0, onset - 1)
    hi = top - max(peak_fraction * rise, 3.0 * sigma * 0.5)
    above = np.nonzero(xs[t_mid:] >= hi)[0]
    peak = t_mid + int(above[0]) if len(above) else t_max
    return Trim(onset, peak, rise, sigma, True,
                f"rise {rise:.3f} IOD (noise {sigma:.4f}), onset {onset}, peak {peak}")
