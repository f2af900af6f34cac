"""From a photo of a face to a video of an expression, with any trained family (ours or a baseline).

    family, meta = load_run("runs/ours-surprise")
    photo = load_photo("me.jpg")
    frames = generate_video(family, photo, {"surprise": 1.0}, n_frames=16)   # (T,H,W,3) uint8
    write_video(frames, "me.mp4", fps=8)                                      # or .gif

The face is found with dlib and cropped exactly as `ckpp prepare` crops clips (crop.crop_box over the 68
landmarks), then the central crop_fraction of that box (the paper's 256/289, the crop the model trained on
at its centre) is resized to the model's input size. Degrees a_t = t/(T-1) · weight for t = 0…T-1: frame 0
reconstructs the input, the last frame is the (weighted) peak; several emotions mix.

In-the-wild photos are tilted; the models trained on upright crops. The face's geometry in the photo —
detect, level, crop, paste back — lives in ckpp_tools.face_geometry (torch-free, shared with
`ckpp benchmark --photos`); its names are re-exported here for existing callers.
"""
from __future__ import annotations

import math
import os
import cv2
import numpy as np

from ckpp_tools import emotions as emo
from ckpp_tools.disk_space import atomic_write_bytes, mp4_complete, raise_write_failure, writing
from ckpp_tools.errors import UsageError
from ckpp_tools.face_geometry import (  # noqa: F401  (re-exported: the public names callers import from here)
    IDENTITY, LEVEL_TOLERANCE, REFINE_ABOVE, FaceCrop, crop_face, crop_matrix, eye_angle, face_box, face_crop,
    level_landmarks, neutral_start, output_size, paste_back, paste_motion, resize_matrix, shrink_box, warp_crop)
from ckpp_tools.photo_io import read_photo


def load_photo(path) -> np.ndarray:
    """RGB uint8 (H,W,3) of a photo file, upright (EXIF orientation) with transparency flattened
    (ckpp_tools.photo_io); unreadable -> CkppError naming the file and the fix."""
    return read_photo(path)


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


#: fraction of the crop over which a pasted-back motion fades to zero at its border (no seam); the chin sits at
#: ~85% of the crop height, so the ramp stays below it
PASTE_FEATHER = 0.08


def is_motion_model(family) -> bool:
    """Whether `family` predicts motion (output="warp", models/motion_output.py) rather than pixels."""
    return getattr(getattr(family, "G", None), "output", "pixels") == "warp"


#: side of the face crop `ckpp benchmark --photos` measures motion-output models at (their motion applied to
#: the photo's face at this size, as `ckpp generate` does at the face's own size)
MOTION_SIZE = 256


def motion_size(family) -> int | None:
    """MOTION_SIZE for motion-output models, None for pixel models (measured at the network's size)."""
    return MOTION_SIZE if is_motion_model(family) else None


def full_res_crop(photo: np.ndarray, matrix: np.ndarray, size: int, out: int) -> np.ndarray:
    """The face of the network's size x size crop (`matrix`: photo -> crop) taken from the photo at out x out,
    bicubic (face_geometry.resize_matrix: pixel centres aligned with the network's crop)."""
    return warp_crop(photo, resize_matrix(matrix, size, out), out, cv2.INTER_CUBIC)


def motion_video(family, first, crops_hr, weights, n_frames: int, border: float = 0.0):
    """Frames of motion-output models at a bigger crop than the network's: first (B,3,s,s) in [-1,1] (the network's
    input), crops_hr (B,S,S,3) uint8 (the same faces at S x S: face_geometry.resize_matrix, bicubic) ->
    (B,T,S,S,3) uint8. Each video is relative to its frame 0's prediction (motion_output.relative), applied by
    face_geometry.paste_motion to the crop itself: frame 0 is the crop, later frames sample it once, bicubic."""
    flow, mask, res = family.generate_motion(first, weights, n_frames)
    return np.stack([_apply_motion(crop, IDENTITY, flow[i], mask[i], res[i], crop.shape[0], border,
                                   additive=family.G.additive)
                     for i, crop in enumerate(crops_hr)])


def _apply_motion(image, matrix, flow, mask, res, size: int, border: float, additive: bool = False) -> np.ndarray:
    """paste_motion of one video's network-size motion (T,c,s,s tensors) upsampled to a size x size crop, one
    frame at a time (a 2048² field of 16 frames would hold 1.6 GB at once). additive: the residual is a colour
    change added to the moved face (residual="delta"), not a colour blended in."""
    from . import motion_output as mo

    frames = []
    for t in range(flow.shape[0]):
        keep = [0, t]                                                     # relative to frame 0
        d, wt, r = (x[-1:] for x in mo.relative(flow[keep], mask[keep], res[keep], size, border))
        d = (d * (size / 2.0)).permute(0, 2, 3, 1).cpu().numpy()         # normalised -> crop pixels
        r = (r * 127.5 if additive else (r.clamp(-1, 1) + 1) * 127.5).permute(0, 2, 3, 1).cpu().numpy()
        if additive:
            r = luma_change(r)
        frames.append(paste_motion(image, matrix, d, wt[:, 0].cpu().numpy(), r, additive=additive)[0])
    return np.stack(frames)


