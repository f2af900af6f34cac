"""Neutral base faces: estimate how much a portrait smiles and the warp that takes it back to neutral.

Why: most portraits smile. Sample clips start from the base photo's own face, so a smiling photo would
teach "smile -> smile more" and every onset would already be happy. The smile is measured from the
landmarks in face-frame units (IOD) against a neutral template and fitted (least squares, clipped >= 0)
onto a smile field (SMILE: action units 6+12+25); that much of the field is taken back (generalising
faces.REST, set by hand for the astronaut), parted lips are shut over the teeth (close_lips) and their seam
repainted (paint_shut_lips), and the sampler lightens the smile's folds (UNSMILE_SHADE).
"""
from __future__ import annotations

import numpy as np

from .errors import UsageError
from .action_units import AU_FIELDS
from .expressions import DISPLACEMENTS, PiecewiseAffine, anchor_ring, displace, face_frame
from .face_measures import measure, to_face_frame

#: the smile a photo's smile is measured against and taken back with: cheeks raised, lip corners pulled, lips
#: parted (action units 6 + 12 + 25; 1 = a broad open smile, the NBA headshots fit 0 to 1.2)
SMILE_AUS = {6: 0.83, 12: 0.71, 25: 1.0}
SMILE = sum(w * AU_FIELDS[au] for au, w in SMILE_AUS.items())
#: mouth features in IOD units, used for the fit (larger = more smiling):
#:   corner_lift: height of the lip corners (48, 54) above the middle of the lips (51/57 mean)
#:   mouth_width: corner to corner (48-54)
FEATURES = ("corner_lift", "mouth_width")
#: neutral template: feature values of neutral faces, and their spread across people (IOD units): mean and
#: standard deviation over 72 NBA headshots labelled neutral by eye (benchmarks/data/nba_expression_labels.json)
NEUTRAL = {"corner_lift": 0.011, "mouth_width": 0.605}
SPREAD = {"corner_lift": 0.028, "mouth_width": 0.045}
#: largest smile taken back (the fitted intensity is clipped to [0, MAX_RELAX])
MAX_RELAX = 1.2
#: the lip corners are taken back this much further than the fit says (of AU12 per unit of fitted smile): the
#: fit keeps a closed smile's upturned corners, and the judge reads them as happy
EXTRA_CORNERS = 0.3
_CORNERS_UP = AU_FIELDS[12] * (0.0, 1.0)   # AU12's lift without its widening (the fit already sets the width)
#: a broad grin: fitted smile above BROAD_SMILE and inner lips parted by more than BROAD_OPEN (IOD). Warped back,
#: its onset still reads as a (closed-lip) smile: cheeks, eyes and lip shape keep it (the FER2013 judge called
#: 16 of 80 neutralised NBA onsets happy, most of them such grins); `ckpp sample --photos nba` leaves them out
BROAD_SMILE, BROAD_OPEN = 0.7, 0.1
#: open-smile threshold (inner-lip gap, IOD): above it teeth show and the lips must not be pulled shut
TEETH_OPEN = 0.04
#: points not moved back when teeth show: lower lip and inner lower lip (they would close over the teeth)
_LOWER_LIP = [55, 56, 57, 58, 59, 65, 66, 67]


def broad_grin(expression: dict) -> bool:
    """Whether a photo's neutralise() info describes a broad grin (see BROAD_SMILE)."""
    return expression.get("happy", 0.0) > BROAD_SMILE and expression.get("mouth_open", 0.0) > BROAD_OPEN


def features(landmarks: np.ndarray) -> dict[str, float]:
    q = to_face_frame(landmarks)
    mid = (q[51, 1] + q[57, 1]) / 2.0
    return {"corner_lift": float(mid - (q[48, 1] + q[54, 1]) / 2.0),
            "mouth_width": float(np.linalg.norm(q[54] - q[48]))}


