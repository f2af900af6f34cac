"""Canonical emotion vocabulary (CK+ codes) and the aliases accepted on input."""
from __future__ import annotations

from .errors import UsageError

#: canonical name -> CK+ code (Emotion/*.txt holds the code as a float)
CODES: dict[str, int] = {
    "neutral": 0,
    "anger": 1,
    "contempt": 2,
    "disgust": 3,
    "fear": 4,
    "happy": 5,
    "sadness": 6,
    "surprise": 7,
}
NAMES: dict[int, str] = {v: k for k, v in CODES.items()}
#: the seven expressions (everything but neutral)
EXPRESSIONS: tuple[str, ...] = tuple(n for n in CODES if n != "neutral")

#: expressions made on one side of the face (contempt: a unilateral lip-corner pull, AU12+14 on one side).
#: Training does not mirror their clips: a mirrored clip teaches the other side, and a model that cannot tell
#: from a near-symmetric face which side a clip used learns the average of both — no motion at all (measured:
#: the joint model's contempt motion was 7% of the data's, cosine 0.10, with mirroring on)
ONE_SIDED: frozenset[str] = frozenset({"contempt"})

ALIASES: dict[str, str] = {
    "angry": "anger",
    "happiness": "happy",
    "sad": "sadness",
    "surprised": "surprise",
    "disgusted": "disgust",
    "fearful": "fear",
    "afraid": "fear",
    "contemptuous": "contempt",
    "smile": "happy",
}


def normalize(name: str) -> str | None:
    """Canonical name for `name` (case/space-insensitive, aliases resolved); None when unknown."""
    key = str(name).strip().lower().replace(" ", "")
    key = ALIASES.get(key, key)
    return key if key in CODES else None


def require(name: str, where: str = "--emotion") -> str:
    """Like normalize(), but an unknown name is a clear user error."""
    canon = normalize(name)
    if canon is None:
        raise UsageError(
            f"unknown emotion {name!r}",
            path=where,
            fix="use one of " + ", ".join(CODES) + " (aliases: " + ", ".join(f"{a}->{c}" for a, c in ALIASES.items()) + ")",
        )
    return canon


def parse_list(text: str | None, where: str = "--emotions") -> list[str] | None:
    """'happy,anger' -> ['happy', 'anger'] (canonical); None/'' -> None (all)."""
    if not text:
        return None
    return [require(t, where) for t in str(text).split(",") if t.strip()]


def code(name: str) -> int:
    return CODES[require(name)]
