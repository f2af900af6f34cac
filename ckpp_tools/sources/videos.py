"""CK++-style trees: <root>/<subject>/<emotion>_<take>.<ext> or <root>/<subject>/<emotion>/<take>.<ext>, where a
clip is a video file (mp4, avi, mov, mkv, webm) or a folder of frame images.

A folder is recognised as such a root when some subject folder in it holds a clip named for a known emotion;
then every clip under it becomes a row (an unknown emotion name is the reject reason `unknown_emotion`).
"""
from __future__ import annotations

import os

from .. import emotions
from ..video_io import VIDEO_EXTS, is_frame_folder, natural_key
from .clip import Clip, safe_id


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
            ))
    return clips
