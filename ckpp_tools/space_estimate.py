"""How much disk `ckpp prepare` will write, estimated from the clips found before any work, so a run that cannot
fit stops (or warns) in seconds instead of failing hours later on a full disk (issue 25).

Bytes per stored frame: S×S×3 (frames are stored uncompressed, writer.FRAMES_DEFLATE) + the deflated mouth mask
(~S²/150) + landmarks, degree and source index (~560 B); ~10 kB per clip for its groups and chunk indexes.
Measured on `ckpp sample --small` prepared at S=289: 252,787 B per stored frame in the shard, the model says
252,240 (0.2 % under). Frames kept: all of an already trimmed clip (CK+ sequences run onset→peak), onset..peak
where a labels CSV gives them, else KEPT_FRACTION of a video (its neutral pre-roll and peak tail are cut;
measured on `ckpp sample` videos: 141 of 241 frames). The upper bound keeps every frame. Frame counts: frame
folders are listed; video containers' claimed counts are read with OpenCV (~3 ms a file) for up to
PROBE_SECONDS, the other videos are extrapolated from their file size.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass

from .disk_space import free_bytes, human

#: fraction of a raw video's frames a run keeps (onset..peak), measured on `ckpp sample` videos (141 / 241)
KEPT_FRACTION = 0.6
PER_FRAME_EXTRA = 560
PER_CLIP = 10_000
PROBE_SECONDS = 2.0
#: frames assumed for a video when none could be probed (5 s at 25 fps)
DEFAULT_VIDEO_FRAMES = 125


@dataclass
class Estimate:
    typical: int          # bytes, with the frames a run usually keeps
    upper: int            # bytes, if every decoded frame were kept
    clips: int
    frames: int           # source frames counted or estimated
    probed: int           # videos whose frame count was read
    guessed: int          # videos whose frame count was extrapolated

    def text(self) -> str:
        how = f"{self.clips} clips, ~{self.frames} source frames"
        if self.guessed:
            how += f" ({self.guessed} video lengths extrapolated)"
        return f"about {human(self.typical)} (at most {human(self.upper)} if every frame were kept; {how})"


def bytes_per_frame(size: int) -> int:
    return size * size * 3 + size * size // 150 + PER_FRAME_EXTRA


def _claimed_frames(path: str) -> int:
    from . import video_io  # noqa: F401  (sets OpenCV's/ffmpeg's log levels before cv2 opens a file)
    import cv2

    cap = cv2.VideoCapture(path)
    try:
        return int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0) if cap.isOpened() else 0
    finally:
        cap.release()


def estimate(clips, size: int, max_frames: int | None = None, probe_seconds: float = PROBE_SECONDS) -> Estimate:
    """Bytes `prepare` writes for `clips` (sources.Clip; ones already rejected by name or label are skipped)."""
    from .video_io import list_frame_files

    per_frame = bytes_per_frame(size)
    cap = max_frames or None
    todo = [c for c in clips if not c.reason]
    counts: dict[int, int] = {}
    videos = []
    for i, c in enumerate(todo):
        if os.path.isdir(c.path):
            counts[i] = len(list_frame_files(c.path))
        else:
            videos.append(i)
    # probe videos spread over the list (every k-th first), within the time budget
    t0, probed, per_byte = time.monotonic(), 0, []
    order = sorted(videos, key=lambda i: (videos.index(i) % 7, i))
    for i in order:
        if time.monotonic() - t0 > probe_seconds:
            break
        try:
            n, nbytes = _claimed_frames(todo[i].path), os.path.getsize(todo[i].path)
        except OSError:
            n, nbytes = 0, 0
        counts[i] = n
        probed += 1
        if n > 0 and nbytes > 0:
            per_byte.append(n / nbytes)
    rate = sorted(per_byte)[len(per_byte) // 2] if per_byte else None
    guessed = 0
    for i in videos:
        if i in counts:
            continue
        guessed += 1
        try:
            counts[i] = int(os.path.getsize(todo[i].path) * rate) if rate else DEFAULT_VIDEO_FRAMES
        except OSError:
            counts[i] = 0
    typical = upper = 0
    frames = 0
    for i, c in enumerate(todo):
        n = min(counts.get(i, 0), cap) if cap else counts.get(i, 0)
        if n <= 0:
            continue
        frames += n
        if c.already_trimmed:
            kept = n
        elif c.onset_peak is not None:
            o, p = int(c.onset_peak[0]), int(c.onset_peak[1])
            kept = max(0, min(p, n - 1) - o + 1)
        else:
            kept = round(n * KEPT_FRACTION)
        upper += n * per_frame + PER_CLIP
        typical += kept * per_frame + PER_CLIP
    return Estimate(typical=typical, upper=upper, clips=len(todo), frames=frames, probed=probed, guessed=guessed)


def check(out: str, est: Estimate, reclaimable: int = 0) -> tuple[bool, str]:
    """(enough, text): whether the filesystem of `out` holds `est` (plus `reclaimable` bytes the run replaces),
    and a line saying so."""
    free = free_bytes(out)
    if free is None:
        return True, f"space: this run writes {est.text()}; the free space of {os.path.dirname(out)} is unknown"
    avail = free + reclaimable
    where = f"{human(free)} free on the filesystem holding {os.path.dirname(out)}"
    if reclaimable:
        where += f" (+{human(reclaimable)} of the output it replaces)"
    if avail < est.typical:
        return False, f"not enough space: this run writes {est.text()}; {where}"
    if avail < est.upper:
        return True, (f"space: this run writes {est.text()}; {where}: enough for a usual run, not for the upper "
                      "bound (if it fills up, free space and rerun with --resume)")
    return True, f"space: this run writes {est.text()}; {where}"


def remaining(need, written: list):
    """A function giving what is still to write: `need` (bytes, or a function giving them) less the files of
    `written` (a list the run keeps appending to: its completed shards)."""
    def still() -> int | None:
        n = need() if callable(need) else need
        if n is None:
            return None
        return max(0, n - sum(os.path.getsize(p) for p in written if os.path.isfile(p)))

    return still


def preflight(out: str, pending, size: int, max_frames: int | None, *, enabled: bool = True, notes: list | None = None,
              echo=print, replaced=()):
    """`prepare`'s check before any work: estimate what `pending` clips will write and stop with a clear message
    when the disk of `out` cannot hold it (`replaced`: files of an output being overwritten, freed as the run
    goes). Returns the estimate in bytes for a later disk-full message: a number, or with --no-space-check
    (`enabled` False) a function that estimates only when a message needs it."""
    if not pending:
        return None
    if not enabled:
        return lambda: estimate(pending, size, max_frames).typical
    from .errors import CkppError

    est = estimate(pending, size, max_frames)
    ok, text = check(out, est, sum(os.path.getsize(p) for p in replaced if os.path.isfile(p)))
    if not ok:
        raise CkppError(text, path=out, fix="free space or write OUT to another disk, then run the same command "
                                            "again; --no-space-check starts anyway")
    if "upper bound" in text:
        echo(f"note: {text}")
    if notes is not None:
        notes.append(text)
    return est.typical
