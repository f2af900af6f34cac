"""Decoding frames from video files and image folders (OpenCV), robust to broken input.

Container frame counts lie (CAP_PROP_FRAME_COUNT is metadata), so frames are counted as they decode. A file
that cannot be decoded yields zero frames and an error text instead of an exception; a truncated one keeps
what decoded. Hangs and hard crashes of the decoder are the caller's business: `prepare` decodes inside
worker processes with a timeout (DESIGN §8).
"""
from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, field

import numpy as np

from .photo_io import exif_orientation, orient

VIDEO_EXTS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv")
# ffmpeg (inside OpenCV) prints to stderr for every broken file; the run reports them as rows instead
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")

# one image may not decode to more than 16384^2 pixels (OpenCV's own default allows 2^30: 3 GB for one RGB frame)
os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", str(1 << 28))
#: decoded frames of one clip stop at this many bytes (--max-frames counts frames, not pixels: 3000 frames of
#: 1080p are 18 GB); what decoded so far is kept, the clip's row says so
MAX_DECODED_BYTES = 2 << 30

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".pgm", ".ppm")

_NUM = re.compile(r"(\d+)")


def natural_key(name: str):
    """'f2.png' sorts before 'f10.png' (frame numbers are often not zero-padded)."""
    return [int(t) if t.isdigit() else t.lower() for t in _NUM.split(name)]


def is_video(path: str) -> bool:
    return os.path.isfile(path) and path.lower().endswith(VIDEO_EXTS)


def is_image(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTS)


def list_frame_files(folder: str) -> list[str]:
    """Image files directly inside `folder`, in natural order (hidden files skipped)."""
    try:
        names = [n for n in os.listdir(folder) if is_image(n) and not n.startswith(".")]
    except OSError:
        return []
    names.sort(key=natural_key)
    return [os.path.join(folder, n) for n in names]


def is_frame_folder(path: str, min_images: int = 1) -> bool:
    """A folder of frame images (a clip), as opposed to a folder of clips: images and no sub-folders of images."""
    if not os.path.isdir(path):
        return False
    try:
        entries = list(os.scandir(path))
    except OSError:
        return False
    n_img = sum(1 for e in entries if e.is_file() and is_image(e.name) and not e.name.startswith("."))
    return n_img >= min_images and not any(e.is_dir() and not e.name.startswith(".") for e in entries)


@dataclass
class Decoded:
    frames: list = field(default_factory=list)   # uint8 (H,W) gray or (H,W,3) RGB
    fps: float = float("nan")
    error: str = ""          # why decoding stopped early / failed ("" when it ran to the end cleanly)
    n_failed: int = 0        # image files that did not decode (image folders)
    kept: list = field(default_factory=list)     # image folders: index (in list_frame_files order) of each frame

    @property
    def n(self) -> int:
        return len(self.frames)


def _gray_if_equal(img: np.ndarray) -> np.ndarray:
    """Decoders hand grayscale content back as 3 equal channels; keep it one channel (cheaper, and honest)."""
    if img.ndim == 3 and img.shape[2] == 3:
        b = img[..., 0]
        if np.array_equal(b, img[..., 1]) and np.array_equal(b, img[..., 2]):
            return np.ascontiguousarray(b)
    return img


def _to_rgb_or_gray(img: np.ndarray) -> np.ndarray:
    import cv2

    if img.dtype != np.uint8:  # 16-bit PNG/TIFF: scale down
        img = (img.astype(np.float64) / max(1.0, float(np.iinfo(img.dtype).max if img.dtype.kind in "ui" else img.max())) * 255).astype(np.uint8)
    if img.ndim == 2:
        return img
    if img.shape[2] == 1:
        return img[..., 0]
    if img.shape[2] == 4:
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2BGR)
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def _budget_note(n: int, img: np.ndarray, max_bytes: int) -> str:
    h, w = img.shape[:2]
    return (f"stopped after {n} frames of {w}x{h}: the decoded frames reached the memory guard of "
            f"{max_bytes / 2 ** 30:.3g} GiB per clip (lower --max-frames, or downscale the clip)")


