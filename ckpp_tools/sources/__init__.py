"""Finding clips in RAW: CK+ trees, CK++-style trees (videos or frame folders) and CSV lists.

`find_clips(raw, source="auto")` returns every clip found, sorted by clip_id, each with its subject, emotion
(canonical, or a pre-decided reject reason: unlabelled / unknown_emotion) and how to read it. With
`source="auto"` each subtree of RAW is recognised on its own, so `raw/CK+/...` may sit next to
`raw/ours/<subject>/...`.
"""
from __future__ import annotations

import os

from ..errors import CkppError, UsageError
from .clip import Clip, safe_id  # noqa: F401  (public here: `from ckpp_tools.sources import Clip`)

SOURCES = ("auto", "ckplus", "videos", "csv")

LAYOUTS_HELP = (
    "expected one of these layouts (DESIGN §3):\n"
    "    CK+:          <root>/cohn-kanade-images/S005/001/S005_001_00000001.png  (+ Emotion/, Landmarks/ beside it)\n"
    "    CK++ videos:  <root>/<subject>/<emotion>_<take>.mp4|avi|mov|mkv|webm  or a folder of frame images\n"
    "    CK++ nested:  <root>/<subject>/<emotion>/<take>.mp4  (or <take>/ frame folders)\n"
    "    CSV:          --labels labels.csv with columns path,subject,emotion[,onset,peak]"
)


def assign_unique_ids(clips: list[Clip]) -> list[Clip]:
    """Sort by clip_id and make ids unique deterministically (suffix _2, _3 in source order)."""
    clips.sort(key=lambda c: (c.clip_id, c.source))
    seen: dict[str, int] = {}
    taken = {c.clip_id for c in clips}
    for c in clips:
        if c.clip_id in seen:
            n = seen[c.clip_id] + 1
            while f"{c.clip_id}_{n}" in taken:
                n += 1
            seen[c.clip_id] = n
            c.clip_id = f"{c.clip_id}_{n}"
            taken.add(c.clip_id)
        else:
            seen[c.clip_id] = 1
    clips.sort(key=lambda c: c.clip_id)
    return clips


def find_clips(raw: str, source: str = "auto", labels: str | None = None, emotions: list[str] | None = None
               ) -> tuple[list[Clip], list[str]]:
    """All clips under RAW, sorted by clip_id, and notes (ignored paths, filtered counts) for the user.

    Raises CkppError when RAW is missing or nothing in it matches a known layout.
    """
    from . import ckplus, csv_labels, videos

    if source not in SOURCES:
        raise UsageError(f"unknown source {source!r}", path="--source", fix="use one of " + ", ".join(SOURCES))
    raw = os.path.abspath(raw)
    if labels is not None and source not in ("auto", "csv"):
        raise UsageError(f"--labels only goes with --source csv (or auto), not --source {source}", path="--labels",
                         fix="drop --source or use --source csv")
    if source == "csv" and labels is None:
        raise UsageError("--source csv needs --labels labels.csv", path="--labels",
                         fix="pass --labels FILE.csv with columns path,subject,emotion[,onset,peak]")
    if not os.path.exists(raw):
        raise CkppError("RAW folder does not exist", path=raw,
                        fix="pass the folder holding your clips (make sample data with: ckpp sample raw/)")
    notes: list[str] = []
    if labels is not None:
        clips = csv_labels.find(raw, labels)
    else:
        if not os.path.isdir(raw):
            raise CkppError("RAW must be a folder", path=raw, fix="pass the folder holding your clips, or a CSV via --labels")
        clips = []
        if source == "ckplus":
            roots = ckplus.find_roots(raw)
            if not roots:
                raise CkppError("no CK+ tree found (no cohn-kanade-images/ folder)", path=raw, fix=LAYOUTS_HELP)
            for r in roots:
                clips += ckplus.find(r, raw)
        elif source == "videos":
            clips = videos.find(raw, raw)
            if not clips:
                raise CkppError("no CK++-style clips found", path=raw, fix=LAYOUTS_HELP)
        else:
            clips, ignored = _auto(raw)
            if not clips:
                raise CkppError("no known clip layout found", path=raw, fix=LAYOUTS_HELP)
            if ignored:
                shown = ", ".join(ignored[:5]) + (" ..." if len(ignored) > 5 else "")
                notes.append(f"ignored {len(ignored)} path(s) matching no layout: {shown}")
    if labels is None:
        clips, linked = _once_per_real_file(clips)
        if linked:
            shown = ", ".join(linked[:3]) + (" ..." if len(linked) > 3 else "")
            notes.append(f"skipped {len(linked)} path(s) reached through links to clips already found: {shown}")
    if emotions:
        keep = set(emotions)
        before = len(clips)
        clips = [c for c in clips if c.emotion in keep and not c.reason]
        if before - len(clips):
            notes.append(f"{before - len(clips)} clip(s) of other emotions (or unlabelled) skipped by --emotions")
    return assign_unique_ids(clips), notes


def _once_per_real_file(clips: list[Clip]) -> tuple[list[Clip], list[str]]:
    """One Clip per real file or folder (by resolved path): a directory link back into RAW, two links to the
    same outside folder or a link loop must not count a clip twice. The path reached without links wins,
    else the first in source order. Returns the kept clips and 'skipped (= kept)' texts."""
    def linked(c: Clip) -> bool:
        return os.path.realpath(c.path) != os.path.normpath(os.path.abspath(c.path))

    first: dict[str, Clip] = {}
    for c in sorted(clips, key=lambda c: (linked(c), c.source)):
        first.setdefault(os.path.realpath(c.path), c)
    kept = {id(c) for c in first.values()}
    skipped = [f"{c.source} (= {first[os.path.realpath(c.path)].source})" for c in clips if id(c) not in kept]
    return [c for c in clips if id(c) in kept], sorted(skipped)


def _auto(raw: str, max_depth: int = 4) -> tuple[list[Clip], list[str]]:
    """Recognise each subtree of RAW: a CK+ root, a CK++-style root, or a folder to look inside."""
    from . import ckplus, videos

    clips: list[Clip] = []
    ignored: list[str] = []
    seen: set[str] = set()  # resolved folders already visited: a link loop is walked once, never round again

    if os.path.basename(os.path.normpath(raw)).lower() == ckplus.IMAGES_DIR:  # RAW is CK+'s image folder itself
        return ckplus.find(os.path.dirname(os.path.normpath(raw)), raw), []

    def visit(d: str, depth: int):
        real = os.path.realpath(d)
        if real in seen:
            return
        seen.add(real)
        if ckplus.is_root(d):
            clips.extend(ckplus.find(d, raw))
            return
        if videos.is_root(d):
            clips.extend(videos.find(d, raw))
            return
        try:
            entries = sorted(os.scandir(d), key=lambda e: e.name)
        except OSError:
            ignored.append(os.path.relpath(d, raw))
            return
        for e in entries:
            if e.name.startswith("."):
                continue
            if e.is_dir() and depth < max_depth:
                n_before = len(clips)
                visit(e.path, depth + 1)
                if len(clips) == n_before and depth == 0:
                    ignored.append(os.path.relpath(e.path, raw).replace(os.sep, "/") + "/")
            elif e.is_file() and e.name.lower().endswith(VIDEO_EXTS):
                ignored.append(os.path.relpath(e.path, raw).replace(os.sep, "/"))

    visit(raw, 0)
    return clips, ignored


from ..video_io import VIDEO_EXTS  # noqa: E402
