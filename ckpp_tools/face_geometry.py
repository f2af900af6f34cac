"""The geometry of a face in a photo: detect, pick, level, crop, and paste back — one torch-free place.

Which face of a photo with several is picked (size, centre, whole in the frame, detector scores) is
ckpp_tools.face_pick's ranking; `face_box(..., face=N)` takes another, `report` lists them all.

`ckpp generate`, `ckpp benchmark --photos`, the Python API and the app all see a photo's face through this
module, so they crop exactly alike: prepare's square box over dlib's 68 landmarks (ckpp_tools.crop), the central
crop_fraction the model trained on, eyes levelled by a similarity transform (`crop_matrix`), and `paste_back`
inverting that transform. Why one module: a second copy of this geometry in any caller would crop a slightly
different face than the one the model was measured on.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ckpp_tools.crop import crop_box, crop_image
from ckpp_tools.errors import CkppError


def face_box(photo: np.ndarray, where: str = "PHOTO", face: int | None = None,
             report: dict | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(prepare's square crop box [x0,y0,x1,y1], 68 landmarks) of the photo's face: the first of the ranking
    (ckpp_tools.face_pick: size, centre, whole in the frame, detector scores) or the 1-based `face` of it.
    `report`, when given, receives `faces` (every face_pick.Face, ranked) and `face` (the one used). No face
    -> CkppError naming `where`; `face` out of range -> UsageError naming --face and listing the faces."""
    from ckpp_tools import face_pick

    found = face_pick.faces(photo)
    if not found:
        raise CkppError("no face found in the photo", path=where,
                        fix="use a photo with one clearly visible, roughly frontal face")
    chosen = face_pick.choose(found, face, where)
    if report is not None:
        report.update(faces=found, face=chosen)
    return chosen.crop_box.copy(), chosen.landmarks


def shrink_box(box, fraction: float) -> np.ndarray:
    """The central `fraction` of a square box (the model's training crop inside prepare's box)."""
    x0, y0, x1, y1 = (float(v) for v in box)
    cx, cy, half = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) * fraction / 2
    return np.array([cx - half, cy - half, cx + half, cy + half])


def model_box(landmarks, crop_fraction: float = 1.0) -> np.ndarray:
    """(x0, y0, x1, y1): the square a model sees of a face with these 68 landmarks, the central crop_fraction of
    prepare's box (crop_box). One definition for a photo (crop_matrix, on the levelled landmarks) and for a
    training clip's onset view (models.data.view_box), so the face is as large in training as in use."""
    return shrink_box(crop_box(np.asarray(landmarks, np.float64)), crop_fraction)


def crop_face(photo: np.ndarray, size: int = 289, crop_fraction: float = 1.0, where: str = "PHOTO",
              face: int | None = None, report: dict | None = None):
    """(crop size×size uint8 RGB, box in photo pixels): prepare's crop (crop_fraction=1) or the central
    part of it a model trained on (crop_fraction=cfg.crop_fraction); `face`, `report`: as face_box."""
    box, _ = face_box(photo, where, face, report)
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
    x0, y0, x1, y1 = model_box(apply_affine(p, rot), crop_fraction)
    s = size / (x1 - x0)
    m = np.array([[s, 0.0, -x0 * s], [0.0, s, -y0 * s]]) @ np.vstack([rot, [0.0, 0.0, 1.0]])
    return m, angle


def crop_scale(matrix: np.ndarray) -> float:
    """Crop pixels per photo pixel of a photo -> crop similarity (2x3)."""
    return float(np.sqrt(abs(np.linalg.det(np.asarray(matrix, np.float64)[:, :2]))))


def resize_matrix(matrix: np.ndarray, size: int, new_size: int) -> np.ndarray:
    """The same crop (same face, same box) at new_size x new_size instead of size x size: pixel centres map
    to pixel centres, so a field of the small crop upsampled with align_corners=False lands on the same face."""
    k = new_size / float(size)
    m = np.asarray(matrix, np.float64) * k
    m[:, 2] += 0.5 * (k - 1.0)      # centre-aligned: (x + 0.5)·k − 0.5
    return m


#: the largest face crop `output_size` picks by default (a 4000-px phone photo's face stays a sensible file)
MAX_OUTPUT = 1024
#: the smallest face crop `output_size` picks by default (viewing size; smaller photo faces are interpolated)
MIN_OUTPUT = 256


def output_size(matrix: np.ndarray, size: int, wanted: int | None = None) -> int:
    """Side of the face crop at the photo's own resolution: the crop box's side in photo pixels, kept within
    [MIN_OUTPUT, MAX_OUTPUT] (and never below the network's `size`), or `wanted` when given."""
    if wanted:
        return int(wanted)
    native = size / crop_scale(matrix)
    return int(max(size, min(MAX_OUTPUT, max(MIN_OUTPUT, round(native)))))


