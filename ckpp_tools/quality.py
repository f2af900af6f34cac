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

from .filters1d import gaussian_filter1d, median_filter  # scipy.ndimage's, without its 0.2 s import

# ---- defaults (see docs/prepare-analysis.md for the measured distributions behind them) -------------------
#: blur: variance of the Laplacian of the contrast-normalised 128x128 grayscale face crop; below -> blurry
BLUR_THRESHOLD = 0.016
#: head motion: mean rigid displacement of the stable points from the first frame, in IOD; above -> head_motion
HEAD_MOTION_THRESHOLD = 0.35
#: in-plane head rotation (roll) from the first frame, degrees; above -> head_motion
HEAD_ROTATION_THRESHOLD = 7.0
#: estimated out-of-plane turn (yaw) from the first frame, degrees; above -> head_motion. Looser than roll:
#: the estimate rests on average face depth and reads up to ~7 deg on still faces behind glasses
HEAD_YAW_THRESHOLD = 9.0
#: smallest expression rise (projected landmark displacement, IOD units) that counts as an expression
MIN_RISE = 0.05
#: a rise must also be this many standard errors (from the ramp fit's residual jitter) ...
MIN_RISE_SIGMAS = 5.0
#: ... and the eased ramp must explain this fraction of the intensity curve's variance
MIN_R2 = 0.5
#: frames of margin added before the fitted onset and after the fitted peak. The target is asymmetric: up to 3
#: frames of neutral pre-roll / peak tail are harmless, an unfinished peak is not -- and dlib's landmarks
#: approach an apex unevenly (a jaw drop overshoots, then settles; brows behind glasses creep), so the eased
#: ramp's end can land a frame before the face is at its peak. One frame of tail costs nothing and fixed
#: every early peak on the sample sets (trims within target 108 -> 111 of 114 over 6 sample trees, seeds 0-2);
#: a frame of pre-roll did not help (the ramp's start is located well) and is left at 0.
ONSET_MARGIN = 0
PEAK_MARGIN = 1
#: at most this many frames the onset may move earlier when the full displacement field left neutral before
#: the projected intensity did (refine_onset)
MAX_ONSET_REFINE = 3
#: peak cap: the peak is at most PEAK_CROSS_K frames after the smoothed intensity first reaches PEAK_CROSS of
#: its held level (the median after the fitted ramp). Where the landmarks stall mid-rise and then catch up,
#: the eased fit stretches its end past the face's peak; the crossing does not. Chosen on sample seeds 0-4
#: (182 -> 185 of 190 trims within target), checked on seeds 5-6 (69 -> 70 of 74); 0 disables it
PEAK_CROSS = 0.95
PEAK_CROSS_K = 2
#: shortest rise that counts as an expression, in frames (~130 ms at 30 fps): faster "rises" are landmark
#: jumps (the predictor flipping between two fits, e.g. at a video codec's key frame), not muscles
MIN_RISE_FRAMES = 4.0
#: neutral frames a take must show before its rise (CK++-style videos start neutral; a "rise" already under
#: way in the first frame is a slow landmark drift -- e.g. a drifting head's pose bias -- or a cut-in take)
MIN_NEUTRAL_FRAMES = 2
#: longest rise considered by the ramp fit, in frames (4 s at 30 fps)
MAX_RISE_FRAMES = 120

#: points that move with the head but hardly with expressions: the top of the face outline (temple level),
#: nose bridge, eye corners. (Jaw 2-14 moves when the mouth opens -- dlib also bends the outline's lower
#: half with it -- and brows and lips are the expression itself.) Fits on them are robust (IRLS), so one
#: misplaced point cannot pose as head motion.
STABLE = (0, 1, 15, 16, 27, 28, 29, 30, 36, 39, 42, 45)
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