def _field_features(field: np.ndarray) -> np.ndarray:
    """How one unit of a displacement field changes FEATURES (linearised)."""
    base = np.zeros((68, 2))
    base[36], base[45] = (-0.5, 0.0), (0.5, 0.0)
    base[48], base[54], base[51], base[57] = (-0.28, 0.9), (0.28, 0.9), (0.0, 0.85), (0.0, 1.0)
    a, b = features(base), features(base + field)
    return np.array([b[k] - a[k] for k in FEATURES])


_HAPPY_GAIN = _field_features(SMILE)


def estimate_smile(landmarks: np.ndarray, neutral: dict | None = None, spread: dict | None = None) -> float:
    """Happy intensity of a face (0 = neutral, 1 = the sample's peak smile): weighted least squares of its
    feature deviation from the `neutral` template (default NEUTRAL, weights 1/SPREAD²) onto the happy
    field's feature change, clipped to [0, MAX_RELAX]."""
    neutral, spread = neutral or NEUTRAL, spread or SPREAD
    f = features(landmarks)
    dev = np.array([f[k] - neutral[k] for k in FEATURES])
    w = np.array([1.0 / spread[k] ** 2 for k in FEATURES])
    c = float(np.sum(w * dev * _HAPPY_GAIN) / np.sum(w * _HAPPY_GAIN ** 2))
    return float(np.clip(c, 0.0, MAX_RELAX))


def neutralise(landmarks: np.ndarray, neutral: dict | None = None, spread: dict | None = None) -> tuple[np.ndarray, dict]:
    """(face-frame field (68,2) that takes the photo back towards neutral, {"happy", "mouth_open", "teeth"}).

    With visible teeth (inner lips apart) only the corners and upper lip move back: pulling the lower lip up
    would drag lip texture over the teeth.
    """
    c = estimate_smile(landmarks, neutral, spread)
    m = measure(landmarks)
    teeth = m["mouth_open"] > TEETH_OPEN
    field = -c * SMILE - c * EXTRA_CORNERS * _CORNERS_UP
    if teeth:
        field[_LOWER_LIP] = 0.0
    info = {"happy": round(c, 3), "mouth_open": round(m["mouth_open"], 4), "teeth": bool(teeth),
            **{k: round(v, 4) for k, v in features(landmarks).items()}}
    return field, info


#: how a generator can start from a photo (`--start`): the face as it is, always warped back to neutral, or
#: neutral only when the lips are parted (START_AUTO_OPEN); measured in docs/recipe.md
STARTS = ("as-is", "neutral", "auto")
#: `auto` neutralises a photo whose inner lips are parted by more than this (IOD): the case where the photo is
#: furthest from the closed-mouth onsets the models learnt from and an open start caps the visible motion
#: (51 unseen photos: +0.027 IOD paired median gain [0.003, 0.042] for these, -0.004 for closed lips)
START_AUTO_OPEN = TEETH_OPEN


def parse_starts(spec) -> tuple[str, ...]:
    """`--start` value ("as-is,auto", "all", or a sequence of names) -> the starts, in order, without repeats;
    an unknown or empty one -> UsageError naming --start."""
    names = spec.split(",") if isinstance(spec, str) else list(spec)
    names = [str(x).strip().lower() for x in names if str(x).strip()]
    starts = STARTS if names == ["all"] else tuple(dict.fromkeys(names))
    bad = [x for x in starts if x not in STARTS]
    if bad or not starts:
        raise UsageError(f"unknown start {(bad or [spec])[0]!r}", path="--start",
                         fix="use as-is, neutral, auto (comma-separated, e.g. --start as-is,auto) or all")
    return starts


def start_for(landmarks: np.ndarray, start: str) -> str:
    """The start `start` ("as-is", "neutral", "auto") means for this face: "as-is" or "neutral"."""
    (start,) = parse_starts([start])
    if start != "auto":
        return start
    return "neutral" if measure(landmarks)["mouth_open"] > START_AUTO_OPEN else "as-is"


