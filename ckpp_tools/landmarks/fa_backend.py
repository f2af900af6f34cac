"""Optional face-alignment (Bulat & Tzimiropoulos, FAN) backend: `--landmarks face-alignment`, extra `fa`.

Offline only: it uses weights already in torch hub's cache and never downloads. face_alignment imports torch,
and ckpp_tools must stay torch-free on import, so the import happens inside the constructor only: merely
importing ckpp_tools (or this module) never imports torch.
"""
from __future__ import annotations

import glob
import os
import threading

import numpy as np

from ..errors import MissingWeightsError

_LOCK = threading.Lock()
#: file-name stems of the 2D-FAN 68-point network and the S3FD detector in torch hub's checkpoint cache
_WEIGHT_PATTERNS = ("2DFAN4*.zip", "2DFAN4*.pth*", "2DFAN-4*")
_DETECTOR_PATTERNS = ("s3fd*.pth*",)

_HOW = ("pip install 'ckpp[fa]', then run once on a machine with internet: "
        "python -c \"import face_alignment as F; F.FaceAlignment(F.LandmarksType.TWO_D, device='cpu')\"  "
        "(the weights land in {cache}; copy that folder to this machine)")


def hub_checkpoint_dir() -> str:
    """torch hub's checkpoint folder, found the way torch finds it, without importing torch."""
    hub = os.environ.get("TORCH_HOME")
    if hub is None:
        xdg = os.environ.get("XDG_CACHE_HOME", os.path.join(os.path.expanduser("~"), ".cache"))
        hub = os.path.join(xdg, "torch")
    return os.path.join(hub, "hub", "checkpoints")


def cached_weights() -> tuple[list[str], list[str]]:
    """(landmark network files, detector files) present in the cache."""
    d = hub_checkpoint_dir()
    nets = [p for pat in _WEIGHT_PATTERNS for p in glob.glob(os.path.join(d, pat))]
    dets = [p for pat in _DETECTOR_PATTERNS for p in glob.glob(os.path.join(d, pat))]
    return nets, dets


class FaceAlignmentLandmarker:
    """detect/predict with face_alignment's S3FD detector and 2D-FAN, from cached weights only."""

    name = "face-alignment"
    _shared: "FaceAlignmentLandmarker | None" = None

    def __init__(self, device: str = "cpu"):
        cache = hub_checkpoint_dir()
        try:
            import importlib.util

            if importlib.util.find_spec("face_alignment") is None:
                raise ImportError
        except ImportError:
            raise MissingWeightsError("the face-alignment package is not installed", path="--landmarks face-alignment",
                                      fix=_HOW.format(cache=cache)) from None
        nets, dets = cached_weights()
        if not nets or not dets:
            missing = " and ".join(w for w, f in (("2D-FAN landmark weights", nets), ("S3FD detector weights", dets)) if not f)
            raise MissingWeightsError(f"{missing} not found in the torch hub cache (downloads are disabled)",
                                      path=cache, fix=_HOW.format(cache=cache))
        os.environ.setdefault("TORCH_HOME", os.path.dirname(os.path.dirname(cache)))
        import face_alignment  # imports torch: only here, only when this backend is chosen

        lt = getattr(face_alignment.LandmarksType, "TWO_D", None) or getattr(face_alignment.LandmarksType, "_2D")
        self.fa = face_alignment.FaceAlignment(lt, device=device, flip_input=False)

    @classmethod
    def shared(cls) -> "FaceAlignmentLandmarker":
        with _LOCK:
            if cls._shared is None:
                cls._shared = cls()
            return cls._shared

    @staticmethod
    def _rgb(image: np.ndarray) -> np.ndarray:
        img = np.asarray(image)
        return np.repeat(img[..., None], 3, axis=2) if img.ndim == 2 else img[..., :3]

    def detect(self, image: np.ndarray, upsample: int = 0, max_side: int | None = None) -> list:
        """Face boxes (x0, y0, x1, y1), largest first (S3FD; upsample/max_side are accepted for API parity)."""
        dets = self.fa.face_detector.detect_from_image(self._rgb(image)) or []
        boxes = [tuple(float(v) for v in d[:4]) for d in dets]
        boxes.sort(key=lambda b: (b[2] - b[0]) * (b[3] - b[1]), reverse=True)
        return boxes

    def predict(self, image: np.ndarray, box) -> np.ndarray:
        out = self.fa.get_landmarks_from_image(self._rgb(image), detected_faces=[list(box)])
        if not out:
            return np.full((68, 2), np.nan, dtype=np.float32)
        return np.asarray(out[0][:, :2], dtype=np.float32)

    def detect_landmarks(self, image: np.ndarray, **_) -> np.ndarray | None:
        boxes = self.detect(image)
        return self.predict(image, boxes[0]) if boxes else None