def robust_similarity(src: np.ndarray, dst: np.ndarray, scale_ref: float, iters: int = 3,
                      c: float = 0.04) -> tuple[float, np.ndarray, np.ndarray]:
    """Similarity fit with Cauchy re-weighting of the residuals (c in units of scale_ref, e.g. IOD): points
    the predictor misplaced (an outline point bent by an open jaw) lose their say."""
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    w = np.ones(len(src))
    for _ in range(iters):
        sw = np.sqrt(w)[:, None]
        mu_s = (w[:, None] * src).sum(0) / w.sum()
        mu_d = (w[:, None] * dst).sum(0) / w.sum()
        s, r, _ = similarity((src - mu_s) * sw, (dst - mu_d) * sw)
        t = mu_d - s * r @ mu_s
        res = np.linalg.norm(src @ (s * r).T + t - dst, axis=1) / max(scale_ref, 1e-9)
        w = 1.0 / (1.0 + (res / c) ** 2)
    return s, r, t


def similarity_batch(src: np.ndarray, dst: np.ndarray, w: np.ndarray | None = None):
    """Weighted least-squares similarities mapping src (K,2) or (N,K,2) onto each dst (N,K,2), all frames at
    once (2-D closed form, no SVD). Returns scale (N,), angle (N,) radians, translation (N,2)."""
    dst = np.asarray(dst, dtype=np.float64)
    src = np.broadcast_to(np.asarray(src, dtype=np.float64), dst.shape)
    w = np.ones(dst.shape[:2]) if w is None else w
    sw = w.sum(1, keepdims=True)
    ms = (w[..., None] * src).sum(1) / sw
    md = (w[..., None] * dst).sum(1) / sw
    a, b = src - ms[:, None], dst - md[:, None]
    den = (w * (a ** 2).sum(-1)).sum(1) + 1e-12
    c = (w * (a[..., 0] * b[..., 0] + a[..., 1] * b[..., 1])).sum(1) / den
    d = (w * (a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0])).sum(1) / den
    scale, ang = np.hypot(c, d), np.arctan2(d, c)
    rot_ms = np.stack([c * ms[:, 0] - d * ms[:, 1], d * ms[:, 0] + c * ms[:, 1]], 1)
    return scale, ang, md - rot_ms


def robust_similarity_batch(src: np.ndarray, dst: np.ndarray, scale_ref: float, iters: int = 3, c: float = 0.04):
    """similarity_batch with Cauchy re-weighting (see robust_similarity), for a whole track at once."""
    dst = np.asarray(dst, dtype=np.float64)
    src = np.broadcast_to(np.asarray(src, dtype=np.float64), dst.shape)
    w = np.ones(dst.shape[:2])
    for _ in range(iters):
        sc, ang, tr = similarity_batch(src, dst, w)
        cs, sn = sc * np.cos(ang), sc * np.sin(ang)
        moved = np.stack([cs[:, None] * src[..., 0] - sn[:, None] * src[..., 1],
                          sn[:, None] * src[..., 0] + cs[:, None] * src[..., 1]], -1) + tr[:, None]
        res = np.linalg.norm(moved - dst, axis=-1) / max(scale_ref, 1e-9)
        w = 1.0 / (1.0 + (res / c) ** 2)
    return similarity_batch(src, dst, w)


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


