"""Per-clip analysis: decoded source frames -> (accept | reject with reason) and the arrays to store.

The prepare driver (prepare.py) finds and decodes clips and writes shards; this module decides, for one clip,
where the face is (landmarks, tracked), whether the clip is usable (blur, head motion, expression rise) and
what to keep (onset..peak, cropped, masked). Contract between the two (keep it stable):

    result = process_clip(frames, already_trimmed=..., provided_landmarks=..., onset_peak=..., options=ClipOptions(...))

Reasons this module may return: no_face, multiple_faces, blurry, head_motion, no_expression, too_short.
The driver itself decides unreadable, unlabelled, unknown_emotion, duplicate (and too_short before analysis).
"""
from __future__ import annotations

from dataclasses import dataclass, field
import time
from typing import Sequence

import numpy as np

from . import quality
from .blurred_face import find_blurred_face
from .crop import crop_box, crop_image, to_crop
from .masks import mouth_masks


@dataclass
class ClipOptions:
    size: int = 289                    # stored S (frames are S×S)
    landmark_backend: str = "dlib"     # "dlib" | "face-alignment"
    min_frames: int = 4                # fewer kept frames -> too_short
    multiple_faces: str = "largest"    # "largest" (track the largest face) | "reject"
    ck_landmarks: str = "provided"     # CK+: "provided" (use Landmarks/ files where present) | "detect"
    blur_threshold: float | None = None         # None: module default (documented in quality.py)
    head_motion_threshold: float | None = None  # None: module default (inter-ocular distances)
    head_rotation_threshold: float | None = None  # None: module default (degrees)
    min_rise: float | None = None               # None: module default (smallest expression rise, IOD units)
    head_yaw_threshold: float | None = None     # None: module default (degrees, estimated out-of-plane turn)


@dataclass
class ClipResult:
    status: str                        # "accepted" | "rejected"
    reason: str = ""                   # "" when accepted, else one of schema.REASONS
    detail: str = ""                   # a human sentence (why rejected / what was done)
    onset: int = -1                    # source index of the first kept frame (-1 unknown)
    peak: int = -1                     # source index of the last kept frame (-1 unknown)
    # arrays for accepted clips (None when rejected), T = peak - onset + 1 kept frames
    frames: np.ndarray | None = None        # (T,S,S,3) uint8 RGB
    landmarks: np.ndarray | None = None     # (T,68,2) float32, stored-pixel (x, y)
    mouth_mask: np.ndarray | None = None    # (T,S,S) uint8 {0,1}
    degree: np.ndarray | None = None        # (T,) float32, (t)/(T-1)
    source_index: np.ndarray | None = None  # (T,) int32
    crop_box: np.ndarray | None = None      # (4,) float64 [x0,y0,x1,y1] source pixels, square
    original_size: tuple[int, int] = (0, 0)  # (W, H) of the source frames
    blur_score: float = float("nan")
    head_motion: float = float("nan")
    extra: dict = field(default_factory=dict)  # diagnostics (e.g. detector calls, frames used)


def _reject(reason: str, detail: str, **kw) -> ClipResult:
    return ClipResult(status="rejected", reason=reason, detail=detail, **kw)


