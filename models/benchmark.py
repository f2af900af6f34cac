"""`ckpp benchmark`: the paper's evaluation protocol (§4, Fig. 3) and more, over held-out clips.

Two halves: `find_runs()` turns the folder where `ckpp train` ran into the runs to compare (newest `ours`
run, the data and emotions it records, matching baseline runs; a missing one is an error naming the
`ckpp train` command that makes it), and `run_benchmark()` evaluates already-loaded models on a data file
and writes the report (models/report.py). Metrics themselves live in models/evaluate.py.

Protocol per clip (issue 7): input = the onset frame; ground truth = the clip's frames at their degrees.
- "ours": the main model at the clip's own degrees a = t/(T−1) (T frames, frame 0 is f(I, 0));
- "ours@10": the paper's setting, a = 0.1, 0.2, …, 1.0 against the ground-truth frames of nearest degree;
- baselines: their native 10 frames (degrees k/9, onset and peak included);
- "gt" / "gt@10": the real frames put through exactly the same measurement (resize, dlib, descriptor):
  what a perfect model would score, i.e. the measurement's own floor.
Every video is first brought to its model's input view: centre crop of cfg.crop_fraction of the stored
frame (the training crop, without its randomness), resized to cfg.image_size. Landmarks of generated frames
come from dlib (the backend prepare uses) on frames upscaled to at least DETECT_SIZE pixels; the plotted
ground-truth Fig. 3 curve uses the file's own landmarks.
"""
from __future__ import annotations

import datetime
import glob
import hashlib
import json
import os
import platform
import shlex
import time
import warnings
from dataclasses import dataclass, field

import numpy as np

from ckpp_tools import emotions as emo
from ckpp_tools import schema
from ckpp_tools.errors import CkppError, DataFormatError, UsageError

from . import evaluate as ev
from . import judge_metrics as jm
from . import report as rp

#: generated frames are upscaled to at least this side before dlib looks at them (HOG needs ~80 px faces)
DETECT_SIZE = 256
#: the baselines' native length and the paper's comparison length
PAPER_FRAMES = 10
LABELS = {"ours": "ours", "convlstm": "ConvLSTM", "hp": "HP"}
BASELINES = ("convlstm", "hp")


# ================================================================ finding runs
@dataclass
class RunInfo:
    path: str                 # run folder
    model: str                # "ours" | "convlstm" | "hp"
    emotions: list[str]
    data: str | None          # data file the run was trained on (as recorded)
    created: float            # sort key: newest last
    record: dict = field(default_factory=dict)


def read_run(path: str) -> RunInfo | None:
    """A run folder's run.json as RunInfo; None when the folder has none (not a run)."""
    rj = os.path.join(path, "run.json")
    if not os.path.isfile(rj):
        return None
    try:
        with open(rj) as fh:
            rec = json.load(fh)
    except (OSError, ValueError) as exc:
        warnings.warn(f"{rj}: unreadable run.json ({exc}); skipped")
        return None
    model = str(rec.get("model") or rec.get("family") or "ours")
    ems = rec.get("emotions") or []
    if isinstance(ems, str):
        ems = [ems]
    data = rec.get("data") or rec.get("data_file") or rec.get("data_path")
    if isinstance(data, (list, tuple)):   # training may use several files: the first is benchmarked
        data = data[0] if data else None
    if isinstance(data, dict):            # {"path": ..., "schema_version": ...}
        data = data.get("path")
    created = _created(rec, rj)
    return RunInfo(path=os.path.normpath(path), model=model, emotions=[str(e) for e in ems], data=data,
                   created=created, record=rec)


def _created(rec: dict, rj: str) -> float:
    for key in ("created", "started", "time"):
        v = rec.get(key)
        if isinstance(v, (int, float)):
            return float(v)
        if isinstance(v, str):
            try:
                return datetime.datetime.fromisoformat(v.replace("Z", "+00:00")).timestamp()
            except ValueError:
                pass
    return os.path.getmtime(rj)


def list_runs(runs_dir: str) -> list[RunInfo]:
    """Every run folder directly under `runs_dir`, oldest first."""
    if not os.path.isdir(runs_dir):
        return []
    out = [r for r in (read_run(os.path.join(runs_dir, d)) for d in sorted(os.listdir(runs_dir))) if r is not None]
    out.sort(key=lambda r: (r.created, r.path))
    return out


