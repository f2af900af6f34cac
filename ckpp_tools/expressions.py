"""Expression trajectories on 68 iBUG landmarks, and the piecewise-affine warp that turns moved landmarks
into a new photo.

Why this exists: no CK+ can be downloaded here, so sample clips are made by moving a real face's landmarks
along an expression (mouth corners, lips, jaw, brows, eyelids) and warping the photo to follow. The moved
landmarks are then the exact ground truth of every frame.

Displacements are written in a *face frame*: origin between the outer eye corners (36, 45), x along the
eye line (towards image right), y perpendicular (down), unit = inter-ocular distance (IOD). That makes
one table work for every face size, position, roll and for flipped photos (flip = FLIP_68 permutation).
"""
from __future__ import annotations

import cv2
import numpy as np
from scipy.spatial import Delaunay

from .schema import FLIP_68, INNER_LIP

from .action_units import EXPRESSIONS as _RECIPES
from .action_units import expression_field

#: peak displacement fields (68,2) in face-frame IOD units, per canonical emotion: each a sum of FACS action
#: units (action_units.py: the AU table and each expression's AUs and intensities)
DISPLACEMENTS: dict[str, np.ndarray] = {name: expression_field(name) for name in _RECIPES}

#: how much of a newly opened mouth the upper teeth fill (smiles and a raised upper lip show teeth, a surprised
#: jaw drop mostly cavity)
TEETH_FRACTION = {name: spec["teeth"] for name, spec in _RECIPES.items()}


#: rough depth of each iBUG point towards the camera, in IOD units, outer eye corners at 0 (from the
#: proportions of an average adult face): enough to turn a frontal face by ~20 degrees convincingly
_DEPTH_LEFT = {0: -0.75, 1: -0.7, 2: -0.6, 3: -0.45, 4: -0.3, 5: -0.15, 6: 0.0, 7: 0.1, 8: 0.15,
               17: -0.1, 18: 0.05, 19: 0.12, 20: 0.15, 21: 0.15, 27: 0.15, 28: 0.3, 29: 0.42, 30: 0.55,
               31: 0.3, 32: 0.38, 33: 0.42, 36: 0.0, 37: 0.06, 38: 0.06, 39: 0.03, 40: 0.06, 41: 0.05,
               48: 0.15, 49: 0.28, 50: 0.33, 51: 0.35, 59: 0.25, 58: 0.3, 57: 0.32,
               60: 0.18, 61: 0.3, 62: 0.32, 67: 0.28, 66: 0.3}
DEPTH = np.zeros(68)
for _i, _z in _DEPTH_LEFT.items():
    DEPTH[_i] = DEPTH[FLIP_68[_i]] = _z
def yaw(landmarks: np.ndarray, degrees: float, frame_of: np.ndarray | None = None) -> np.ndarray:
    """Landmarks after the head turns by `degrees` about the vertical axis through the eyes (orthographic
    camera): the nose sweeps towards the turn, the near cheek widens and the far one compresses. The axis
    sits at the eyes rather than the neck so the face stays inside the warp's fixed anchor ring (a neck
    axis would also slide the whole face sideways). `frame_of` gives the face frame (default: the points)."""
    p = np.asarray(landmarks, dtype=np.float64)
    origin, rot, iod = face_frame(p if frame_of is None else frame_of)
    local = (p - origin) @ rot / iod                  # face-frame coordinates, IOD units
    phi = np.radians(degrees)
    x = local[:, 0] * np.cos(phi) + DEPTH * np.sin(phi)
    return origin + (np.stack([x, local[:, 1]], axis=1) * iod) @ rot.T