def _yaw_cues(pts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two per-frame yaw cues (N,), both ~0 for a frontal face and growing with the turn:
    the left/right asymmetry of the nose-bridge-to-outline distances (temple-level outline points) and the
    nose tip's sideways offset from the eyes' midpoint in IOD (the nose stands in front of the eyes)."""
    eye_axis = pts[:, 45] - pts[:, 36]
    d = np.linalg.norm(eye_axis, axis=1) + 1e-9
    eye_axis = eye_axis / d[:, None]
    nose = pts[:, [27, 28, 29, 30]].mean(1)
    right = pts[:, [0, 1]].mean(1)   # image-left side of the face (subject's right)
    left = pts[:, [15, 16]].mean(1)
    dr = ((nose - right) * eye_axis).sum(1)
    dl = ((left - nose) * eye_axis).sum(1)
    asym = (dr - dl) / (dr + dl + 1e-9)
    mid = (pts[:, 39] + pts[:, 42]) / 2
    tip = ((pts[:, 30] - mid) * eye_axis).sum(1) / d
    return asym, tip


#: outline asymmetry ~ YAW_GAIN_OUTLINE * sin(yaw): the nose bridge sits ~half a face width in front of the
#: temple-level outline; nose-tip offset ~ YAW_GAIN_TIP * sin(yaw): the tip is ~0.4 IOD in front of the
#: inner eye corners (average adult anthropometry)
YAW_GAIN_OUTLINE = 0.8
YAW_GAIN_TIP = 0.4
#: frames a yaw reading must persist (running median) before it counts (~170 ms at 30 fps; a real turn holds)
YAW_PERSIST = 5


def yaw_degrees(landmarks: np.ndarray, n_ref: int = 3) -> np.ndarray:
    """Estimated out-of-plane turn (degrees) of each frame relative to the first frames. Both cues must
    agree: the smaller in magnitude (0 when they disagree in sign) is kept, so one misplaced outline or nose
    point cannot fake a turn."""
    pts = np.asarray(landmarks, dtype=np.float64)
    asym, tip = _yaw_cues(pts)
    k = min(n_ref, len(pts))
    y1 = np.degrees(np.arcsin(np.clip((asym - np.median(asym[:k])) / YAW_GAIN_OUTLINE, -1, 1)))
    y2 = np.degrees(np.arcsin(np.clip((tip - np.median(tip[:k])) / YAW_GAIN_TIP, -1, 1)))
    agree = np.sign(y1) == np.sign(y2)
    return np.where(agree, np.sign(y1) * np.minimum(np.abs(y1), np.abs(y2)), 0.0)


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
    sc, ang, tr = robust_similarity_batch(ref_s, lm[:, list(STABLE)], d0)
    cs, sn = sc * np.cos(ang), sc * np.sin(ang)
    moved = np.stack([cs[:, None] * ref_s[:, 0] - sn[:, None] * ref_s[:, 1],
                      sn[:, None] * ref_s[:, 0] + cs[:, None] * ref_s[:, 1]], -1) + tr[:, None]
    disp = np.linalg.norm(moved - ref_s, axis=-1).mean(1) / d0
    trans = np.linalg.norm(moved.mean(1) - ref_s.mean(0), axis=-1) / d0
    roll = np.abs(np.degrees(ang))
    scl = np.abs(sc - 1.0)
    # a turn must persist: the running median over YAW_PERSIST frames, so a cue that jumps for a frame or two
    # (the outline/nose asymmetry flips between fits on some faces after video compression) is not a turn
    yaw = np.abs(yaw_degrees(lm))
    if n >= YAW_PERSIST:
        yaw = median_filter(yaw, size=YAW_PERSIST, mode="nearest")
    score = np.maximum.reduce([disp / HEAD_MOTION_THRESHOLD, roll / HEAD_ROTATION_THRESHOLD, yaw / HEAD_YAW_THRESHOLD])
    return HeadMotion(float(disp.max()), float(trans.max()), float(roll.max()), float(yaw.max()), float(scl.max()),
                      int(score.argmax()))


# ---- expression intensity and trimming -----------------------------------------------------------------------

def default_reference_frames(n: int) -> int:
    """How many leading frames make the neutral reference: a quarter of the clip (at least 3), so a few bad
    first frames (a video codec's warm-up, a blink) are outvoted by the median."""
    return max(3, n // 4)


def aligned_displacement(landmarks: np.ndarray, n_ref: int = 3) -> np.ndarray:
    """Non-rigid displacement of the EXPRESSIVE points from the neutral reference (median of the first n_ref
    frames), after a similarity alignment on the STABLE points, in IOD units: (N, 2*len(EXPRESSIVE))."""
    lm = np.asarray(landmarks, dtype=np.float64)
    n = len(lm)
    ref = np.median(lm[: max(1, min(n_ref, n))], axis=0)
    d0 = float(iod(ref)) or 1.0
    stable = list(STABLE)
    expr = list(EXPRESSIVE)
    # per-frame similarity (scale, angle, translation), smoothed over time: heads move smoothly, while the
    # frame-to-frame jitter of the few stable points would otherwise shake every expressive point
    sc, ang, tr = robust_similarity_batch(lm[:, stable], np.broadcast_to(ref[stable], (n, len(stable), 2)), d0)
    par = np.column_stack([np.log(np.maximum(sc, 1e-9)), ang, tr])
    if n >= 3:
        # translation is taken about the reference centroid so smoothing it does not couple with rotation
        c = ref[stable].mean(0)
        par[:, 2:] -= c - np.stack([np.exp(par[:, 0]) * (np.cos(par[:, 1]) * c[0] - np.sin(par[:, 1]) * c[1]),
                                    np.exp(par[:, 0]) * (np.sin(par[:, 1]) * c[0] + np.cos(par[:, 1]) * c[1])], 1)
        par = gaussian_filter1d(median_filter(par, size=(3, 1), mode="nearest"), 1.0, axis=0, mode="nearest")
        par[:, 2:] += c - np.stack([np.exp(par[:, 0]) * (np.cos(par[:, 1]) * c[0] - np.sin(par[:, 1]) * c[1]),
                                    np.exp(par[:, 0]) * (np.sin(par[:, 1]) * c[0] + np.cos(par[:, 1]) * c[1])], 1)
    aligned = np.empty((n, len(expr), 2))
    for t in range(n):
        sc, th = np.exp(par[t, 0]), par[t, 1]
        m = sc * np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]])
        aligned[t] = lm[t][expr] @ m.T + par[t, 2:]
    k = max(1, min(n_ref, n))
    zero = np.median(aligned[:k], axis=0)
    return ((aligned - zero) / d0).reshape(n, 2 * len(expr))