def resolve_data_path(recorded: str | None, run_path: str) -> str | None:
    """A run's recorded data file: as recorded (absolute or relative to the current folder), else relative
    to the run folder."""
    if not recorded:
        return None
    for cand in (recorded, os.path.join(run_path, recorded), os.path.join(os.path.dirname(run_path), recorded)):
        if os.path.isfile(cand):
            return cand
    return recorded


def train_command(model: str, emotion_list: list[str], data: str | None, runs_dir: str) -> str:
    """The exact `ckpp train` command that makes a missing run."""
    parts = ["ckpp", "train"]
    if data:
        parts.append(os.path.relpath(data) if not os.path.isabs(data) or os.path.abspath(data).startswith(os.getcwd()) else data)
    if model != "ours":
        parts += ["--model", model]
    for e in emotion_list:
        parts += ["--emotion", e]
    if os.path.normpath(runs_dir) != "runs":
        parts += ["--out", os.path.join(runs_dir, f"{model}-{'-'.join(emotion_list)}")]
    return " ".join(shlex.quote(p) for p in parts)


@dataclass
class Selection:
    ours: RunInfo
    baselines: dict[str, dict[str, RunInfo]]   # model -> emotion -> run
    data: str | None
    emotions: list[str]


def find_runs(*, model_run: str | None, baselines: list[str], runs_dir: str, data: str | None,
              emotions: list[str] | None, need_data: bool = True) -> Selection:
    """The defaults of DESIGN §2: newest `ours` run, its data and emotions, newest matching baseline runs.
    need_data=False (photos in the wild): a missing recorded data file leaves Selection.data None."""
    runs = list_runs(runs_dir)
    if model_run:
        path = model_run if os.path.isdir(model_run) else os.path.dirname(os.path.abspath(model_run))
        ours = read_run(path) if os.path.exists(model_run) else None
        if ours is None:
            ours = run_from_checkpoint(model_run)
        elif not os.path.isdir(model_run):
            ours.record = dict(ours.record, _checkpoint=model_run)
    else:
        cands = [r for r in runs if r.model == "ours" and checkpoint_of(r)]
        if not cands:
            found = ", ".join(f"{os.path.basename(r.path)} ({r.model})" for r in runs) or "none"
            raise CkppError(
                f"no `ours` run found under {runs_dir}/ (runs found: {found})", path=runs_dir,
                fix="train one first: " + train_command("ours", emotions or ["surprise"], data, runs_dir)
                + "   or pass --model RUN_DIR / --runs DIR")
        ours = cands[-1]
    data_path = data or resolve_data_path(ours.data, ours.path)
    if not need_data and not data and not (data_path and os.path.isfile(data_path)):
        data_path = None
    elif not data_path:
        raise UsageError("no data file given and the run records none", path=os.path.join(ours.path, "run.json"),
                         fix="pass the prepared file: ckpp benchmark DATA.h5 ...")
    if data_path is not None and not os.path.isfile(data_path):
        raise CkppError(f"data file not found (recorded by {ours.path}/run.json)" if not data else "data file not found",
                        path=data_path, fix="pass the prepared file: ckpp benchmark DATA.h5 ...")
    ems = [emo.require(e, "--emotion") for e in emotions] if emotions else [emo.require(e, ours.path + "/run.json") for e in ours.emotions]
    if not ems:
        raise UsageError("no emotions given and the run records none", path=os.path.join(ours.path, "run.json"),
                         fix="pass --emotion NAME")
    missing_in_ours = [e for e in ems if e not in ours.emotions]
    if missing_in_ours and ours.emotions:
        raise UsageError(f"run {ours.path} was trained on {', '.join(ours.emotions)}, not {', '.join(missing_in_ours)}",
                         path="--emotion", fix=f"use --emotion {ours.emotions[0]}, or train it: "
                         + train_command("ours", missing_in_ours, data_path if data else None, runs_dir))
    chosen: dict[str, dict[str, RunInfo]] = {}
    for b in baselines:
        chosen[b] = {}
        for e in ems:
            cands = [r for r in runs if r.model == b and e in r.emotions and checkpoint_of(r)]
            exact = [r for r in cands if r.emotions == [e]]
            pick = (exact or cands)[-1] if (exact or cands) else None
            if pick is None:
                raise CkppError(
                    f"no {b} run for emotion {e!r} under {runs_dir}/ (the baselines are trained one model per expression)",
                    path=runs_dir,
                    fix="train it first:\n    " + train_command(b, [e], data_path if data else None, runs_dir)
                    + "\n  or leave it out: --baselines " + (",".join(x for x in baselines if x != b) or "''"))
            chosen[b][e] = pick
    return Selection(ours=ours, baselines=chosen, data=data_path, emotions=ems)


