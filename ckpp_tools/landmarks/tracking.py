"""Landmarks for every frame of a clip without running the face detector on every frame.

The HOG detector costs ~10-80 ms a frame, the 68-point predictor ~1 ms. So: detect once (on a downscaled
frame), then track. Each frame's predictor box is the detector's box moved with the head: the image motion
of the face region relative to the detection frame (phase correlation of a 64x64 patch, ~0.1 ms), not the
previous frame's landmarks -- a box re-derived from landmarks feeds the predictor's own errors back into
its input and can run away (an open, toothy smile dragging the whole shape off the face). When the image
motion is not available (CK+ frames between provided landmark files) the box comes from the previous
landmarks, placed the way the detector would (a box/landmark calibration in inter-ocular units, from
eyes and nose only, so mouth opening cannot inflate it). The detector runs again only when tracking
degrades:

- the face patch changed abruptly (normalised cross-correlation with the previous frame at the same place),
- the landmarks jumped or changed scale between frames (stable points, in IOD),
- landmarks fell outside the image.

If the re-detection finds no face where the track was (or the face is out of the picture), the face is
lost: the usable part of the clip ends there.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from ..frame_stream import reduce, to_gray, to_reduced  # noqa: F401  (to_gray: re-exported, its old home)

#: detector box relative to the centroid of BOX_POINTS, in IOD units: (dx, dy, width, height). Measured on
#: dlib's own detections (astronaut, Grace Hopper at several scales); replaced by each actual detection.
DEFAULT_CALIBRATION = (-0.05, 0.35, 1.85, 1.85)

#: a face whose detector box is at least twice this many pixels is analysed on its frames reduced by the integer
#: factor side // ANALYSIS_FACE (area filter; frame_stream.reduce), i.e. at 240-480 px: dlib's predictor and
#: every check (IOD units, the 128-px blur crop) need no more, and a 1080p / 4K face is 500-1500 px. Faces
#: under 480 px -- every SD video and CK+ -- are analysed as they are (issue 26; docs/prepare-analysis.md)
ANALYSIS_FACE = 240


def analysis_scale(face_side: float) -> int:
    """The integer reduction for a face whose detector box is `face_side` px wide (1 below 2 x ANALYSIS_FACE)."""
    return max(1, int(face_side // ANALYSIS_FACE))


#: eye corners and nose bridge/tip: the points dlib places best and that no expression moves (the face
#: outline is not used: dlib bends it with the jaw when the mouth opens)
BOX_POINTS = (27, 28, 29, 30, 36, 39, 42, 45)
STABLE = BOX_POINTS

#: tracking health limits
JUMP_IOD = 0.25          # mean stable-point move between consecutive frames (IOD)
SCALE_JUMP = 0.2         # relative IOD change between consecutive frames
NCC_MIN = 0.5            # face patch correlation with the previous frame at the same box
OUTSIDE_MAX = 0.1        # fraction of landmarks outside the image that counts as "face leaving"
SECOND_FACE_RATIO = 0.5  # a second detection counts as another face when its side is >= this x the largest
#: box hysteresis: keep the previous predictor box until the landmark-derived one moves this far (IOD) or
#: changes size by this fraction. A box re-derived every frame from the previous frame's landmarks feeds the
#: predictor's own jitter back into its input and random-walks; a held box pins a still face like the
#: detector does, and a moving head still re-anchors it within a frame or two.
BOX_HOLD_SHIFT = 0.12
BOX_HOLD_SCALE = 0.06
#: image-motion box: ignore moves below this fraction of the box side (keeps a still face's box pinned) and
#: re-take the reference patch after moves beyond RE_ANCHOR of the side (keeps the patches overlapping)
MOVE_MIN = 0.015
RE_ANCHOR = 0.25
#: the predictor sees the face smoothed by a Gaussian of this many IOD (~0.5 px at 640x480): dlib's
#: pixel-difference features otherwise lock onto compression noise and fine texture (glasses rims, hat
#: embroidery) and jump between fits from frame to frame. Measured on the sample videos with the detector's
#: box held fixed: trims within the target 32/38 -> 36/38, median NME +0.005 IOD. That NME cost is why the
#: frames that are finally kept get the predictor again on the unsmoothed image (unsmoothed_landmarks,
#: REFIT_SCALES): the stored landmarks come from it, the steadier smoothed fit drives tracking, head motion
#: and the trim.
PREDICT_SMOOTH = 0.02
#: the stored landmarks of the kept frames: the predictor on the unsmoothed image in the tracked box scaled by
#: REFIT_SCALES (same centre; dlib's fit depends on the box it is given and a slightly tight box fits these
#: faces best), averaged over neighbouring kept frames with REFIT_TEMPORAL weights (1-2-1: a frame's fit
#: jitters around the face independently of its neighbours', the expression moves smoothly). Median NME of
#: the kept frames (mean in brackets; "naive" = bm_prepare's naive pipeline on the same frames of one clip per
#: subject; calls = predictor calls per kept frame on top of the tracking fit):
#:
#:   | stored landmarks (calls)                      | bm tree (193) | bm subset vs naive (45) | 22-subject tree (1418) | its 22-clip subset vs naive (370) |
#:   | unsmoothed at 0.93 / 1.0 / 1.07 (3, first)     | 0.0207 (0.0219) | 0.0214 / 0.0233 | -               | -               |
#:   | tracking fit + unsmoothed 0.9 / 1.07 (2, then) | 0.0203 (0.0221) | 0.0215 / 0.0233 | 0.0189 (0.0218) | 0.0203 / 0.0211 |
#:   | tracking fit + unsmoothed 0.9 (1)              | 0.0222 (0.0229) | 0.0234 / 0.0233 | 0.0191 (0.0206) | 0.0212 / 0.0211 |
#:   | unsmoothed 0.9, 1-2-1 over frames (1)          | 0.0214 (0.0221) | 0.0215 / 0.0233 | 0.0196 (0.0205) | 0.0205 / 0.0211 |
#:   | the same on every 2nd frame, lines between (1/2, this) | 0.0217 (0.0225) | 0.0224 / 0.0233 | 0.0197 (0.0206) | 0.0206 / 0.0211 |
#:
#: (bm tree: benchmarks/bm_prepare.py's default sample, seed 0, 3 subjects, 640x480; 22-subject tree:
#: `bm_prepare.py --subjects 22 --seed 1`, 2,991 frames; this row was picked among ~20 variants -- scales
#: 0.85-1.15, with/without the tracking fit, with/without the 1-2-1 -- on both trees, so neither is held out
#: for it.) Half a call instead of two a kept frame (REFIT_EVERY): ~37 % fewer predictor calls in all;
#: medians +0.0008-0.0014 on all kept frames, means within +-0.001, and still ahead of the naive pipeline
#: on both subsets. The stored landmarks only: the checks and the trim use the tracking fit.
REFIT_SCALES = (0.9,)
#: fit every REFIT_EVERY-th kept frame (and the last of a run); the frames between get the line between fits
REFIT_EVERY = 2
#: weights (previous, this, next kept frame) of the temporal average of the stored landmarks
REFIT_TEMPORAL = (1, 2, 1)


def _iod(pts: np.ndarray) -> float:
    return float(np.linalg.norm(pts[36] - pts[45]))


def _centre(landmarks: np.ndarray) -> np.ndarray:
    return np.asarray(landmarks, dtype=np.float64)[list(BOX_POINTS)].mean(0)


def calibrate(box, landmarks: np.ndarray) -> tuple[float, float, float, float]:
    """The detector box expressed relative to the landmarks' stable centroid, in IOD units."""
    c = landmarks[list(STABLE)].mean(0)
    d = max(_iod(landmarks), 1e-3)
    x0, y0, x1, y1 = box
    cal = (((x0 + x1) / 2 - c[0]) / d, ((y0 + y1) / 2 - c[1]) / d, (x1 - x0) / d, (y1 - y0) / d)
    # a detection whose predicted shape disagrees wildly with its box is not a good reference
    if not (1.2 <= cal[2] <= 2.6 and 1.2 <= cal[3] <= 2.6 and abs(cal[0]) < 0.5 and abs(cal[1] - 0.35) < 0.45):
        return DEFAULT_CALIBRATION
    return cal


