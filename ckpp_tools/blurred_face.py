"""Evidence of a blurred face where the detector found none: decides `blurry` against `no_face`.

Why: the HOG detector misses strongly blurred faces (the sample's blurred take at some seeds), and a clip whose
face is blurred should be called `blurry`, not `no_face`. But a smooth picture is no evidence of a face: a title
card over a cloudy sky, a blurred cup or cat have as little Laplacian energy and as much coarse structure as a
blurred face (issue 25; the coarse-structure test of issue 11 called them `blurry`), and dlib's weak detections
(negative scores) do not separate either (blurred faces -0.1..-1.0, coffee cups, coins, gravel -0.3..-0.5).

What separates: undo part of the blur, then ask the same detector at its normal threshold. A frame sharpened by
an unsharp mask (frame downscaled to RESTORE_SIDE, g + 3 (g - G_sigma * g)) lets the detector find the blurred
face again (score >= 0); the face it finds must lie inside the frame, be no speck (MIN_FACE) and itself be blurred
(`quality.blur_score` of its box, on the frame as given, below the clip's blur threshold): a sharp region that
only looks like a face once sharpened is no blurred face. Measured (docs/prepare-analysis.md): every blurred take of 37 sample trees, 0 of 345 face-free
frames (scenes and sky title cards, sharp and blurred), ~0.1 s a frame, paid only by clips without a face.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import cv2
import numpy as np

from .quality import blur_score

#: frames are brought to at most this longer side before sharpening (the sample's frames are 256-640 wide)
RESTORE_SIDE = 320
#: (Gaussian sigma in px at RESTORE_SIDE, unsharp amount, dlib upsample), cheapest first; the first finding wins
RESTORATIONS = ((6.0, 3.0, 0), (3.0, 3.0, 1))
#: detector score a sharpened frame's detection needs: dlib's own threshold for a face
MIN_SCORE = 0.0
#: the part of the detection's box that must lie inside the frame (a whole face; HOG boxes that run off the edge
#: of a sharpened blurred scene were its only false finding: coins at the border, 83 % inside; faces: 100 %)
MIN_INSIDE = 0.9
#: the smallest face that counts, box side / the frame's shorter side: the face a clip is about, not a 40-px
#: pattern among coins (the one false finding on 864 held-out face-free clips: 0.15); blurred takes 0.33-0.75
MIN_FACE = 0.2

_LOCK = threading.Lock()
_DETECTOR = None


def _detector():
    global _DETECTOR
    with _LOCK:
        if _DETECTOR is None:
            from .landmarks.dlib_backend import load_frontal_face_detector

            _DETECTOR = load_frontal_face_detector()
        return _DETECTOR


@dataclass
class Evidence:
    found: bool = False                 # a blurred face is there
    frame: int = -1                     # where (source index)
    score: float = float("nan")         # the detector's score on the sharpened frame
    box: tuple = ()                     # (x0, y0, x1, y1) source pixels
    sharpness: float = float("nan")     # blur_score of the box on the frame as given
    restoration: str = ""               # how the frame was sharpened
    sharp_lookalike: str = ""           # a sharp region that looked like a face once sharpened (not evidence)
    seconds: float = 0.0
    detector_calls: int = 0
    tried: list = field(default_factory=list)

    def sentence(self, blur_threshold: float) -> str:
        if self.found:
            x0, y0, x1, y1 = (int(round(v)) for v in self.box)
            return (f"a blurred face is there: the detector finds one (score {self.score:.2f}) in frame {self.frame} "
                    f"once the frame is sharpened ({self.restoration}), at ({x0},{y0})-({x1},{y1}), and it is "
                    f"blurred (sharpness {self.sharpness:.4f} < {blur_threshold:g}, variance of Laplacian of the "
                    f"normalised region): the blur hid it")
        s = "nor once the frames were sharpened: no sign of a blurred face"
        return s + (f" ({self.sharp_lookalike})" if self.sharp_lookalike else "")


def _sharpened(gray: np.ndarray, sigma: float, amount: float) -> np.ndarray:
    g = gray.astype(np.float32)
    return np.clip(g + amount * (g - cv2.GaussianBlur(g, (0, 0), sigma)), 0, 255).astype(np.uint8)


def _inside(box, shape) -> float:
    x0, y0, x1, y1 = box
    h, w = shape[:2]
    area = max(x1 - x0, 1e-9) * max(y1 - y0, 1e-9)
    return max(0.0, min(x1, w) - max(x0, 0)) * max(0.0, min(y1, h) - max(y0, 0)) / area


def find_blurred_face(grays, frames, blur_threshold: float) -> Evidence:
    """Look for a blurred face in grays[i] for i in `frames` (uint8 gray): see the module docstring."""
    t0 = time.perf_counter()
    det = _detector()
    ev = Evidence()
    small = {}
    for i in frames:
        g = grays[i]
        sc = min(1.0, RESTORE_SIDE / max(g.shape[:2]))
        if sc < 1.0:
            g = cv2.resize(g, (max(1, round(g.shape[1] * sc)), max(1, round(g.shape[0] * sc))), interpolation=cv2.INTER_AREA)
        small[i] = (np.ascontiguousarray(g), sc)
    for sigma, amount, up in RESTORATIONS:
        how = f"unsharp mask, sigma {sigma:g} px at {RESTORE_SIDE} px, amount {amount:g}, upsample {up}"
        for i in frames:
            g, sc = small[i]
            rects, scores, _ = det.run(_sharpened(g, sigma, amount), up, MIN_SCORE)
            ev.detector_calls += 1
            for r, s in sorted(zip(rects, scores), key=lambda rs: -rs[1]):
                box = (r.left() / sc, r.top() / sc, r.right() / sc, r.bottom() / sc)
                if _inside(box, grays[i].shape) < MIN_INSIDE or (box[2] - box[0]) < MIN_FACE * min(grays[i].shape[:2]):
                    continue
                b = blur_score(grays[i], np.array([box[:2], box[2:]], dtype=np.float64))
                if b < blur_threshold:
                    ev.found, ev.frame, ev.score, ev.box, ev.sharpness, ev.restoration = True, i, float(s), box, b, how
                    ev.seconds = time.perf_counter() - t0
                    return ev
                if not ev.sharp_lookalike:
                    ev.sharp_lookalike = (f"a face-like region at ({box[0]:.0f},{box[1]:.0f})-({box[2]:.0f},{box[3]:.0f}) "
                                          f"in frame {i} is sharp ({b:.4f}): not a blurred face")
    ev.seconds = time.perf_counter() - t0
    return ev