def run_from_checkpoint(model_run: str) -> RunInfo:
    """A bare checkpoint (no run folder around it), e.g. the shipped `pretrained` weights, as a RunInfo:
    model and emotions from the checkpoint itself. Anything else is a UsageError naming what to pass."""
    from .checkpoint import read_checkpoint

    fix = ("pass a folder made by `ckpp train` (e.g. runs/ours-surprise), one of its checkpoints, a ckpp .pt file "
           "or `pretrained`")
    if os.path.isdir(model_run) or not (os.path.isfile(model_run) or model_run.startswith("pretrained")):
        raise UsageError("not a run folder (no run.json) and not a checkpoint file", path=model_run, fix=fix)
    ckpt = read_checkpoint(model_run)   # resolves `pretrained[:NAME]` itself
    data = ckpt.get("data") or {}
    paths = data.get("paths") or data.get("path") if isinstance(data, dict) else None
    if isinstance(paths, (list, tuple)):
        paths = paths[0] if paths else None
    path = ckpt["path"]
    return RunInfo(path=os.path.normpath(os.path.dirname(path)), model=str(ckpt.get("family") or "ours"),
                   emotions=[str(e) for e in ckpt.get("emotions") or []], data=paths if isinstance(paths, str) else None,
                   created=os.path.getmtime(path), record={"_checkpoint": path})


def checkpoint_of(run: RunInfo) -> str | None:
    """The checkpoint file benchmarked for a run (explicit, recorded, or the newest ckpt-*.pt / *.pt)."""
    explicit = run.record.get("_checkpoint")
    if explicit:
        return explicit
    latest = os.path.join(run.path, "latest")
    if os.path.isfile(latest):
        with open(latest) as fh:
            cand = os.path.join(run.path, fh.read().strip())
        if os.path.isfile(cand):
            return cand
    for pat in ("ckpt-*.pt", "*.pt", "*.pth"):
        files = glob.glob(os.path.join(run.path, pat)) + glob.glob(os.path.join(run.path, "checkpoints", pat))
        if files:
            return max(files, key=os.path.getmtime)
    return None


def sha256(path: str | None) -> str | None:
    if not path or not os.path.isfile(path):
        return None
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# ================================================================ data
@dataclass
class Clip:
    clip_id: str
    emotion: str
    split: str
    frames: np.ndarray       # (T,S,S,3) uint8
    landmarks: np.ndarray    # (T,68,2)
    mouth_mask: np.ndarray   # (T,S,S)
    degree: np.ndarray       # (T,)


def _str(v) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def open_data(path: str):
    """Open a ckpp file read-only and check it is one (format + schema version)."""
    import h5py

    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise DataFormatError(f"cannot open as HDF5 ({exc})", path=path,
                              fix="pass the file `ckpp prepare RAW OUT.h5` wrote (re-run prepare if it was interrupted)")
    if _str(f.attrs.get("format", "")) != schema.FORMAT:
        f.close()
        raise DataFormatError("not a ckpp data file (root attribute format != 'ckpp')", path=path,
                              fix="pass the file written by `ckpp prepare`")
    return f


def manifest_rows(f) -> list[dict]:
    m = f[schema.MANIFEST]
    cols = {c: [(_str(v) if c in schema.MANIFEST_STR_COLUMNS else int(v)) for v in m[c][()]] for c in m.keys()}
    n = len(cols["clip_id"])
    return [{c: cols[c][i] for c in cols} for i in range(n)]


def select_clips(rows: list[dict], emotion: str, split: str) -> list[str]:
    return sorted(r["clip_id"] for r in rows if r.get("status") == schema.STATUS_ACCEPTED
                  and r.get("emotion") == emotion and r.get("split") == split)


def split_counts(rows: list[dict], emotion: str) -> dict[str, int]:
    return {s: len(select_clips(rows, emotion, s)) for s in schema.SPLITS}


