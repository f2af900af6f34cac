"""The CK+ layout: cohn-kanade-images/<S>/<seq>/*.png, Emotion/<S>/<seq>/*_emotion.txt (one float code),
Landmarks/<S>/<seq>/<frame>_landmarks.txt (68 lines 'x y').

Only 327 of CK+'s 593 sequences carry an Emotion file: the others become rows rejected as `unlabelled`.
Sequences already run neutral -> peak, so they are marked `already_trimmed`.
"""
from __future__ import annotations

import os

import numpy as np

from .. import emotions
from ..video_io import list_frame_files, natural_key
from .clip import Clip, safe_id, usable_points

IMAGES_DIR = "cohn-kanade-images"


def _child_dir(d: str, name: str) -> str | None:
    """The child of `d` called `name` (case-insensitive), or None."""
    try:
        for e in os.scandir(d):
            if e.is_dir() and e.name.lower() == name.lower():
                return e.path
    except OSError:
        pass
    return None


def is_root(d: str) -> bool:
    """A CK+ root holds a cohn-kanade-images/ folder."""
    return _child_dir(d, IMAGES_DIR) is not None


def find_roots(raw: str, max_depth: int = 3) -> list[str]:
    """CK+ roots at or below `raw` (RAW may also be the cohn-kanade-images folder itself)."""
    if os.path.basename(os.path.normpath(raw)).lower() == IMAGES_DIR:
        return [os.path.dirname(os.path.normpath(raw))]
    roots, stack, seen = [], [(raw, 0)], set()
    while stack:
        d, depth = stack.pop()
        if os.path.realpath(d) in seen:  # a link loop (or a second link to one folder): walk it once
            continue
        seen.add(os.path.realpath(d))
        if is_root(d):
            roots.append(d)
            continue
        if depth < max_depth:
            try:
                stack += [(e.path, depth + 1) for e in os.scandir(d) if e.is_dir() and not e.name.startswith(".")]
            except OSError:
                pass
    return sorted(roots)


def _label_dir(root: str, name: str) -> str | None:
    """Emotion/ or Landmarks/ beside cohn-kanade-images/, also as unzipped one level deeper
    (Emotion_labels/Emotion/, Landmarks/Landmarks/)."""
    d = _child_dir(root, name)
    if d is None:
        for e in sorted(os.scandir(root), key=lambda e: e.name):
            if e.is_dir() and e.name.lower().startswith(name.lower()):
                d = _child_dir(e.path, name) or e.path
                break
    if d is not None:
        inner = _child_dir(d, name)  # Landmarks/Landmarks/S005/...
        if inner is not None:
            d = inner
    return d


def read_emotion_file(path: str) -> tuple[str, str, str]:
    """(emotion, reason, detail) from a CK+ Emotion file holding one float code such as '   7.0000000e+00'."""
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            text = fh.read(4096).strip()  # one number: a huge file named *.txt must not fill memory
        code = int(round(float(text.split()[0])))
    except (OSError, ValueError, IndexError, OverflowError):  # OverflowError: an infinite code
        return "", "unknown_emotion", f"cannot read an emotion code from {os.path.basename(path)}"
    name = emotions.NAMES.get(code)
    if name is None or name == "neutral":
        code_text = str(code) if abs(code) < 10 ** 6 else f"{float(code):.3g}"
        return code_text, "unknown_emotion", f"emotion code {code_text} in {os.path.basename(path)} is not one of the 7 expressions"
    return name, "", ""


def find(root: str, raw: str) -> list[Clip]:
    """Every sequence folder of the CK+ tree at `root`, one Clip each."""
    images = _child_dir(root, IMAGES_DIR)
    emo_dir = _label_dir(root, "Emotion")
    lm_dir = _label_dir(root, "Landmarks")
    clips: list[Clip] = []
    for subj in sorted(os.scandir(images), key=lambda e: natural_key(e.name)):
        if not subj.is_dir() or subj.name.startswith("."):
            continue
        for seq in sorted(os.scandir(subj.path), key=lambda e: natural_key(e.name)):
            if not seq.is_dir() or seq.name.startswith("."):
                continue
            files = list_frame_files(seq.path)
            emotion, reason, detail = "", "unlabelled", "no Emotion file for this sequence"
            if emo_dir is not None:
                ed = os.path.join(emo_dir, subj.name, seq.name)
                txts = sorted(n for n in os.listdir(ed) if n.endswith(".txt")) if os.path.isdir(ed) else []
                if txts:
                    emotion, reason, detail = read_emotion_file(os.path.join(ed, txts[0]))
            lm_files = []
            if lm_dir is not None:
                ld = os.path.join(lm_dir, subj.name, seq.name)
                if os.path.isdir(ld):
                    for f in files:
                        cand = os.path.join(ld, os.path.splitext(os.path.basename(f))[0] + "_landmarks.txt")
                        lm_files.append(cand if os.path.isfile(cand) else "")
            clips.append(Clip(
                clip_id=safe_id(f"{subj.name}_{seq.name}"),
                source=os.path.relpath(seq.path, raw).replace(os.sep, "/"),
                path=seq.path, subject=subj.name, emotion=emotion, take=seq.name, layout="ckplus",
                reason=reason, detail=detail, already_trimmed=True, landmark_files=lm_files,
            ))
    return clips


def load_landmarks(files: list[str], kept: list[int] | None = None) -> np.ndarray | None:
    """(N,68,2) float32 source-pixel landmarks for the decoded frames (NaN where a file is absent or bad);
    None when no file exists at all. `kept`: index into `files` of each decoded frame."""
    if not files or not any(files):
        return None
    idx = list(range(len(files))) if kept is None else list(kept)
    out = np.full((len(idx), 68, 2), np.nan, dtype=np.float32)
    for j, i in enumerate(idx):
        if i >= len(files) or not files[i]:
            continue
        try:
            if os.path.getsize(files[i]) > 64 * 1024:  # 68 lines are ~2 KB: anything this big is not one
                continue
            pts = np.loadtxt(files[i], dtype=np.float64, ndmin=2)
        except (OSError, ValueError):
            continue
        if usable_points(pts):
            out[j] = pts
    return out
