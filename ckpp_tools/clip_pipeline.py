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
from typing import Sequence

import numpy as np


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


def process_clip(
    frames: Sequence[np.ndarray],
    *,
    already_trimmed: bool = False,
    provided_landmarks: np.ndarray | None = None,
    onset_peak: tuple[int, int] | None = None,
    options: ClipOptions | None = None,
) -> ClipResult:
    """Analyse one clip.

    frames: source frames in order, uint8 (H,W) gray or (H,W,3) RGB.
    already_trimmed: CK+ sequences are neutral->peak already: keep them whole (no trimming).
    provided_landmarks: (N,68,2) source-pixel landmarks (CK+ Landmarks/ files), NaN rows where absent.
    onset_peak: (onset, peak) source indices from a CSV: skip automatic trimming.
    """
    raise NotImplementedError("being implemented (issue 4)")