def expression_intensity(landmarks: np.ndarray, n_ref: int | None = None, field_out: list | None = None) -> np.ndarray:
    """Per-frame expression intensity (IOD units): the aligned displacement field projected on the clip's
    own expression direction (mean field of its strongest frames).

    A projection, unlike a norm, has no positive bias from landmark jitter, so the neutral level is ~0. The
    direction is cross-fitted (even frames are projected on the direction found from the odd ones and vice
    versa): a direction fitted to a frame's own jitter would make pure jitter look like a rise.
    """
    if n_ref is None:
        n_ref = default_reference_frames(len(landmarks))
    d = aligned_displacement(landmarks, n_ref)
    n = len(d)
    if n < 2:
        return np.zeros(n)
    if n >= 6:
        # whiten: each coordinate in units of its own jitter, so the points the predictor places worst (jaw
        # outline, brows behind glasses) weigh least. The jitter is what a rank-1 model (one expression
        # direction, scaled over time) leaves unexplained, so the ramp itself does not count as noise.
        nrm = np.linalg.norm(gaussian_filter1d(d, 1.0, axis=0, mode="nearest"), axis=1)
        u0 = d[nrm >= 0.7 * nrm.max()].mean(0)
        u0 /= np.linalg.norm(u0) + 1e-12
        resid = d - np.outer(d @ u0, u0)
        sig = np.median(np.abs(resid - np.median(resid, axis=0)), axis=0) / 0.6745
        sig = np.maximum(sig, max(0.5 * float(np.median(sig)), 1e-3))
        d = d / sig * float(np.median(sig))
    if field_out is not None:
        field_out.append(d)
    norms = np.linalg.norm(gaussian_filter1d(d, 1.0, axis=0, mode="nearest"), axis=1)
    top = norms >= 0.7 * norms.max()
    bottom = norms <= 0.3 * norms.max()
    bottom[: max(1, min(n_ref, n))] = True
    idx = np.arange(n)
    out = np.zeros(n)
    for part in (0, 1):
        mine = idx % 2 == part
        hi, lo = ~mine & top, ~mine & bottom
        if not hi.any() or not lo.any():
            hi, lo = top, bottom
        # direction = difference of means (strongest minus most neutral frames): the reference shape cancels,
        # so a frame's own jitter never enters the direction it is projected on
        u = d[hi].mean(0) - d[lo].mean(0)
        nu = np.linalg.norm(u)
        if nu > 1e-12:
            out[mine] = d[mine] @ (u / nu)
    return out - np.median(out[: max(1, min(n_ref, n))])


@dataclass
class Trim:
    onset: int            # index of the last neutral frame before the rise
    peak: int             # index of the first frame of the stationary peak
    rise: float           # peak level - neutral level (IOD units)
    noise: float          # landmark-jitter noise of the intensity (IOD units)
    found: bool           # False: no rise (-> no_expression)
    detail: str = ""
    jump: bool = False    # not found because the only change was a jump (onset/peak: the jump's frames)