#: share of a lip gap that closing takes from the upper lip (it comes down over the upper teeth); the rest
#: brings the lower lip up. A wide grin's upper lip is raised off the teeth (AU10/12): lifting the lower lip
#: alone by the whole gap would stretch the chin
UPPER_SHARE = 0.35


def close_lips(landmarks: np.ndarray, field: np.ndarray, upper_share: float = UPPER_SHARE) -> np.ndarray:
    """`field` plus the motion that shuts parted lips: the inner lips meet (the upper lip comes down by
    `upper_share` of the gap, the lower lip up by the rest; the outer lips follow their inner edge), as a CK+
    onset's closed mouth. The teeth between them are squeezed to a line: no pixels are invented. Lips
    already shut (or overlapping) are left alone."""
    q = displace(landmarks, field)
    _, rot, iod = face_frame(landmarks)
    gap = ((q[[67, 66, 65]] - q[[61, 62, 63]]) @ rot) / iod      # face frame: y down, positive = parted
    if gap[1, 1] <= 0:
        return field
    gap = np.where(gap[:, 1:2] > 0, gap, 0.0)
    out = np.array(field, dtype=np.float64)
    up, lo = upper_share * gap, (1.0 - upper_share) * gap
    out[[61, 62, 63]] += up
    out[[49, 50, 51, 52, 53], 1] += up[[0, 0, 1, 2, 2], 1] * 0.8   # the outer upper lip follows, a little less
    out[[67, 66, 65]] -= lo
    out[[59, 58, 57, 56, 55], 1] -= lo[[0, 0, 1, 2, 2], 1]
    return out


def onset_field(landmarks: np.ndarray) -> tuple[np.ndarray, dict]:
    """(face-frame field that makes a photo's face a neutral onset, neutralise()'s info): the smile taken
    back (corners, cheeks, lower lids) and parted lips shut over the teeth, as every CK+ sequence starts.
    What `ckpp sample` adds to each base photo's face before any expression."""
    field, info = neutralise(landmarks)
    return close_lips(landmarks, field), info


def neutral_photo(image: np.ndarray, landmarks: np.ndarray, shut_lips: bool = True,
                  interpolation: int | None = None) -> tuple[np.ndarray, np.ndarray, dict]:
    """(photo warped to a neutral face, its 68 landmarks, neutralise()'s info) — a test-time neutral start.

    Why: the generator learnt f(I, a) from neutral onsets (CK+ starts neutral; `ckpp sample` neutralises its
    base photos with this very field). A smiling photo is an input it never saw, and its mouth, already
    parted, has less to open. The same piecewise-affine warp as the sampler's (anchor ring, triangulation
    on a surprise-opened shape) takes the smile back; `shut_lips` also closes parted lips (teeth stay, as a
    thin line: no pixels are invented). Outside the anchor ring the photo is untouched. `interpolation`: the
    warp's cv2 filter (default bilinear, as the sampler; motion-output models, which show the photo's own pixels
    at full resolution, use bicubic).
    """
    pts = np.asarray(landmarks, dtype=np.float64)
    field, info = neutralise(pts)
    if shut_lips:
        field = close_lips(pts, field)
    target = displace(pts, field)
    anchors = anchor_ring(pts)
    ref = np.concatenate([displace(pts, DISPLACEMENTS["surprise"] * 0.8), anchors])
    warper = PiecewiseAffine(np.ascontiguousarray(image), np.concatenate([pts, anchors]), ref,
                             **({} if interpolation is None else {"interpolation": interpolation}))
    out = warper.warp(np.concatenate([target, anchors]))
    if shut_lips and info["mouth_open"] > SHUT_FROM:
        paint_shut_lips(out, target)
    after = measure(target)
    return out, target, dict(info, mouth_open_after=round(after["mouth_open"], 4),
                             mouth_width_after=round(after["mouth_width"], 4))


#: how much of the taken-back smile's skin folds (SMILE_AUS' shading, action_units.shade) is lightened away at
#: the onset: the warp moves a smile's landmarks back, not its nasolabial folds and raised cheeks
UNSMILE_SHADE = 1.0