def box_for(landmarks: np.ndarray, cal) -> tuple[float, float, float, float]:
    """Predictor box for the next frame from this frame's landmarks (detector-like placement)."""
    c = landmarks[list(STABLE)].mean(0)
    d = _iod(landmarks)
    cx, cy = c[0] + cal[0] * d, c[1] + cal[1] * d
    w, h = cal[2] * d, cal[3] * d
    return (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)


_PATCH = 64
_GROW = 1.6
_WINDOW: np.ndarray | None = None


def _region(gray: np.ndarray, box) -> tuple[np.ndarray, float]:
    """The square region around `box` (grown by _GROW) resampled to _PATCH x _PATCH float32, and its scale."""
    x0, y0, x1, y1 = box
    cx, cy, side = (x0 + x1) / 2, (y0 + y1) / 2, max(x1 - x0, 1.0) * _GROW
    sc = _PATCH / side
    m = np.array([[sc, 0, _PATCH / 2 - sc * cx], [0, sc, _PATCH / 2 - sc * cy]], dtype=np.float64)
    p = cv2.warpAffine(gray, m, (_PATCH, _PATCH), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REPLICATE)
    return p.astype(np.float32), sc


def image_shift(ref_patch: np.ndarray, gray: np.ndarray, box) -> tuple[float, float, float]:
    """How far (source px) the content of `box` moved since `ref_patch` was taken there, and the phase
    correlation's peak response (near 0: the region no longer looks like it did)."""
    global _WINDOW
    if _WINDOW is None:
        _WINDOW = cv2.createHanningWindow((_PATCH, _PATCH), cv2.CV_32F)
    cur, sc = _region(gray, box)
    (dx, dy), resp = cv2.phaseCorrelate(ref_patch, cur, _WINDOW)
    return dx / sc, dy / sc, float(resp)