def read_clip(f, clip_id: str, emotion: str, split: str) -> Clip:
    g = f[schema.CLIPS][clip_id]
    return Clip(clip_id=clip_id, emotion=emotion, split=split, frames=g[schema.FRAMES][()],
                landmarks=g[schema.LANDMARKS][()].astype(np.float64), mouth_mask=g[schema.MOUTH_MASK][()],
                degree=g[schema.DEGREE][()].astype(np.float64))


# ================================================================ views and measurement
def to_view(images: np.ndarray, x0: int, c: int, size: int, nearest: bool = False, y0: int | None = None) -> np.ndarray:
    """(N,S,S[,3]) stored images -> (N,size,size[,3]) in the model's view (the c x c square at (x0, y0), y0
    defaulting to x0; edge pixels repeated where it leaves the frame: models.data.cut)."""
    import cv2

    from .data import cut

    y0 = x0 if y0 is None else y0
    interp = cv2.INTER_NEAREST if nearest else (cv2.INTER_AREA if c > size else cv2.INTER_LINEAR)
    out = []
    for img in images:
        a = np.ascontiguousarray(cut(img, x0, y0, c))
        out.append(a if c == size else cv2.resize(a, (size, size), interpolation=interp))
    return np.stack(out)


def model_view(frames: np.ndarray, onset_landmarks, size: int, crop_fraction: float, crop_from: str = "clip",
               nearest: bool = False) -> np.ndarray:
    """(N,S,S[,3]) stored frames of one clip -> the view a model with these settings trained on
    (models.data.view_box: "onset" needs the clip's onset landmarks in stored pixels)."""
    from .data import view_box

    x0, y0, c = view_box(np.asarray(frames).shape[1], crop_fraction, crop_from, onset_landmarks)
    return to_view(frames, x0, c, size, nearest=nearest, y0=y0)


def points_to_view(points: np.ndarray, x0: int, c: int, size: int, y0: int | None = None) -> np.ndarray:
    """Stored-pixel landmarks -> view pixels (pixel centres map to pixel centres)."""
    origin = np.array([x0, x0 if y0 is None else y0], np.float64)
    return (np.asarray(points, np.float64) - origin + 0.5) * (size / c) - 0.5


class Measurer:
    """dlib landmarks + identity descriptors of frames at any resolution (cached per frame content)."""

    def __init__(self, identity: bool = True, identity_frames: int | None = None):
        from ckpp_tools.landmarks.dlib_backend import DlibLandmarker

        self.lm = DlibLandmarker.shared()
        self.identity_frames = identity_frames   # descriptors (~0.1 s each on a CPU) on at most this many frames
        self.enc = None
        if identity:
            from ckpp_tools.identity import FaceEncoder

            self.enc = FaceEncoder.shared()

    def measure(self, frames: np.ndarray) -> tuple[np.ndarray, list]:
        """frames (N,s,s,3) uint8 -> landmarks (N,68,2) in the frames' pixels (NaN: no face), descriptors."""
        import cv2

        n, s = frames.shape[0], frames.shape[1]
        k = max(1.0, DETECT_SIZE / s)
        lms = np.full((n, 68, 2), np.nan)
        descs: list = [None] * n
        k_id = n if not self.identity_frames else min(n, self.identity_frames)
        want_id = set(np.round(np.linspace(n - 1, 0, k_id)).astype(int).tolist()) | {0} if n else set()
        for i, img in enumerate(frames):
            big = img if k == 1 else cv2.resize(img, (round(s * k), round(s * k)), interpolation=cv2.INTER_CUBIC)
            boxes = self.lm.detect(big, upsample=0, max_side=None)
            if not boxes:
                continue
            p = self.lm.predict(big, boxes[0]).astype(np.float64)
            if self.enc is not None and i in want_id:
                descs[i] = self.enc.descriptor_from_landmarks(big, p)
            lms[i] = (p + 0.5) / k - 0.5
        return lms, descs


# ================================================================ models
@dataclass
class LoadedModel:
    key: str                 # "ours" | "convlstm" | "hp"
    family: object           # models.family.ModelFamily (or anything with the same generate())
    run: str
    checkpoint: str | None
    meta: dict = field(default_factory=dict)

    @property
    def size(self) -> int:
        return int(self.family.cfg.image_size)

    @property
    def crop_fraction(self) -> float:
        return float(getattr(self.family.cfg, "crop_fraction", 1.0))

    @property
    def crop_from(self) -> str:
        return str(getattr(self.family.cfg, "crop_from", "clip"))


