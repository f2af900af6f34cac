"""A clip's frames as a lazy sequence: decoded in order as they are asked for, the latest ones kept in a cache
of bounded bytes, older ones decoded again on demand (issue 26: HD and 4K recordings).

Why: `video_io.read_clip` holds every decoded frame, W x H x 3 bytes each -- 6 MB at 1080p, 25 MB at 4K -- so
its 2 GiB guard cut a 1080p take after 11 s and a 4K take after 3 s, and the smile that came later was never
seen. The analysis needs each frame once, in order (pass 1: landmarks, on a reduced copy), and then only the
frames it keeps, at full resolution (pass 2: re-fit and crop). `ClipFrames` serves both:

- frames are decoded in order; the most recent ones stay in a cache of at most `cache_bytes` (CACHE_BYTES), so
  a short SD clip is decoded once however many passes look at it, and a long one costs the cache, not W x H x N;
- a frame older than the cache is decoded again: the decoder seeks to it (OpenCV's CAP_PROP_POS_FRAMES), and
  every frame read after a seek must match the fingerprint it had when first decoded (a hash of its pixels),
  so a seek that lands on another frame, or decodes it differently (open GOPs, odd containers), can never swap
  frames: on a mismatch the clip is decoded from its start instead, and seeking is not tried on it again;
- image folders are read file by file (random access is free there);
- `set_scale(k)`: once the analysis knows the face is large (HD, 4K: tracking.analysis_scale), every frame is
  kept and served reduced by the integer factor k (area filter, `reduce`), colour included: landmarks, the
  checks, the re-fit and the crop all work on that one copy (the crop's own area filter would shrink the
  frame at least that much: clip_pipeline.crop_scale), so a 4K frame costs what a 960x540 one does from then on.

Decoding follows `video_io.read_clip` exactly (the same pixels reach the analysis): the first frame fixes the
colour mode (gray when its channels are equal), image folders go in natural order with EXIF orientation and
skip frames of another size. `max_frames` (--max-frames) ends the clip; `cut` then says whether frames were
left unread and `total_hint` how many the clip has (image files, or the container's own count).
"""
from __future__ import annotations

import hashlib
import os
import queue
import threading
from collections import OrderedDict
from collections.abc import Sequence

import cv2
import numpy as np

from . import video_io
from .photo_io import exif_orientation, orient

#: frames the decoder thread may read ahead of the analysis (each a full decoded frame: 25 MB at 4K)
READ_AHEAD = 3

#: bytes of decoded frames a clip may keep for a later pass (full frames, as decoded): 640x480 RGB is 0.9 MB a
#: frame (~420 frames), 1080p 6.2 MB (~65), 4K 25 MB (~16). Beyond it frames are decoded again when needed.
CACHE_BYTES = 384 << 20