def _iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    ua = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / ua if ua > 0 else 0.0


def _patch(gray: np.ndarray, box, size: int = 24) -> np.ndarray | None:
    h, w = gray.shape
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    if x1 - x0 < 8 or y1 - y0 < 8:
        return None
    p = cv2.resize(gray[y0:y1, x0:x1], (size, size), interpolation=cv2.INTER_AREA).astype(np.float32)
    p -= p.mean()
    n = float(np.linalg.norm(p))
    return p / n if n > 1e-3 else None


def _ncc(a: np.ndarray | None, b: np.ndarray | None) -> float:
    if a is None or b is None:
        return 0.0
    return float((a * b).sum())


def _outside(pts: np.ndarray, shape) -> float:
    h, w = shape[:2]
    out = (pts[:, 0] < 0) | (pts[:, 1] < 0) | (pts[:, 0] > w - 1) | (pts[:, 1] > h - 1)
    return float(out.mean())


@dataclass
class TrackResult:
    landmarks: np.ndarray          # (N,68,2) float32 source pixels; NaN outside [start, stop)
    start: int = 0                 # first usable frame
    stop: int = 0                  # one past the last usable frame (face lost / clip end)
    status: str = "ok"             # "ok" | "no_face" | "multiple_faces"
    detail: str = ""
    detector_calls: int = 0
    redetections: int = 0
    provided_used: int = 0
    events: list = field(default_factory=list)  # (frame, what) of tracking incidents, for diagnostics
    #: (N,4) predictor box [x0,y0,x1,y1] of each tracked frame; NaN where landmarks were provided / no face
    boxes: np.ndarray | None = None
    #: landmarks and boxes are in pixels of the frames reduced by this factor (frame_stream.reduce / to_source)
    scale: int = 1


