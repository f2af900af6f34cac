"""Clips listed in a CSV (`--labels labels.csv`): columns path,subject,emotion and optionally onset,peak.

`path` is relative to RAW (or absolute); `onset`,`peak` (0-based source frame indices, inclusive) skip the
automatic neutral->peak trimming for that clip.
"""
from __future__ import annotations

import csv
import os

from .. import emotions
from ..errors import DataFormatError
from .clip import Clip, safe_id
from .videos import split_name

REQUIRED = ("path", "subject", "emotion")


def _int_or_none(text: str, where: str, csv_path: str, line: int):
    text = (text or "").strip()
    if text == "" or text == "-1":
        return None
    try:
        return int(float(text))
    except ValueError:
        raise DataFormatError(f"line {line}: {where} {text!r} is not a frame index", path=csv_path,
                              fix="use 0-based integer frame indices, or leave the cell empty") from None


def _read_rows(csv_path: str) -> list[dict]:
    with open(csv_path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        cols = [c.strip().lower() for c in (reader.fieldnames or [])]
        missing = [c for c in REQUIRED if c not in cols]
        if missing:
            raise DataFormatError(f"missing column(s) {', '.join(missing)} (found: {', '.join(cols)[:200] or 'none'})",
                                  path=csv_path, fix="the first line must name the columns path,subject,emotion[,onset,peak]")
        return [{(k or "").strip().lower(): (v or "").strip() for k, v in r.items()} for r in reader]


def find(raw: str, csv_path: str) -> list[Clip]:
    if not os.path.isfile(csv_path):
        raise DataFormatError("labels file not found", path=csv_path, fix="pass an existing CSV with columns path,subject,emotion")
    try:
        rows = _read_rows(csv_path)
    except (UnicodeDecodeError, csv.Error) as exc:  # a binary file, a huge field, a NUL byte
        why = "not UTF-8 text" if isinstance(exc, UnicodeDecodeError) else f"not a readable CSV ({exc})"
        raise DataFormatError(f"labels file is {why}", path=csv_path,
                              fix="pass a UTF-8 CSV with columns path,subject,emotion[,onset,peak]") from None
    clips = []
    base = os.path.dirname(os.path.abspath(csv_path))
    for n, r in enumerate(rows, start=2):
        if not r.get("path"):
            continue
        rel = r["path"]
        path = rel if os.path.isabs(rel) else os.path.join(raw, rel)
        if not os.path.exists(path) and not os.path.isabs(rel) and os.path.exists(os.path.join(base, rel)):
            path = os.path.join(base, rel)
        path = os.path.abspath(path)
        subject = r["subject"] or "unknown"
        emo_raw = r["emotion"]
        canon = emotions.normalize(emo_raw) if emo_raw else None
        onset = _int_or_none(r.get("onset", ""), "onset", csv_path, n)
        peak = _int_or_none(r.get("peak", ""), "peak", csv_path, n)
        if (onset is None) != (peak is None) or (onset is not None and (onset < 0 or peak < onset)):
            raise DataFormatError(f"line {n}: onset={r.get('onset')!r}, peak={r.get('peak')!r} must both be given with 0 <= onset <= peak",
                                  path=csv_path, fix="fill both columns, or leave both empty for automatic trimming")
        stem = os.path.splitext(rel)[0] if not os.path.isdir(path) else rel.rstrip("/")
        cid = safe_id(stem.replace("\\", "/").replace("/", "_"))
        if not cid.startswith(safe_id(subject)):
            cid = safe_id(subject) + "_" + cid
        reason, detail = "", ""
        if not emo_raw:
            reason, detail = "unlabelled", f"labels line {n} has no emotion"
        elif canon is None:
            reason, detail = "unknown_emotion", f"{emo_raw!r} (labels line {n}) is not a known emotion"
        src = os.path.relpath(path, raw).replace(os.sep, "/")
        clips.append(Clip(
            clip_id=cid, source=src, path=path, subject=subject, emotion=canon or emo_raw,
            take=split_name(os.path.basename(stem))[1] or os.path.basename(stem), layout="csv",
            reason=reason, detail=detail, onset_peak=None if onset is None else (onset, peak),
        ))
    if not clips:
        raise DataFormatError("the labels file lists no clips", path=csv_path, fix="add one line per clip: path,subject,emotion")
    return clips
