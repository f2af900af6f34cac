"""From a photo of a face to a video of an expression, with any trained family (ours or a baseline).

    family, meta = load_run("runs/ours-surprise")
    photo = load_photo("me.jpg")
    frames = generate_video(family, photo, {"surprise": 1.0}, n_frames=16)   # (T,H,W,3) uint8
    write_video(frames, "me.mp4", fps=8)                                      # or .gif

The face is found with dlib and cropped exactly as `ckpp prepare` crops clips (crop.crop_box over the 68
landmarks), then the central crop_fraction of that box (the paper's 256/289, the crop the model trained on
at its centre) is resized to the model's input size. Degrees a_t = t/(T-1) · weight for t = 0…T-1: frame 0
reconstructs the input, the last frame is the (weighted) peak; several emotions mix.

In-the-wild photos are tilted; the models trained on upright crops. `face_crop()` (shared with
`ckpp benchmark --photos`) levels the eyes first: a similarity transform (rotation about the face centre,
then prepare's box scaled to the model's size) computed from the landmarks; `paste_back()` inverts it.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass

import cv2
import numpy as np

from ckpp_tools import emotions as emo
from ckpp_tools.crop import crop_box, crop_image
from ckpp_tools.errors import CkppError, UsageError
from ckpp_tools.photo_io import read_photo


def load_photo(path) -> np.ndarray:
    """RGB uint8 (H,W,3) of a photo file, upright (EXIF orientation) with transparency flattened
    (ckpp_tools.photo_io); unreadable -> CkppError naming the file and the fix."""
    return read_photo(path)


def face_box(photo: np.ndarray, where: str = "PHOTO") -> tuple[np.ndarray, np.ndarray]:
    """(prepare's square crop box [x0,y0,x1,y1], 68 landmarks) of the largest face; none -> CkppError."""
    from ckpp_tools.landmarks.dlib_backend import DlibLandmarker
    from ckpp_tools.photo_sources import SMALL_PHOTO_SIDE

    lm = DlibLandmarker.shared()
    boxes = lm.detect(photo, upsample=0, max_side=640)
    if not boxes:
        boxes = lm.detect(photo, upsample=1, max_side=1024)   # small faces in big photos
    if not boxes and max(photo.shape[:2]) <= SMALL_PHOTO_SIDE:
        boxes = lm.detect(photo, upsample=2, max_side=None)   # small photos, as the photo check looks at them
    if not boxes:
        raise CkppError("no face found in the photo", path=where,
                        fix="use a photo with one clearly visible, roughly frontal face")
    pts = lm.predict(photo, boxes[0])
    return crop_box(pts), pts


def shrink_box(box, fraction: float) -> np.ndarray:
    """The central `fraction` of a square box (the model's training crop inside prepare's box)."""
    x0, y0, x1, y1 = (float(v) for v in box)
    cx, cy, half = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) * fraction / 2
    return np.array([cx - half, cy - half, cx + half, cy + half])


def crop_face(photo: np.ndarray, size: int = 289, crop_fraction: float = 1.0, where: str = "PHOTO"):
    """(crop size×size uint8 RGB, box in photo pixels): prepare's crop (crop_fraction=1) or the central
    part of it a model trained on (crop_fraction=cfg.crop_fraction)."""
    box, _ = face_box(photo, where)
    box = shrink_box(box, crop_fraction)
    return crop_image(photo, box, size), box


#: faces tilted less than this (degrees) are cropped without rotation (exactly prepare's crop)
LEVEL_TOLERANCE = 1.0


@dataclass
class FaceCrop:
    """A face cropped for a model: the crop, the 2x3 affine photo -> crop pixels, the photo's landmarks and
    the same landmarks in the crop, and the roll (degrees) that was levelled out (0 when not aligned)."""
    crop: np.ndarray
    matrix: np.ndarray
    landmarks: np.ndarray
    crop_landmarks: np.ndarray
    angle: float


def eye_angle(landmarks: np.ndarray) -> float:
    """Roll of a face in degrees (image y down, positive = the subject's left eye lower): the angle of the
    line from the right eye centre (36-41) to the left eye centre (42-47)."""
    p = np.asarray(landmarks, np.float64)
    d = p[42:48].mean(0) - p[36:42].mean(0)
    return float(np.degrees(np.arctan2(d[1], d[0])))