def unsmoothed_landmarks(landmarker, grays, track: TrackResult, idx) -> np.ndarray:
    """(len(idx),68,2) landmarks of frames `idx` (consecutive frames, in order) for storing: the predictor on
    the unsmoothed image in the tracker's box scaled by REFIT_SCALES (see PREDICT_SMOOTH), then
    REFIT_TEMPORAL-weighted over neighbouring re-fitted frames. Frames without a box (provided landmarks) keep
    the tracked ones, unsmoothed. In the tracker's pixels (TrackResult.scale); grays[i]: frame i reduced alike.
    A clip streamed from disk does the same in three steps: refit_plan, refit_frame on the frames it marks,
    refit_finish."""
    idx = list(idx)
    out, refit, fitted = refit_plan(track, idx)
    if refit is None:
        return out
    for k in np.nonzero(fitted)[0]:
        out[k] = refit_frame(landmarker, grays[idx[k]], track.boxes[idx[k]])
    return refit_finish(out, refit, fitted)


def refit_plan(track: TrackResult, idx: list[int]):
    """(landmarks to refine, frames with a box, frames to fit): runs of consecutive frames with a box are fitted
    every REFIT_EVERY-th frame and on their last one; (out, None, None) when the track has no boxes."""
    out = np.array(track.landmarks[idx], dtype=np.float32)
    if track.boxes is None:
        return out, None, None
    refit = np.array([bool(np.isfinite(track.boxes[i]).all()) for i in idx], dtype=bool)
    # runs of consecutive frames with a box: fit every REFIT_EVERY-th frame of a run and its last one, the
    # frames between two fits get the straight line between them
    fitted = np.zeros(len(idx), dtype=bool)
    k = 0
    while k < len(idx):
        if not refit[k]:
            k += 1
            continue
        end = k
        while end + 1 < len(idx) and refit[end + 1]:
            end += 1
        fitted[k:end + 1:max(1, REFIT_EVERY)] = True
        fitted[end] = True
        k = end + 1
    return out, refit, fitted


def refit_frame(landmarker, gray: np.ndarray, b) -> np.ndarray:
    """The predictor on the unsmoothed frame in box `b` scaled by REFIT_SCALES (averaged over the scales)."""
    cx, cy, h = (b[0] + b[2]) / 2, (b[1] + b[3]) / 2, (b[2] - b[0]) / 2
    fits = [landmarker.predict(gray, (cx - f * h, cy - f * h, cx + f * h, cy + f * h)) for f in REFIT_SCALES]
    return sum(fits) / np.float32(len(REFIT_SCALES))


def refit_finish(out: np.ndarray, refit: np.ndarray, fitted: np.ndarray) -> np.ndarray:
    """Lines between fitted frames, then the REFIT_TEMPORAL average over neighbours (out holds the fits)."""
    done = np.nonzero(fitted)[0]
    for k in np.nonzero(refit & ~fitted)[0]:
        a, b = done[done < k].max(), done[done > k].min()  # a run starts and ends with a fit
        u = np.float32((k - a) / (b - a))
        out[k] = (np.float32(1) - u) * out[a] + u * out[b]
    if refit.sum() > 1:       # the weighted average over refit neighbours, all frames at once (float32)
        w_prev, w_mid, w_next = (np.float32(w) for w in REFIT_TEMPORAL)
        prev = np.zeros(len(out), dtype=bool)
        nxt = np.zeros(len(out), dtype=bool)
        prev[1:] = refit[1:] & refit[:-1]
        nxt[:-1] = refit[:-1] & refit[1:]
        src_prev = np.concatenate([out[:1], out[:-1]])
        src_next = np.concatenate([out[1:], out[-1:]])
        acc = w_mid * out
        acc = np.where(prev[:, None, None], acc + w_prev * src_prev, acc)
        acc = np.where(nxt[:, None, None], acc + w_next * src_next, acc)
        wsum = w_mid + np.where(prev, w_prev, np.float32(0)) + np.where(nxt, w_next, np.float32(0))
        out = np.where(refit[:, None, None], acc / wsum[:, None, None].astype(np.float32), out)
    return out