def noise_sigma(signal: np.ndarray) -> float:
    """Robust noise std of a 1-D signal from its second differences (insensitive to smooth ramps)."""
    x = np.asarray(signal, dtype=np.float64)
    if len(x) < 4:
        return 0.0
    d2 = x[:-2] - 2 * x[1:-1] + x[2:]
    return float(np.median(np.abs(d2)) / 0.6745 / np.sqrt(6.0))


def _smoothstep(u: np.ndarray) -> np.ndarray:
    u = np.clip(u, 0.0, 1.0)
    return u * u * (3.0 - 2.0 * u)


#: fit_ramp's coarse grid (every start x every length, each a whole-clip smoothstep) is evaluated densely up
#: to this many frames: O(n^2 * MAX_RISE_FRAMES) time and memory -- 0.1 GB and ~1 s at 300 frames, ~9 GB at
#: 3,000 (the default --max-frames), beyond any machine at 10,000. Longer clips use _best_integer_grid: the
#: same sums from each ramp's few frames plus suffix sums, O(n * MAX_RISE_FRAMES^2), equal up to rounding
#: (4e-16 over 60 random curves, same t0/t1 in all); clips up to here (every test and sample take, CK+
#: sequences) give the very same trims as before.
DENSE_FIT_MAX = 100


def _best_integer_grid(x: np.ndarray, w: np.ndarray, t0s: np.ndarray, lens: np.ndarray):
    """fit_ramp's grid search for integer starts t0s (consecutive) and integer lengths `lens`, without the
    (rows x frames) matrix: for start t0 and length L the smoothstep is 0 up to t0, smoothstep(j/L) at t0+j
    (0 < j < L) and 1 from t0+L on, so each weighted sum is a length-L window plus a suffix sum. Same
    return value as best() (ties: the first row in (t0, L) order)."""
    from numpy.lib.stride_tricks import sliding_window_view

    n = len(x)
    t0s = np.asarray(t0s, dtype=np.float64)
    lens = np.asarray(lens, dtype=np.float64)
    if not (np.all(t0s == np.round(t0s)) and np.all(np.diff(t0s) == 1) and np.all(lens == np.round(lens))):
        raise ValueError("the sparse grid needs consecutive integer starts and integer lengths")
    lo = int(t0s[0])
    pad = max(0, -lo)
    wp = np.concatenate([np.zeros(pad), w])
    wxp = np.concatenate([np.zeros(pad), w * x])
    suf_w = np.concatenate([np.cumsum(w[::-1])[::-1], [0.0]])           # suf_w[k] = sum_{t >= k} w_t
    suf_wx = np.concatenate([np.cumsum((w * x)[::-1])[::-1], [0.0]])
    sw, swx, swxx = w.sum(), (w * x).sum(), (w * x * x).sum()
    sse = np.full((len(t0s), len(lens)), np.inf)
    coef = np.full((len(t0s), len(lens), 2), np.nan)
    any_ok = False
    for li, L in enumerate(lens.astype(int)):
        if L <= 0:
            continue
        ok = t0s + L <= n - 1 + 1e-9
        if not ok.any():
            continue
        any_ok = True
        k = np.nonzero(ok)[0]
        t0 = t0s[k].astype(int)
        sj = _smoothstep(np.arange(L) / L)                                # j = 0..L-1 (s_0 = 0)
        sl = slice(t0[0] + pad, t0[-1] + pad + 1)
        win_w = sliding_window_view(wp, L)[sl]                           # w[t0 .. t0+L-1] per start
        win_wx = sliding_window_view(wxp, L)[sl]
        s1 = win_w @ sj + suf_w[t0 + L]
        s2 = win_w @ (sj * sj) + suf_w[t0 + L]
        sxy = win_wx @ sj + suf_wx[t0 + L]
        det = sw * s2 - s1 * s1
        det = np.where(np.abs(det) < 1e-12, np.nan, det)
        a = (sw * sxy - s1 * swx) / det
        b = (swx - a * s1) / sw
        e = swxx - b * swx - a * sxy
        sse[k, li] = np.where((a > 0) & np.isfinite(e), e, np.inf)
        coef[k, li, 0], coef[k, li, 1] = b, a
    if not any_ok:
        return None
    i = int(np.argmin(sse.ravel()))
    r, c = divmod(i, len(lens))
    return t0s[r], lens[c], coef[r, c, 0], coef[r, c, 1], sse[r, c]