def _shrink_for(img: np.ndarray, m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Big reductions first shrink the image by an integer factor (area filter), as crop_image does; returns the
    (possibly) shrunk image and the matrix adjusted to it."""
    zoom = 1.0 / crop_scale(m)
    if zoom >= 2.0:
        k = int(zoom)
        h, w = img.shape[:2]
        img = cv2.resize(img[: h - h % k or h, : w - w % k or w], (max(1, w // k), max(1, h // k)),
                         interpolation=cv2.INTER_AREA)
        m[:, 2] += m[:, :2] @ np.array([(k - 1) / 2.0, (k - 1) / 2.0])
        m[:, :2] *= k
    return img, m


def warp_crop(image: np.ndarray, matrix: np.ndarray, size: int, interpolation: int = cv2.INTER_LINEAR) -> np.ndarray:
    """size x size crop of `image` through the 2x3 affine `matrix` (photo -> crop), black outside; big
    reductions first shrink by an integer factor (area filter), as crop_image does. The network's input is
    bilinear (as prepare crops); full-resolution face crops (`output_size`) use INTER_CUBIC, which keeps the
    photo's detail when a small face is enlarged."""
    img = np.asarray(image)
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    img, m = _shrink_for(img, np.asarray(matrix, np.float64).copy())
    return cv2.warpAffine(img, m, (size, size), flags=interpolation, borderMode=cv2.BORDER_CONSTANT,
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
              where: str = "PHOTO", landmarks: np.ndarray | None = None, face: int | None = None,
              report: dict | None = None) -> FaceCrop:
    """The model's input from a photo: its face (face_box's pick, `face` to choose another; or the given
    landmarks), eyes levelled (align=True), prepare's crop box, central crop_fraction, size x size. No face
    -> CkppError naming `where`; `report` receives face_box's `faces` and `face`."""
    from ckpp_tools.expressions import apply_affine

    pts = landmarks if landmarks is not None else face_box(photo, where, face, report)[1]
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


#: the identity 2x3 matrix: paste_motion on a face crop itself (the crop is the "photo")
IDENTITY = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])


def paste_motion(photo: np.ndarray, matrix: np.ndarray, flow: np.ndarray, weight: np.ndarray,
                 residual: np.ndarray, additive: bool = False) -> np.ndarray:
    """Frames (T,H,W,3) of a face moved by a motion field given on its crop, applied at the image's own
    resolution: `--paste-back` for motion-output models (models/motion_output.py), and with matrix=IDENTITY
    the frames of a full-resolution face crop itself.

    matrix: photo -> crop (2x3) of the S x S crop the fields live on; flow (T,S,S,2): backward displacement in
    crop pixels (the crop pixel q shows the face at q + flow(q)); weight (T,S,S) in [0,1]: how much of the
    residual colour (T,S,S,3, 0…255) replaces the moved photo. Each photo pixel inside the crop looks up the
    field at its crop position and samples the *photo* once, bicubic (no crop-and-back resampling), so where
    flow and weight are zero — outside the crop, at a feathered crop border, in a frame with no motion — the
    frame is the photo exactly, pixel for pixel: no seam, and frame 0 of a relative motion is the photo.
    additive=True: the residual is a colour change (±255) added to the moved photo, weighted, not blended in."""
    photo = np.asarray(photo)
    h, w = photo.shape[:2]
    s = flow.shape[1]
    m = np.asarray(matrix, np.float64)
    inv = cv2.invertAffineTransform(m)
    corners = np.array([[0, 0], [s - 1, 0], [0, s - 1], [s - 1, s - 1]], np.float64) @ inv[:, :2].T + inv[:, 2]
    x0, y0 = np.floor(corners.min(0)).astype(int) - 1
    x1, y1 = np.ceil(corners.max(0)).astype(int) + 2
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    out = np.repeat(photo[None], len(flow), axis=0)
    if x1 <= x0 or y1 <= y0:
        return out
    px, py = np.meshgrid(np.arange(x0, x1, dtype=np.float64), np.arange(y0, y1, dtype=np.float64))
    qx = (m[0, 0] * px + m[0, 1] * py + m[0, 2]).astype(np.float32)    # crop position of each photo pixel
    qy = (m[1, 0] * px + m[1, 1] * py + m[1, 2]).astype(np.float32)
    a_inv = inv[:, :2]                                                   # crop displacement -> photo displacement
    lin = dict(interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    for t in range(len(flow)):
        d = cv2.remap(np.ascontiguousarray(flow[t], np.float32), qx, qy, **lin)
        wt = cv2.remap(np.ascontiguousarray(weight[t], np.float32), qx, qy, **lin)
        if not d.any() and not wt.any():
            continue                                                      # the photo as it is
        sx = (px + a_inv[0, 0] * d[..., 0] + a_inv[0, 1] * d[..., 1]).astype(np.float32)
        sy = (py + a_inv[1, 0] * d[..., 0] + a_inv[1, 1] * d[..., 1]).astype(np.float32)
        moved = cv2.remap(photo, sx, sy, interpolation=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
        res = cv2.remap(np.ascontiguousarray(residual[t], np.float32), qx, qy, **lin)
        wt = wt[..., None]
        mixed = moved + res * wt if additive else moved * (1 - wt) + res * wt
        out[t, y0:y1, x0:x1] = np.clip(mixed, 0, 255).round().astype(np.uint8)
    return out
