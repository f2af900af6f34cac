"""dlib HOG face detector + 68-point shape predictor, weights from the `face_recognition_models` wheel.

The wheel's `__init__` imports pkg_resources (absent on new setuptools), so the files are located with
importlib's spec instead of importing the package. Models load once per process (they are ~100 MB).

The HOG face detector is loaded from `frontal_face_detector.svm` beside this file: the bytes of
`dlib.get_frontal_face_detector().save(...)` (identical detections, checked by a test), which load in ~2 ms
instead of the ~0.35-0.75 s dlib spends decompressing its built-in copy -- a third of `ckpp prepare`'s
start-up. dlib's built-in copy is the fallback when the file is missing.
"""
from __future__ import annotations

import importlib.util
import os
import threading

import numpy as np

from ..errors import MissingWeightsError

_LOCK = threading.Lock()
#: dlib's frontal face detector, saved with fhog_object_detector.save (see the module docstring)
DETECTOR_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "frontal_face_detector.svm")


def load_frontal_face_detector():
    """dlib's HOG frontal face detector, from DETECTOR_FILE when present (fast), else dlib's built-in copy."""
    import dlib

    if os.path.isfile(DETECTOR_FILE):
        try:
            return dlib.fhog_object_detector(DETECTOR_FILE)
        except RuntimeError:  # a damaged copy: dlib's own is always there
            pass
    return dlib.get_frontal_face_detector()


def model_path(filename: str) -> str:
    """Absolute path of a dlib model file shipped in face_recognition_models (e.g. shape_predictor_68_face_landmarks.dat)."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise MissingWeightsError(
            "the dlib model files are not installed",
            path="face_recognition_models",
            fix="pip install face_recognition_models  (it ships shape_predictor_68_face_landmarks.dat)",
        )
    path = os.path.join(list(spec.submodule_search_locations)[0], "models", filename)
    if not os.path.isfile(path):
        raise MissingWeightsError(
            "dlib model file missing from the face_recognition_models package",
            path=path,
            fix="pip install --force-reinstall face_recognition_models",
        )
    return path


def _to_gray_u8(image: np.ndarray) -> np.ndarray:
    """dlib accepts uint8 gray or RGB; gray is faster for HOG and the predictor and is what both were trained on."""
    img = np.asarray(image)
    if img.ndim == 3:
        img = (img[..., 0].astype(np.uint16) * 77 + img[..., 1].astype(np.uint16) * 150 + img[..., 2].astype(np.uint16) * 29) >> 8
    return np.ascontiguousarray(img, dtype=np.uint8)


#: HOG detections scoring below this (and below half the best score) are dropped when a better one exists:
#: "largest face first" otherwise picks a marginal false positive larger than the real face (a greyscale
#: JPEG of the astronaut: her face scores 1.49, a patch of her suit 0.01 and is bigger). The best face of
#: each of the 390 shipped photos with one scores 0.16-3.2 (median 1.7); none has a second detection. A
#: photo whose only detections are marginal keeps them (a weak face is still a face).
MARGINAL_SCORE = 0.3


class DlibLandmarker:
    """Face detection and 68-point landmarks. Use `DlibLandmarker.shared()` to reuse loaded models."""

    name = "dlib"
    _shared: "DlibLandmarker | None" = None

    def __init__(self):
        import dlib

        self._dlib = dlib
        self.detector = load_frontal_face_detector()
        self.predictor = dlib.shape_predictor(model_path("shape_predictor_68_face_landmarks.dat"))

    @classmethod
    def shared(cls) -> "DlibLandmarker":
        with _LOCK:
            if cls._shared is None:
                cls._shared = cls()
            return cls._shared

    def detect(self, image: np.ndarray, upsample: int = 0, max_side: int | None = 320,
               dropped: list | None = None) -> list[tuple[float, float, float, float]]:
        """Face boxes (x0, y0, x1, y1) in `image` pixels, largest first; a marginal detection (score below
        MARGINAL_SCORE and below half the best) is dropped when a confident one exists (appended to `dropped`
        when given: a caller that must not miss a weak real face checks them, see ckpp_tools.face_pick).

        The HOG detector costs ~O(pixels): by default the image is downscaled so its longer side is at most
        `max_side` (faces in face videos are large), then boxes are scaled back.
        """
        gray = _to_gray_u8(image)
        scale = 1.0
        if max_side is not None and max(gray.shape) > max_side:
            import cv2

            scale = max_side / max(gray.shape)
            gray = cv2.resize(gray, (round(gray.shape[1] * scale), round(gray.shape[0] * scale)), interpolation=cv2.INTER_AREA)
        rects, scores, _ = self.detector.run(gray, upsample, 0.0)   # = detector(gray, upsample), with scores
        if len(scores):
            floor = min(MARGINAL_SCORE, 0.5 * max(scores))
            if dropped is not None:
                dropped.extend((r.left() / scale, r.top() / scale, r.right() / scale, r.bottom() / scale)
                               for r, s in zip(rects, scores) if s < floor)
            rects = [r for r, s in zip(rects, scores) if s >= floor]
        boxes = [(r.left() / scale, r.top() / scale, r.right() / scale, r.bottom() / scale) for r in rects]
        boxes.sort(key=lambda b: (b[2] - b[0]) * (b[3] - b[1]), reverse=True)
        return boxes

    def predict(self, image: np.ndarray, box) -> np.ndarray:
        """68 (x, y) landmarks, float32, for the face in `box` (x0, y0, x1, y1)."""
        gray = image if getattr(image, "dtype", None) == np.uint8 and np.ndim(image) == 2 else _to_gray_u8(image)
        x0, y0, x1, y1 = (int(round(v)) for v in box)
        shape = self.predictor(gray, self._dlib.rectangle(x0, y0, x1, y1))
        return shape_to_array(shape)

    def detect_landmarks(self, image: np.ndarray, upsample: int = 0, max_side: int | None = 320) -> np.ndarray | None:
        """Landmarks of the largest face, or None when no face is found."""
        boxes = self.detect(image, upsample=upsample, max_side=max_side)
        if not boxes:
            return None
        return self.predict(image, boxes[0])


_PUNCT = str.maketrans("(),[]", "     ")


def shape_to_array(shape) -> np.ndarray:
    """(68,2) float32 points of a dlib full_object_detection. Parsed from the points' text ("points[(x, y),
    ...]"): ~4x faster than 68 Python point objects (~0.1 vs ~0.4 ms, a few % of prepare's analysis); the
    object walk is the fallback should the text ever look different."""
    pts = shape.parts()
    text = str(pts)
    if text.startswith("points["):
        try:
            arr = np.array(text[7:].translate(_PUNCT).split(), dtype=np.float32)
            if arr.size == 2 * shape.num_parts:
                return arr.reshape(-1, 2)
        except ValueError:
            pass
    return np.array([(p.x, p.y) for p in pts], dtype=np.float32).reshape(-1, 2)


def box_from_landmarks(landmarks: np.ndarray, margin: float = 0.0) -> tuple[float, float, float, float]:
    """A detector-like box around 68 landmarks, for tracking: dlib's predictor expects boxes shaped like its
    detector's (roughly brows-to-chin, cheek-to-cheek)."""
    pts = np.asarray(landmarks, dtype=np.float64)
    x0, y0 = pts.min(axis=0)
    x1, y1 = pts.max(axis=0)
    w, h = x1 - x0, y1 - y0
    return (x0 - margin * w, y0 - margin * h, x1 + margin * w, y1 + margin * h)
