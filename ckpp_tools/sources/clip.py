"""One clip found in RAW (a manifest row to be), shared by the layout readers (ckplus, videos, csv_labels)
and the package's find_clips; kept in its own module so the readers need not import their package."""
from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np


@dataclass
class Clip:
    """One clip found in RAW (one manifest row)."""

    clip_id: str
    source: str               # path relative to RAW, '/'-separated
    path: str                 # absolute path: a video file or a folder of frames
    subject: str
    emotion: str              # canonical name, or the raw label when unknown ("" when unlabelled)
    take: str
    layout: str               # "ckplus" | "videos" | "csv"
    reason: str = ""          # pre-decided reject reason: "unlabelled" | "unknown_emotion" | ""
    detail: str = ""
    already_trimmed: bool = False            # CK+ sequences run neutral -> peak already
    landmark_files: list = field(default_factory=list)  # CK+: per-frame Landmarks/ files ("" where absent)
    landmarks_file: str = ""                 # videos: the clip's <name>.landmarks.txt sidecar ("" when absent)
    onset_peak: tuple | None = None          # CSV onset,peak (source frame indices)

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


#: a landmark coordinate beyond this many pixels is a bad number, not a face (1e30 would make a crop box of any size)
MAX_PIXEL = 1e5


def usable_points(pts: np.ndarray) -> bool:
    """Whether landmarks given with a clip (a CK+ Landmarks/ file, a line of a <clip>.landmarks.txt) can be used:
    68 finite (x, y) pixel coordinates of a sane size. The one rule both layouts' readers apply."""
    return pts.shape == (68, 2) and bool(np.all(np.isfinite(pts))) and float(np.abs(pts).max()) < MAX_PIXEL


_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_id(text: str) -> str:
    """An HDF5-group-safe id ('/' and spaces become '_')."""
    return _SAFE.sub("_", text).strip("_") or "clip"
