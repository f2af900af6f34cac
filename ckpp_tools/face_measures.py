"""Expression measures on 68 iBUG landmarks, in face-frame units (inter-ocular distances, IOD).

Why: three places ask "how open is this mouth / how raised are these brows?" and must answer the same way:
sample-data neutralisation (is a base photo smiling?), the in-the-wild evaluation (did the generated face
move from frame 0 to the peak?) and tests. IOD units make the numbers comparable across face sizes; the
face frame (origin between the outer eye corners, x along the eye line) makes them independent of roll.
`face_sharpness` is the detail of a face at any resolution (issue 22: a 64-px face scaled up looks blurred
though its landmarks move right); the benchmarks divide a generated frame's by the input photo's.
Torch-free, like the rest of ckpp_tools.
"""
from __future__ import annotations

import numpy as np

from .expressions import face_frame

#: the measures `measure()` returns, in IOD units; larger = more open / wider / higher
MEASURES = ("mouth_open", "mouth_width", "brow_height", "eye_open")


def to_face_frame(landmarks: np.ndarray) -> np.ndarray:
    """(68,2) landmarks in face-frame IOD units: origin between the outer eye corners, x along the eyes."""
    p = np.asarray(landmarks, dtype=np.float64)
    origin, rot, iod = face_frame(p)
    return (p - origin) @ rot / max(iod, 1e-9)


def measure(landmarks: np.ndarray) -> dict[str, float]:
    """The expression measures of one face (see MEASURES), in IOD units.

    mouth_open: mean gap between inner upper (61-63) and inner lower (67-65) lip; mouth_width: lip corners
    48-54; brow_height: mean height of the brows (17-26) above the eye line (positive = up); eye_open: mean
    lid gap of both eyes (37/38-41/40, 43/44-47/46).
    """
    q = to_face_frame(landmarks)
    mouth_open = float(np.mean(np.linalg.norm(q[[61, 62, 63]] - q[[67, 66, 65]], axis=1)))
    mouth_width = float(np.linalg.norm(q[54] - q[48]))
    brow_height = float(-np.mean(q[17:27, 1]))
    eye_open = float(np.mean(np.linalg.norm(q[[37, 38, 43, 44]] - q[[41, 40, 47, 46]], axis=1)))
    return {"mouth_open": mouth_open, "mouth_width": mouth_width, "brow_height": brow_height, "eye_open": eye_open}


def gains(first: np.ndarray, last: np.ndarray) -> dict[str, float]:
    """Change of every measure from `first` to `last` (e.g. frame 0 -> peak), IOD units."""
    a, b = measure(first), measure(last)
    return {k: b[k] - a[k] for k in MEASURES}


def displacement_cosine(first: np.ndarray, last: np.ndarray, reference: np.ndarray) -> float:
    """Cosine between the face-frame displacement first -> last and a reference displacement field (68,2).

    "Moves the right way" as one number: 1 = the same direction as the reference (e.g. the training clips'
    mean onset -> peak displacement), 0 = unrelated, -1 = the opposite. NaN when either is (near) zero.
    """
    d = (to_face_frame(last) - to_face_frame(first)).ravel()
    r = np.asarray(reference, dtype=np.float64).ravel()
    nd, nr = float(np.linalg.norm(d)), float(np.linalg.norm(r))
    if nd < 1e-9 or nr < 1e-9:
        return float("nan")
    return float(d @ r / (nd * nr))


#: faces are brought to this width before their detail is measured (face_sharpness)
SHARPNESS_WIDTH = 128


def face_sharpness(image: np.ndarray, landmarks: np.ndarray, width: int = SHARPNESS_WIDTH) -> float:
    """Detail of a face: variance of the Laplacian of the grey face inside dlib's face box, the box brought
    to `width` px wide (area filter when shrinking, bilinear when enlarging). The box is the detector-like
    box around the 68 landmarks (ckpp_tools.landmarks.dlib_backend.box_from_landmarks: brows to chin,
    cheek to cheek), so frames measured by landmarks alone need no second detection. Comparable across
    resolutions: a face scaled up from 64 px scores far lower than the same face photographed at 256 px.
    NaN when the box is empty or leaves the image entirely."""
    import cv2

    from .landmarks.dlib_backend import box_from_landmarks

    img = np.asarray(image)
    if img.ndim == 3:
        img = cv2.cvtColor(np.ascontiguousarray(img[..., :3], dtype=np.uint8), cv2.COLOR_RGB2GRAY)
    x0, y0, x1, y1 = box_from_landmarks(np.asarray(landmarks, np.float64))
    if not np.all(np.isfinite([x0, y0, x1, y1])):
        return float("nan")
    h, w = img.shape[:2]
    xa, ya = max(0, int(round(x0))), max(0, int(round(y0)))
    xb, yb = min(w, int(round(x1)) + 1), min(h, int(round(y1)) + 1)
    if xb - xa < 2 or yb - ya < 2:
        return float("nan")
    face = img[ya:yb, xa:xb]
    k = width / face.shape[1]
    size = (width, max(2, int(round(face.shape[0] * k))))
    face = cv2.resize(face, size, interpolation=cv2.INTER_AREA if k < 1 else cv2.INTER_LINEAR)
    return float(cv2.Laplacian(face.astype(np.float64), cv2.CV_64F).var())