def reduce(img: np.ndarray, k: int) -> np.ndarray:
    """`img` (gray or colour) shrunk by the integer factor k with an area filter: each output pixel is the mean
    of a k x k block (the few rows/columns that do not fill a block are dropped). Factors of 2 go one halving at
    a time (OpenCV's fast 2x path: 4K by 4 in ~10 ms instead of ~30), an odd rest in one step. k == 1 returns
    `img` itself."""
    if k <= 1:
        return img
    h, w = img.shape[:2]
    out = img[: h - h % k, : w - w % k]
    while k > 1:
        f = 2 if k % 2 == 0 else k
        out = cv2.resize(out, (out.shape[1] // f, out.shape[0] // f), interpolation=cv2.INTER_AREA)
        k //= f
    return out


def to_source(points, k: int):
    """Points in a frame reduced by `k` (see reduce) -> source pixels (the centre of block u is k*u + (k-1)/2)."""
    if k <= 1:
        return points
    return (np.asarray(points) * np.float32(k) + np.float32((k - 1) / 2)).astype(np.asarray(points).dtype)


def to_reduced(points, k: int):
    """Inverse of to_source."""
    if k <= 1:
        return points
    return ((np.asarray(points) - np.float32((k - 1) / 2)) / np.float32(k)).astype(np.asarray(points).dtype)


class _ReadAhead:
    """`cap.read()` of the next frames in a thread: OpenCV releases the GIL while it decodes, so the decoding of
    frame t+1 overlaps the analysis of frame t (the predictor, in C++, runs meanwhile). The thread owns `cap`
    until close(); frames read ahead and not taken are then dropped with it."""

    def __init__(self, cap, depth: int = READ_AHEAD):
        self.cap, self.q, self.stop = cap, queue.Queue(maxsize=depth), threading.Event()
        self.thread = threading.Thread(target=self._run, name="ckpp-decode", daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stop.is_set():
            try:
                ok, img = self.cap.read()
            except cv2.error:
                ok, img = False, None
            while not self.stop.is_set():
                try:
                    self.q.put((ok, img), timeout=0.1)
                    break
                except queue.Full:
                    continue
            if not ok:
                return

    def read(self):
        return self.q.get()

    def close(self):
        self.stop.set()
        while self.thread.is_alive():
            try:
                self.q.get(timeout=0.05)
            except queue.Empty:
                pass
        self.cap.release()


def to_gray(frame: np.ndarray) -> np.ndarray:
    """uint8 (H,W) luma of a gray or RGB frame (no copy for gray)."""
    f = np.asarray(frame)
    if f.ndim == 2:
        return f if f.dtype == np.uint8 else np.clip(f, 0, 255).astype(np.uint8)
    if f.shape[2] == 1:
        return np.ascontiguousarray(f[..., 0], dtype=np.uint8)
    return cv2.cvtColor(np.ascontiguousarray(f[..., :3], dtype=np.uint8), cv2.COLOR_RGB2GRAY)


def _fingerprint(img: np.ndarray) -> bytes:
    """A hash of one pixel per 16x16 block (all channels): any other frame, or a macroblock decoded differently,
    changes it; ~0.1 ms at 4K."""
    return hashlib.blake2b(np.ascontiguousarray(img[7::16, 7::16]).data, digest_size=8).digest()


class FrameList(Sequence):
    """Frames already in memory, behind the same interface as ClipFrames (gray(), set_scale(), ...)."""

    def __init__(self, frames):
        self.frames = frames
        self.cut = False
        self.scale = 1

    def __len__(self):
        return len(self.frames)

    def __getitem__(self, i):
        return reduce(np.asarray(self.frames[i]), self.scale)

    def known_len(self) -> int | None:
        return len(self.frames)

    def has(self, i: int) -> bool:
        return 0 <= i < len(self.frames)

    def gray(self, i: int) -> np.ndarray:
        return to_gray(self[i])

    def set_scale(self, k: int) -> None:
        self.scale = int(k)

    def load(self, i: int) -> None:
        pass

    def keep_only(self, lo: int, hi: int) -> None:
        pass


def as_frames(frames):
    """A ClipFrames (or FrameList) for any sequence of frames."""
    return frames if isinstance(frames, (ClipFrames, FrameList)) else FrameList(frames)


class ClipFrames(Sequence):
    """The frames of one clip (a video file or a folder of frame images), decoded lazily; see the module
    docstring. Indexing returns uint8 (H,W) gray or (H,W,3) RGB frames like `read_clip`'s (reduced by `scale`
    after set_scale); `gray(i)` the luma the analysis uses. `len()` decodes to the end when it is not known yet."""

    def __init__(self, path: str, max_frames: int | None = None, cache_bytes: int = CACHE_BYTES,
                 threads: int | None = None, progress=None):
        self.path = os.fspath(path)
        self.progress = progress     # called once for every frame decoded (the driver's --timeout watches it)
        self.max_frames = max_frames
        self.cache_bytes = int(cache_bytes)
        self.threads = threads       # decoder threads (None: OpenCV's default, one per core)
        self.is_folder = os.path.isdir(self.path)
        self.fps = float("nan")
        self.error = ""              # why decoding failed / stopped early ("" when it ran to the end cleanly)
        self.n_failed = 0            # image files that did not decode (folders)
        self.kept: list[int] = []    # folders: index (in list_frame_files order) of each frame
        self.claimed = -1            # videos: the container's frame count (metadata: may lie)
        self.cut = False             # max_frames ended the clip before its end
        self.total_hint = -1         # frames the clip has (image files, or the container's count) when cut
        self.stats = {"decoded": 0, "seeks": 0, "restarts": 0}
        self.scale = 1               # frames are kept and served reduced by this factor (set_scale)
        self._n: int | None = None   # the number of frames, once the end was reached
        self._gray_mode: bool | None = None
        self._prints: list[bytes] = []   # videos: fingerprint of each frame decoded so far, in order
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self._cached = 0
        self._fill_only = False      # keep_only(): add while room is left, evict nothing
        self._cap = None             # videos: an open decoder and the index of the frame it gives next
        self._pos = 0
        self._seek_ok = True
        self._files: list[str] | None = None
        self._shape = None
        self._open_checked = False
        self._last = (-1, None)      # the frame decoded last (served even when the cache had no room for it)
        self._ahead: _ReadAhead | None = None   # reads the frames after the frontier in a thread

    # ----------------------------------------------------------------------------------------- public
    def known_len(self) -> int | None:
        return self._n

    def __len__(self) -> int:
        while self._n is None:
            self._advance()
        return self._n

    def has(self, i: int) -> bool:
        """True when frame i exists (decodes up to it when needed)."""
        if i < 0:
            return False
        while self._n is None and len(self._prints_or_kept()) <= i:
            self._advance()
        return i < len(self._prints_or_kept())

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        if i < 0:
            i += len(self)
        raw = self._raw(i)
        if self.is_folder or self._gray_mode:
            return raw
        return cv2.cvtColor(raw, cv2.COLOR_BGR2RGB)

    def __iter__(self):
        i = 0
        while self.has(i):
            yield self[i]
            i += 1

    def set_scale(self, k: int) -> None:
        """From now on keep and serve frames reduced by the integer factor k (once, from scale 1)."""
        k = int(k)
        if k == self.scale:
            return
        if self.scale != 1:
            raise ValueError(f"the scale of a clip is set once (it is {self.scale}, asked {k})")
        self.scale = k
        if self._last[1] is not None:
            self._last = (self._last[0], reduce(self._last[1], k))
        for j in list(self._cache):
            small = reduce(self._cache[j], k)
            self._cached += small.nbytes - self._cache[j].nbytes
            self._cache[j] = small

    def load(self, i: int) -> None:
        """Decode frame i into the cache (if there is room) without converting it."""
        self._raw(i)

    def gray(self, i: int) -> np.ndarray:
        """uint8 (H,W) luma of frame i: what tracking.to_gray gives for self[i], without the RGB copy."""
        raw = self._raw(i)
        if raw.ndim == 2:
            return raw
        if self.is_folder:
            return to_gray(raw)
        return cv2.cvtColor(raw, cv2.COLOR_BGR2GRAY)  # == RGB2GRAY of the RGB frame (same weights, same channels)

    def keep_only(self, lo: int, hi: int) -> None:
        """From now on cache frames lo..hi only (the kept span): drop the others, add while there is room."""
        for j in [j for j in self._cache if not lo <= j <= hi]:
            self._cached -= self._cache.pop(j).nbytes
        self._fill_only = True
        self._lo_hi = (lo, hi)

    def close(self) -> None:
        self._stop_ahead()
        if self._cap is not None:
            self._cap.release()
            self._cap = None
        self._cache.clear()
        self._cached = 0
        self._last = (-1, None)

    # ---------------------------------------------------------------------------------------- internal
    def _decoded(self) -> None:
        self.stats["decoded"] += 1
        if self.progress is not None:
            self.progress()

    def _prints_or_kept(self) -> list:
        return self.kept if self.is_folder else self._prints

    def _remember(self, i: int, raw: np.ndarray) -> None:
        """Cache frame i (already at self.scale) while the budget allows; the oldest go first (keep_only: none)."""
        if i in self._cache:
            return
        if self._fill_only:
            lo, hi = self._lo_hi
            if not lo <= i <= hi or self._cached + raw.nbytes > self.cache_bytes:
                return
        else:
            while self._cache and self._cached + raw.nbytes > self.cache_bytes:
                self._cached -= self._cache.popitem(last=False)[1].nbytes
            if raw.nbytes > self.cache_bytes:
                return
        self._cache[i] = raw
        self._cached += raw.nbytes

    def _raw(self, i: int) -> np.ndarray:
        hit = self._cache.get(i)
        if hit is not None:
            return hit
        if not self.has(i):
            raise IndexError(f"frame {i} of a clip with {self._n} frames")
        hit = self._cache.get(i)   # has() may have decoded it
        if hit is not None:
            return hit
        if self._last[0] == i:     # ... and the cache had no room for it
            return self._last[1]
        if self.is_folder:
            raw = self._file_frame(self.kept[i])[0]
            self._decoded()
        else:
            raw = self._decode_again(i)
        raw = reduce(raw, self.scale)
        self._remember(i, raw)
        return raw

    def _advance(self) -> None:
        """Decode the next frame in order (the first time), or learn that the clip ended."""
        if self.is_folder:
            self._advance_folder()
        else:
            self._advance_video()

    # ------------------------------------------------------------------------------------------ video
    def _open(self):
        params = [] if not self.threads else [cv2.CAP_PROP_N_THREADS, int(self.threads)]
        cap = cv2.VideoCapture(self.path, cv2.CAP_ANY, params) if params else cv2.VideoCapture(self.path)
        return cap

    def _first_open(self) -> bool:
        self._open_checked = True
        if not os.path.exists(self.path):
            self.error = "file not found"
            return False
        try:
            if os.path.getsize(self.path) == 0:
                self.error = "empty file (0 bytes)"
                return False
            cap = self._open()
        except (OSError, ValueError) as exc:
            self.error = f"{type(exc).__name__}: {exc}"
            return False
        if not cap.isOpened():
            self.error = "OpenCV cannot open it as a video"
            cap.release()
            return False
        fps = cap.get(cv2.CAP_PROP_FPS)
        self.fps = float(fps) if fps and np.isfinite(fps) and 0 < fps < 1000 else float("nan")
        self.claimed = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        self._cap, self._pos = cap, 0
        return True

    def _convert(self, img: np.ndarray) -> np.ndarray:
        if self._gray_mode is None:   # decided once per clip: all frames of a clip share one colour mode
            self._gray_mode = video_io._gray_if_equal(img).ndim == 2
        return np.ascontiguousarray(img[..., 0]) if self._gray_mode else img

    def _end_video(self, n: int) -> None:
        self._n = n
        self._stop_ahead()
        if n == 0:
            self.error = self.error or "no frame could be decoded"
        elif self.cut:
            pass
        elif self.claimed > 0 and n < self.claimed - 1:
            self.error = f"decoded {n} of the {self.claimed} frames the container claims (truncated?)"

    def _stop_ahead(self) -> None:
        """Stop the read-ahead thread; the decoder it owned goes with it (the next read reopens)."""
        if self._ahead is not None:
            self._ahead.close()
            self._ahead, self._cap, self._pos = None, None, 0

    def _read_next(self):
        """The next frame of the open decoder in order, via the read-ahead thread."""
        if self._ahead is None:
            self._ahead = _ReadAhead(self._cap)
        ok, img = self._ahead.read()
        if ok and img is not None:
            self._pos += 1
        return ok, img

    def _advance_video(self) -> None:
        if not self._open_checked and not self._first_open():
            self._n = 0
            return
        i = len(self._prints)
        if self._cap is None or self._pos != i:
            self._stop_ahead()
            self._reposition(i, seek=False)   # past the frames seen so far: nothing to check a seek against
        ok, img = (False, None) if self._cap is None else self._read_next()
        if self.max_frames is not None and i >= self.max_frames:
            # one more frame there? then the clip was cut, and the row must say so
            self.cut = bool(ok and img is not None)
            if self.cut:
                self.total_hint = self.claimed if self.claimed > i else -1
            self._end_video(i)
            return
        if not ok or img is None:
            self._end_video(i)
            return
        self._decoded()
        raw = self._convert(img)
        self._prints.append(_fingerprint(raw))
        self._last = (i, reduce(raw, self.scale))
        self._remember(*self._last)

    def _reposition(self, i: int, seek: bool = True) -> None:
        """Make the open decoder give frame i next: read on from where it is, seek, or start over."""
        self._stop_ahead()
        if self._cap is not None and self._pos <= i:
            while self._pos < i:
                if not self._cap.grab():
                    self._cap.release()
                    self._cap = None
                    return
                self._pos += 1
            return
        if self._cap is not None:
            self._cap.release()
        self._cap, self._pos = self._open(), 0
        if i > 0 and seek and self._seek_ok:
            self.stats["seeks"] += 1
            if self._cap.set(cv2.CAP_PROP_POS_FRAMES, i):
                self._pos = i
                return
            self._cap.release()
            self._cap, self._pos = self._open(), 0
        self._reposition(i, seek=False)

    def _decode_again(self, i: int) -> np.ndarray:
        """Frame i (decoded before, no longer cached): seek and check its fingerprint, else from the start."""
        for _ in range(2):
            self._reposition(i)
            ok, img = (False, None) if self._cap is None else self._cap.read()
            if ok and img is not None:
                self._pos += 1
                self._decoded()
                raw = self._convert(img)
                if _fingerprint(raw) == self._prints[i]:
                    return raw
            # the seek landed elsewhere or decoded differently: never trust it on this clip again
            self.stats["restarts"] += 1
            self._seek_ok = False
            if self._cap is not None:
                self._cap.release()
            self._cap, self._pos = None, 0
        raise RuntimeError(f"frame {i} decodes differently the second time (the decoder is not deterministic "
                           f"on this file)")

    # ----------------------------------------------------------------------------------------- folder
    def _file_frame(self, j: int):
        """(frame, ok) of image file j, converted like read_image_folder does."""
        img = cv2.imread(self._files[j], cv2.IMREAD_UNCHANGED)
        if img is None or img.size == 0:
            return None, False
        img = video_io._gray_if_equal(video_io._to_rgb_or_gray(img))
        turn = exif_orientation(self._files[j])
        if turn != 1:
            img = np.ascontiguousarray(orient(img, turn))
        if self._gray_mode is not None:   # one colour mode per clip, set by its first frame
            if self._gray_mode and img.ndim == 3:
                img = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
            elif not self._gray_mode and img.ndim == 2:
                img = np.repeat(img[..., None], 3, axis=2)
        return img, True

    def _advance_folder(self) -> None:
        if self._files is None:
            self._files = video_io.list_frame_files(self.path)
            self._next_file = 0
            if not self._files:
                self.error = "no image files in the folder"
                self._n = 0
                return
        limit = len(self._files) if self.max_frames is None else min(len(self._files), self.max_frames)
        while self._next_file < limit:
            j = self._next_file
            self._next_file += 1
            img, ok = self._file_frame(j)
            if not ok:
                self.n_failed += 1
                continue
            if self._shape is not None and img.shape[:2] != self._shape:
                self.n_failed += 1  # a frame of another size is not part of this sequence
                continue
            if self._gray_mode is None:
                self._gray_mode = img.ndim == 2
            self._shape = img.shape[:2]
            self._decoded()
            self.kept.append(j)
            self._last = (len(self.kept) - 1, reduce(img, self.scale))
            self._remember(*self._last)
            return
        self._n = len(self.kept)
        if self.max_frames is not None and len(self._files) > self.max_frames:
            self.cut, self.total_hint = True, len(self._files)
        if self.n_failed:
            self.error = f"{self.n_failed} of {len(self._files)} image files did not decode"
        if not self.kept:
            self.error = f"none of the {len(self._files)} image files decoded"
