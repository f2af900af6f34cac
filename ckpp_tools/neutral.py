"""Neutral base faces: estimate how much a portrait smiles and the warp that takes it back to neutral.

Why: most portraits smile. Sample clips start from the base photo's own face, so a smiling photo would
teach "smile -> smile more" and every onset would already be happy. The smile is measured from the
landmarks in face-frame units (IOD) against a neutral template and fitted (least squares, clipped >= 0)
onto the happy displacement field of expressions.py; that much of the field is taken back (generalising
faces.REST, set by hand for the astronaut).
"""
from __future__ import annotations

import numpy as np

from .errors import UsageError
from .expressions import DISPLACEMENTS, PiecewiseAffine, anchor_ring, displace, face_frame
from .face_measures import measure, to_face_frame

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
#: open-smile threshold (inner-lip gap, IOD): above it teeth show and the lips must not be pulled shut
TEETH_OPEN = 0.04
#: points not moved back when teeth show: lower lip and inner lower lip (they would close over the teeth)
_LOWER_LIP = [55, 56, 57, 58, 59, 65, 66, 67]


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


_HAPPY_GAIN = _field_features(DISPLACEMENTS["happy"])


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
    field = -c * DISPLACEMENTS["happy"]
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


def close_lips(landmarks: np.ndarray, field: np.ndarray) -> np.ndarray:
    """`field` plus the motion that shuts parted lips: the inner lower lip (65-67) up onto the inner upper lip
    (63-61) and the outer lower lip (55-59) up by the middle gap, as a CK+ onset's closed mouth. Lips already
    shut (or overlapping) are left alone."""
    q = displace(landmarks, field)
    _, rot, iod = face_frame(landmarks)
    gap = ((q[[67, 66, 65]] - q[[61, 62, 63]]) @ rot) / iod      # face frame: y down, positive = parted
    if gap[1, 1] <= 0:
        return field
    out = np.array(field, dtype=np.float64)
    out[[67, 66, 65]] -= gap
    out[[55, 56, 57, 58, 59], 1] -= gap[1, 1]
    return out


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
    after = measure(target)
    return out, target, dict(info, mouth_open_after=round(after["mouth_open"], 4),
                             mouth_width_after=round(after["mouth_width"], 4))