#: ITU-R BT.601 luma weights, the grey of OpenCV's RGB2GRAY (and so of the expression judge)
LUMA = np.array([0.299, 0.587, 0.114], np.float32)


def luma_change(delta: np.ndarray) -> np.ndarray:
    """A colour change (…,3) -> its luminance change, the same on all three channels. Why: the delta residual
    (what darkens an opened mouth, lightens teeth) learnt its hue on the training people's skin; on paler faces
    it painted the cavity purple and on grey photos blue. Its brightness transfers, its hue does not: kept this
    way the mouth is the person's own colour, darker, a grey photo stays grey, and a grey reading of the frame
    (the judge's, dlib's) is the same as with the full colour change (docs/recipe.md)."""
    y = np.asarray(delta, np.float32) @ LUMA
    return np.repeat(y[..., None], 3, axis=-1)


def generate_video(family, photo: np.ndarray, weights: dict[str, float], n_frames: int = 16, *,
                   paste: bool = False, min_side: int = 256, where: str = "PHOTO", align: bool = True,
                   start: str = "as-is", report: dict | None = None, face: int | None = None,
                   size: int | None = None) -> np.ndarray:
    """(T,H,W,3) uint8 video of `photo`'s face moving from neutral to the weighted expression.

    Pixel-output models (the paper's decoder, the baselines): the network's crop, upscaled to `size` (default:
    `min_side`) when smaller. Motion-output models (output="warp"): the network's motion is applied to the face
    crop taken from the photo at its own resolution (face_geometry.output_size: the face's size in the photo
    within 256…1024 px; `size` to choose), each frame relative to frame 0's prediction, so frame 0 is the photo's
    face exactly. paste=True returns whole photos instead (longer side capped at 1280): pixel models paste the crop
    back with a feathered edge; motion models move the photo's own pixels (face_geometry.paste_motion), so
    frame 0 is the photo and no seam shows. align=True levels the eyes before the model (see face_crop);
    start="neutral" warps a smiling face back to neutral first, "auto" only when its lips are parted
    (ckpp_tools.neutral.start_for; see neutral_start: frame 0 is then the neutralised face, and paste-back
    pastes into the neutralised photo). `report`, when given, receives what was found: the levelled roll
    (`angle`), the face's expression (`expression`: ckpp_tools.neutral's fitted smile and mouth opening, as
    measured before any neutral start), the start applied (`start`: "as-is" or "neutral"), every face found
    (`faces`, ranked: ckpp_tools.face_pick) and the one animated (`face`; `face=N` picks the N-th), with
    `photo_scale` (face boxes are in photo pixels times it: < 1 where paste shrank the photo), the face's 68
    `landmarks` and the 2x3 `matrix` photo -> model crop (both in pixels of `photo` as given), and the face crop's side (`size`)."""
    import torch

    if n_frames < 2:
        raise UsageError(f"--frames {n_frames}: need at least 2 (the input and the peak)", path="--frames",
                         fix="use e.g. --frames 16")
    if size is not None and not 16 <= int(size) <= 2048:
        raise UsageError(f"--size {size}: the face crop's side must be 16…2048 pixels", path="--size",
                         fix="use e.g. --size 512, or leave it out (the face's own size in the photo)")
    unknown = [e for e in weights if e not in family.emotions]
    if unknown:
        raise UsageError(f"emotion {unknown[0]!r} is not one this model was trained on", path="--emotion",
                         fix="use one of: " + ", ".join(family.emotions))
    cfg = family.cfg
    k = 1.0
    if paste and max(photo.shape[:2]) > 1280:
        k = 1280 / max(photo.shape[:2])
        photo = cv2.resize(photo, (round(photo.shape[1] * k), round(photo.shape[0] * k)), interpolation=cv2.INTER_AREA)
        if report is not None:
            report["photo_scale"] = k
    from ckpp_tools.neutral import neutralise, parse_starts, start_for

    parse_starts([start])                 # an unknown start fails before the face is looked for
    fc = face_crop(photo, cfg.image_size, cfg.crop_fraction, align=align, where=where, face=face, report=report)
    applied = start_for(fc.landmarks, start)
    if report is not None:
        report.update(angle=fc.angle, expression=neutralise(fc.landmarks)[1], start=applied,
                      landmarks=fc.landmarks / k, matrix=fc.matrix @ np.diag([k, k, 1.0]))
    if applied == "neutral":
        warped = None
        if is_motion_model(family):       # the photo's own pixels are shown: the neutral warp bicubic too
            from ckpp_tools.neutral import neutral_photo

            warped = neutral_photo(photo, fc.landmarks, interpolation=cv2.INTER_CUBIC)
        photo, fc, _ = neutral_start(photo, fc, cfg.image_size, warped)
    if is_motion_model(family):
        out = output_size(fc.matrix, cfg.image_size, size)
        m_hr = resize_matrix(fc.matrix, cfg.image_size, out)
        if report is not None:
            report["size"] = out
        if paste:
            family.train_mode(False)
            with torch.no_grad():
                flow, mask, res = (t[0] for t in family.generate_motion(
                    input_tensor([fc.crop], family.device), _weights(family, weights, 1), n_frames))
            return _apply_motion(photo, m_hr, flow, mask, res, out, PASTE_FEATHER, additive=family.G.additive)
        return animate(family, [fc.crop], weights, n_frames,
                       crops_hr=[full_res_crop(photo, fc.matrix, cfg.image_size, out)])[0]
    frames = animate(family, [fc.crop], weights, n_frames, landmarks=[fc.crop_landmarks / float(cfg.image_size)])[0]
    if paste:
        frames = paste_back(photo, frames, fc.matrix)
    elif size is not None and frames.shape[1] != size:
        frames = np.stack([cv2.resize(f, (size, size), interpolation=cv2.INTER_CUBIC) for f in frames])
    elif size is None and frames.shape[1] < min_side:
        frames = np.stack([cv2.resize(f, (min_side, min_side), interpolation=cv2.INTER_CUBIC) for f in frames])
    return frames