def crop_matrix(landmarks: np.ndarray, size: int, crop_fraction: float = 1.0, align: bool = True) -> tuple[np.ndarray, float]:
    """(2x3 affine photo pixels -> crop pixels, levelled angle): rotate about the landmarks' centre so the
    eyes are level, then take prepare's box (crop_box of the levelled landmarks, central crop_fraction)
    and scale it to size. Without rotation this is exactly crop_image's mapping of prepare's box."""
    from ckpp_tools.expressions import apply_affine

    p = np.asarray(landmarks, np.float64)
    angle = eye_angle(p) if align else 0.0
    if abs(angle) < LEVEL_TOLERANCE:
        angle = 0.0
    c = (p.min(0) + p.max(0)) / 2.0
    rot = cv2.getRotationMatrix2D((float(c[0]), float(c[1])), angle, 1.0)   # levels the eyes
    x0, y0, x1, y1 = shrink_box(crop_box(apply_affine(p, rot)), crop_fraction)
    s = size / (x1 - x0)
    m = np.array([[s, 0.0, -x0 * s], [0.0, s, -y0 * s]]) @ np.vstack([rot, [0.0, 0.0, 1.0]])
    return m, angle


def warp_crop(image: np.ndarray, matrix: np.ndarray, size: int) -> np.ndarray:
    """size x size crop of `image` through the 2x3 affine `matrix` (photo -> crop), black outside; big
    reductions first shrink by an integer factor (area filter), as crop_image does."""
    img = np.asarray(image)
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    m = np.asarray(matrix, np.float64).copy()
    zoom = 1.0 / np.sqrt(abs(np.linalg.det(m[:, :2])))
    if zoom >= 2.0:
        k = int(zoom)
        h, w = img.shape[:2]
        img = cv2.resize(img[: h - h % k or h, : w - w % k or w], (max(1, w // k), max(1, h // k)),
                         interpolation=cv2.INTER_AREA)
        m[:, 2] += m[:, :2] @ np.array([(k - 1) / 2.0, (k - 1) / 2.0])
        m[:, :2] *= k
    return cv2.warpAffine(img, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                          borderValue=(0, 0, 0))


#: faces tilted more than this (degrees) get their landmarks found again on the levelled face: dlib's
#: detector and predictor are trained on upright faces, so on a tilted one they place the jaw/brows worse
REFINE_ABOVE = 5.0


def level_landmarks(photo: np.ndarray, landmarks: np.ndarray, window: int = 400) -> np.ndarray:
    """Landmarks of a tilted face found again on a levelled view of it (mapped back to photo pixels); the
    given ones when dlib finds no face there."""
    from ckpp_tools.expressions import apply_affine
    from ckpp_tools.landmarks.dlib_backend import DlibLandmarker

    p = np.asarray(landmarks, np.float64)
    m, _ = crop_matrix(p, window, 1.0, align=True)       # levelled head box -> window x window
    view = warp_crop(photo, m, window)
    lm = DlibLandmarker.shared()
    boxes = lm.detect(view, upsample=0, max_side=None) or lm.detect(view, upsample=1, max_side=None)
    if not boxes:
        return p
    centre = apply_affine(p, m).mean(0)
    box = min(boxes, key=lambda b: np.hypot((b[0] + b[2]) / 2 - centre[0], (b[1] + b[3]) / 2 - centre[1]))
    return apply_affine(lm.predict(view, box), cv2.invertAffineTransform(m))


def face_crop(photo: np.ndarray, size: int, crop_fraction: float = 1.0, *, align: bool = True,
              where: str = "PHOTO", landmarks: np.ndarray | None = None) -> FaceCrop:
    """The model's input from a photo: largest face (or the given landmarks), eyes levelled (align=True),
    prepare's crop box, central crop_fraction, size x size. No face -> CkppError naming `where`."""
    from ckpp_tools.expressions import apply_affine

    pts = landmarks if landmarks is not None else face_box(photo, where)[1]
    if align and abs(eye_angle(pts)) > REFINE_ABOVE:
        pts = level_landmarks(photo, pts)
    m, angle = crop_matrix(pts, size, crop_fraction, align)
    return FaceCrop(crop=warp_crop(photo, m, size), matrix=m, landmarks=np.asarray(pts, np.float64),
                    crop_landmarks=apply_affine(pts, m), angle=angle)


def neutral_start(photo: np.ndarray, fc: FaceCrop, size: int, warped: tuple | None = None) -> tuple[np.ndarray, FaceCrop, dict]:
    """(photo with its face warped back to neutral, the model's crop of it, what was done) — `--start neutral`.

    Why: the generator learnt from neutral onsets; a smiling photo is an input it never saw, and its parted
    lips have less left to open. ckpp_tools.neutral.neutral_photo (the sampler's own neutralising warp,
    lips shut) is applied to the photo; the crop goes through the *same* matrix as the original's, so only
    the face changes. The crop's landmarks are the warped ones (HP starts from them). `warped`: neutral_photo's
    result for this photo and these landmarks when already computed (one warp serves every crop size).
    """
    from ckpp_tools.expressions import apply_affine
    from ckpp_tools.neutral import neutral_photo

    out, pts, info = warped if warped is not None else neutral_photo(photo, fc.landmarks)
    crop = warp_crop(out, fc.matrix, size)
    info = dict(info, l1_vs_photo=round(float(np.abs(crop.astype(np.float32) - fc.crop).mean() / 255.0), 5))
    return out, FaceCrop(crop=crop, matrix=fc.matrix, landmarks=pts, crop_landmarks=apply_affine(pts, fc.matrix),
                         angle=fc.angle), info


def parse_weights(specs, available: list[str]) -> dict[str, float]:
    """["happy", "surprise=0.5"] -> {"happy": 1.0, "surprise": 0.5}; unknown emotion / bad weight -> UsageError."""
    out: dict[str, float] = {}
    for spec in specs:
        name, _, w = str(spec).partition("=")
        canon = emo.normalize(name)
        if canon is None or canon not in available:
            raise UsageError(f"emotion {name.strip()!r} is not one this model was trained on", path="--emotion",
                             fix="use one of: " + ", ".join(available))
        try:
            val = float(w) if w.strip() else 1.0
        except ValueError:
            raise UsageError(f"weight {w!r} of {canon} is not a number", path="--emotion",
                             fix=f"write --emotion {canon}=0.5 (a number from 0 to 1)")
        if not (math.isfinite(val) and 0.0 <= val <= 1.0):
            raise UsageError(f"weight {w} of {canon} is outside [0, 1]", path="--emotion",
                             fix=f"write --emotion {canon}=1.0 for the full expression, smaller for a milder one")
        out[canon] = val
    if not out:
        raise UsageError("no emotion given", path="--emotion", fix="e.g. --emotion " + available[0])
    return out


def paste_back(photo: np.ndarray, crops: np.ndarray, box, feather: float = 0.12) -> np.ndarray:
    """Put generated crops (T,s,s,3) back into the photo with a feathered edge -> (T,H,W,3). `box` is
    either the axis-aligned box [x0,y0,x1,y1] or the 2x3 photo -> crop affine of `face_crop` (rotated crops
    are rotated back)."""
    h, w = photo.shape[:2]
    s = crops.shape[1]
    if np.shape(box) == (2, 3):
        m = cv2.invertAffineTransform(np.asarray(box, np.float64))
    else:
        x0, y0, x1, y1 = (float(v) for v in box)
        scale = (x1 - x0) / s
        m = np.array([[scale, 0, x0 + 0.5 * scale - 0.5], [0, scale, y0 + 0.5 * scale - 0.5]], np.float64)
    ramp = np.minimum(np.arange(s) + 0.5, s - np.arange(s) - 0.5) / max(feather * s, 1.0)
    alpha = np.clip(np.minimum(ramp[None, :], ramp[:, None]), 0, 1).astype(np.float32)
    a = cv2.warpAffine(alpha, m, (w, h), flags=cv2.INTER_LINEAR, borderValue=0)[..., None]
    out = []
    base = photo.astype(np.float32)
    for c in crops:
        warped = cv2.warpAffine(c, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        out.append((base * (1 - a) + warped.astype(np.float32) * a).round().astype(np.uint8))
    return np.stack(out)


def generate_video(family, photo: np.ndarray, weights: dict[str, float], n_frames: int = 16, *,
                   paste: bool = False, min_side: int = 256, where: str = "PHOTO", align: bool = True,
                   start: str = "as-is", report: dict | None = None) -> np.ndarray:
    """(T,H,W,3) uint8 video of `photo`'s face moving from neutral to the weighted expression.

    Crops smaller than `min_side` are upscaled for viewing; paste=True returns whole photos instead
    (longer side capped at 1280). align=True levels the eyes before the model (see face_crop);
    start="neutral" warps a smiling face back to neutral first, "auto" only when its lips are parted
    (ckpp_tools.neutral.start_for; see neutral_start: frame 0 is then the neutralised face, and paste-back
    pastes into the neutralised photo). `report`, when given, receives what was found: the levelled roll
    (`angle`), the face's expression (`expression`: ckpp_tools.neutral's fitted smile and mouth opening, as
    measured before any neutral start) and the start applied (`start`: "as-is" or "neutral")."""
    import torch

    if n_frames < 2:
        raise UsageError(f"--frames {n_frames}: need at least 2 (the input and the peak)", path="--frames",
                         fix="use e.g. --frames 16")
    unknown = [e for e in weights if e not in family.emotions]
    if unknown:
        raise UsageError(f"emotion {unknown[0]!r} is not one this model was trained on", path="--emotion",
                         fix="use one of: " + ", ".join(family.emotions))
    cfg = family.cfg
    if paste and max(photo.shape[:2]) > 1280:
        k = 1280 / max(photo.shape[:2])
        photo = cv2.resize(photo, (round(photo.shape[1] * k), round(photo.shape[0] * k)), interpolation=cv2.INTER_AREA)
    from ckpp_tools.neutral import neutralise, parse_starts, start_for

    parse_starts([start])                 # an unknown start fails before the face is looked for
    fc = face_crop(photo, cfg.image_size, cfg.crop_fraction, align=align, where=where)
    applied = start_for(fc.landmarks, start)
    if report is not None:
        report.update(angle=fc.angle, expression=neutralise(fc.landmarks)[1], start=applied)
    if applied == "neutral":
        photo, fc, _ = neutral_start(photo, fc, cfg.image_size)
    crop = fc.crop
    extra = {}
    if family.name == "hp":
        # HP starts from the first frame's landmarks: hand it the photo's own (found at full resolution)
        # instead of letting it re-detect on the small crop
        lm = fc.crop_landmarks / float(cfg.image_size)
        extra["landmarks"] = torch.from_numpy(lm).float().unsqueeze(0)
    w = torch.zeros(1, len(family.emotions))
    for e, v in weights.items():
        w[0, family.emotions.index(e)] = v
    dev = family.device
    first = torch.from_numpy(crop).permute(2, 0, 1).float().div(127.5).sub(1).unsqueeze(0).to(dev)
    family.train_mode(False)
    with torch.no_grad():
        video = family.generate(first, w.to(dev), n_frames, **extra)[0]
    from .family import to_uint8

    frames = to_uint8(video)
    if paste:
        frames = paste_back(photo, frames, fc.matrix)
    elif frames.shape[1] < min_side:
        frames = np.stack([cv2.resize(f, (min_side, min_side), interpolation=cv2.INTER_CUBIC) for f in frames])
    return frames


def write_video(frames: np.ndarray, path, fps: float = 8) -> str:
    """Write (T,H,W,3) uint8 frames as .mp4 (H.264 via imageio-ffmpeg) or .gif, atomically."""
    import imageio.v2 as imageio

    path = os.fspath(path)
    ext = os.path.splitext(path)[1].lower()
    if ext not in (".mp4", ".gif"):
        raise UsageError(f"unsupported video type {ext or '(none)'}", path=path, fix="name the output .mp4 or .gif")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.partial{ext}"
    frames = np.asarray(frames, np.uint8)
    if ext == ".mp4":
        h, w = frames.shape[1] // 2 * 2, frames.shape[2] // 2 * 2     # yuv420p needs even sides
        frames = frames[:, :h, :w]
        with imageio.get_writer(tmp, format="FFMPEG", mode="I", fps=fps, codec="libx264", quality=8,
                                pixelformat="yuv420p", macro_block_size=1) as wr:
            for f in frames:
                wr.append_data(np.ascontiguousarray(f))
    else:
        import imageio.v3 as iio

        iio.imwrite(tmp, frames, extension=".gif", duration=1000.0 / fps, loop=0)
    os.replace(tmp, path)
    return path
