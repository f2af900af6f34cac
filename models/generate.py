"""From a photo of a face to a video of an expression, with any trained family (ours or a baseline).

    family, meta = load_run("runs/ours-surprise")
    photo = load_photo("me.jpg")
    frames = generate_video(family, photo, {"surprise": 1.0}, n_frames=16)   # (T,H,W,3) uint8
    write_video(frames, "me.mp4", fps=8)                                      # or .gif

The face is found with dlib and cropped exactly as `ckpp prepare` crops clips (crop.crop_box over the 68
landmarks), then the central crop_fraction of that box (the paper's 256/289, the crop the model trained on
at its centre) is resized to the model's input size. Degrees a_t = t/(T-1) · weight for t = 0…T-1: frame 0
reconstructs the input, the last frame is the (weighted) peak; several emotions mix.
"""
from __future__ import annotations

import math
import os

import cv2
import numpy as np

from ckpp_tools import emotions as emo
from ckpp_tools.crop import crop_box, crop_image
from ckpp_tools.errors import CkppError, UsageError


def load_photo(path) -> np.ndarray:
    """RGB uint8 (H,W,3) of an image file (gray and RGBA converted); unreadable -> CkppError."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CkppError("no such photo", path=path, fix="pass the path of a JPEG/PNG photo with a face")
    img = cv2.imread(path, cv2.IMREAD_COLOR)
    if img is None:
        try:
            import warnings

            import imageio.v3 as iio

            with warnings.catch_warnings():          # imageio probes every plugin (DICOM, ...) on junk
                warnings.simplefilter("ignore")
                img = np.asarray(iio.imread(path))
        except Exception:
            raise CkppError("cannot read this file as an image", path=path,
                            fix="pass a JPEG or PNG photo (the file may be damaged or not an image)")
        if img.ndim == 2:
            img = np.repeat(img[..., None], 3, axis=2)
        img = img[..., :3].astype(np.uint8)
        return np.ascontiguousarray(img)
    return np.ascontiguousarray(img[..., ::-1])


def face_box(photo: np.ndarray, where: str = "PHOTO") -> tuple[np.ndarray, np.ndarray]:
    """(prepare's square crop box [x0,y0,x1,y1], 68 landmarks) of the largest face; none -> CkppError."""
    from ckpp_tools.landmarks.dlib_backend import DlibLandmarker

    lm = DlibLandmarker.shared()
    boxes = lm.detect(photo, upsample=0, max_side=640)
    if not boxes:
        boxes = lm.detect(photo, upsample=1, max_side=1024)   # small faces in big photos
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
    """Put generated crops (T,s,s,3) back into the photo at `box` with a feathered edge -> (T,H,W,3)."""
    h, w = photo.shape[:2]
    s = crops.shape[1]
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
                   paste: bool = False, min_side: int = 256, where: str = "PHOTO") -> np.ndarray:
    """(T,H,W,3) uint8 video of `photo`'s face moving from neutral to the weighted expression.

    Crops smaller than `min_side` are upscaled for viewing; paste=True returns whole photos instead
    (longer side capped at 1280)."""
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
    box, pts = face_box(photo, where)
    box = shrink_box(box, cfg.crop_fraction)
    crop = crop_image(photo, box, cfg.image_size)
    extra = {}
    if family.name == "hp":
        # HP starts from the first frame's landmarks: hand it the photo's own (found at full resolution)
        # instead of letting it re-detect on the small crop
        from ckpp_tools.crop import to_crop

        lm = to_crop(pts, box, cfg.image_size) / float(cfg.image_size)
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
        frames = paste_back(photo, frames, box)
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
