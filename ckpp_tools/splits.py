"""Subject-disjoint, deterministic train/val/test splits.

Subjects are ranked by a hash of their id and cut by the fractions (--split 0.8,0.1,0.1). Ranking (rather than
thresholding each hash) guarantees every split with a non-zero fraction gets a subject once there are enough
subjects, which matters for small data; it depends only on the set of subjects found in RAW, which every job of
a job array sees in full, so jobs agree. No subject ever appears in two splits.
"""
from __future__ import annotations

import hashlib

from .errors import UsageError
from .schema import SPLITS


def parse_fractions(text: str | None) -> tuple[float, float, float]:
    """'0.8,0.1,0.1' -> (0.8, 0.1, 0.1), normalised to sum 1."""
    if text is None or text == "":
        text = "0.8,0.1,0.1"
    try:
        vals = [float(t) for t in str(text).split(",")]
    except ValueError:
        vals = []
    if len(vals) != 3 or any(v < 0 for v in vals) or sum(vals) <= 0:
        raise UsageError(f"bad split fractions {text!r}", path="--split", fix="give three non-negative numbers train,val,test, e.g. 0.8,0.1,0.1")
    s = sum(vals)
    return tuple(v / s for v in vals)  # type: ignore[return-value]


def subject_hash(subject: str) -> str:
    return hashlib.sha256(("ckpp-split:" + subject).encode("utf-8")).hexdigest()


def assign(subjects, fractions=(0.8, 0.1, 0.1)) -> dict[str, str]:
    """subject -> 'train' | 'val' | 'test'."""
    subs = sorted(set(subjects), key=lambda s: (subject_hash(s), s))
    n = len(subs)
    counts = [int(round(f * n)) for f in fractions]
    # every split with a positive fraction gets at least one subject when there are enough to go round
    want = [1 if f > 0 else 0 for f in fractions]
    if n >= sum(want):
        for i in range(3):
            if counts[i] < want[i]:
                counts[i] = want[i]
    # fix the total to n, taking from / giving to the largest split (train first)
    while sum(counts) > n:
        i = max(range(3), key=lambda k: (counts[k] - want[k], -k))
        counts[i] -= 1
    while sum(counts) < n:
        i = max(range(3), key=lambda k: (fractions[k], -k))
        counts[i] += 1
    out, pos = {}, 0
    for name, c in zip(SPLITS, counts):
        for s in subs[pos:pos + c]:
            out[s] = name
        pos += c
    return out
