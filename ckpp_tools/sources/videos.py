"""CK++-style trees: <root>/<subject>/<emotion>_<take>.<ext> or <root>/<subject>/<emotion>/<take>.<ext>, where a
clip is a video file (mp4, avi, mov, mkv, webm) or a folder of frame images.

A folder is recognised as such a root when some subject folder in it holds a clip named for a known emotion;
then every clip under it becomes a row (an unknown emotion name is the reject reason `unknown_emotion`).

A clip may come with its own landmarks, as CK+'s Landmarks/ files do: a text file beside it named
<clip>.landmarks.txt (happy_01.mp4 -> happy_01.landmarks.txt), one line per frame in decoding order holding the 68
points as 136 numbers `x0 y0 x1 y1 ...` in the frame's pixels; a line of another length, or of non-finite numbers,
marks a frame without them. Why: a tracker of your own (or the sample's exact truth) sees motions dlib shortens —
on the sample's anger clips dlib reports ~80% of the motion and about 60% of the inner brows' drop.
"""
from __future__ import annotations

import os

import numpy as np

from .. import emotions
from ..video_io import VIDEO_EXTS, is_frame_folder, natural_key
from .clip import Clip, safe_id, usable_points


def split_name(stem: str) -> tuple[str, str]:
    """'happy_01' -> ('happy', '01'); 'very_happy_2' -> ('very_happy', '2') unless a shorter prefix is an emotion;
    'surprise' -> ('surprise', '')."""
    parts = stem.split("_")
    for k in range(1, len(parts)):
        if emotions.normalize("_".join(parts[:k])) is not None:
            return "_".join(parts[:k]), "_".join(parts[k:])
    if len(parts) > 1:
        return "_".join(parts[:-1]), parts[-1]
    return stem, ""


#: the sidecar of a clip's own landmarks: <clip stem>.landmarks.txt beside the video (or the frame folder)
LANDMARKS_SUFFIX = ".landmarks.txt"
#: 136 numbers a line at ~8 characters each: 64 MB holds ~60,000 frames, anything larger is not such a file
MAX_LANDMARKS_BYTES = 64 * 1024 * 1024


def landmarks_sidecar(path: str) -> str:
    """The <clip>.landmarks.txt beside a clip (a video file or a frame folder), or "" when there is none."""
    stem = os.path.splitext(path)[0] if os.path.isfile(path) else os.path.normpath(path)
    cand = stem + LANDMARKS_SUFFIX
    return cand if os.path.isfile(cand) else ""


def load_landmark_track(path: str, kept: list[int] | None = None) -> np.ndarray | None:
    """(N,68,2) float32 source-pixel landmarks, one row per line of a `LANDMARKS_SUFFIX` file (NaN where a line
    is not 136 finite numbers); None when the file cannot be read at all (the clip's landmarks are then detected,
    as for CK+ frames without a Landmarks/ file). `kept`: the line of each decoded frame (frame folders that
    skipped an unreadable image)."""
    try:
        if os.path.getsize(path) > MAX_LANDMARKS_BYTES:
            return None
        with open(path, encoding="utf-8", errors="replace") as f:
            lines = [ln for ln in f.read().splitlines() if not ln.lstrip().startswith("#")]
    except OSError:
        return None
    rows = np.full((len(lines), 68, 2), np.nan, dtype=np.float32)
    for i, ln in enumerate(lines):
        try:
            v = np.array(ln.replace(",", " ").split(), dtype=np.float64)
        except ValueError:
            continue
        if v.size == 136 and usable_points(v.reshape(68, 2)):
            rows[i] = v.reshape(68, 2)
    if kept is not None:
        idx = np.asarray(kept, dtype=np.int64)
        out = np.full((len(idx), 68, 2), np.nan, dtype=np.float32)
        ok = idx < len(rows)
        out[ok] = rows[idx[ok]]
        rows = out
    return rows if np.isfinite(rows).all(axis=(1, 2)).any() else None


def write_landmark_track(path: str, landmarks: np.ndarray) -> None:
    """Write (N,68,2) pixel landmarks as a `LANDMARKS_SUFFIX` file (the format `load_landmark_track` reads)."""
    pts = np.asarray(landmarks, dtype=np.float64).reshape(len(landmarks), 136)
    with open(path, "w", encoding="utf-8") as f:
        f.write("# 68 landmarks per frame, x0 y0 x1 y1 ... in pixels (ckpp prepare reads this beside the clip)\n")
        for row in pts:
            f.write(" ".join(f"{x:.3f}" for x in row) + "\n")


def _is_clip(entry: os.DirEntry) -> bool:
    if entry.name.startswith("."):
        return False
    if entry.is_file():
        return entry.name.lower().endswith(VIDEO_EXTS)
    return entry.is_dir() and is_frame_folder(entry.path)


def _stem(entry: os.DirEntry) -> str:
    return os.path.splitext(entry.name)[0] if entry.is_file() else entry.name


def _subject_clips(subject_dir: str):
    """(emotion_raw, take, path) of every clip in one subject folder, both naming styles."""
    try:
        entries = sorted(os.scandir(subject_dir), key=lambda e: natural_key(e.name))
    except OSError:
        return
    for e in entries:
        if _is_clip(e):
            emo, take = split_name(_stem(e))
            yield emo, take, e.path
        elif e.is_dir() and not e.name.startswith("."):
            try:
                inner = sorted(os.scandir(e.path), key=lambda x: natural_key(x.name))
            except OSError:
                continue
            for x in inner:
                if _is_clip(x):
                    yield e.name, _stem(x), x.path


def is_root(d: str) -> bool:
    """True when some subject folder of `d` holds a clip named for a known emotion."""
    try:
        subjects = [e for e in os.scandir(d) if e.is_dir() and not e.name.startswith(".")]
    except OSError:
        return False
    for s in subjects:
        if is_frame_folder(s.path):
            continue
        for emo, _take, _path in _subject_clips(s.path):
            if emotions.normalize(emo) is not None:
                return True
    return False


def find(root: str, raw: str) -> list[Clip]:
    clips: list[Clip] = []
    for s in sorted(os.scandir(root), key=lambda e: natural_key(e.name)):
        if not s.is_dir() or s.name.startswith(".") or is_frame_folder(s.path):
            continue
        for emo_raw, take, path in _subject_clips(s.path):
            canon = emotions.normalize(emo_raw)
            rel = os.path.relpath(path, raw).replace(os.sep, "/")
            within = os.path.relpath(path, root)
            stem = os.path.splitext(within)[0] if os.path.isfile(path) else within
            clips.append(Clip(
                clip_id=safe_id(stem.replace(os.sep, "_")), source=rel, path=path, subject=s.name,
                emotion=canon if canon else emo_raw, take=take, layout="videos",
                reason="" if canon else "unknown_emotion",
                detail="" if canon else f"{emo_raw!r} is not a known emotion (use one of {', '.join(emotions.CODES)})",
                landmarks_file=landmarks_sidecar(path),
            ))
    return clips