def fit_ramp(x: np.ndarray, max_rise: int = MAX_RISE_FRAMES, iters: int = 3) -> tuple[float, float, float, float, float]:
    """Robust least-squares fit of  b + a * smoothstep((t - t0) / (t1 - t0))  to x (an eased neutral->peak
    ramp).

    Grid search (1 frame, then 0.25 frame around the best) with b, a solved in closed form, re-weighted
    (Cauchy) so a few frames of landmark failure cannot bend the fit. Returns (t0, t1, b, a, residual std).
    The fit uses every frame, so it locates a soft ramp's start and end far more steadily under landmark
    jitter than any threshold crossing.
    """
    x = np.asarray(x, dtype=np.float64)
    n = len(x)
    t = np.arange(n, dtype=np.float64)

    def best(t0s, lens, w, sparse=False):
        if sparse:
            return _best_integer_grid(x, w, t0s, lens)
        t0g, lg = np.meshgrid(t0s, lens, indexing="ij")
        t0g, lg = t0g.ravel(), lg.ravel()
        ok = (lg > 0) & (t0g + lg <= n - 1 + 1e-9)
        t0g, lg = t0g[ok], lg[ok]
        if len(t0g) == 0:
            return None
        S = _smoothstep((t[None, :] - t0g[:, None]) / lg[:, None])
        sw, swx, swxx = w.sum(), (w * x).sum(), (w * x * x).sum()
        s1, s2, sxy = S @ w, (S * S) @ w, S @ (w * x)
        det = sw * s2 - s1 * s1
        det = np.where(np.abs(det) < 1e-12, np.nan, det)
        a = (sw * sxy - s1 * swx) / det
        b = (swx - a * s1) / sw
        sse = swxx - b * swx - a * sxy
        sse = np.where((a > 0) & np.isfinite(sse), sse, np.inf)
        k = int(np.argmin(sse))
        return t0g[k], lg[k], b[k], a[k], sse[k]

    w = np.ones(n)
    result = None
    for _ in range(iters):
        coarse = best(np.arange(-1.0, n - 1.0), np.arange(1.0, min(max_rise, n) + 1.0), w, sparse=n > DENSE_FIT_MAX)
        if coarse is None or not np.isfinite(coarse[4]):
            return 0.0, float(n - 1), float(np.median(x)), 0.0, float(np.std(x))
        t0c, lc = coarse[0], coarse[1]
        fine = best(np.arange(t0c - 1.0, t0c + 1.01, 0.25), np.arange(max(0.5, lc - 1.5), lc + 1.51, 0.25), w)
        result = fine if fine is not None and fine[4] <= coarse[4] else coarse
        t0, ln, b, a, _ = result
        resid = x - (b + a * _smoothstep((t - t0) / ln))
        sd = float(np.median(np.abs(resid)) / 0.6745) + 1e-9
        w = 1.0 / (1.0 + (resid / (2.5 * sd)) ** 2)
    t0, ln, b, a, _ = result
    resid = x - (b + a * _smoothstep((t - t0) / ln))
    sd = float(np.median(np.abs(resid)) / 0.6745) if n > 4 else float(np.std(resid))
    return float(t0), float(t0 + ln), float(b), float(a), max(sd, 1e-6)


