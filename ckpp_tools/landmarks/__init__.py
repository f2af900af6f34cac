"""68-point facial landmarks: the dlib backend (default, offline) and an optional face-alignment backend.

`get_backend(name)` returns an object with `detect(image) -> list[box]` (boxes (x0,y0,x1,y1), largest
first) and `predict(image, box) -> (68,2) float32`.
"""
from __future__ import annotations

from ..errors import UsageError

BACKENDS = ("dlib", "face-alignment")


def get_backend(name: str = "dlib"):
    if name == "dlib":
        from .dlib_backend import DlibLandmarker

        return DlibLandmarker.shared()
    if name in ("face-alignment", "face_alignment", "fa"):
        from .fa_backend import FaceAlignmentLandmarker

        return FaceAlignmentLandmarker.shared()
    raise UsageError(f"unknown landmark backend {name!r}", path="--landmarks", fix="use one of: " + ", ".join(BACKENDS))