class FaceTracker:
    """Detect once, track with the predictor, re-detect when tracking degrades (see module docstring)."""

    def __init__(self, landmarker, multiple_faces: str = "largest", max_side: int = 320):
        self.lm = landmarker
        self.multiple_faces = multiple_faces
        self.max_side = max_side
        self.detector_calls = 0
        self.anchor = None  # (box, reference patch): the image-motion reference of the current track

    # detection ------------------------------------------------------------------------------------------
    def detect(self, gray: np.ndarray) -> list:
        """Boxes, largest first: downscaled first (cheap), larger scales only when nothing was found."""
        big = max(gray.shape[:2])
        tries = [(0, self.max_side)]
        if big > self.max_side:
            tries.append((0, min(big, 2 * self.max_side)))
        if big <= 2 * self.max_side:
            tries.append((1, None))  # small images / small faces: dlib's upsampling
        for upsample, max_side in tries:
            self.detector_calls += 1
            boxes = self.lm.detect(gray, upsample=upsample, max_side=max_side)
            if boxes:
                return boxes
        return []

    def count_faces(self, gray: np.ndarray, boxes: list) -> tuple[int, list]:
        """Number of comparable faces. A face seen near the HOG minimum (~80 px) at the downscaled size means
        a second face half its size could have been missed: look again at twice the resolution (only when
        multiple faces reject the clip; with "largest" the count changes nothing)."""
        big = max(gray.shape[:2])
        seen = (boxes[0][2] - boxes[0][0]) * min(1.0, self.max_side / big)
        if seen < 160 and len(boxes) == 1 and self.multiple_faces == "reject":
            self.detector_calls += 1
            if big > self.max_side:
                more = self.lm.detect(gray, upsample=0, max_side=min(big, 2 * self.max_side))
            else:
                more = self.lm.detect(gray, upsample=1, max_side=None)
            if len(more) > 1:
                boxes = more
        return self._faces(boxes), boxes

    def _faces(self, boxes) -> int:
        if not boxes:
            return 0
        side0 = boxes[0][2] - boxes[0][0]
        return sum(1 for b in boxes if (b[2] - b[0]) >= SECOND_FACE_RATIO * side0)

    def predict(self, gray: np.ndarray, box) -> np.ndarray:
        """Landmarks for `box`, predicted on a lightly smoothed copy of the face region (PREDICT_SMOOTH)."""
        if not PREDICT_SMOOTH:
            return self.lm.predict(gray, box)
        x0, y0, x1, y1 = box
        side = max(x1 - x0, 1.0)
        sigma = PREDICT_SMOOTH * side / DEFAULT_CALIBRATION[2]
        if sigma < 0.3:
            return self.lm.predict(gray, box)
        h, w = gray.shape[:2]
        m = 0.35 * side + 3 * sigma
        rx0, ry0 = max(int(x0 - m), 0), max(int(y0 - m), 0)
        rx1, ry1 = min(int(np.ceil(x1 + m)), w), min(int(np.ceil(y1 + m)), h)
        if rx1 - rx0 < 8 or ry1 - ry0 < 8:
            return self.lm.predict(gray, box)
        roi = cv2.GaussianBlur(gray[ry0:ry1, rx0:rx1], (0, 0), sigma)
        pts = self.lm.predict(roi, (x0 - rx0, y0 - ry0, x1 - rx0, y1 - ry0))
        return pts + np.array([rx0, ry0], dtype=np.float32)

    # tracking -------------------------------------------------------------------------------------------
    def run(self, grays, provided: np.ndarray | None = None, init_tries: int = 3) -> TrackResult:
        """Track a clip held in memory (`grays`: its frames, gray). See track()."""
        n = len(grays)

        def frames_from(s, k):
            for t in range(s, n):
                yield t, reduce(grays[t], k)

        return self.track(lambda i: grays[i], lambda: n, frames_from, provided, init_tries)

    def track(self, gray_at, count, frames_from, provided: np.ndarray | None = None, init_tries: int = 3,
              on_frame=None, scale_for=None) -> TrackResult:
        """Landmarks of every frame of a clip streamed in order (one frame in memory at a time).

        gray_at(i): frame i, gray, full resolution (the first detection: frame 0, else frames n//2 and n-1);
        count(): the number of frames (asked when frame 0 has no face, and at the end);
        frames_from(start, k): (t, gray reduced by k: frame_stream.reduce) for t = start, start+1, ... in order;
        provided: (n,68,2) source-pixel landmarks, NaN rows where absent (then n must be known);
        on_frame(t, gray, landmarks): called with every tracked frame (reduced gray, its landmarks);
        scale_for(face_side): k for a face whose detector box is face_side px (default analysis_scale).

        The face found first fixes k: the result's landmarks and boxes are in pixels of the
        frames reduced by k (TrackResult.scale; frame_stream.to_source maps them back)."""
        res = TrackResult(np.empty((0, 68, 2), np.float32), 0, 0)
        self.detector_calls = 0
        have = None
        if provided is not None:
            provided = np.asarray(provided, dtype=np.float32)
            have = np.isfinite(provided).all(axis=(1, 2))
        n_seen: list[int] = []

        def n_frames() -> int:
            if not n_seen:
                n_seen.append(int(count()))
            return n_seen[0]

        scale_for = scale_for or analysis_scale

        def provided_scale(pts) -> int:
            return scale_for(DEFAULT_CALIBRATION[2] * _iod(pts))

        # start: the first frame (provided, or where the detector finds a face); frames n//2, n-1 after that
        start, prev, cal, first_box, k = None, None, DEFAULT_CALIBRATION, None, 1
        tried: list[int] = []
        if have is not None and have.any() and have[0]:
            k = provided_scale(provided[0])
            start, prev = 0, to_reduced(provided[0], k)
        else:
            i, rest = 0, None
            while i is not None:
                if have is not None and have[: i + 1].any():
                    break
                tried.append(i)
                g = gray_at(i)
                boxes = self.detect(g)
                if boxes:
                    nf, boxes = self.count_faces(g, boxes)
                    if nf > 1:
                        res.events.append((i, f"{nf} faces"))
                        if self.multiple_faces == "reject":
                            res.status, res.detail = "multiple_faces", f"{nf} faces found in frame {i}"
                            res.detector_calls = self.detector_calls
                            res.landmarks = np.full((n_frames(), 68, 2), np.nan, dtype=np.float32)
                            res.boxes = np.full((n_frames(), 4), np.nan)
                            return res
                    k = scale_for(boxes[0][2] - boxes[0][0])
                    first_box = tuple(float(v) for v in to_reduced(np.asarray(boxes[0], np.float64), k))
                    start = i
                    break
                if rest is None:   # frame 0 had no face: the middle and the last frame (the clip's length now counts)
                    n = n_frames()
                    rest = sorted(set([0] + [j for j in (n // 2, n - 1) if j > 0][: max(0, init_tries - 1)]))[1:]
                i = rest.pop(0) if rest else None
            if start is None and have is not None and have.any():
                start = int(np.argmax(have))
                k = provided_scale(provided[start])
                prev = to_reduced(provided[start], k)
        res.scale = k
        if start is None:
            res.status, res.detail = "no_face", f"no face found (detector tried frames {tried})"
            res.detector_calls = self.detector_calls
            res.landmarks = np.full((n_frames(), 68, 2), np.nan, dtype=np.float32)
            res.boxes = np.full((n_frames(), 4), np.nan)
            return res
        if start > 0 and not (have is not None and have[start]):
            # the face appeared late: nothing before it is usable (the driver keeps a contiguous run)
            res.events.append((start, "first face found here"))
        frames = frames_from(start, k)
        t0, g_prev = next(frames)
        if prev is None:   # the detector's face: the predictor on the start frame as the tracker will see it
            prev = self.predict(g_prev, first_box)
            cal = calibrate(first_box, prev)
        lms, pboxes = [prev], [first_box if first_box is not None and not (have is not None and have[start]) else None]
        res.provided_used += int(have is not None and have[start])
        stop = None
        box = pboxes[0]
        self.anchor = (box, _region(g_prev, box)[0], _centre(prev)) if box is not None else None
        if on_frame is not None:
            on_frame(t0, g_prev, prev)
        for t, g in frames:
            if have is not None and have[t]:
                prev = to_reduced(provided[t], k)
                res.provided_used += 1
                box, self.anchor = None, None
                lms.append(prev)
                pboxes.append(None)
            else:
                step = self._step(g_prev, g, t, prev, cal, box, res)
                if step is None:
                    stop = t
                    break
                prev, cal, box = step
                lms.append(prev)
                pboxes.append(box)
            if on_frame is not None:
                on_frame(t, g, prev)
            g_prev = g
        frames.close()
        n = n_frames()
        stop = n if stop is None else stop
        res.landmarks = np.full((n, 68, 2), np.nan, dtype=np.float32)
        res.landmarks[start:start + len(lms)] = np.asarray(lms, dtype=np.float32)
        res.boxes = np.full((n, 4), np.nan)
        for j, b in enumerate(pboxes):
            if b is not None:
                res.boxes[start + j] = b
        res.start, res.stop = start, stop
        if stop < n:
            res.detail = f"face lost at frame {stop} of {n}"
        res.detector_calls = self.detector_calls
        return res

    def _step(self, g_prev, gray, t, prev, cal, held, res):
        """Frame t (`gray`; `g_prev` the frame before it) tracked from `prev`: (landmarks, calibration, box),
        or None when the face is lost."""
        trouble = []
        if self.anchor is not None:
            abox, ref, c0 = self.anchor
            dx, dy, resp = image_shift(ref, gray, abox)
            # the head moved only as far as BOTH the image and the eye/nose landmarks say: an expression
            # biases the image motion (a mouth opening), a failing fit biases the landmarks, never both alike
            lx, ly = _centre(prev) - c0
            dx = float(np.sign(dx) * min(abs(dx), abs(lx))) if dx * lx > 0 else 0.0
            dy = float(np.sign(dy) * min(abs(dy), abs(ly))) if dy * ly > 0 else 0.0
            side = abox[2] - abox[0]
            box = (abox[0] + dx, abox[1] + dy, abox[2] + dx, abox[3] + dy)
            if held is not None and np.hypot(box[0] - held[0], box[1] - held[1]) < MOVE_MIN * side:
                box = held
            if np.hypot(dx, dy) > RE_ANCHOR * side:
                self.anchor = (box, _region(gray, box)[0], _centre(prev))
            if resp < 0.05:
                trouble.append(f"face region changed (phase correlation {resp:.2f})")
        else:
            box = box_for(prev, cal)
        if held is not None and self.anchor is None:
            d = max(_iod(prev), 1e-3)
            shift = np.hypot((box[0] + box[2] - held[0] - held[2]) / 2, (box[1] + box[3] - held[1] - held[3]) / 2) / d
            grow = (box[2] - box[0]) / max(held[2] - held[0], 1e-3) - 1.0
            if shift < BOX_HOLD_SHIFT and abs(grow) < BOX_HOLD_SCALE:
                box = held
        if _outside(prev, gray.shape) > OUTSIDE_MAX:
            trouble.append("leaving the picture")
        ncc = _ncc(_patch(g_prev, box), _patch(gray, box))
        if ncc < NCC_MIN:
            trouble.append(f"appearance change (ncc {ncc:.2f})")
        cur = None
        if not trouble:
            cur = self.predict(gray, box)
            d = max(_iod(prev), 1e-3)
            jump = float(np.linalg.norm(cur[list(STABLE)] - prev[list(STABLE)], axis=1).mean()) / d
            if jump > JUMP_IOD:
                trouble.append(f"landmark jump {jump:.2f} IOD")
            if abs(_iod(cur) / d - 1.0) > SCALE_JUMP:
                trouble.append("scale jump")
            if _outside(cur, gray.shape) > OUTSIDE_MAX:
                trouble.append("landmarks outside the picture")
        if not trouble:
            return cur, cal, box
        # degraded: ask the detector where the face is now
        res.redetections += 1
        boxes = self.detect(gray)
        best = max(boxes, key=lambda b: _iou(b, box), default=None)
        if best is None or _iou(best, box) < 0.3:
            res.events.append((t, "lost: " + ", ".join(trouble)))
            return None
        cur = self.predict(gray, best)
        if _outside(cur, gray.shape) > OUTSIDE_MAX:
            res.events.append((t, "lost: face outside the picture"))
            return None
        res.events.append((t, "re-detected: " + ", ".join(trouble)))
        self.anchor = (tuple(best), _region(gray, best)[0], _centre(cur))
        return cur, calibrate(best, cur), tuple(best)