def find_trim(intensity: np.ndarray, *, min_rise: float = MIN_RISE, min_sigmas: float = MIN_RISE_SIGMAS,
              onset_margin: int | None = None, peak_margin: int | None = None) -> Trim:
    """Neutral->peak trim of an intensity curve.

    Real ramps are soft (ease-in/ease-out), so the start of the motion is where an eased ramp fitted to the
    whole curve leaves the neutral level -- not where a straight line through the steep middle would --
    and the peak is where it arrives. If the expression is released after its apex, only the frames up to
    the release are fitted. A rise must be both >= min_rise (IOD units) and >= min_sigmas times its
    standard error from the fit residuals, or the clip has no expression.
    """
    onset_margin = ONSET_MARGIN if onset_margin is None else onset_margin
    peak_margin = PEAK_MARGIN if peak_margin is None else peak_margin
    x = np.asarray(intensity, dtype=np.float64)
    n = len(x)
    if n < 3:
        return Trim(0, max(0, n - 1), 0.0, 0.0, False, "too few frames to find a rise")
    xs = gaussian_filter1d(median_filter(x, size=3, mode="nearest"), 1.0, mode="nearest")
    base = float(np.median(xs[: min(3, n)]))
    t_max = int(np.argmax(xs))
    # released after the apex: fit only up to where it falls back below half the rise
    drop = np.nonzero(xs[t_max:] < base + 0.5 * (xs[t_max] - base))[0]
    end = t_max + int(drop[0]) if len(drop) else n
    t0, t1, b, a, sd = fit_ramp(x[:end])
    tt = np.arange(end)
    fitted = b + a * _smoothstep((tt - t0) / max(t1 - t0, 1e-9))
    r2 = 1.0 - float(((x[:end] - fitted) ** 2).sum()) / max(float(((x[:end] - x[:end].mean()) ** 2).sum()), 1e-12)
    n_pre = max(1.0, np.floor(t0) + 1)
    n_top = max(1.0, end - np.ceil(t1))
    z = a / max(sd * np.sqrt(1.0 / n_pre + 1.0 / n_top), 1e-9)
    if t1 - t0 < MIN_RISE_FRAMES and a >= min_rise:
        return Trim(int(np.clip(np.floor(t0), 0, n - 1)), int(np.clip(np.ceil(t1 - 1e-9), 0, n - 1)), a, sd, False,
                    f"no expression rise: the only change ({a:.3f} IOD over frames {t0:.1f}-{t1:.1f}) is a jump "
                    f"shorter than {MIN_RISE_FRAMES:g} frames (landmark flip, not an expression)", jump=True)
    if np.floor(t0) < MIN_NEUTRAL_FRAMES - 1 and a >= min_rise:
        return Trim(0, n - 1, a, sd, False,
                    f"no expression rise from a neutral start: the change ({a:.3f} IOD) is already under way in "
                    f"the first frames (fitted start {t0:.1f}; a take needs >= {MIN_NEUTRAL_FRAMES} neutral frames)")
    if a < min_rise or z < min_sigmas or r2 < MIN_R2:
        return Trim(0, n - 1, a, sd, False,
                    f"no expression rise: fitted rise {a:.3f} IOD (need >= {min_rise:g}), {z:.1f} standard errors "
                    f"(need >= {min_sigmas:g}), ramp explains {100 * max(r2, 0):.0f}% of the variation (need >= "
                    f"{100 * MIN_R2:.0f}%)")
    onset = int(np.clip(np.floor(t0) - onset_margin, 0, n - 1))
    peak = int(np.clip(np.ceil(t1 - 1e-9) + peak_margin, onset, end - 1))
    if PEAK_CROSS:
        top = float(np.median(xs[int(np.clip(np.ceil(t1), 0, end - 1)):end]))
        lvl = (xs[:end] - b) / max(top - b, 1e-9)
        mid = int(np.clip(np.floor((t0 + t1) / 2), 0, end - 1))
        hit = np.nonzero(lvl[mid:] >= PEAK_CROSS)[0]
        if len(hit):
            peak = int(np.clip(min(peak, mid + int(hit[0]) + PEAK_CROSS_K), onset, end - 1))
    return Trim(onset, peak, a, sd, True,
                f"rise {a:.3f} IOD over frames {t0:.1f}-{t1:.1f} (noise {sd:.4f}); kept {onset}..{peak}")