def smoothstep(x):
    """Ease-in-out 3x²-2x³ on [0,1]: real expressions accelerate then settle, they do not rise linearly."""
    x = np.clip(np.asarray(x, dtype=np.float64), 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def video_intensity(n_pre: int, n_rise: int, n_tail: int) -> np.ndarray:
    """Intensity per frame of a recorded take: n_pre neutral frames (0), an eased rise over n_rise frames,
    then n_tail-1 more frames held at the peak (1).

    onset = n_pre-1 (the last frame with intensity 0, i.e. the frame before the rise);
    peak = n_pre-1+n_rise (the first frame with intensity 1). Total length n_pre + n_rise + n_tail - 1 + 1.
    """
    rise = smoothstep(np.arange(1, n_rise + 1) / n_rise)
    return np.concatenate([np.zeros(n_pre), rise, np.ones(n_tail)])


def ckplus_intensity(n: int) -> np.ndarray:
    """CK+ sequences start neutral and end at the peak: onset 0, peak n-1, eased in between."""
    return smoothstep(np.arange(n) / (n - 1))


def face_frame(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """(origin, 2x2 rotation whose columns are the face x/y axes, IOD) of a 68-point face."""
    p = np.asarray(landmarks, dtype=np.float64)
    a, b = p[36], p[45]
    ex = b - a
    iod = float(np.hypot(*ex))
    ex = ex / iod
    ey = np.array([-ex[1], ex[0]])
    return (a + b) / 2.0, np.stack([ex, ey], axis=1), iod


def displace(landmarks: np.ndarray, field: np.ndarray) -> np.ndarray:
    """Landmarks moved by a face-frame displacement field (68,2) in IOD units -> image pixels."""
    _, rot, iod = face_frame(landmarks)
    return np.asarray(landmarks, dtype=np.float64) + (np.asarray(field) * iod) @ rot.T


#: inner-lip pairs (upper, lower) across the mouth
_LIP_PAIRS = ((61, 67), (62, 66), (63, 65))


def lips_apart(landmarks: np.ndarray) -> np.ndarray:
    """Landmarks whose inner lower lip (65-67) never rises above the inner upper lip (61-63): where an action
    unit pushes the lower lip past the upper one (a chin raiser or lip presser on shut lips), both meet halfway.
    Crossed lips would flip the warp's triangles and drag the teeth squeezed between them back into view."""
    p = np.array(landmarks, dtype=np.float64)
    origin, rot, iod = face_frame(p)
    q = (p - origin) @ rot
    for up, lo in _LIP_PAIRS:
        if q[lo, 1] < q[up, 1]:
            q[up, 1] = q[lo, 1] = (q[up, 1] + q[lo, 1]) / 2.0
    return origin + q @ rot.T


def mouth_opening(landmarks: np.ndarray) -> float:
    """Mean gap between the inner upper (61-63) and inner lower (67-65) lip, in pixels."""
    p = np.asarray(landmarks, dtype=np.float64)
    return float(np.mean(np.linalg.norm(p[[61, 62, 63]] - p[[67, 66, 65]], axis=1)))


def anchor_ring(landmarks: np.ndarray, n: int = 20, scale: float = 1.75, below: float = 2.3,
                above: float = 2.0) -> np.ndarray:
    """Fixed points on an egg-shaped ring around the face: the warp is confined inside it (background, hair
    and shoulders outside stay put). It reaches `above`/`below` half-heights up/down from the landmark
    centre, so raised brows and a dropped jaw (0.35 IOD) compress the forehead and neck without folding."""
    p = np.asarray(landmarks, dtype=np.float64)
    lo, hi = p.min(0), p.max(0)
    c = (lo + hi) / 2.0
    half = (hi - lo) / 2.0
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    ry = np.where(np.sin(t) > 0, below, above) * half[1]
    return np.stack([c[0] + scale * half[0] * np.cos(t), c[1] + ry * np.sin(t)], axis=1)


#: PiecewiseAffine remaps at most this many pixels at a time (memory bound for huge photos)
WARP_BAND_PIXELS = 2_000_000


class PiecewiseAffine:
    """Warp one source image to any target shape of the same landmark+anchor topology.

    Built once per identity: the Delaunay triangulation is computed on a reference shape with the mouth and
    eyes opened (so no triangle spans the lips or the eyelids), then reused for every frame. Each frame:
    rasterise target triangles into an index map, compose per-triangle inverse affines into remap tables,
    one cv2.remap over the face's bounding box. About 5-10 ms per 640x480 frame (skimage's
    PiecewiseAffineTransform + warp takes ~0.5 s).
    """

    def __init__(self, image: np.ndarray, src_points: np.ndarray, reference_points: np.ndarray,
                 interpolation: int = cv2.INTER_LINEAR):
        self.image = image
        self.interpolation = interpolation     # INTER_CUBIC keeps a full-resolution photo's detail
        self.src = np.asarray(src_points, dtype=np.float64)
        self.tris = Delaunay(np.asarray(reference_points, dtype=np.float64)).simplices.astype(np.int32)
        h, w = image.shape[:2]
        lo = np.floor(self.src.min(0)).astype(int)
        hi = np.ceil(self.src.max(0)).astype(int)
        # the anchors are fixed, so outside their hull the target equals the source: only this box is remapped
        self.roi = (max(lo[0], 0), max(lo[1], 0), min(hi[0] + 1, w), min(hi[1] + 1, h))
        x0, y0, x1, y1 = self.roi
        gx, gy = np.arange(x0, x1, dtype=np.float32)[None, :], np.arange(y0, y1, dtype=np.float32)[:, None]
        if (x1 - x0) * (y1 - y0) <= WARP_BAND_PIXELS:   # full grids: ~10% faster per frame; 8 bytes a pixel
            gx, gy = np.broadcast_to(gx, (y1 - y0, x1 - x0)).copy(), np.broadcast_to(gy, (y1 - y0, x1 - x0)).copy()
        self._gx, self._gy = gx, gy          # else a row and a column, broadcast band by band in warp()

    def warp(self, dst_points: np.ndarray) -> np.ndarray:
        dst = np.asarray(dst_points, dtype=np.float64)
        x0, y0, x1, y1 = self.roi
        small = len(self.tris) < 255   # uint8 index -> cv2.LUT lookups (5x faster than np.take)
        idx = np.zeros((y1 - y0, x1 - x0), dtype=np.uint8 if small else np.uint16)
        shift = 4  # sub-pixel vertex positions for cv2's rasteriser
        polys = np.round((dst[self.tris] - (x0, y0)) * (1 << shift)).astype(np.int32)
        for k, pts in enumerate(polys):
            cv2.fillConvexPoly(idx, pts, k + 1, lineType=cv2.LINE_8, shift=shift)
        # inverse affine of every triangle: source = A @ [x, y, 1] for target pixel (x, y)
        d = dst[self.tris]                     # (K,3,2)
        s = self.src[self.tris]
        D = np.concatenate([d, np.ones((len(d), 3, 1))], axis=2)    # (K,3,3) rows [x y 1]
        det = np.linalg.det(D)
        ok = np.abs(det) > 1e-6
        A = np.zeros((len(d) + 1, 2, 3))
        A[0] = [[1, 0, 0], [0, 1, 0]]          # index 0: outside every triangle -> identity
        sol = np.zeros((len(d), 3, 2))
        sol[ok] = np.linalg.solve(D[ok], s[ok])   # D @ M = S  ->  M (3,2)
        sol[~ok] = np.concatenate([np.zeros((np.count_nonzero(~ok), 2, 2)), s[~ok].mean(1, keepdims=True)], axis=1)
        A[1:] = np.transpose(sol, (0, 2, 1))
        A = A.astype(np.float32)
        if small:
            table = np.zeros((256, 6), dtype=np.float32)
            table[: len(A)] = A.reshape(len(A), 6)
            cols = [np.ascontiguousarray(table[:, c]).reshape(1, 256) for c in range(6)]

            def look(band, c):
                return cv2.LUT(band, cols[c])
        else:
            flat = A.reshape(len(A), 6)

            def look(band, c):
                return np.take(flat[:, c], band)
        out = self.image.copy()
        # in bands of rows: the remap tables cost 8 bytes a pixel, and a face filling a 100-MP photo would
        # otherwise hold ~2 GB of them at once (a sample frame is one band)
        rows = max(1, WARP_BAND_PIXELS // max(1, x1 - x0))
        for b0 in range(0, y1 - y0, rows):
            band, gy = idx[b0:b0 + rows], self._gy[b0:b0 + rows]
            gx = self._gx if self._gx.shape[0] == 1 else self._gx[b0:b0 + rows]
            # six small-table lookups beat gathering a (h,w,2,3) array several times over
            mx = look(band, 0) * gx
            mx += look(band, 1) * gy
            mx += look(band, 2)
            my = look(band, 3) * gx
            my += look(band, 4) * gy
            my += look(band, 5)
            out[y0 + b0:y0 + b0 + len(band), x0:x1] = cv2.remap(self.image, mx, my, self.interpolation,
                                                                   borderMode=cv2.BORDER_REFLECT101)
        return out


# tooth boundaries across the mouth, as a fraction of the inner-mouth half width from the midline
# (central incisors widest, then laterals, canines, premolars)
_TOOTH_EDGES = np.array([0.0, 0.17, 0.31, 0.44, 0.56, 0.67, 0.77, 0.87, 1.0])


def _teeth_shade(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Brightness (0..1) of a row of teeth at mouth coordinates u (-1..1 across) and v (0 at the gum edge,
    1 at the biting edge): each tooth rounded (darker at its sides), dark gaps between teeth, back teeth in
    shadow, a darker band at the gum and a translucent biting edge."""
    au = np.abs(u)
    k = np.clip(np.searchsorted(_TOOTH_EDGES, au) - 1, 0, len(_TOOTH_EDGES) - 2)
    lo, hi = _TOOTH_EDGES[k], _TOOTH_EDGES[k + 1]
    w = (au - lo) / (hi - lo) * 2.0 - 1.0              # -1..1 across one tooth
    shade = 1.0 - 0.22 * w ** 4                          # rounded tooth
    shade *= 1.0 - 0.45 * np.clip(au - 0.4, 0, None)    # back teeth recede into the mouth
    shade *= 0.85 + 0.15 * np.clip(v / 0.25, 0, 1)       # shadow under the lip at the gum line
    shade *= 1.0 - 0.18 * np.clip((v - 0.8) / 0.2, 0, 1)  # translucent biting edge
    return np.clip(shade, 0.0, 1.0)


def paint_mouth_cavity(frame: np.ndarray, landmarks: np.ndarray, alpha: float, teeth: float) -> None:
    """Paint the inside of an opened mouth, in place: upper teeth hanging from the upper lip, lower teeth and
    a tongue when the jaw drops far, dark cavity between, all inside the inner-lip polygon (60-67).

    Warping a closed mouth open only smears lip texture across the gap; a real open mouth shows darkness and
    teeth. `alpha` fades it in as the mouth opens; `teeth` is the fraction of the gap the upper teeth fill
    (capped at a real incisor's height, ~0.11 IOD).
    """
    if alpha <= 0.0:
        return
    p = np.asarray(landmarks, dtype=np.float64)
    inner = p[list(INNER_LIP)]
    lo = np.floor(inner.min(0)).astype(int) - 3
    hi = np.ceil(inner.max(0)).astype(int) + 4
    h, w = frame.shape[:2]
    x0, y0, x1, y1 = max(lo[0], 0), max(lo[1], 0), min(hi[0], w), min(hi[1], h)
    if x1 <= x0 or y1 <= y0:
        return
    iod = float(np.linalg.norm(p[45] - p[36]))
    shift = 4
    off = np.array([x0, y0], dtype=np.float64)

    def poly(points):
        return np.round((points - off) * (1 << shift)).astype(np.int32)

    mask = np.zeros((y1 - y0, x1 - x0), dtype=np.float32)
    cv2.fillPoly(mask, [poly(inner)], 1.0, lineType=cv2.LINE_AA, shift=shift)
    # mouth coordinates of every ROI pixel: u across (-1 left inner corner .. 1 right), y in pixels
    left, right = p[60], p[64]
    centre = (left + right) / 2.0
    axis = (right - left) / max(np.linalg.norm(right - left), 1e-6)
    half = max(np.linalg.norm(right - left) / 2.0, 1e-6)
    gx, gy = np.meshgrid(np.arange(x0, x1, dtype=np.float64), np.arange(y0, y1, dtype=np.float64))
    u = ((gx - centre[0]) * axis[0] + (gy - centre[1]) * axis[1]) / half

    def curve_y(points):
        """y of a lip curve at every pixel column (points sorted along x)."""
        order = np.argsort(points[:, 0])
        return np.interp(gx, points[order, 0], points[order, 1])

    top = curve_y(p[[60, 61, 62, 63, 64]])
    bottom = curve_y(p[[60, 67, 66, 65, 64]])
    gap = np.clip(bottom - top, 0.0, None)
    mean_gap = float(np.linalg.norm(p[[61, 62, 63]] - p[[67, 66, 65]], axis=1).mean())
    # cavity: dark red-brown, darkest in the middle (the throat)
    depth = np.clip(1.0 - np.abs(u), 0, 1) * np.clip((gy - top) / np.maximum(gap, 1e-6), 0, 1)
    cavity = np.stack([70 - 45 * depth, 28 - 18 * depth, 32 - 20 * depth], axis=-1)
    # tongue at the bottom of a wide-open mouth
    if mean_gap > 0.12 * iod:
        t_top = bottom - 0.35 * gap
        tongue = ((gy > t_top) & (np.abs(u) < 0.8)).astype(np.float64)
        tongue = cv2.GaussianBlur(tongue, (0, 0), max(0.6, 0.02 * iod))[..., None]
        tshade = (0.75 + 0.25 * np.clip((gy - t_top) / np.maximum(bottom - t_top, 1e-6), 0, 1))[..., None]
        cavity = cavity * (1 - tongue) + np.array([150.0, 62.0, 66.0]) * tshade * tongue
    ivory = np.array([248.0, 242.0, 236.0])
    # upper teeth: from the upper inner lip down by min(teeth*gap, incisor height)
    t_up = np.minimum(teeth * gap, 0.11 * iod)
    v_up = (gy - top) / np.maximum(t_up, 1e-6)
    m_up = np.clip((1.0 - v_up) * max(t_up.max(), 1.0), 0, 1) * (v_up >= 0) * (np.abs(u) < 0.97)
    # lower teeth peek above the lower lip once the jaw is well down
    t_lo = np.where(mean_gap > 0.1 * iod, np.minimum(0.15 * gap, 0.05 * iod), 0.0) * (np.abs(u) < 0.55)
    v_lo = (bottom - gy) / np.maximum(t_lo, 1e-6)
    m_lo = np.clip((1.0 - v_lo) * 3.0, 0, 1) * (v_lo >= 0) * (t_lo > 0.5)
    teeth_img = ivory * _teeth_shade(u, np.clip(v_up, 0, 1))[..., None]
    low_img = ivory * 0.9 * _teeth_shade(u * 1.4, np.clip(v_lo, 0, 1))[..., None]
    m_up = m_up[..., None] if teeth > 0 else np.zeros_like(m_up)[..., None]
    m_lo = m_lo[..., None]
    inside = cavity * (1 - m_up) + teeth_img * m_up
    inside = inside * (1 - m_lo) + low_img * m_lo
    inside = cv2.GaussianBlur(inside.astype(np.float32), (0, 0), 0.6)
    m = cv2.GaussianBlur(mask, (0, 0), 0.7)[..., None] * float(np.clip(alpha, 0, 1))
    roi = frame[y0:y1, x0:x1].astype(np.float32)
    if roi.ndim == 2:
        gray = (inside[..., 0] * 0.299 + inside[..., 1] * 0.587 + inside[..., 2] * 0.114)[..., None]
        out = roi[..., None] * (1 - m) + gray * m
        frame[y0:y1, x0:x1] = np.clip(out[..., 0] + 0.5, 0, 255).astype(np.uint8)
    else:
        out = roi * (1 - m) + inside * m
        frame[y0:y1, x0:x1] = np.clip(out + 0.5, 0, 255).astype(np.uint8)


def similarity(center, angle_deg: float, shift) -> np.ndarray:
    """2x3 affine: rotate by angle_deg about `center`, then translate by `shift` (pixels)."""
    m = cv2.getRotationMatrix2D((float(center[0]), float(center[1])), float(angle_deg), 1.0)
    m[:, 2] += np.asarray(shift, dtype=np.float64)
    return m


def apply_affine(points: np.ndarray, m: np.ndarray) -> np.ndarray:
    p = np.asarray(points, dtype=np.float64)
    return p @ m[:, :2].T + m[:, 2]
