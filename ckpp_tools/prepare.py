"""The `ckpp prepare` driver: find clips, analyse them in worker processes, write shards and the master.

Why it is shaped like this:
- Clips are analysed in worker processes (even with --workers 1) with a per-clip timeout: a decoder that hangs
  or crashes on a broken file costs one manifest row, never the run (DESIGN §8).
- Results are written strictly in clip_id order (out-of-order results wait in a bounded window), so the output
  — including which shard holds which clip — is the same for any worker count, and `--resume` can reuse the
  completed shards, which cover a prefix of that order, and produce the same content as an uninterrupted run.
- Workers compress the masks (one deflate chunk per frame); the single writer only copies bytes. Frames are
  stored uncompressed (see writer.FRAMES_DEFLATE).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import multiprocessing as mp
import os
import re
import signal
import time
import traceback
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from multiprocessing.connection import wait as mp_wait

import numpy as np

from . import __version__, emotions, schema, space_estimate, splits
from .disk_space import explained
from .errors import CkppError, UsageError
from .locking import OutputLock
from .lifecycle import opencv_threads_stopped
from .sources import Clip, find_clips

DEFAULT_SHARD_SIZE = 1_000_000_000   # bytes of compressed frames per shard (~1 GB)
DEFAULT_TIMEOUT = 600.0              # seconds a clip may go without decoding a frame (a hung decoder / analysis)
#: frames read per clip at most (--max-frames): 5 minutes at 30 fps, 2.5 at 60. A clip is streamed, so what a
#: frame read costs in memory is a few numbers (landmarks, a fingerprint), ~1 KB; the bound is on time: a stray
#: hour-long video must not take an hour. A longer clip's row says it was cut (prepare.cut_note)
DEFAULT_MAX_FRAMES = 9000


@dataclass
class PrepareOptions:
    source: str = "auto"
    labels: str | None = None
    emotions: list[str] | None = None
    size: int = 289
    workers: int | None = None          # None: all cores
    landmarks: str = "dlib"
    num_shards: int = 1                 # job array: number of jobs
    shard_index: int = 0                # job array: this job
    resume: bool = False
    overwrite: bool = False
    min_frames: int = 4
    blur_threshold: float | None = None
    head_motion_threshold: float | None = None
    head_rotation_threshold: float | None = None
    multiple_faces: str = "largest"
    ck_landmarks: str = "provided"
    shard_size: int = DEFAULT_SHARD_SIZE
    split: str = "0.8,0.1,0.1"
    timeout: float = DEFAULT_TIMEOUT
    max_frames: int = DEFAULT_MAX_FRAMES
    progress: bool = True
    space_check: bool = True            # estimate the output's size and refuse to start when it cannot fit

    def content_config(self) -> dict:
        """Options that change the output (the fingerprint a resumed run must match)."""
        d = dataclasses.asdict(self)
        for k in ("workers", "resume", "overwrite", "progress", "timeout", "space_check"):
            d.pop(k)
        return d


@dataclass
class PrepareResult:
    out: str
    rows: list[dict]
    shards: list[str]
    n_source_frames: int
    seconds: float
    reused_shards: int = 0
    notes: list[str] = field(default_factory=list)
    already_complete: bool = False      # --resume found OUT finished: nothing was written


# ---------------------------------------------------------------------------------------------------------
# per-clip work (runs in a worker process)
# ---------------------------------------------------------------------------------------------------------

def analyse(clip: dict, opts: dict) -> dict:
    """Decode and analyse one clip; returns the manifest-row fields plus, when accepted, arrays ready to write
    (frames and masks as compressed chunks). The clip is streamed (frame_stream.ClipFrames): the worker holds
    a bounded cache of decoded frames, a few numbers a frame and the kept crops, whatever its resolution."""
    from . import frame_stream

    max_frames = int(opts.get("max_frames") or 0) or None
    frames = frame_stream.ClipFrames(clip["path"], max_frames=max_frames, progress=_tick)
    try:
        return _analyse(clip, opts, frames, max_frames)
    finally:
        frames.close()


def cut_note(frames, max_frames) -> str:
    """What a clip longer than --max-frames says about it ("" when it was read whole)."""
    if not frames.cut:
        return ""
    n = frames.known_len()
    of = f"{n} of {frames.total_hint}" if frames.total_hint > n else f"{n} of more"
    return f"read the first {of} frames (--max-frames {max_frames}; raise it to read the whole clip)"


#: rejections that frames after a --max-frames cut could have changed: such a row's reason is too_long
CUT_MAY_CHANGE = ("no_expression", "no_face", "too_short")


def _analyse(clip: dict, opts: dict, frames, max_frames) -> dict:
    from . import clip_pipeline, video_io
    from .sources import ckplus, videos
    from .writer import compress_chunks

    out = {"status": schema.STATUS_REJECTED, "reason": "", "detail": "", "onset": -1, "peak": -1,
           "n_source_frames": 0, "content_hash": ""}
    if not frames.has(0):
        out.update(reason="unreadable", detail=f"no decodable frame: {frames.error or 'unknown error'}")
        return out
    out["content_hash"] = video_io.content_hash(clip["path"])
    min_frames = int(opts.get("min_frames", 4))
    if not frames.has(min_frames - 1):
        out["n_source_frames"] = n = len(frames)
        out.update(reason="too_short", detail=f"only {n} decodable frame(s), --min-frames is {min_frames}"
                   + (f" ({frames.error})" if frames.error else ""))
        return out
    provided = None   # landmarks that came with the clip: CK+ Landmarks/ files or a video's <clip>.landmarks.txt
    if opts.get("ck_landmarks", "provided") == "provided" and (clip.get("landmark_files") or clip.get("landmarks_file")):
        if frames.is_folder:
            len(frames)   # a folder's readable files (frames.kept) are known once it was listed; a video's lines
        kept = frames.kept if frames.is_folder else None      # are its decoded frames, in order
        provided = (ckplus.load_landmarks(clip["landmark_files"], kept) if clip.get("landmark_files")
                    else videos.load_landmark_track(clip["landmarks_file"], kept))
    onset_peak = clip.get("onset_peak")
    if onset_peak is not None:
        o, p = int(onset_peak[0]), int(onset_peak[1])
        if not frames.has(o):
            out["n_source_frames"] = n = len(frames)
            why = f"labels onset {o} is beyond the {n} decodable frames"
            cut = cut_note(frames, max_frames)
            out.update(reason="too_long", detail=f"{cut}; {why}") if cut else out.update(reason="too_short", detail=why)
            return out
        onset_peak = (o, p if frames.has(p) else len(frames) - 1)
    copts = clip_pipeline.ClipOptions(
        size=int(opts["size"]), landmark_backend=opts["landmarks"], min_frames=min_frames,
        multiple_faces=opts["multiple_faces"], ck_landmarks=opts["ck_landmarks"],
        blur_threshold=opts.get("blur_threshold"), head_motion_threshold=opts.get("head_motion_threshold"),
        head_rotation_threshold=opts.get("head_rotation_threshold"),
    )
    res = clip_pipeline.process_clip(frames, already_trimmed=bool(clip.get("already_trimmed")),
                                     provided_landmarks=provided, onset_peak=onset_peak, options=copts)
    out["n_source_frames"] = len(frames)
    detail, reason = res.detail, res.reason
    cut = cut_note(frames, max_frames)
    if cut and res.status != schema.STATUS_ACCEPTED and reason in CUT_MAY_CHANGE:
        # the frames left unread may hold the face / the expression: say what was read, not a verdict on the clip
        reason, detail = "too_long", f"{cut}; in them: {reason}: {detail}"
    elif cut:
        detail = (detail + "; " if detail else "") + cut
    if frames.error:
        detail = (detail + "; " if detail else "") + f"partial decode: {frames.error}"
    out.update(status=res.status, reason=reason if res.status != schema.STATUS_ACCEPTED else "", detail=detail,
               onset=int(res.onset), peak=int(res.peak))
    if res.status == schema.STATUS_ACCEPTED:
        _check_result(res, int(opts["size"]))
        out["arrays"] = {
            "size": int(opts["size"]),
            "frames": np.ascontiguousarray(res.frames, dtype=np.uint8),
            "mask_chunks": compress_chunks(np.asarray(res.mouth_mask, dtype=np.uint8)),
            "landmarks": np.asarray(res.landmarks, dtype=np.float32),
            "degree": np.asarray(res.degree, dtype=np.float32),
            "source_index": np.asarray(res.source_index, dtype=np.int32),
        }
        ow, oh = res.original_size if res.original_size and res.original_size[0] else frames.gray(0).shape[1::-1]
        out["clip_attrs"] = {
            "fps": float(frames.fps),
            "original_size": np.asarray([ow, oh], dtype=np.int32),
            "crop_box": np.asarray(res.crop_box, dtype=np.float64).reshape(4),
            "blur_score": float(res.blur_score),
            "head_motion": float(res.head_motion),
        }
        # how many stored frames hold landmarks that came with the clip (CK+ Landmarks/, <clip>.landmarks.txt)
        # rather than from the detector: a researcher who gave their own can check they were used
        given = 0
        if provided is not None:
            idx = np.asarray(res.source_index, dtype=np.int64)
            ok = idx < len(provided)
            given = int(np.isfinite(provided[idx[ok]]).all(axis=(1, 2)).sum())
        out["clip_attrs"]["landmarks_given"] = given
    return out


def _check_result(res, S: int) -> None:
    """An accepted result must fit the contract before it reaches the writer (a malformed one would stop the
    run there); a violation becomes this clip's row via the worker's exception handler."""
    T = res.peak - res.onset + 1
    want = {"frames": (T, S, S, 3), "landmarks": (T, 68, 2), "mouth_mask": (T, S, S), "degree": (T,), "source_index": (T,)}
    for name, shape in want.items():
        got = None if getattr(res, name) is None else tuple(np.shape(getattr(res, name)))
        if got != shape:
            raise ValueError(f"analysis returned {name} of shape {got}, expected {shape} (onset {res.onset}, peak {res.peak})")
    if res.crop_box is None or np.size(res.crop_box) != 4:
        raise ValueError("analysis returned no crop_box")


def _worker_init(opts: dict, parent_pid=None) -> None:
    """Start-up of every analysis worker (the one place a worker is set up, before its first clip). The dlib
    models are already loaded: the parent loaded them before forking (_preflight_backend). A worker never
    outlives the driver (kill -9 included)."""
    from .lifecycle import die_with_parent

    die_with_parent(parent_pid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    try:
        import cv2

        cv2.setNumThreads(1)  # the parallelism is across workers; OpenCV's own threads only oversubscribe
    except Exception:  # noqa: BLE001
        pass


#: a worker backs its heap (the shape predictor) with huge pages once it has analysed this many frames: the
#: copy costs ~0.1-0.5 s of CPU and then saves ~15-25 % of every predictor call, so only long runs gain
HUGEPAGES_AFTER_FRAMES = 1500
_huge_pages_started = False


def _huge_pages_when_worth_it(frames_done: int, opts: dict) -> None:
    """Start hugepages.collapse_heap in a thread (the GIL is released in madvise, so clips go on beside it)
    once this worker has done HUGEPAGES_AFTER_FRAMES frames; once per worker process."""
    global _huge_pages_started
    if _huge_pages_started or frames_done < HUGEPAGES_AFTER_FRAMES or opts.get("landmarks") != "dlib":
        return
    _huge_pages_started = True
    import threading

    from .hugepages import collapse_heap

    threading.Thread(target=collapse_heap, name="ckpp-hugepages", daemon=True).start()


#: this worker's count of frames decoded, shared with the parent (the --timeout clock restarts when it moves)
_PROGRESS = None


def _tick() -> None:
    if _PROGRESS is not None:
        _PROGRESS.value += 1


def _worker_main(conn, opts, parent_pid=None, progress=None):
    """Worker loop: receive (key, clip), send (key, result). Exceptions become rows; crashes and hangs are
    seen by the parent (sentinel / timeout). `progress`: a shared counter of the frames decoded."""
    global _PROGRESS
    _PROGRESS = progress
    _worker_init(opts, parent_pid)
    frames_done = 0
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        if msg is None:
            return
        key, clip = msg
        try:
            res = analyse(clip, opts)
            frames_done += int(res.get("n_source_frames") or 0)
            _huge_pages_when_worth_it(frames_done, opts)
        except Exception as exc:  # noqa: BLE001 - one bad clip must not stop the run
            tb = traceback.format_exc(limit=3).strip().splitlines()
            res = {"status": schema.STATUS_REJECTED, "reason": "unreadable", "onset": -1, "peak": -1,
                   "n_source_frames": 0, "content_hash": "",
                   "detail": f"analysis failed: {type(exc).__name__}: {exc} [{tb[-2].strip() if len(tb) > 1 else ''}]"}
        try:
            conn.send((key, res))
        except (BrokenPipeError, OSError):
            return


class _Pool:
    """N single-task worker processes with per-task timeouts; a dead or hung worker is replaced and its task
    reported as failed (multiprocessing.Pool would hang on a dead worker; ProcessPoolExecutor fails them all)."""

    def __init__(self, n: int, opts: dict, timeout: float):
        self.ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
        self.opts, self.timeout, self.n = opts, timeout, n
        self.workers: list[dict] = [self._spawn() for _ in range(n)]

    def _spawn(self) -> dict:
        parent, child = self.ctx.Pipe()
        progress = self.ctx.Value("q", 0, lock=False)   # frames decoded: a long HD clip is slow, not hung
        p = self.ctx.Process(target=_worker_main, args=(child, self.opts, os.getpid(), progress), daemon=True)
        with opencv_threads_stopped():   # a fork amid OpenCV's thread pool hangs the worker (lifecycle.py)
            p.start()
        child.close()
        return {"proc": p, "conn": parent, "task": None, "start": 0.0, "progress": progress, "seen": 0}

    def idle(self) -> list[dict]:
        return [w for w in self.workers if w["task"] is None]

    def busy(self) -> int:
        return sum(w["task"] is not None for w in self.workers)

    def submit(self, w: dict, key, clip: dict) -> None:
        w["task"], w["start"], w["seen"] = key, time.monotonic(), w["progress"].value
        w["conn"].send((key, clip))

    def _replace(self, w: dict) -> None:
        try:
            if w["proc"].is_alive():
                w["proc"].kill()
            w["proc"].join(5)
            w["conn"].close()
        except Exception:  # noqa: BLE001
            pass
        w.update(self._spawn())

    def collect(self, max_wait: float = 1.0) -> list[tuple]:
        """Finished tasks as (key, result); failures as (key, {'failed': text})."""
        busy = [w for w in self.workers if w["task"] is not None]
        if not busy:
            return []
        now = time.monotonic()
        for w in busy:   # a worker still decoding frames is working: --timeout counts time without progress
            if w["progress"].value != w["seen"]:
                w["seen"], w["start"] = w["progress"].value, now
        wait_for = min([max_wait] + [max(0.0, w["start"] + self.timeout - now) for w in busy])
        ready = set(mp_wait([w["conn"] for w in busy] + [w["proc"].sentinel for w in busy], timeout=wait_for))
        done = []
        for w in busy:
            key = w["task"]
            if w["conn"] in ready:
                try:
                    k, res = w["conn"].recv()
                    w["task"] = None
                    done.append((k, res))
                    continue
                except (EOFError, OSError):
                    pass
            if w["proc"].sentinel in ready or not w["proc"].is_alive():
                code = w["proc"].exitcode
                w["task"] = None
                self._replace(w)
                sig = f"signal {-code}" if code is not None and code < 0 else f"exit code {code}"
                done.append((key, {"failed": f"the decoder/analysis process died ({sig}) on this clip"}))
            elif time.monotonic() - w["start"] > self.timeout:
                w["task"] = None
                self._replace(w)
                done.append((key, {"failed": f"decode/analysis made no progress for --timeout {self.timeout:g}s "
                                             f"(hung?)"}))
        return done

    def close(self) -> None:
        for w in self.workers:
            try:
                if w["task"] is None:
                    w["conn"].send(None)
            except Exception:  # noqa: BLE001
                pass
        for w in self.workers:
            w["proc"].join(2 if w["task"] is None else 0)
            if w["proc"].is_alive():
                w["proc"].kill()
                w["proc"].join(2)
            try:
                w["conn"].close()
            except Exception:  # noqa: BLE001
                pass


# ---------------------------------------------------------------------------------------------------------
# the driver
# ---------------------------------------------------------------------------------------------------------

def _fingerprint(opts: PrepareOptions, raw: str, clips: list[Clip]) -> str:
    h = hashlib.sha256()
    h.update(json.dumps(opts.content_config(), sort_keys=True, default=str).encode())
    for c in clips:
        h.update(f"\n{c.clip_id}\t{c.source}".encode())
    return h.hexdigest()[:32]


def _check_options(opts: PrepareOptions) -> None:
    if opts.size < 16:
        raise UsageError(f"--size {opts.size} is too small", path="--size", fix="use at least 16 (the paper uses 289)")
    if opts.num_shards < 1 or not 0 <= opts.shard_index < opts.num_shards:
        raise UsageError(f"--shard-index {opts.shard_index} must be in 0..{opts.num_shards - 1} for --num-shards {opts.num_shards}",
                         path="--shard-index", fix="number the jobs of the array 0..K-1")
    if opts.resume and opts.overwrite:
        raise UsageError("--resume and --overwrite contradict each other", path="--resume",
                         fix="--resume continues an interrupted run; --overwrite starts over")
    if opts.multiple_faces not in ("largest", "reject"):
        raise UsageError(f"unknown --multiple-faces {opts.multiple_faces!r}", path="--multiple-faces", fix="use largest or reject")
    if opts.ck_landmarks not in ("provided", "detect"):
        raise UsageError(f"unknown --ck-landmarks {opts.ck_landmarks!r}", path="--ck-landmarks", fix="use provided or detect")
    if opts.min_frames < 2:
        raise UsageError("--min-frames must be at least 2", path="--min-frames", fix="use 2 or more (default 4)")
    if opts.shard_size < 1:
        raise UsageError("--shard-size must be positive", path="--shard-size", fix="e.g. 1G, 500M")
    if opts.max_frames is not None and opts.max_frames < opts.min_frames:
        raise UsageError(f"--max-frames {opts.max_frames} is below --min-frames {opts.min_frames}", path="--max-frames",
                         fix="decode at least as many frames as a clip needs (default 3000)")
    if opts.timeout <= 0:
        raise UsageError("--timeout must be positive", path="--timeout", fix="seconds per clip, e.g. 600")


def _existing_shards(out: str) -> list[str]:
    d = os.path.dirname(os.path.abspath(out))
    stem, ext = os.path.splitext(os.path.basename(out))
    pat = re.compile(re.escape(stem) + r"-(\d{5})" + re.escape(ext or ".h5") + r"$")
    return sorted(os.path.join(d, n) for n in os.listdir(d) if pat.match(n))


def _reusable_shards(out: str, fingerprint: str, order: list[str]) -> tuple[str | None, list[tuple[str, list[dict]]]]:
    """Completed shards of an interrupted run with the same fingerprint: (run_id, [(path, rows)]), covering a
    prefix of `order` (clip ids). Stops at the first missing, foreign or inconsistent shard."""
    import h5py

    from .writer import read_columns, shard_path

    run_id, found, pos = None, [], 0
    i = 0
    while True:
        p = shard_path(out, i)
        if not os.path.isfile(p):
            break
        try:
            with h5py.File(p, "r") as f:
                a = f.attrs
                ok = int(a.get("complete", 0)) == 1 and str(a.get("fingerprint", "")) == fingerprint
                rid = str(a.get("run_id", ""))
                rows = read_columns(f["rows"]) if ok and "rows" in f else None
        except (OSError, KeyError):
            break
        if not ok or rows is None or (run_id is not None and rid != run_id):
            break
        ids = [r["clip_id"] for r in rows]
        if ids != order[pos:pos + len(ids)]:
            break
        run_id = rid
        found.append((p, rows))
        pos += len(ids)
        i += 1
    return run_id, found


def _already_complete(out: str, fingerprint: str, opts: PrepareOptions, notes: list[str], t0: float) -> PrepareResult:
    """--resume on a finished OUT (the master is written last, so it exists only when complete): touch nothing
    and report it, or refuse when that run had other options or clips (resuming it would mix two datasets)."""
    import h5py

    from .writer import read_columns

    try:
        with h5py.File(out, "r") as f:
            a = f.attrs
            done_fp, role = str(a.get("fingerprint", "")), str(a.get("role", ""))
            cfg = json.loads(str(a.get("config", "{}")) or "{}")
            shards = sorted(json.loads(str(a.get("shard_run_ids", "{}")) or "{}"))
            rows = read_columns(f[schema.MANIFEST]) if schema.MANIFEST in f else []
    except (OSError, ValueError, KeyError) as exc:
        raise CkppError(f"output exists but cannot be read as a finished ckpp prepare output ({exc})", path=out,
                        fix="start over with --overwrite, or choose another OUT name") from None
    if role != "master" or not done_fp:
        raise CkppError("output exists and is not the master of a ckpp prepare run (a merge?); --resume cannot continue it",
                        path=out, fix="start over with --overwrite, or choose another OUT name")
    if done_fp != fingerprint:
        now = json.loads(json.dumps(opts.content_config(), default=str))
        diff = [k for k in sorted(now) if k in cfg and cfg[k] != now[k]]
        what = (", ".join(f"--{k.replace('_', '-')} {cfg[k]!r} then, {now[k]!r} now" for k in diff) if diff
                else "the clips found in RAW changed")
        raise CkppError(f"output is complete but was made with other options or clips ({what}); --resume would mix two runs",
                        path=out, fix="rerun with the finished run's options, or start over with --overwrite")
    out_dir = os.path.dirname(out)
    missing = [s for s in shards if not os.path.isfile(os.path.join(out_dir, s))]
    if missing:
        raise CkppError(f"output is complete but its shard {missing[0]} is missing", path=out,
                        fix="put the shard back, or start over with --overwrite")
    notes.append("output is already complete (same options and clips): nothing to resume; left it untouched")
    return PrepareResult(out=out, rows=rows, shards=[os.path.join(out_dir, s) for s in shards], n_source_frames=0,
                         seconds=time.monotonic() - t0, notes=notes, already_complete=True)


def _row_for(clip: Clip, split_of: dict[str, str]) -> dict:
    return {
        "clip_id": clip.clip_id, "source": clip.source, "subject": clip.subject, "emotion": clip.emotion,
        "take": clip.take, "status": schema.STATUS_REJECTED, "reason": clip.reason, "detail": clip.detail,
        "n_source_frames": -1, "onset": -1, "peak": -1, "split": "", "shard": "", "content_hash": "",
        "_split": split_of.get(clip.subject, ""),
    }


def _count_frames_cheaply(clip: Clip) -> int:
    from .video_io import list_frame_files

    return len(list_frame_files(clip.path)) if os.path.isdir(clip.path) else -1


def prepare(raw: str, out: str, opts: PrepareOptions | None = None, echo=print) -> PrepareResult:
    """Run the whole pipeline RAW -> OUT (master + shards). Raises CkppError for user errors."""
    from .writer import ShardWriter, shard_path, write_master

    opts = opts or PrepareOptions()
    _check_options(opts)
    t0 = time.monotonic()
    out = os.path.abspath(out)
    fractions = splits.parse_fractions(opts.split)
    if os.path.isdir(out):
        raise UsageError("OUT is a folder", path=out, fix="give the output file name, e.g. out.h5")
    if os.path.exists(out) and not opts.overwrite and not opts.resume:  # --resume on a complete OUT: see below
        raise CkppError("output already exists", path=out, fix="pass --overwrite to replace it, or choose another OUT name")
    out_dir = os.path.dirname(out)
    os.makedirs(out_dir, exist_ok=True)

    all_clips, notes = find_clips(raw, source=opts.source, labels=opts.labels, emotions=opts.emotions)
    if not all_clips:
        raise CkppError("no clips left to prepare", path=raw, fix="check --emotions / --labels")
    # subjects with a labelled clip only: one whose clips are all unlabelled can never fill a split
    split_of = splits.assign([c.subject for c in all_clips if not c.reason], fractions)
    clips = [c for i, c in enumerate(all_clips) if i % opts.num_shards == opts.shard_index]
    if opts.num_shards > 1:
        notes.append(f"job {opts.shard_index} of {opts.num_shards}: {len(clips)} of {len(all_clips)} clips")
    fp = _fingerprint(opts, raw, clips)
    order = [c.clip_id for c in clips]

    with OutputLock(out, "ckpp prepare"):  # a kernel lock: dies with the process (ckpp_tools/locking.py)
        if opts.resume and os.path.exists(out):
            # a job script reruns the same command after any crash: a finished run is a no-op, not an error
            return _already_complete(out, fp, opts, notes, t0)
        run_id, reused = (None, [])
        if opts.resume:
            run_id, reused = _reusable_shards(out, fp, order)
            if reused:
                notes.append(f"resumed: reused {len(reused)} completed shard(s) covering {sum(len(r) for _, r in reused)} clips")
            elif _existing_shards(out):
                notes.append("resume: no completed shard of this run matched (other options or clips?); starting over")
            else:
                notes.append("resume: nothing to resume; starting from scratch")
        run_id = run_id or uuid.uuid4().hex
        rows: list[dict] = []
        shard_files: list[str] = []
        seen_hash: dict[str, str] = {}
        for p, rs in reused:
            shard_files.append(p)
            for r in rs:
                rows.append(r)
                if r.get("content_hash"):
                    seen_hash.setdefault(r["content_hash"], r["clip_id"])
        pending = clips[len(rows):]
        n_frames = 0
        result = PrepareResult(out=out, rows=rows, shards=shard_files, n_source_frames=0, seconds=0.0,
                               reused_shards=len(reused), notes=notes)

        state = {"writer": None, "index": len(reused)}

        def writer() -> ShardWriter:
            if state["writer"] is None:
                p = shard_path(out, state["index"])
                state["writer"] = ShardWriter(p, run_id, state["index"], fp, opts.size)
            return state["writer"]

        def close_shard():
            w = state["writer"]
            if w is not None:
                w.close()
                shard_files.append(w.final_path)
                state["writer"], state["index"] = None, state["index"] + 1

        def write_row(clip: Clip, res: dict):
            row = _row_for(clip, split_of)
            split = row.pop("_split")
            if res is not None:
                if "failed" in res:
                    row.update(reason="unreadable", detail=res["failed"])
                else:
                    for k in ("status", "reason", "detail", "n_source_frames", "onset", "peak", "content_hash"):
                        row[k] = res.get(k, row[k])
            if row["status"] == schema.STATUS_ACCEPTED and row["content_hash"] in seen_hash:
                row.update(status=schema.STATUS_REJECTED, reason="duplicate",
                           detail=f"same content as {seen_hash[row['content_hash']]}")
            if row["content_hash"]:
                seen_hash.setdefault(row["content_hash"], clip.clip_id)
            if row["n_source_frames"] < 0 and res is None:
                row["n_source_frames"] = _count_frames_cheaply(clip)
            w = writer()
            if row["status"] == schema.STATUS_ACCEPTED:
                row["split"] = split
                row["shard"] = os.path.relpath(w.final_path, out_dir).replace(os.sep, "/")
                attrs = {"subject": clip.subject, "emotion": clip.emotion,
                         "emotion_code": int(emotions.CODES[clip.emotion]), "source": clip.source, "split": split}
                attrs.update(res["clip_attrs"])
                w.add_clip(clip.clip_id, res["arrays"], attrs)
            else:
                row["status"], row["split"], row["shard"] = schema.STATUS_REJECTED, "", ""
                if not row["reason"]:
                    row["reason"] = "unreadable"
            w.add_row(row)
            rows.append(row)
            if row["status"] == schema.STATUS_ACCEPTED and w.nbytes >= opts.shard_size:
                close_shard()

        need = space_estimate.preflight(out, pending, opts.size, opts.max_frames, enabled=opts.space_check, notes=notes,
                                        echo=echo, replaced=[out] + _existing_shards(out) if opts.overwrite else [])
        # a full disk: the unfinished shard is deleted, the completed ones are what --resume reuses
        with explained(space_estimate.remaining(need, shard_files), lambda: (f"kept the {len(shard_files)} completed shard(s) for --resume" if shard_files
                                      else "no shard was completed")):
            if pending:
                n_frames = _run_pending(pending, opts, write_row, echo)
            if state["writer"] is not None:
                close_shard()

            # the master, last
            shard_run_ids = {os.path.relpath(p, out_dir).replace(os.sep, "/"): run_id for p in shard_files}
            config = dict(opts.content_config(), raw=os.path.abspath(raw), workers=opts.workers, timeout=opts.timeout)
            root_attrs = {
                "format": schema.FORMAT, "schema_version": schema.SCHEMA_VERSION, "ckpp_version": __version__,
                "image_size": int(opts.size), "landmark_backend": opts.landmarks,
                "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "config": json.dumps(config, sort_keys=True, default=str), "run_id": run_id, "role": "master",
                "fingerprint": fp,
            }
            manifest_rows = [{k: v for k, v in r.items() if k != "content_hash"} for r in rows]
            write_master(out, manifest_rows, root_attrs, shard_run_ids)
        # shards of an older run beyond this run's count would only confuse: remove them (never ours)
        for p in _existing_shards(out):
            if p not in shard_files:
                try:
                    os.unlink(p)
                except OSError:
                    pass
    result.n_source_frames = n_frames
    result.seconds = time.monotonic() - t0
    return result


def _usable_cores() -> int:
    """Cores this process may run on (a container or job scheduler may allow fewer than the machine has)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def _preflight_backend(name: str) -> None:
    """Fail once, clearly, before any work when the landmark models are missing (not once per clip in workers).
    dlib models are loaded here, before forking, so workers share them copy-on-write; face-alignment is only
    checked (it imports torch, which must not be loaded in the parent of forked workers)."""
    from . import clip_pipeline  # noqa: F401  (import the analysis once here, not in every forked worker)

    if name == "dlib":
        from .landmarks import get_backend

        get_backend("dlib")
    elif name == "face-alignment":
        import importlib.util

        from .errors import MissingWeightsError
        from .landmarks import fa_backend

        cache = fa_backend.hub_checkpoint_dir()
        if importlib.util.find_spec("face_alignment") is None:
            raise MissingWeightsError("the face-alignment package is not installed", path="--landmarks face-alignment",
                                      fix=fa_backend._HOW.format(cache=cache))
        nets, dets = fa_backend.cached_weights()
        if not nets or not dets:
            raise MissingWeightsError("face-alignment weights not found in the torch hub cache (downloads are disabled)",
                                      path=cache, fix=fa_backend._HOW.format(cache=cache))