def trim_landmarks(landmarks: np.ndarray, **kw) -> tuple[Trim, np.ndarray]:
    """find_trim on a landmark track, in two passes: the first finds the rise with the first quarter of the
    clip as neutral reference, the second re-measures the intensity against every frame before that rise
    (the whole neutral pre-roll) and fits again. Returns (trim, intensity)."""
    lm = np.asarray(landmarks, dtype=np.float64)
    fld = []
    x = expression_intensity(lm, None, fld)
    tr = find_trim(x, **kw)
    if tr.jump and fld:
        return _stuck_then_jump(fld[0], tr, default_reference_frames(len(lm))), x
    if tr.found:
        n_ref = tr.onset + 1 + (kw.get("onset_margin") or ONSET_MARGIN)
        if n_ref >= 3 and n_ref != default_reference_frames(len(lm)):
            fld = []
            x2 = expression_intensity(lm, n_ref, fld)
            tr2 = find_trim(x2, **kw)
            if tr2.found and fld:
                tr2 = refine_onset(fld[0], tr2)
            return tr2, x2
    return tr, x


def _departure_threshold(ref: np.ndarray) -> float:
    """Distance from the neutral shape beyond which a frame has left it: the neutral frames' own median + 4
    robust sigmas, and at least twice their median (they are closer to their own median than any other
    frame is, so their spread alone underestimates it)."""
    med = float(np.median(ref))
    return max(med + 4 * 1.4826 * float(np.median(np.abs(ref - med))), 2.0 * med)


def _stuck_then_jump(field: np.ndarray, tr: Trim, n_ref: int) -> Trim:
    """A jump in the intensity is a landmark flip (no expression) only if the face was still before it.

    dlib sometimes holds a shape while a subtle expression starts (brows lowering behind glasses) and then
    snaps to the new one: the projected intensity jumps, but the full displacement field has been leaving
    the neutral shape for several frames before. Then it is an expression: onset = the frame before that
    departure, peak = the jump's end (+ PEAK_MARGIN). A codec's flip on a still face has no such lead-in.
    """
    n = len(field)
    j0, j1 = tr.onset, tr.peak
    if n_ref >= j0 or n < 6:
        return tr
    f = median_filter(field, size=(3, 1), mode="nearest")
    dist = np.linalg.norm(f - np.median(f[:n_ref], axis=0), axis=1)
    thr = _departure_threshold(dist[:n_ref])
    dep = j0
    while dep - 1 >= n_ref and dist[dep - 1] > thr:
        dep -= 1
    if j0 - dep < MIN_RISE_FRAMES - 1:
        return tr
    onset, peak = dep - 1, int(min(j1 + PEAK_MARGIN, n - 1))
    return Trim(onset, peak, tr.rise, tr.noise, True,
                f"rise {tr.rise:.3f} IOD: the landmarks held their shape from frame {dep} and snapped at frames "
                f"{j0}-{j1} (the whole field left neutral {j0 - dep} frames before the snap); kept {onset}..{peak}")


def refine_onset(field: np.ndarray, tr: Trim) -> Trim:
    """Move the onset earlier to where the whole displacement field (every expressive coordinate, in units of
    its own jitter) leaves the neutral shape.

    The 1-D intensity is a projection on one expression direction; dlib's points do not all follow a face
    alike -- some lag the start of a subtle expression, some move against the direction for a few frames
    (the projection then dips below neutral while the face is already moving) -- which the projection hides
    but the full field shows. Only ever moves the onset earlier, by at most MAX_ONSET_REFINE frames (the
    target allows 3 of neutral pre-roll): the ramp fit stays the judge of whether there is a rise at all.
    (The same test at the peak end does not work: after a video codec the held-peak frames are nearly
    identical, so their spread says nothing about how close a frame is to the peak.)
    """
    n = len(field)
    if tr.onset < 2:
        return tr
    f = median_filter(field, size=(3, 1), mode="nearest") if n >= 3 else field
    neutral = np.arange(n) <= tr.onset
    dist = np.linalg.norm(f - np.median(f[neutral], axis=0), axis=1)
    thr = _departure_threshold(dist[neutral])
    on = tr.onset
    while on > 0 and tr.onset - on < MAX_ONSET_REFINE and dist[on] > thr:
        on -= 1
    if on == tr.onset:
        return tr
    return Trim(on, tr.peak, tr.rise, tr.noise, True,
                tr.detail + f"; onset moved to {on} (the full displacement field leaves neutral there)")