def crop_scale(face_side: float, size: int) -> int:
    """The largest reduction of the frames that still leaves the crop (~2.2x a face whose detector box is
    face_side px: crop.crop_box) 1.5x the stored size: crop.crop_image shrinks it at least that much itself
    (area filter), so crops from frames reduced by this much keep all the detail an S x S crop can hold."""
    return max(1, int(2.2 * face_side // (1.5 * size)))


def _blur_frames(start: int, stop: int, k: int = 5) -> list[int]:
    """A few frames spread over [start, stop) for the blur score (one blurry frame must not decide)."""
    if stop - start <= k:
        return list(range(start, stop))
    return sorted(set(np.linspace(start, stop - 1, k).round().astype(int).tolist()))


def process_clip(
    frames: Sequence[np.ndarray],
    *,
    already_trimmed: bool = False,
    provided_landmarks: np.ndarray | None = None,
    onset_peak: tuple[int, int] | None = None,
    options: ClipOptions | None = None,
    landmarker=None,
) -> ClipResult:
    """Analyse one clip.

    frames: source frames in order, uint8 (H,W) gray or (H,W,3) RGB: a list, or a frame_stream.ClipFrames
        (decoded as the analysis streams it: the worker then holds a bounded cache, the kept crops and a
        few numbers a frame, whatever the resolution and length of the clip).
    already_trimmed: CK+ sequences are neutral->peak already: keep them whole (no trimming).
    provided_landmarks: (N,68,2) source-pixel landmarks (CK+ Landmarks/ files), NaN rows where absent.
    onset_peak: (onset, peak) source indices from a CSV: skip automatic trimming.
    landmarker: a backend object (detect/predict); default: landmarks.get_backend(options.landmark_backend).

    Two passes over the frames. Pass 1, every frame once in order: landmarks (detect once, then track), on
    the frame reduced by an integer factor when the face is large (tracking.analysis_scale: HD and 4K) and
    the blur score of each tracked frame. Then the checks on the landmarks (in source pixels): no_face /
    multiple_faces (tracking), blurry, head_motion, the trim (no_expression, too_short). Pass 2, the kept
    frames only: the stored landmarks' re-fit (reduced frames), then the crops (full resolution). Timings,
    detector calls and the reduction are in result.extra.
    """
    from .frame_stream import as_frames, to_reduced, to_source
    from .landmarks import get_backend
    from .landmarks.tracking import FaceTracker, analysis_scale, refit_finish, refit_frame, refit_plan

    opt = options or ClipOptions()
    t0 = time.perf_counter()
    src = as_frames(frames)
    if not src.has(0):
        return _reject("too_short", "no frames to analyse")
    h, w = src.gray(0).shape[:2]
    size_wh = (int(w), int(h))
    if opt.landmark_backend != "dlib" and landmarker is None:
        landmarker = get_backend(opt.landmark_backend)
    lm_backend = landmarker or get_backend("dlib")

    provided = None
    if provided_landmarks is not None and opt.ck_landmarks == "provided":
        n = len(src)
        provided = np.asarray(provided_landmarks, dtype=np.float32)
        if provided.shape[1:] != (68, 2) or len(provided) < n:
            pad = np.full((n, 68, 2), np.nan, dtype=np.float32)
            if provided.ndim == 3 and provided.shape[1:] == (68, 2):
                pad[: min(n, len(provided))] = provided[:n]
            provided = pad

    def frames_from(start, k):
        src.set_scale(k)   # from here on the frames are kept and served reduced by k (colour too)
        t = start
        while src.has(t):
            yield t, src.gray(t)
            t += 1

    blur_of: dict[int, float] = {}   # pass 1: the blur score of every tracked frame (the checks pick 5 of them)

    def on_frame(t, gray, landmarks):
        blur_of[t] = quality.blur_score(gray, landmarks)

    tracker = FaceTracker(lm_backend, multiple_faces=opt.multiple_faces)
    tr = tracker.track(src.gray, lambda: len(src), frames_from, provided=provided, on_frame=on_frame,
                       scale_for=lambda side: min(analysis_scale(side), crop_scale(side, opt.size)))
    n, k = len(src), tr.scale
    extra: dict = {"n_frames": n}
    extra.update(detector_calls=tr.detector_calls, redetections=tr.redetections, provided_landmarks=tr.provided_used,
                 usable=(tr.start, tr.stop), track_events=tr.events[:20], analysis_scale=k)
    extra["t_track"] = time.perf_counter() - t0
    blur_thr = quality.BLUR_THRESHOLD if opt.blur_threshold is None else opt.blur_threshold
    if tr.status == "no_face":   # (the frames were never reduced: no face, no scale)
        # 'blurry' needs evidence of a face the blur hides, not just a smooth picture: the detector finds a face,
        # itself blurred, once the frame is sharpened (blurred_face.py); clouds, cups and cats give none
        probe = _blur_frames(0, n, 3)
        ev = find_blurred_face({i: src.gray(i) for i in probe}, probe, blur_thr)
        extra.update(t_blurred_face=ev.seconds, blurred_face_calls=ev.detector_calls, blurred_face_score=ev.score,
                     blurred_face_box=ev.box)
        if ev.found:
            return _reject("blurry", f"{tr.detail}; {ev.sentence(blur_thr)}", original_size=size_wh,
                           blur_score=ev.sharpness, extra=extra)
        tr.detail += "; " + ev.sentence(blur_thr)
    if tr.status != "ok":
        return _reject(tr.status, tr.detail, original_size=size_wh, extra=extra)
    start, stop = tr.start, tr.stop
    lms = tr.landmarks[start:stop].astype(np.float64)
    if k > 1:   # the checks and the trim work in source pixels
        lms = lms * k + (k - 1) / 2
    # blur: median over a few frames of the usable part
    bidx = _blur_frames(start, stop)
    blur = float(np.median([blur_of[i] for i in bidx]))
    if stop - start < opt.min_frames:
        # a blurred face is what the detector misses most: if the few frames where it was found are blurry,
        # that is the reason (the face was there all along), not the clip's length
        if blur < blur_thr:
            return _reject("blurry", f"face sharpness {blur:.4f} < {blur_thr:g} (variance of Laplacian, normalised "
                           f"face crop); the face was found in only {stop - start} frame(s)",
                           original_size=size_wh, blur_score=blur, extra=extra)
        why = f"only {stop - start} frame(s) with a tracked face" + (f" ({tr.detail})" if tr.detail else "")
        return _reject("too_short", why, original_size=size_wh, extra=extra)
    # head motion over the whole usable part, relative to its first frames
    hm = quality.head_motion(lms)
    mot_thr = quality.HEAD_MOTION_THRESHOLD if opt.head_motion_threshold is None else opt.head_motion_threshold
    rot_thr = quality.HEAD_ROTATION_THRESHOLD if opt.head_rotation_threshold is None else opt.head_rotation_threshold
    yaw_thr = quality.HEAD_YAW_THRESHOLD if opt.head_yaw_threshold is None else opt.head_yaw_threshold
    extra.update(blur=blur, head_displacement=hm.displacement, head_translation=hm.translation, head_roll=hm.roll,
                 head_yaw=hm.yaw, head_scale=hm.scale)
    common = dict(original_size=size_wh, blur_score=blur, head_motion=hm.displacement, extra=extra)
    if blur < blur_thr:
        return _reject("blurry", f"face sharpness {blur:.4f} < {blur_thr:g} (variance of Laplacian, normalised face crop)",
                       **common)
    if hm.displacement > mot_thr or hm.roll > rot_thr or hm.yaw > yaw_thr:
        return _reject("head_motion",
                       f"head moved {hm.displacement:.2f} IOD (limit {mot_thr:g}), rolled {hm.roll:.1f} deg "
                       f"(limit {rot_thr:g}), turned ~{hm.yaw:.1f} deg (limit {yaw_thr:g}) by frame "
                       f"{start + hm.worst_frame}", **common)

    # trim
    if onset_peak is not None:
        onset, peak = int(onset_peak[0]), int(onset_peak[1])
        if not (0 <= onset <= peak < n):
            return _reject("too_short", f"onset/peak {onset}/{peak} outside the clip's {n} frames", **common)
        if onset < start or peak >= stop:
            return _reject("too_short", f"onset/peak {onset}/{peak} outside the frames with a tracked face "
                                        f"[{start}, {stop})", **common)
        how = "onset/peak given"
    elif already_trimmed:
        onset, peak = start, stop - 1
        how = "already trimmed: kept whole"
    else:
        kw = {} if opt.min_rise is None else {"min_rise": opt.min_rise}
        trim, inten = quality.trim_landmarks(lms, **kw)
        extra.update(rise=trim.rise, intensity_noise=trim.noise)
        if not trim.found:
            return _reject("no_expression", trim.detail, **common)
        onset, peak = start + trim.onset, start + trim.peak
        how = trim.detail
    T = peak - onset + 1
    if T < opt.min_frames:
        return _reject("too_short", f"{T} frame(s) from onset {onset} to peak {peak} < --min-frames {opt.min_frames}",
                       onset=onset, peak=peak, **common)

    # pass 2, the kept frames: landmarks to store, crop, resize, landmarks and masks in stored pixels
    t1 = time.perf_counter()
    src.keep_only(onset, peak)
    # store the predictor's fit on the unsmoothed image (closer to the face), averaged over neighbouring kept
    # frames (tracking.REFIT_SCALES / REFIT_TEMPORAL); the smoothed-image fit, steadier, drove the checks and the trim
    idx = list(range(onset, peak + 1))
    kept, refit, fitted = refit_plan(tr, idx)
    for j, i in enumerate(idx):
        src.load(i)   # every kept frame, in order: the crops below find them cached
        if refit is not None and fitted[j]:
            kept[j] = refit_frame(lm_backend, src.gray(i), tr.boxes[i])
    if refit is not None:
        kept = refit_finish(kept, refit, fitted)
    kept = to_source(kept, k)
    box = crop_box(kept)
    S = int(opt.size)
    colour = any(np.asarray(src[i]).ndim == 3 and np.asarray(src[i]).shape[2] >= 3 and
                 not _is_gray_rgb(np.asarray(src[i])) for i in (onset, peak))
    out = np.empty((T, S, S, 3), dtype=np.uint8)
    box_k = to_reduced(box, k)   # the crop from the frames as kept (reduced by k: crop_scale left it room)
    for j, i in enumerate(idx):
        out[j] = crop_image(np.asarray(src[i])[..., :3] if colour else src.gray(i), box_k, S)
    lm_s = to_crop(kept, box, S).astype(np.float32)
    masks = mouth_masks(lm_s, S)
    degree = (np.arange(T, dtype=np.float32) / np.float32(max(T - 1, 1))).astype(np.float32)
    extra["t_crop"] = time.perf_counter() - t1
    extra["t_total"] = time.perf_counter() - t0
    extra["ms_per_frame"] = 1000.0 * extra["t_total"] / n
    extra["decode"] = dict(getattr(src, "stats", {}))   # frames decoded (more than n: decoded again), seeks
    return ClipResult(
        status="accepted", reason="", detail=how, onset=onset, peak=peak, frames=out, landmarks=lm_s,
        mouth_mask=masks, degree=degree, source_index=np.arange(onset, peak + 1, dtype=np.int32),
        crop_box=np.asarray(box, dtype=np.float64), **common,
    )


def _is_gray_rgb(img: np.ndarray) -> bool:
    """An RGB frame whose channels are equal (grayscale saved as colour): store it as gray, cheaper and identical."""
    sub = img[::8, ::8]
    return bool(np.array_equal(sub[..., 0], sub[..., 1]) and np.array_equal(sub[..., 1], sub[..., 2]))