def _run_pending(pending: list[Clip], opts: PrepareOptions, write_row, echo) -> int:
    """Analyse `pending` in worker processes and hand results to write_row in clip order. Returns frames decoded."""
    from tqdm import tqdm

    n_workers = max(1, int(opts.workers or _usable_cores()))
    wopts = dataclasses.asdict(opts)
    todo = [c for c in pending if not c.reason]
    n_workers = min(n_workers, max(1, len(todo)))
    if todo:
        _preflight_backend(opts.landmarks)
    pool = _Pool(n_workers, wopts, opts.timeout) if todo else None
    results: dict[int, dict | None] = {}
    next_submit = next_write = 0
    window = 4 * n_workers + 4
    frames = 0
    t0 = time.monotonic()
    bar = tqdm(total=len(pending), unit="clip", desc="prepare", disable=not opts.progress, dynamic_ncols=True)
    try:
        while next_write < len(pending):
            # submit in order, within the window
            while pool is not None and next_submit < len(pending) and next_submit - next_write < window:
                c = pending[next_submit]
                if c.reason:
                    results[next_submit] = None  # pre-decided (unlabelled / unknown_emotion): no decoding
                    next_submit += 1
                    continue
                idle = pool.idle()
                if not idle:
                    break
                pool.submit(idle[0], next_submit, c.to_dict())
                next_submit += 1
            if pool is None:
                while next_submit < len(pending):
                    results[next_submit] = None
                    next_submit += 1
            # write everything that is ready, in order
            progressed = False
            while next_write in results:
                res = results.pop(next_write)
                if res is not None and "failed" not in res:
                    frames += int(res.get("n_source_frames", 0))
                write_row(pending[next_write], res)
                next_write += 1
                bar.update(1)
                progressed = True
            if progressed:
                el = max(1e-6, time.monotonic() - t0)
                bar.set_postfix_str(f"{frames / el:.0f} frames/s", refresh=False)
            if next_write >= len(pending):
                break
            if pool is not None and pool.busy():
                for key, res in pool.collect(max_wait=0.5):
                    results[key] = res
    finally:
        bar.close()
        if pool is not None:
            pool.close()
    return frames


