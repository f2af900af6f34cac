"""Real face photos that ship inside installed packages, and the identities made from them.

Why: tests and sample data must not download anything, and synthetic cartoon faces would not exercise
dlib (or anything trained on real faces). Only two usable frontal faces are installed with our
dependencies (scikit-image's astronaut, matplotlib's Grace Hopper; skimage's LFW subset is 25x25 and the
camera man is not frontal), so more identities are made from them with flips, scale/position/roll, colour
jitter and mild face-shape changes. (ckpp ships three more real faces for evaluation, unlike the NBA people:
photo_sources.UNLIKE_FOLDER, `--photos unlike`.)
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

import cv2
import numpy as np

from .errors import MissingWeightsError
from .action_units import _sym
from .expressions import face_frame
from .schema import FLIP_68

#: base photo name -> loader returning RGB uint8
def _astronaut() -> np.ndarray:
    import skimage.data

    return np.ascontiguousarray(skimage.data.astronaut()[..., :3])


def _grace_hopper() -> np.ndarray:
    import matplotlib

    from .photo_io import PhotoError, read_photo

    path = os.path.join(matplotlib.get_data_path(), "sample_data", "grace_hopper.jpg")
    try:
        return read_photo(path)
    except PhotoError as exc:
        raise MissingWeightsError(f"matplotlib's sample photo is missing or damaged ({exc.detail})", path=path,
                                  fix="pip install --force-reinstall matplotlib") from None


PHOTOS = {"astronaut": _astronaut, "grace_hopper": _grace_hopper}


def _rest_fields() -> dict[str, np.ndarray]:
    """Per-photo correction towards a neutral face: the astronaut smiles in her portrait, so half of the
    happy displacement is taken back (mouth corners and upper lip only: the lower lip stays, the lips are
    not pulled shut over her visible teeth)."""
    from .neutral import SMILE   # the smile basis (AU 6+12+25), not the sample's happy peak (an open smile)

    relax = -0.5 * SMILE
    relax[[55, 56, 57, 58, 59, 65, 66, 67]] = 0.0
    return {"astronaut": relax}


REST = _rest_fields()


_BASES: dict[str, tuple[np.ndarray, np.ndarray]] = {}


def base_photos() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """All base photos with their landmarks (to hand to worker processes, so they never load dlib)."""
    return {name: base_photo(name) for name in PHOTOS}


def preload(bases: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
    _BASES.update(bases)


def base_photo(name: str) -> tuple[np.ndarray, np.ndarray]:
    """(RGB image, 68 landmarks float64) of a base photo; found once per process.

    The landmarks are the median of dlib's predictions at four scales, each also on the mirrored photo
    (mapped back with FLIP_68): one prediction carries ~1-2 px of box- and scale-dependent bias, and these
    points become the ground truth of every generated frame (median NME of dlib re-detection on neutral
    frames drops from 0.032 to 0.023 on Grace Hopper, 0.012 to 0.008 on the astronaut). The astronaut photo
    has a second 'face' on the flag patch: the largest detection is the face; its box is mapped into each
    scaled/mirrored copy (and grown/shrunk a little), so no further detection runs.
    """
    if name in _BASES:
        return _BASES[name]
    from .landmarks.dlib_backend import DlibLandmarker

    img = PHOTOS[name]()
    lm = DlibLandmarker.shared()
    boxes = lm.detect(img, upsample=1, max_side=None)
    if not boxes:  # pragma: no cover - the photos are fixed
        raise RuntimeError(f"no face found in base photo {name}")
    pts = refined_landmarks(lm, cv2.cvtColor(img, cv2.COLOR_RGB2GRAY), boxes[0])
    img.setflags(write=False)
    _BASES[name] = (img, pts)
    return img, pts


def refined_landmarks(lm, gray: np.ndarray, box, scales=(0.8, 1.0, 1.25, 1.5), grows=(0.94, 1.0, 1.06)) -> np.ndarray:
    """Median of dlib's predictions for the face in `box` over `scales` x mirror x box `grows` (see
    base_photo); fewer scales/grows trade a little accuracy for speed on big photo folders."""
    ref = np.array(box, dtype=np.float64)
    centre, half = (ref[:2] + ref[2:]) / 2.0, (ref[2:] - ref[:2]) / 2.0
    preds = []
    for scale in scales:
        interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
        im = gray if scale == 1.0 else cv2.resize(gray, None, fx=scale, fy=scale, interpolation=interp)
        for mirrored in (False, True):
            x = np.ascontiguousarray(im[:, ::-1]) if mirrored else im
            for grow in grows:   # the detector's box wobbles by about this much
                b = np.concatenate([centre - half * grow, centre + half * grow]) * scale
                if mirrored:
                    b = np.array([x.shape[1] - 1 - b[2], b[1], x.shape[1] - 1 - b[0], b[3]])
                p = lm.predict(x, b).astype(np.float64)
                if mirrored:
                    p = p[FLIP_68]
                    p[:, 0] = x.shape[1] - 1 - p[:, 0]
                preds.append(p / scale)
    return np.median(np.array(preds), axis=0)


@dataclass
class Identity:
    """One sample subject: a neutral canvas photo of the output size and its 68 landmarks.

    `shape` is a face-frame displacement field (IOD units) added to every frame's landmarks: the identity's
    own face shape (jaw width, chin length, brow height, mouth width, nose length).
    """

    name: str
    photo: str
    flip: bool
    image: np.ndarray            # (H,W,3) RGB uint8: the canvas every frame is warped from
    landmarks: np.ndarray        # (68,2) float64, canvas pixels
    shape: np.ndarray = field(default_factory=lambda: np.zeros((68, 2)))
    #: how much the photo smiled (neutral.estimate_smile) before `shape` took it back: its folds are lightened
    smile: float = 0.0

    @property
    def iod(self) -> float:
        return face_frame(self.landmarks)[2]


def _shape_field(rng: np.random.Generator) -> np.ndarray:
    jaw = rng.uniform(-0.035, 0.05)
    chin = rng.uniform(-0.035, 0.05)
    brow = rng.uniform(-0.03, 0.03)
    mouth = rng.uniform(-0.025, 0.03)
    nose = rng.uniform(-0.015, 0.03)
    table = {}
    for i, w in zip(range(0, 8), (0.3, 0.5, 0.7, 0.9, 1.0, 0.9, 0.6, 0.3)):
        table[i] = (jaw * w, chin * max(0.0, (i - 3) / 5.0))
    table[8] = (0.0, chin)
    for i in range(17, 22):
        table[i] = (0.0, -brow)
    for i in (31, 32):
        table[i] = (0.0, nose)
    table[33] = (0.0, nose)
    for i in (48, 60):
        table[i] = (mouth, 0.0)
    for i in (49, 59, 61, 67):
        table[i] = (mouth * 0.5, 0.0)
    return _sym(table)


def _colour_jitter(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    f = img.astype(np.float32) / 255.0
    gains = rng.uniform(0.88, 1.12, size=3).astype(np.float32)
    gamma = float(rng.uniform(0.8, 1.25))
    contrast = float(rng.uniform(0.85, 1.15))
    f = np.clip(f * gains, 0, 1) ** gamma
    f = np.clip((f - 0.5) * contrast + 0.5 + rng.uniform(-0.05, 0.05), 0, 1)
    return (f * 255.0 + 0.5).astype(np.uint8)


def make_identity(name: str, index: int, width: int, height: int, rng: np.random.Generator,
                  iod_frac: tuple[float, float] = (0.17, 0.22), photos: tuple[str, ...] | None = None) -> Identity:
    """Identity number `index`: base photo alternates, flip every other pair, the rest drawn from `rng`.

    The face is placed like in CK+ (frontal, large, a little above the centre), with IOD about a fifth of
    the image width (`iod_frac`). `photos` restricts the base photos (e.g. to hold one out of training).
    """
    names = list(photos) if photos else list(PHOTOS)
    photo = names[index % len(names)]
    flip = (index // len(names)) % 2 == 1
    img, pts = base_photo(photo)
    return place_identity(name, photo, img, pts, flip, width, height, rng, iod_frac, REST.get(photo, 0.0))


def place_identity(name: str, photo: str, img: np.ndarray, pts: np.ndarray, flip: bool, width: int, height: int,
                   rng: np.random.Generator, iod_frac: tuple[float, float] = (0.17, 0.22), rest=0.0,
                   border: int = cv2.BORDER_REFLECT101, sharpen: float = 0.0) -> Identity:
    """An identity from any base photo: mirrored if `flip`, placed on a width x height canvas, colour and face
    shape drawn from `rng`; `rest` (face-frame field, IOD units) takes the photo's own expression back to
    neutral. `border` fills canvas outside the photo (replicate for small photos: no mirrored heads);
    `sharpen` (unsharp-mask amount) restores the crispness a magnified small photo loses (only when it
    is magnified: prepare's blur check otherwise rejects faces that were ~25 px wide in the photo)."""
    img = np.asarray(img)
    pts = np.asarray(pts, dtype=np.float64)
    if flip:
        img = img[:, ::-1]
        pts = pts[FLIP_68].copy()
        pts[:, 0] = img.shape[1] - 1 - pts[:, 0]
        if not np.isscalar(rest):
            rest = np.asarray(rest)[FLIP_68] * (-1.0, 1.0)
    origin, rot, iod = face_frame(pts)
    target_iod = width * rng.uniform(*iod_frac)
    scale = target_iod / iod
    roll = np.degrees(np.arctan2(rot[1, 0], rot[0, 0])) + rng.uniform(-3.0, 3.0)
    centre = pts.mean(0)
    dst_centre = np.array([width / 2 + rng.uniform(-0.05, 0.05) * width, height * rng.uniform(0.47, 0.55)])
    m = cv2.getRotationMatrix2D((float(centre[0]), float(centre[1])), float(roll), float(scale))
    m[:, 2] += dst_centre - centre
    canvas = cv2.warpAffine(np.ascontiguousarray(img), m, (width, height), flags=cv2.INTER_CUBIC, borderMode=border)
    if sharpen > 0 and scale > 1.05:
        soft = cv2.GaussianBlur(canvas, (0, 0), 0.8 * scale)
        canvas = cv2.addWeighted(canvas, 1.0 + sharpen, soft, -sharpen, 0)
    canvas = _colour_jitter(canvas, rng)
    lm = pts @ m[:, :2].T + m[:, 2]
    shape = _shape_field(rng) + rest
    return Identity(name=name, photo=photo, flip=flip, image=canvas, landmarks=lm, shape=shape)