def read_image_folder(folder: str, max_frames: int | None = None, max_bytes: int | None = None) -> Decoded:
    """Frames from a folder of images, natural order. Undecodable files are skipped and counted."""
    import cv2

    out = Decoded(fps=float("nan"))
    files = list_frame_files(folder)
    if not files:
        out.error = "no image files in the folder"
        return out
    shape = None
    budget, used, stopped = max_bytes or MAX_DECODED_BYTES, 0, ""
    for i, path in enumerate(files[: max_frames or None]):
        img = cv2.imread(path, cv2.IMREAD_UNCHANGED)
        if img is None or img.size == 0:
            out.n_failed += 1
            continue
        img = _gray_if_equal(_to_rgb_or_gray(img))
        turn = exif_orientation(path)   # phone/camera JPEGs stored sideways (OpenCV's UNCHANGED read ignores it)
        if turn != 1:
            img = np.ascontiguousarray(orient(img, turn))
        if out.frames:  # one colour mode per clip, set by its first frame
            if out.frames[0].ndim == 2 and img.ndim == 3:
                img = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
            elif out.frames[0].ndim == 3 and img.ndim == 2:
                img = np.repeat(img[..., None], 3, axis=2)
        if shape is not None and img.shape[:2] != shape:
            out.n_failed += 1  # a frame of another size is not part of this sequence
            continue
        shape = img.shape[:2]
        if used + img.nbytes > budget and out.frames:
            stopped = _budget_note(len(out.frames), img, budget)
            break
        used += img.nbytes
        out.frames.append(img)
        out.kept.append(i)
    if out.n_failed:
        out.error = f"{out.n_failed} of {len(files)} image files did not decode"
    if not out.frames:
        out.error = f"none of the {len(files)} image files decoded"
    if stopped:
        out.error = (out.error + "; " if out.error else "") + stopped
    return out


def read_video(path: str, max_frames: int | None = None, max_bytes: int | None = None) -> Decoded:
    """Frames from a video file, counted as decoded; stops at the first failed read (end or corruption)."""
    import cv2

    out = Decoded()
    if os.path.getsize(path) == 0:
        out.error = "empty file (0 bytes)"
        return out
    cap = cv2.VideoCapture(path)
    try:
        if not cap.isOpened():
            out.error = "OpenCV cannot open it as a video"
            return out
        fps = cap.get(cv2.CAP_PROP_FPS)
        out.fps = float(fps) if fps and np.isfinite(fps) and 0 < fps < 1000 else float("nan")
        claimed = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        gray = None
        budget, used, stopped = max_bytes or MAX_DECODED_BYTES, 0, ""
        while max_frames is None or len(out.frames) < max_frames:
            ok, img = cap.read()
            if not ok or img is None:
                break
            if gray is None:  # decide once per clip: all frames of a clip share one colour mode
                gray = _gray_if_equal(img).ndim == 2
            frame = np.ascontiguousarray(img[..., 0]) if gray else cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
            if used + frame.nbytes > budget and out.frames:
                stopped = _budget_note(len(out.frames), frame, budget)
                break
            used += frame.nbytes
            out.frames.append(frame)
        if not out.frames:
            out.error = "no frame could be decoded"
        elif stopped:
            out.error = stopped
        elif claimed > 0 and len(out.frames) < claimed - 1:
            out.error = f"decoded {len(out.frames)} of the {claimed} frames the container claims (truncated?)"
    finally:
        cap.release()
    return out


def read_clip(path: str, max_frames: int | None = None, max_bytes: int | None = None) -> Decoded:
    """Frames of one clip: a video file or a folder of frame images (at most max_frames, at most max_bytes
    decoded: MAX_DECODED_BYTES by default)."""
    if os.path.isdir(path):
        return read_image_folder(path, max_frames, max_bytes)
    if not os.path.exists(path):
        return Decoded(error="file not found")
    try:
        return read_video(path, max_frames, max_bytes)
    except (OSError, ValueError) as exc:  # unreadable file, permissions, ...
        return Decoded(error=f"{type(exc).__name__}: {exc}")


def content_hash(path: str) -> str:
    """Hash of a clip's bytes (a video file, or the image files of a folder in order): finds duplicates
    cheaply without decoding, and independent of file names."""
    h = hashlib.blake2b(digest_size=16)
    files = list_frame_files(path) if os.path.isdir(path) else [path]
    for f in files:
        try:
            with open(f, "rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    h.update(block)
        except OSError:
            h.update(b"<unreadable>" + os.path.basename(f).encode())
        h.update(b"\0")
    return h.hexdigest()