# ---------------------------------------------------------------------------------------------------------
# the summary table (also used by `ckpp inspect`)
# ---------------------------------------------------------------------------------------------------------

def summary_table(rows: list[dict]) -> str:
    """Accepted / rejected per emotion, with reject reasons as columns, and per-split counts of accepted clips."""
    by_emo: dict[str, Counter] = defaultdict(Counter)
    reasons_used = [r for r in schema.REASONS if any(x["reason"] == r for x in rows)]
    for r in rows:
        c = by_emo[r["emotion"] or "(none)"]
        c["found"] += 1
        c[r["status"]] += 1
        if r["status"] == schema.STATUS_ACCEPTED:
            c["split:" + r["split"]] += 1
        else:
            c[r["reason"]] += 1
    cols = ["found", "accepted", "train", "val", "test", "rejected"] + reasons_used
    keys = ["found", schema.STATUS_ACCEPTED, "split:train", "split:val", "split:test", schema.STATUS_REJECTED] + reasons_used
    emos = sorted(by_emo, key=lambda e: (emotions.CODES.get(e, 99), e))
    total = Counter()
    for e in emos:
        total.update(by_emo[e])
    table = [["emotion"] + cols]
    for e in emos:
        table.append([e] + [str(by_emo[e][k]) for k in keys])
    table.append(["total"] + [str(total[k]) for k in keys])
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    lines = []
    for j, row in enumerate(table):
        lines.append("  ".join(x.ljust(widths[i]) if i == 0 else x.rjust(widths[i]) for i, x in enumerate(row)))
        if j == 0 or j == len(table) - 2:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)