def input_tensor(crops, device):
    """(B,s,s,3) uint8 crops -> (B,3,s,s) float in [-1, 1] on `device`, the networks' input."""
    import torch

    return torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).float().div(127.5).sub(1.0).to(device)


def _weights(family, weights: dict[str, float], n: int):
    """{emotion: degree at the peak} -> (n, E) tensor on the family's device."""
    import torch

    w = torch.zeros(n, len(family.emotions))
    for e, v in weights.items():
        w[:, list(family.emotions).index(e)] = v
    return w.to(family.device)


def animate(family, crops, weights: dict[str, float], n_frames: int, *, crops_hr=None, landmarks=None) -> np.ndarray:
    """The one step from face crops to videos, for a batch: `crops` (B,s,s,3) uint8, the network's input
    (face_geometry.face_crop), all with the same `weights` {emotion: degree at the peak}. Pixel models: (B,T,s,s,3)
    uint8. Motion-output models move `crops_hr` (the same faces at S x S, full_res_crop): (B,T,S,S,3).
    `landmarks` (B,68,2) in [0,1] of the crops go to HP (it starts from the first frame's landmarks).
    generate_video (one photo: ExpressionPipeline, `ckpp generate`, `ckpp app`) and `ckpp benchmark --photos`
    (batches of photos, ExpressionPipeline.animate) both make their videos here."""
    import torch

    from .family import to_uint8

    dev = family.device
    x, w = input_tensor(crops, dev), _weights(family, weights, len(crops))
    if hasattr(family, "train_mode"):
        family.train_mode(False)
    with torch.no_grad():
        if crops_hr is not None:
            return motion_video(family, x, crops_hr, w, n_frames)
        kw = {}
        if getattr(family, "name", "") == "hp" and landmarks is not None:
            kw["landmarks"] = torch.from_numpy(np.stack(landmarks)).float().to(dev)
        return to_uint8(family.generate(x, w, n_frames, **kw))


def write_video(frames: np.ndarray, path, fps: float = 8) -> str:
    """Write (T,H,W,3) uint8 frames as .mp4 (H.264 via imageio-ffmpeg) or .gif, atomically."""
    import imageio.v2 as imageio

    path = os.fspath(path)
    ext = os.path.splitext(path)[1].lower()
    if ext not in (".mp4", ".gif"):
        raise UsageError(f"unsupported video type {ext or '(none)'}", path=path, fix="name the output .mp4 or .gif")
    with writing(path):
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    frames = np.asarray(frames, np.uint8)
    if ext == ".gif":       # made in memory: a full disk fails in one place (Pillow would fail again at exit)
        import imageio.v3 as iio

        atomic_write_bytes(path, iio.imwrite("<bytes>", frames, extension=".gif", duration=1000.0 / fps, loop=0))
        return path
    tmp = f"{path}.partial{ext}"
    h, w = frames.shape[1] // 2 * 2, frames.shape[2] // 2 * 2     # yuv420p needs even sides
    frames = frames[:, :h, :w]
    with writing(path, partial=tmp):
        # ffmpeg only prints a full disk (and exits as if done) or dies with a broken pipe (read-only folder):
        # its lines are kept quiet, the result is checked and the disk asked why, so one message, no torn video
        try:
            with imageio.get_writer(tmp, format="FFMPEG", mode="I", fps=fps, codec="libx264", quality=8,
                                    pixelformat="yuv420p", macro_block_size=1, ffmpeg_log_level="quiet") as wr:
                for f in frames:
                    wr.append_data(np.ascontiguousarray(f))
        except OSError as exc:
            raise_write_failure(path, "ffmpeg", partial=tmp, original=exc)
        if not mp4_complete(tmp):
            raise_write_failure(path, "ffmpeg", partial=tmp)
        os.replace(tmp, path)
    return path