def _generate(model: LoadedModel, first_u8: np.ndarray, emotion: str, n_frames: int, device) -> tuple[np.ndarray, float]:
    """One generate() call, timed (device synchronised): (n,size,size,3) uint8, seconds."""
    import torch

    fam = model.family
    x = torch.from_numpy(first_u8).permute(2, 0, 1)[None].float().div(127.5).sub(1.0).to(device)
    w = torch.zeros(1, len(fam.emotions), device=device)
    w[0, list(fam.emotions).index(emotion)] = 1.0
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    with torch.no_grad():
        video = fam.generate(x, w, n_frames)
    if device.type == "cuda":
        torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    out = ((video[0].float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    return out, dt


# ================================================================ the benchmark
def _versions() -> dict[str, str]:
    out = {"python": platform.python_version(), "platform": platform.platform()}
    for name in ("ckpp_tools", "torch", "numpy", "dlib", "h5py", "skimage", "cv2", "matplotlib", "scipy"):
        try:
            mod = __import__(name)
            out["ckpp" if name == "ckpp_tools" else name] = str(getattr(mod, "__version__", getattr(mod, "VERSION", "?")))
        except Exception:  # pragma: no cover - a missing optional package is just not listed
            pass
    return out


def run_benchmark(*, data: str, models: dict[str, dict[str, LoadedModel]], emotions: list[str], splits: list[str],
                  out_dir: str, device, max_clips: int | None = None, n_gifs: int = 3, identity: bool = True,
                  split_explicit: bool = False, command: str = "", progress: bool = True, warn=print,
                  identity_frames: int | None = None) -> dict:
    """Evaluate models on the clips of `data` and write the report to `out_dir` (via out_dir.partial).

    models: key -> emotion -> LoadedModel ("ours" may map every emotion to one multi-emotion model).
    Returns the results dict (also report.json).
    """
    from tqdm import tqdm

    warnings_out: list[str] = []

    def warn_(msg: str):
        warnings_out.append(msg)
        warn("warning: " + msg)

    f = open_data(data)
    try:
        rows = manifest_rows(f)
        stored = int(f.attrs.get("image_size", 0)) or None
        data_info = {"path": os.path.abspath(data), "format": _str(f.attrs.get("format", "")),
                     "schema_version": int(f.attrs.get("schema_version", -1)), "image_size": stored,
                     "landmark_backend": _str(f.attrs.get("landmark_backend", "")),
                     "created": _str(f.attrs.get("created", "")), "sha256": None}
        if data_info["schema_version"] != schema.SCHEMA_VERSION:
            warn_(f"{data}: schema_version {data_info['schema_version']} (this ckpp reads {schema.SCHEMA_VERSION})")
        # ---- which clips
        plan: list[tuple[str, str, list[str]]] = []   # (emotion, split, clip ids)
        for e in emotions:
            counts = split_counts(rows, e)
            for sp in splits:
                ids = select_clips(rows, e, sp)
                if not ids:
                    have = ", ".join(f"{s}: {n}" for s, n in counts.items() if n) or "none"
                    if not any(counts.values()):
                        raise UsageError(f"no accepted {e!r} clips in any split of {data}", path=data,
                                         fix=f"check with `ckpp inspect {data}`; prepare clips of {e}, or pick "
                                             "another --emotion")
                    if split_explicit:
                        raise UsageError(f"no accepted {e!r} clips in the {sp!r} split of {data} (clips per split: {have})",
                                         path="--split", fix="choose a split that has clips, e.g. --split "
                                         + max(counts, key=counts.get))
                    alt = next(s for s in ("val", "train", "test") if counts[s])
                    warn_(f"no {e!r} clips in the {sp!r} split of {os.path.basename(data)} (clips per split: {have}); "
                          f"using the {alt!r} split instead"
                          + (" — numbers on training clips flatter the models" if alt == "train" else ""))
                    sp, ids = alt, select_clips(rows, e, alt)
                if max_clips:
                    ids = ids[:max_clips]
                if (e, sp) not in [(p[0], p[1]) for p in plan]:
                    plan.append((e, sp, ids))
        total = sum(len(p[2]) for p in plan)

        measurer = Measurer(identity=identity, identity_frames=identity_frames)
        series = [dict(key="gt", label="ground truth", model=None, protocol="clip"),
                  dict(key="gt@10", label="ground truth (10)", model=None, protocol="native10")]
        has_ours = "ours" in models
        if has_ours:
            series += [dict(key="ours", label="ours", model="ours", protocol="clip"),
                       dict(key="ours@10", label="ours a=0.1…1", model="ours", protocol="paper10")]
        for b in models:
            if b != "ours":
                series.append(dict(key=b, label=LABELS.get(b, b), model=b, protocol="native10"))

        per_clip: list[dict] = []
        groups: dict[str, dict] = {}
        latency: dict[str, list[tuple[int, float]]] = {}   # key -> [(frames, seconds)] per clip
        warmed: set = set()
        compare: list[dict] = []
        bar = tqdm(total=total, desc="benchmark", unit="clip", disable=not progress)
        for e, sp, ids in plan:
            gk = f"{e}/{sp}"
            g = groups[gk] = {"emotion": e, "split": sp, "n_clips": len(ids), "clips": ids, "metrics": {}, "curves": {}}
            rows_by_series: dict[str, list[dict]] = {s["key"]: [] for s in series}
            curves_by_series: dict[str, list] = {s["key"]: [] for s in series}
            for ci, cid in enumerate(ids):
                bar.set_postfix_str(cid)
                try:
                    clip = read_clip(f, cid, e, sp)
                except (KeyError, OSError) as exc:
                    warn_(f"clip {cid}: unreadable in {data} ({exc}); skipped")
                    bar.update(1)
                    continue
                rec, videos = _evaluate_clip(clip, models, measurer, device, latency, warmed)
                per_clip.append(rec)
                for key, r in rec["series"].items():
                    rows_by_series[key].append({k: v for k, v in r.items()
                                                if k not in ("t", "curve", "undetected_frames", *jm.CURVE_KEYS)})
                    curves_by_series[key].append((r["t"], r["curve"]))
                if ci < n_gifs:
                    compare.append(_write_compare(out_dir, clip, videos))
                bar.update(1)
            for key in rows_by_series:
                if rows_by_series[key]:
                    g["metrics"][key] = ev.summarize(rows_by_series[key])
                    g["curves"][key] = ev.aggregate_curves(curves_by_series[key])
            g["n_clips"] = len(rows_by_series["gt"])
            g["judge_curves"] = {key: c for key in rows_by_series if (c := jm.aggregate(
                [r["series"][key] for r in per_clip if (r["emotion"], r["split"]) == (e, sp) and key in r["series"]]))}
        bar.close()
    finally:
        f.close()

    lat_summary = {}
    for key, calls in latency.items():
        ns = sorted({n for n, _ in calls})
        lat_summary[key] = {"n_frames": ns[0] if len(ns) == 1 else f"{ns[0]}–{ns[-1]}",
                            "ms_per_clip": ev.bootstrap_ci([s * 1000 for _, s in calls]),
                            "ms_median": float(np.median([s * 1000 for _, s in calls])),
                            "frames_per_s_median": float(np.median([n / s for n, s in calls if s > 0] or [np.nan])),
                            "frames_per_s": ev.bootstrap_ci([n / s for n, s in calls if s > 0])}
    model_info = {}
    for key, per_e in models.items():
        for e, m in per_e.items():
            k = key if len({id(x) for x in per_e.values()}) == 1 else f"{key}:{e}"
            if k in model_info:
                continue
            model_info[k] = {"label": LABELS.get(key, key), "family": key, "emotions": list(m.family.emotions),
                             "run": m.run, "checkpoint": m.checkpoint, "sha256": sha256(m.checkpoint),
                             "step": m.meta.get("step"), "image_size": m.size, "crop_fraction": m.crop_fraction,
                             "native_frames": getattr(m.family, "native_frames", None)}
    dev = str(device)
    try:
        import torch

        if getattr(device, "type", "") == "cuda":
            dev += " (" + torch.cuda.get_device_name(device) + ")"
    except Exception:
        pass
    results = {
        "command": command, "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "versions": _versions(), "device": dev, "data": data_info, "models": model_info, "series": series,
        "groups": groups, "latency": lat_summary, "clips": per_clip, "compare": compare, "warnings": warnings_out,
        "notes": PROTOCOL_NOTES + [f"models see a centre crop of {_fmt_frac(models)} of each stored frame, resized to "
                                   "their image size; ground truth is brought to the same view",
                                   f"dlib looks at frames upscaled to ≥ {DETECT_SIZE} px",
                                   "identity distance: dlib 128-d descriptor of each generated frame vs the input's "
                                   + (f"(on {identity_frames} frames per video, evenly spaced, the last included)"
                                      if identity_frames else "(every frame)") if identity else
                                   "identity distance: not measured (--no-identity)"],
    }
    rp.write_report(out_dir, results)
    return results


def _fmt_frac(models) -> str:
    fr = sorted({round(m.crop_fraction, 3) for per in models.values() for m in per.values()})
    return " / ".join(f"{x:.3f}" for x in fr)


PROTOCOL_NOTES = [
    "per clip: input = onset frame; ground truth = the clip's frames, degree a = t/(T−1)",
    "ours: the clip's own degrees (T frames, the first is f(I,0)); ours a=0.1…1: the paper's 10 frames, "
    "each compared with the ground-truth frame of nearest degree",
    "baselines (ConvLSTM, HP): their native 10 frames at degrees k/9 (onset and peak included)",
    "ground truth rows: the real frames through the same measurement (view, dlib, descriptor) — the floor a "
    "perfect model would reach; 'ground truth (10)' samples the same 10 degrees as the baselines",
    "Fig. 3 curve: mean per-point landmark distance to the input face, divided by the input's inter-ocular "
    "distance; the plotted ground truth uses the file's landmarks",
    "frames where dlib finds no face count against the model in 'face found' and are left out of landmark "
    "metrics (NME, curve); their pixels still count in PSNR/SSIM/L1",
    "mean and 95% percentile-bootstrap interval over clips (2000 resamples)",
    *jm.NOTES,
]


def _evaluate_clip(clip: Clip, models, measurer: Measurer, device, latency, warmed) -> tuple[dict, dict]:
    """All series of one clip: returns (record for report.json, videos for the compare strip)."""
    T = len(clip.frames)
    gt_t = clip.degree if np.all(np.isfinite(clip.degree)) and T > 1 else np.linspace(0, 1, T)
    t10 = np.linspace(0.0, 1.0, PAPER_FRAMES)
    rec = {"clip_id": clip.clip_id, "emotion": clip.emotion, "split": clip.split, "T": T, "series": {}}
    videos: dict[str, np.ndarray] = {}
    stored = clip.frames.shape[1]
    # the ground truth in each model's view (cached by view)
    views: dict[tuple, dict] = {}

    def gt_view(m: LoadedModel) -> dict:
        key = (m.size, round(m.crop_fraction, 6), m.crop_from)
        if key not in views:          # the view the model trained on (models.data.view_box)
            from .data import view_box

            x0, y0, c = view_box(stored, m.crop_fraction, m.crop_from, clip.landmarks[0])
            fr = to_view(clip.frames, x0, c, m.size, y0=y0)
            lm, desc = measurer.measure(fr)
            views[key] = dict(frames=fr, masks=to_view(clip.mouth_mask, x0, c, m.size, nearest=True, y0=y0),
                              file_lm=points_to_view(clip.landmarks, x0, c, m.size, y0=y0), lm=lm, desc=desc)
        return views[key]

    gt_curve_file = ev.landmark_curve(clip.landmarks)
    in_sharp = jm.input_sharpness(clip.frames[0], clip.landmarks[0])   # the stored onset frame

    def score(key, frames, times, lms, descs, v):
        idx = ev.nearest_indices(times, gt_t)
        in_lm, in_desc = v["lm"][0], v["desc"][0]
        if not np.all(np.isfinite(in_lm)):   # no face found on the input view: use the file's landmarks
            in_lm = v["file_lm"][0]
        m, curve = ev.score_video(frames=frames, times=times, landmarks=lms, input_landmarks=in_lm,
                                  gt_frames=v["frames"][idx], gt_landmarks=v["file_lm"][idx],
                                  gt_mouth_mask=v["masks"][idx], gt_times=gt_t, gt_curve=gt_curve_file,
                                  descriptors=descs if measurer.enc is not None else None, input_descriptor=in_desc)
        missing = np.flatnonzero(~ev.detected(lms))
        m["n_undetected"] = float(missing.size)
        rec["series"][key] = dict(m, t=[float(x) for x in times], curve=[float(x) for x in curve],
                                  undetected_frames=[int(i) for i in missing])
        rec["series"][key].update(jm.video_scores(frames, lms, clip.emotion, times, in_sharp, in_lm))

    first_model = next(iter(next(iter(models.values())).values()))
    v0 = gt_view(first_model)
    videos["input"] = v0["frames"][0]
    videos["ground truth"] = v0["frames"]
    # reference rows: the real frames through the same measurement
    score("gt", v0["frames"], gt_t, v0["lm"], v0["desc"], v0)
    i10 = ev.nearest_indices(t10, gt_t)
    score("gt@10", v0["frames"][i10], gt_t[i10], v0["lm"][i10], [v0["desc"][i] for i in i10], v0)
    # the real frames against themselves: pixel metrics are trivially perfect, so leave them out
    for key in ("gt", "gt@10"):
        for name in ("psnr", "ssim", "l1", "mouth_l1"):
            rec["series"][key].pop(name, None)
    # the paper's GT curve for the plot (file landmarks), stored under "gt" as the reference of every gap
    rec["series"]["gt"]["curve"] = [float(x) for x in gt_curve_file]

    for key, per_e in models.items():
        m = per_e.get(clip.emotion)
        if m is None:
            continue
        v = gt_view(m)
        first = v["frames"][0]
        if id(m) not in warmed:   # warm-up (allocations, lazy init, thread pools) so latency is the steady state
            for n_warm in ((T, PAPER_FRAMES + 1) if key == "ours" else (PAPER_FRAMES, PAPER_FRAMES)):
                _generate(m, first, clip.emotion, n_warm, device)
            warmed.add(id(m))
        if key == "ours":
            vid, dt = _generate(m, first, clip.emotion, T, device)
            latency.setdefault("ours", []).append((T, dt))
            lms, descs = measurer.measure(vid)
            score("ours", vid, gt_t, lms, descs, v)
            rec["series"]["ours"]["l1_at_zero"] = float(ev.l1(vid[:1], first[None])[0])
            videos["ours"] = vid
            vid11, dt11 = _generate(m, first, clip.emotion, PAPER_FRAMES + 1, device)
            latency.setdefault("ours@10", []).append((PAPER_FRAMES + 1, dt11))
            lms11, descs11 = measurer.measure(vid11[1:])
            score("ours@10", vid11[1:], np.linspace(0.1, 1.0, PAPER_FRAMES), lms11, descs11, v)
        else:
            n = int(getattr(m.family, "native_frames", None) or PAPER_FRAMES)
            vid, dt = _generate(m, first, clip.emotion, n, device)
            latency.setdefault(key, []).append((n, dt))
            lms, descs = measurer.measure(vid)
            score(key, vid, np.linspace(0.0, 1.0, n), lms, descs, v)
            videos[LABELS.get(key, key)] = vid
    return rec, videos


def _write_compare(out_dir: str, clip: Clip, videos: dict[str, np.ndarray]) -> dict:
    """compare_<clip>.gif (animated, side by side) and strip_<clip>.png (all 10 frames, one row each)."""
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in clip.clip_id)
    cols = list(videos.items())
    frames = rp.compare_frames(cols, n_frames=PAPER_FRAMES, panel=128)
    gif = rp.write_gif(os.path.join(out_dir, f"compare_{safe}.gif"), frames)
    strip = rp.write_png(os.path.join(out_dir, f"strip_{safe}.png"), rp.contact_sheet(cols, n_frames=PAPER_FRAMES))
    return {"clip_id": clip.clip_id, "emotion": clip.emotion, "split": clip.split,
            "gif": os.path.basename(gif), "strip": os.path.basename(strip)}


def summary_text(results: dict, metrics=("detection_rate", "curve_gap", "curve_trend", "curve_jump_ratio", "nme",
                                        "psnr", "ssim", "identity_distance")) -> str:
    """A compact terminal table per emotion/split (means only; intervals are in the report)."""
    lines = []
    for gk, g in results["groups"].items():
        lines.append(f"{g['emotion']} / {g['split']}  ({g['n_clips']} clips)")
        head = f"  {'':22s}" + "".join(f"{rp.METRICS[m][0][:13]:>14s}" for m in metrics)
        lines.append(head)
        for s in results["series"]:
            ms = g["metrics"].get(s["key"])
            if not ms:
                continue
            cells = "".join(f"{rp._fmt(ms.get(m, {}).get('mean')):>14s}" for m in metrics)
            lines.append(f"  {s['label'][:22]:22s}{cells}")
    return "\n".join(lines)