#: lips whose inner edges were this far apart (IOD) in the photo were shut by the onset warp: their seam is
#: repainted (paint_shut_lips)
SHUT_FROM = 0.02


def paint_shut_lips(frame: np.ndarray, landmarks: np.ndarray, strength: float = 1.0) -> None:
    """Make lips that the warp pushed together over teeth look shut, in place: near the lips' meeting line
    (60-64), pixels much brighter than the lips (the squeezed teeth: a white line reads as a smile) take the
    lips' own colour, and the seam gets the soft dark line of closed lips (faded by `strength`, e.g. as the
    mouth opens again). Everything follows `landmarks` (68,2) of this frame."""
    import cv2

    p = np.asarray(landmarks, dtype=np.float64)
    _, rot, iod = face_frame(p)
    h, w = frame.shape[:2]
    lo = np.floor(p[48:68].min(0) - 0.05 * iod).astype(int)
    hi = np.ceil(p[48:68].max(0) + 0.05 * iod).astype(int)
    x0, y0, x1, y1 = max(lo[0], 0), max(lo[1], 0), min(hi[0], w), min(hi[1], h)
    if x1 - x0 < 4 or y1 - y0 < 4:
        return
    off, shift = np.array([x0, y0]), 4

    def poly(idx):
        return np.round((p[list(idx)] - off) * (1 << shift)).astype(np.int32)

    lips = np.zeros((y1 - y0, x1 - x0), np.float32)
    cv2.fillPoly(lips, [poly([48, 49, 50, 51, 52, 53, 54, 64, 63, 62, 61, 60]),
                        poly([48, 60, 67, 66, 65, 64, 54, 55, 56, 57, 58, 59])], 1.0, cv2.LINE_AA, shift)
    seam = np.zeros_like(lips)
    th = max(1, int(round(0.012 * iod)))
    cv2.polylines(seam, [poly([60, 61, 62, 63, 64]), poly([60, 67, 66, 65, 64])], False, 1.0, th, cv2.LINE_AA, shift)
    near = cv2.GaussianBlur(seam, (0, 0), max(0.8, 0.03 * iod))
    # the whole of the lips (a little beyond their outline, where dlib's points fall short of the teeth),
    # the seam most
    grown = cv2.dilate(np.maximum(lips, seam), np.ones((3, 3), np.uint8), iterations=max(1, int(round(0.015 * iod))))
    near = np.maximum(np.clip(near / max(float(near.max()), 1e-6) * 1.5, 0, 1), 0.8) * grown
    roi = frame[y0:y1, x0:x1].astype(np.float32)
    colour = roi if roi.ndim == 3 else roi[..., None]
    lum = colour.mean(-1)
    inside = lips > 0.5
    if inside.sum() < 6:
        return
    vals = lum[inside]
    lip_lum = float(np.percentile(vals, 50))
    dark = inside & (lum <= np.percentile(vals, 70))
    lip_rgb = np.median(colour[dark], axis=0) if dark.any() else np.median(colour[inside], axis=0)
    # how much brighter than the lips a pixel is: 0 at 1.15x the lips' median, 1 at 1.6x
    bright = np.clip((lum / max(lip_lum, 1.0) - 1.15) / 0.45, 0, 1)
    a = cv2.GaussianBlur((bright * near).astype(np.float32), (0, 0), max(0.5, 0.006 * iod))[..., None]
    out = colour * (1 - a) + lip_rgb * a
    if strength > 0:   # the closed lips' seam: a soft darker line
        line = cv2.GaussianBlur(seam, (0, 0), max(0.5, 0.008 * iod))
        out = out * (1.0 - 0.35 * float(np.clip(strength, 0, 1)) * line)[..., None]
    out = np.clip(out + 0.5, 0, 255).astype(np.uint8)
    frame[y0:y1, x0:x1] = out if roi.ndim == 3 else out[..., 0]
