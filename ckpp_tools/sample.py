"""Sample raw data made from real photos: a CK+ tree and CK++-style videos, with the ground truth.

Why: CK+ is licensed and nothing may be downloaded, yet `prepare` (trimming, blur and head-motion checks,
broken files), the models and the demo all need realistic raw input whose answers are known. Each clip is
a real face photo (see faces.py) whose 68 landmarks move along an expression (expressions.py); the warped
frames are written exactly as CK+ or a camera would have, and `truth.json` keeps what `prepare` should find.

Layout written under OUT_DIR (both subtrees side by side, so `ckpp prepare OUT_DIR out.h5` finds both):

    CK+/cohn-kanade-images/S005/001/S005_001_00000001.png   grayscale, neutral -> peak, no pre-roll/tail
    CK+/Emotion/S005/001/S005_001_000000NN_emotion.txt       named after the last (peak) frame; some missing
    CK+/Landmarks/S005/001/S005_001_00000001_landmarks.txt   68 lines, source pixels
    ours/P001/<emotion>_<take>.mp4                           colour, 30 fps: neutral pre-roll, rise, peak tail
    truth.json, contact_sheet.png

Frame-index conventions in truth.json (0-based indices into the clip's frames):
  onset = the last frame with intensity 0, i.e. the frame just before the rise (CK+: 0);
  peak  = the first frame whose intensity reaches its maximum 1.0 (CK+: the last frame).
The rise between them is eased (smoothstep), as real expressions are.

truth.json = {"version": 1, "seed", "subjects", "small", "clips": {SOURCE: entry}} where SOURCE is the path
relative to OUT_DIR that prepare records as the manifest `source` (the sequence folder for CK+, the file for
videos), and each entry has: layout ("ckplus"|"videos"), subject, emotion (canonical; also for unlabelled
CK+ sequences), take, n_frames (0 for undecodable files), fps, onset, peak (-1 where there is no rise: undecodable, still
and too-short takes), intensity [T],
landmarks [T][68][2] (source pixels, after head motion), expected_status, expected_reason (DESIGN §5 name or
""), head_motion {max_translation_iod (eye-corner centroid), max_rotation_deg (= max of roll and yaw),
max_roll_deg (in-plane), max_yaw_deg (head turn)} (relative to the first frame), blur_sigma (0 if
sharp), size [W,H] (null for undecodable files), color (CK+ only: true for the colour sequence); the blurred take adds "twin" (its sharp source take), the
truncated file adds "truncated_from".
"""
from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass

import cv2
import numpy as np

from . import action_units as au
from . import expressions as ex
from . import sample_resume
from .disk_space import imwrite, mp4_complete, raise_write_failure, writes_into
from .emotions import CODES, EXPRESSIONS
from .errors import CkppError, UsageError
from .face_measures import measure
from .neutral import SHUT_FROM, SMILE_AUS, UNSMILE_SHADE, paint_shut_lips
from .faces import Identity, base_photos, make_identity, place_identity, preload
from .locking import OutputLock

TRUTH_VERSION = 1
FPS = 30
#: CK+-like subject ids (the real dataset's first ones); more subjects continue from S100
CK_SUBJECTS = (5, 10, 11, 14, 22, 26, 32, 34, 35, 37, 42, 44, 45, 46, 50, 51, 52, 53, 54, 55)
#: every video subject gets these; one more expression rotates through the other four
CORE_EMOTIONS = ("happy", "anger", "surprise")
EXTRA_EMOTIONS = tuple(e for e in EXPRESSIONS if e not in CORE_EMOTIONS)


@dataclass(frozen=True)
class Sizes:
    """Image sizes and frame-count ranges (inclusive) of one sample flavour."""

    video: tuple[int, int]
    ckplus: tuple[int, int]
    pre: tuple[int, int]
    rise: tuple[int, int]
    tail: tuple[int, int]
    ck_frames: tuple[int, int]
    ck_per_subject: int
    #: inter-ocular distance as a fraction of the width (CK+-like ~0.2; note dlib's landmarks are whole
    #: pixels, so at 320 wide each point carries ~1.5% IOD of quantisation noise)
    iod_frac: tuple[float, float] = (0.17, 0.22)


DEFAULT = Sizes(video=(640, 480), ckplus=(640, 490), pre=(8, 12), rise=(12, 16), tail=(8, 12), ck_frames=(12, 18),
                ck_per_subject=3)
SMALL = Sizes(video=(320, 240), ckplus=(320, 245), pre=(4, 6), rise=(8, 10), tail=(4, 6), ck_frames=(8, 11),
              ck_per_subject=2)
#: photo folders / NBA: real portraits are small (NBA median IOD ~39 px, many ~22 px), and the models train on
#: 64-px crops spanning ~4 IOD: a 256x192 canvas with IOD ~0.17 of the width (~43 px) keeps prepare's crop
#: inside the frame and magnifies the smallest faces ~2x instead of ~5x at 640 wide. At 192x144 (IOD ~32 px)
#: dlib's tracking in prepare read many smooth rises as landmark jumps: 98/120 clips accepted vs 119/120
PHOTO = Sizes(video=(256, 192), ckplus=(256, 196), pre=(4, 6), rise=(8, 10), tail=(4, 6), ck_frames=(8, 11),
              ck_per_subject=1, iod_frac=(0.16, 0.18))
#: unsharp-mask amount for magnified photos (see faces.place_identity)
PHOTO_SHARPEN = 0.6


def ck_subject_id(i: int) -> str:
    return f"S{CK_SUBJECTS[i]:03d}" if i < len(CK_SUBJECTS) else f"S{100 + i:03d}"


def video_subject_id(i: int) -> str:
    return f"P{i + 1:03d}"


# ----------------------------------------------------------------------------------------------- planning

def plan(subjects: int, seed: int, sizes: Sizes, ckplus: bool = True, videos: bool = True,
         bad_cases: bool = True, emotions: tuple[str, ...] | None = None, takes: int = 1,
         ck_subjects: int | None = None) -> list[dict]:
    """The list of clip jobs: everything random is drawn here from `seed`, so rendering order and the number
    of worker processes cannot change the output. `emotions` restricts the expressions (default: happy,
    anger, surprise and one more per subject), `takes` repeats each video take; `ck_subjects` (default
    `subjects`) sets the number of CK+ subjects separately."""
    rng = np.random.default_rng([seed, 0xC4])
    jobs: list[dict] = []
    ck_n = subjects if ck_subjects is None else ck_subjects
    if ckplus:
        for i in range(ck_n):
            sid = ck_subject_id(i)
            for k in range(sizes.ck_per_subject):
                n = int(rng.integers(sizes.ck_frames[0], sizes.ck_frames[1] + 1))
                pool = emotions or EXPRESSIONS
                emotion = pool[(3 * i + k) % len(pool)]
                n = _timed(n, emotion, 2)
                serial = i * sizes.ck_per_subject + k
                jobs.append(dict(kind="ckplus", subject=sid, ident=("ckplus", i), emotion=emotion, take=f"{k + 1:03d}",
                                 n_frames=n, amp=float(rng.uniform(0.85, 1.1)), labelled=(serial % 5 != 4),
                                 seed=int(rng.integers(2**31)),
                                 # like CK+, a few sequences are colour: the last subject's last one
                                 color=(ck_n >= 2 and i == ck_n - 1 and k == sizes.ck_per_subject - 1)))
    if videos:
        for i in range(subjects):
            sid = video_subject_id(i)
            chosen = list(emotions) if emotions else list(CORE_EMOTIONS) + [EXTRA_EMOTIONS[i % len(EXTRA_EMOTIONS)]]
            for emotion in chosen:
                for t in range(takes):
                    jobs.append(_video_job(rng, sizes, sid, ("videos", i), emotion, f"{t + 1:02d}"))
        if bad_cases and subjects > 0:
            def subj(k):
                return k % subjects

            def bt(n):  # bad-case take numbers come after the regular takes
                return f"{n + takes - 1:02d}"

            # blurred twin of P001/surprise_01, truncated copy of P00x/happy_01: written by those jobs
            for job in jobs:
                if job["kind"] == "video" and job["subject"] == video_subject_id(subj(0)) and job["emotion"] == "surprise" and job["take"] == "01":
                    job["blurred_copy"] = f"ours/{job['subject']}/surprise_{bt(2)}.mp4"
                    job["blur_sigma"] = 0.0
                if job["kind"] == "video" and job["subject"] == video_subject_id(subj(2)) and job["emotion"] == "happy" and job["take"] == "01":
                    job["truncated_copy"] = f"ours/{job['subject']}/happy_{bt(9)}.mp4"
            # the mild drift goes to an astronaut-based subject: dlib's detector flickers more on Grace Hopper
            # (glasses, hat), which a tracker may read as extra head turn
            strong = _video_job(rng, sizes, video_subject_id(subj(2)), ("videos", subj(2)), "happy", bt(2))
            strong["motion"] = dict(kind="strong", angle=float(rng.choice([-1, 1]) * rng.uniform(12.0, 15.0)),
                                    shift_iod=float(rng.uniform(0.55, 0.75)), direction=float(rng.uniform(0, 2 * np.pi)))
            drift = _video_job(rng, sizes, video_subject_id(subj(1)), ("videos", subj(1)), "anger", bt(2))
            drift["motion"] = dict(kind="drift", angle=float(rng.uniform(-1.0, 1.0)), shift_iod=0.2,
                                   direction=float(rng.uniform(0, 2 * np.pi)))
            # a head turn (yaw) with no roll or slide, on an astronaut subject as well
            turn = _video_job(rng, sizes, video_subject_id(subj(1)), ("videos", subj(1)), "surprise", bt(3))
            turn["motion"] = dict(kind="turn", yaw=float(rng.choice([-1, 1]) * rng.uniform(12.0, 14.0)))
            jobs += [strong, drift, turn]
            # a real take under a name that is no emotion (a yawn looks like a surprise jaw drop)
            yawn = _video_job(rng, sizes, video_subject_id(subj(0)), ("videos", subj(0)), "yawn", "01")
            yawn["render"] = "surprise"
            # a take where the face never moves, and one too short to hold an expression
            still = _video_job(rng, sizes, video_subject_id(subj(1)), ("videos", subj(1)), "sadness", bt(8))
            still["still"] = True
            short = _video_job(rng, sizes, video_subject_id(subj(2)), ("videos", subj(2)), "happy", bt(7))
            short["cut"] = 3
            jobs += [yawn, still, short]
            jobs.append(dict(kind="empty", subject=video_subject_id(subj(0)), emotion="fear", take=bt(9)))
            jobs.append(dict(kind="notvideo", subject=video_subject_id(subj(1)), emotion="sadness", take=bt(9)))
    for job in jobs:
        if job["kind"] == "ckplus":
            job["rel"] = f"CK+/cohn-kanade-images/{job['subject']}/{job['take']}"
        else:
            job["rel"] = f"ours/{job['subject']}/{job['emotion']}_{job['take']}.mp4"
    return jobs


def _timed(n: int, emotion: str, least: int) -> int:
    """A drawn frame count scaled by the expression's own onset->peak pace (action_units.RISE_SCALE: CK+'s
    surprise snaps open, sadness builds slowly), at least `least` frames. Applied after the draw, so the
    random stream (and every other clip) stays as it was."""
    return max(least, int(round(n * au.RISE_SCALE.get(emotion, 1.0))))


def _video_job(rng, sizes: Sizes, sid: str, ident, emotion: str, take: str) -> dict:
    return dict(kind="video", subject=sid, ident=ident, emotion=emotion, take=take,
                n_pre=int(rng.integers(sizes.pre[0], sizes.pre[1] + 1)),
                n_rise=_timed(int(rng.integers(sizes.rise[0], sizes.rise[1] + 1)), emotion, 4),
                n_tail=int(rng.integers(sizes.tail[0], sizes.tail[1] + 1)),
                amp=float(rng.uniform(0.85, 1.1)), seed=int(rng.integers(2**31)))


# ---------------------------------------------------------------------------------------------- rendering

_IDENTITIES: dict = {}


def _identity(key, seed: int, size: tuple[int, int], iod_frac=(0.17, 0.22),
              photos: tuple[str, ...] | None = None, base=None) -> tuple[Identity, ex.PiecewiseAffine]:
    """Identity + its warper, cached per process (several clips share a subject). `base` (a
    photo_sources.BasePhoto) makes the identity from that photo instead of the built-in ones."""
    ck = (key, seed, size, tuple(iod_frac), photos, None if base is None else base.sha1)
    if ck not in _IDENTITIES:
        dataset, i = key[:2]
        rng = np.random.default_rng([seed, 0x1D, 0 if dataset == "ckplus" else 1, i])
        name = ck_subject_id(i) if dataset == "ckplus" else video_subject_id(i)
        if base is None:
            ident = make_identity(name, i + (1 if dataset == "videos" else 0), size[0], size[1], rng, iod_frac, photos)
        else:
            from .photo_sources import load_base

            img, pts = load_base(base, max_iod=size[0] * iod_frac[1])
            ident = place_identity(name, base.name, img, pts, bool(key[2]), size[0], size[1], rng, iod_frac,
                                   rest=base.rest, border=cv2.BORDER_REPLICATE, sharpen=PHOTO_SHARPEN)
            ident.smile = float(base.expression.get("happy", 0.0))
        anchors = ex.anchor_ring(ident.landmarks)
        src = np.concatenate([ident.landmarks, anchors])
        # reference for the triangulation: mouth and eyes opened, so no triangle spans the lips or the lids
        opened = ex.displace(ident.landmarks, ident.shape + ex.DISPLACEMENTS["surprise"] * 0.8)
        ref = np.concatenate([opened, anchors])
        _IDENTITIES.clear() if len(_IDENTITIES) > 8 else None
        _IDENTITIES[ck] = (ident, ex.PiecewiseAffine(ident.image, src, ref))
    return _IDENTITIES[ck]


def render(ident: Identity, warper: ex.PiecewiseAffine, emotion: str, intensity: np.ndarray, amp: float = 1.0,
           motion: dict | None = None) -> tuple[list[np.ndarray], np.ndarray, dict]:
    """Frames (RGB uint8), landmarks (T,68,2) and head-motion stats of one expression take."""
    field = ex.DISPLACEMENTS[emotion] * amp
    au_shaded = emotion in au.EXPRESSIONS
    anchors = warper.src[68:]
    neutral = ex.lips_apart(ex.displace(ident.landmarks, ident.shape))
    open0 = ex.mouth_opening(neutral)
    # lips the onset warp shut over the photo's teeth: their seam is repainted in every frame
    shut = measure(ident.landmarks)["mouth_open"] > SHUT_FROM and open0 < 0.01 * ident.iod
    unsmile = {k: -UNSMILE_SHADE * ident.smile * w for k, w in SMILE_AUS.items()}
    iod = ident.iod
    centre = neutral.mean(0)
    T = len(intensity)
    frames, points = [], []
    max_roll, max_yaw = 0.0, 0.0
    cache: dict = {}   # pre-roll and peak tail repeat one shape: warp it once
    for t, a in enumerate(intensity):
        u = float(ex.smoothstep(t / max(T - 1, 1)))     # head-motion progress over the whole take
        turn = motion["yaw"] * u if motion is not None and "yaw" in motion else 0.0
        target = ex.lips_apart(ex.displace(ident.landmarks, ident.shape + a * field))
        if turn:
            target = ex.yaw(target, turn, frame_of=ident.landmarks)
        key = (float(a), turn)
        if key not in cache:
            frame = warper.warp(np.concatenate([target, anchors]))
            alpha = (ex.mouth_opening(target) - open0) / (0.035 * iod)
            if shut:
                paint_shut_lips(frame, target, 1.0 - float(np.clip(alpha, 0, 1)))
            ex.paint_mouth_cavity(frame, target, alpha, ex.TEETH_FRACTION.get(emotion, 0.5))
            # the skin's folds and the eye white each action unit makes, less the folds of the smile the
            # onset took back
            both, right = au.au_levels(emotion, float(a) * amp) if au_shaded else ({}, {})
            for k, v in unsmile.items():
                both[k] = both.get(k, 0.0) + v
            au.shade(frame, target, both, right)
            cache = {key: frame}
        frame = cache[key]
        if motion is not None and ("angle" in motion or "shift_iod" in motion):
            angle = motion.get("angle", 0.0) * u
            shift = motion.get("shift_iod", 0.0) * iod * u * np.array([np.cos(motion["direction"]), np.sin(motion["direction"])])
            m = ex.similarity(centre, angle, shift)
            frame = cv2.warpAffine(frame, m, (frame.shape[1], frame.shape[0]), flags=cv2.INTER_LINEAR,
                                   borderMode=cv2.BORDER_REFLECT101)
            target = ex.apply_affine(target, m)
            max_roll = max(max_roll, abs(angle))
        max_yaw = max(max_yaw, abs(turn))
        frames.append(frame)
        points.append(target)
    points = np.round(np.array(points), 3)
    # translation as a tracker would see it: the eye-corner centroid, relative to the first frame
    eyes = points[:, [36, 39, 42, 45]].mean(1)
    max_shift = float(np.linalg.norm(eyes - eyes[0], axis=1).max()) / iod
    stats = {"max_translation_iod": round(max_shift, 4), "max_rotation_deg": round(max(max_roll, max_yaw), 4),
             "max_roll_deg": round(max_roll, 4), "max_yaw_deg": round(max_yaw, 4)}
    return frames, points, stats


def blur_sigma_for(ident: Identity) -> float:
    """Gaussian sigma of the blurred take: IOD/12 (9-12 px at 640 wide, 5 px at 320): far beyond focus or
    motion softness, so the take is unambiguously blurry at any size (IOD/20 sat right at prepare's
    threshold on the small set)."""
    return round(ident.iod / 12.0, 3)


def _fmt(v: float) -> str:
    return f"   {v:.7e}"


#: Huffman-only PNG: 2x faster than zlib level 1 and smaller on these smooth photos
_PNG_FAST = [cv2.IMWRITE_PNG_COMPRESSION, 1, cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_HUFFMAN_ONLY]


def write_ckplus(root: str, subject: str, take: str, frames_gray: list[np.ndarray], points: np.ndarray,
                 emotion_code: int | None) -> None:
    """One CK+ sequence in the exact CK+ file formats (frames: 8-bit grayscale, or RGB for a colour one)."""
    img_dir = os.path.join(root, "CK+", "cohn-kanade-images", subject, take)
    lm_dir = os.path.join(root, "CK+", "Landmarks", subject, take)
    os.makedirs(img_dir, exist_ok=True)
    os.makedirs(lm_dir, exist_ok=True)
    for t, (img, pts) in enumerate(zip(frames_gray, points), start=1):
        stem = f"{subject}_{take}_{t:08d}"
        if img.ndim == 3:
            img = cv2.cvtColor(img, cv2.COLOR_RGB2BGR)
        imwrite(os.path.join(img_dir, stem + ".png"), img, _PNG_FAST)   # cv2.imwrite says nothing when the disk is full
        with open(os.path.join(lm_dir, stem + "_landmarks.txt"), "w") as fh:
            fh.write("".join(_fmt(x) + _fmt(y) + "\n" for x, y in pts))
    if emotion_code is not None:
        em_dir = os.path.join(root, "CK+", "Emotion", subject, take)
        os.makedirs(em_dir, exist_ok=True)
        with open(os.path.join(em_dir, f"{subject}_{take}_{len(frames_gray):08d}_emotion.txt"), "w") as fh:
            fh.write(_fmt(float(emotion_code)) + "\n")


def write_mp4(path: str, frames_rgb: list[np.ndarray], fps: int = FPS) -> None:
    """mp4 (MPEG-4 part 2 via OpenCV's bundled ffmpeg): the index (moov) is written at the end, so a cut-off
    file does not decode at all, like a real interrupted recording."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    h, w = frames_rgb[0].shape[:2]
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    if not writer.isOpened():  # pragma: no cover - depends on the OpenCV build
        raise CkppError("OpenCV cannot write mp4 files", path=path, fix="pip install opencv-python-headless")
    for f in frames_rgb:
        writer.write(cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    writer.release()
    if not mp4_complete(path):  # the writer only warns when the disk fills up: ask the disk why
        raise_write_failure(path, "OpenCV's video writer")


def _thumbs(frames: list[np.ndarray], points: np.ndarray, onset: int, peak: int, n: int = 5, size: int = 128):
    from .crop import crop_box, crop_image

    box = crop_box(points[onset:peak + 1], scale=1.55)   # tighter than prepare's: show the expression
    idx = np.linspace(onset, peak, n).round().astype(int)
    return [crop_image(frames[i], box, size) for i in idx]


def _entry(job: dict, layout: str, n_frames: int, onset: int, peak: int, intensity, points, status: str,
           reason: str, motion: dict, blur: float, size) -> dict:
    return {
        "layout": layout, "subject": job["subject"], "emotion": job["emotion"], "take": job["take"],
        "n_frames": int(n_frames), "fps": FPS, "onset": int(onset), "peak": int(peak),
        "intensity": [round(float(v), 6) for v in intensity],
        "landmarks": np.asarray(points).tolist() if len(points) else [],
        "expected_status": status, "expected_reason": reason,
        "head_motion": motion, "blur_sigma": float(blur),
        "size": list(size) if size else None,
        **({"photo": job["base"].name} if job.get("base") is not None else {}),
    }


def run_job(job: dict, root: str, seed: int, sizes: Sizes) -> tuple[dict, dict]:
    """Render and write one clip (and the bad copies made from it). Returns ({rel: truth}, {rel: thumbnails})."""
    truth, thumbs = {}, {}
    no_motion = {"max_translation_iod": 0.0, "max_rotation_deg": 0.0, "max_roll_deg": 0.0, "max_yaw_deg": 0.0}
    kind = job["kind"]
    if kind in ("empty", "notvideo"):
        path = os.path.join(root, job["rel"])
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as fh:
            if kind == "notvideo":
                fh.write(b"This is a text note saved with a video extension by mistake; it holds no video.\n" * 40)
        truth[job["rel"]] = _entry(job, "videos", 0, -1, -1, [], [], "rejected", "unreadable", no_motion, 0.0, None)
        return truth, thumbs
    size = sizes.ckplus if kind == "ckplus" else sizes.video
    ident, warper = _identity(job["ident"], seed, size, sizes.iod_frac, job.get("photos"), job.get("base"))
    if kind == "ckplus":
        intensity = ex.ckplus_intensity(job["n_frames"])
        frames, points, motion = render(ident, warper, job["emotion"], intensity, job["amp"])
        gray = frames if job.get("color") else [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in frames]
        write_ckplus(root, job["subject"], job["take"], gray, points, CODES[job["emotion"]] if job["labelled"] else None)
        n = len(frames)
        status, reason = ("accepted", "") if job["labelled"] else ("rejected", "unlabelled")
        truth[job["rel"]] = _entry(job, "ckplus", n, 0, n - 1, intensity, points, status, reason, motion, 0.0, size)
        truth[job["rel"]]["color"] = bool(job.get("color"))
        thumbs[job["rel"]] = _thumbs(gray, points, 0, n - 1)
        return truth, thumbs
    intensity = ex.video_intensity(job["n_pre"], job["n_rise"], job["n_tail"])
    onset, peak = job["n_pre"] - 1, job["n_pre"] - 1 + job["n_rise"]
    status, reason = "accepted", ""
    if job.get("still"):
        intensity = np.zeros_like(intensity)
        onset = peak = -1
        status, reason = "rejected", "no_expression"
    if job.get("cut"):   # the middle of the rise only: fewer frames than prepare's --min-frames (4)
        mid = onset + job["n_rise"] // 2
        intensity = intensity[mid - job["cut"] // 2: mid - job["cut"] // 2 + job["cut"]]
        onset = peak = -1
        status, reason = "rejected", "too_short"
    motion_spec = job.get("motion")
    frames, points, motion = render(ident, warper, job.get("render", job["emotion"]), intensity, job["amp"], motion_spec)
    path = os.path.join(root, job["rel"])
    write_mp4(path, frames)
    if job.get("landmark_files"):
        from .sources.videos import LANDMARKS_SUFFIX, write_landmark_track

        write_landmark_track(os.path.splitext(path)[0] + LANDMARKS_SUFFIX, points)
    if motion_spec is not None and motion_spec["kind"] in ("strong", "turn"):
        status, reason = "rejected", "head_motion"
    if job.get("render"):
        status, reason = "rejected", "unknown_emotion"
    entry = _entry(job, "videos", len(frames), onset, peak, intensity, points, status, reason, motion, 0.0, size)
    truth[job["rel"]] = entry
    if onset >= 0:
        thumbs[job["rel"]] = _thumbs(frames, points, onset, peak)
    if job.get("blurred_copy"):
        sigma = blur_sigma_for(ident)
        blurred = [cv2.GaussianBlur(f, (0, 0), sigma) for f in frames]
        rel = job["blurred_copy"]
        write_mp4(os.path.join(root, rel), blurred)
        b = dict(entry, take=rel.rsplit("_", 1)[1].split(".")[0], expected_status="rejected", expected_reason="blurry",
                 blur_sigma=sigma, twin=job["rel"])
        truth[rel] = b
        thumbs[rel] = _thumbs(blurred, points, onset, peak)
    if job.get("truncated_copy"):
        rel = job["truncated_copy"]
        with open(path, "rb") as fh:
            data = fh.read()
        with open(os.path.join(root, rel), "wb") as fh:
            fh.write(data[: len(data) // 3])
        truth[rel] = _entry(dict(job, take=rel.rsplit("_", 1)[1].split(".")[0]), "videos", 0, -1, -1, [], [], "rejected", "unreadable", no_motion, 0.0, None)
        truth[rel]["truncated_from"] = job["rel"]
    return truth, thumbs


# ------------------------------------------------------------------------------------------ contact sheet

def contact_sheet(thumbs: dict, truth: dict, path: str, max_rows: int = 12) -> None:
    """One row per clip (onset .. peak, 5 frames): one video take per emotion, a CK+ sequence, the bad takes."""
    from collections import Counter

    used: Counter = Counter()
    rows = []

    def pick(cands):
        if cands:
            rel = min(cands, key=lambda r: (used[truth[r]["subject"]], r))
            used[truth[rel]["subject"]] += 1
            rows.append(rel)

    # one accepted, still-headed video take per expression, spread over as many subjects as possible
    for emotion in EXPRESSIONS:
        pick([r for r, e in truth.items() if r in thumbs and e["layout"] == "videos" and e["emotion"] == emotion
              and e["expected_status"] == "accepted" and not any(e["head_motion"].values())])
    ck = [r for r, e in truth.items() if r in thumbs and e["layout"] == "ckplus"]
    pick([r for r in ck if truth[r].get("color")] or ck[:1])
    pick([r for r in ck if r not in rows and not truth[r].get("color")])
    rows += [rel for rel, e in truth.items() if rel in thumbs and e["expected_reason"] in ("blurry", "head_motion")]
    rows = rows[:max_rows]
    if not rows:
        return
    cell = thumbs[rows[0]][0].shape[0]
    label_w = 190
    sheet = np.full((len(rows) * (cell + 4) + 4, label_w + 5 * (cell + 4) + 4, 3), 255, np.uint8)
    for r, rel in enumerate(rows):
        y = 4 + r * (cell + 4)
        e = truth[rel]
        lines = [e["subject"] + " " + e["emotion"], rel.split("/")[0] + " " + e["take"]]
        if e["expected_reason"]:
            lines.append("-> " + e["expected_reason"])
        for j, text in enumerate(lines):
            cv2.putText(sheet, text, (6, y + 30 + 24 * j), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 0, 0), 1, cv2.LINE_AA)
        for c, th in enumerate(thumbs[rel]):
            x = label_w + 4 + c * (cell + 4)
            sheet[y:y + cell, x:x + cell] = th
    imwrite(path, cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))


# ------------------------------------------------------------------------------------------------- driver

def _check_out_dir(out_dir: str, overwrite: bool) -> None:
    if os.path.isfile(out_dir) or (os.path.exists(out_dir) and not os.path.isdir(out_dir)):
        raise CkppError("exists and is a file, not a folder", path=out_dir,
                        fix="choose a new folder name for the sample data (e.g. raw/)")
    if os.path.isdir(out_dir) and os.listdir(out_dir):
        if not overwrite:
            raise CkppError("folder exists and is not empty; refusing to write sample data into it", path=out_dir,
                            fix="choose another (new or empty) folder, or pass --overwrite to replace a previous sample")
        if not os.path.isfile(os.path.join(out_dir, "truth.json")):
            raise CkppError("--overwrite only replaces a previous `ckpp sample` folder (one with truth.json); "
                            "this folder holds something else", path=out_dir, fix="choose another (new or empty) folder")


def _job_worker(args):
    job, root, seed, sizes = args
    cv2.setNumThreads(1)
    return run_job(job, root, seed, sizes)


def _indexed_job(item):
    i, args = item
    return i, _job_worker(args)


@writes_into(lambda out_dir, *a, **k: os.path.abspath(os.fspath(out_dir)).rstrip(os.sep) + ".partial",
             owned=lambda p: os.path.isfile(os.path.join(p, sample_resume.PARTIAL_MARK)))
def make_sample(out_dir, subjects: int | None = None, seed: int = 0, small: bool = False, workers: int | None = None,
                overwrite: bool = False, ckplus: bool = True, videos: bool = True, bad_cases: bool = True,
                progress: bool = True, photos: list[str] | tuple[str, ...] | str | None = None,
                emotions: list[str] | tuple[str, ...] | None = None, takes: int = 1, hold_out: int = 0,
                log=None, resume: bool = False, landmark_files: bool = False) -> dict:
    """Write the sample tree into `out_dir` and return the truth (also saved as out_dir/truth.json).

    `subjects` per layout defaults to 6 (3 with small=True). Deterministic for a given (subjects, seed, small, ...). Written into `out_dir.partial/` and renamed at the
    end, so an interrupted run never leaves a tree that looks complete. `workers` processes render clips in
    parallel (default: up to 2; 1 for small); the output does not depend on it.

    `photos`: built-in names (astronaut, grace_hopper), or one string: 'nba', 'unlike' or a folder of portraits
    (photo_sources.py: one person per photo, `subjects` = people in total, default all of them; `hold_out`
    people are copied to out_dir/held_out/ and never rendered; the check is reported in photos.json).
    `emotions` restricts the expressions, `takes` video takes per subject and emotion. `resume`: keep the
    clips an interrupted run of the same options finished in out_dir.partial/ (sample_resume.py).
    `landmark_files`: beside each video also write its exact landmarks as <clip>.landmarks.txt, which `ckpp
    prepare` then uses instead of detecting them (training data whose motion is not shortened by the detector).
    """
    out_dir = os.path.abspath(os.fspath(out_dir))
    if subjects is not None and subjects < 1:
        raise CkppError(f"--subjects must be at least 1 (got {subjects})", path="--subjects", fix="e.g. --subjects 6")
    if emotions:
        bad = [e for e in emotions if e not in EXPRESSIONS]
        if bad:
            raise CkppError(f"unknown emotion(s) {', '.join(bad)}", path="--emotions", fix="use some of: " + ", ".join(EXPRESSIONS))
        emotions = tuple(dict.fromkeys(emotions))
    if takes < 1:
        raise CkppError(f"--takes must be at least 1 (got {takes})", path="--takes", fix="e.g. --takes 2")
    source = None
    if isinstance(photos, str):
        photos = [photos]
    if photos:
        from .faces import PHOTOS

        unknown = [p for p in photos if p not in PHOTOS]
        from .photo_sources import FOLDERS

        if len(photos) == 1 and unknown and (photos[0].lower() in FOLDERS or os.path.isdir(photos[0])):
            source = photos[0]
        elif unknown:
            raise CkppError(f"unknown base photo(s) {', '.join(unknown)}", path="--photos",
                            fix="use some of: " + ", ".join(PHOTOS) + "; or 'nba' or 'unlike'; or a folder of portrait photos")
        else:
            photos = tuple(photos)
    if hold_out and source is None:
        raise CkppError("--hold-out needs a folder of photos, 'nba' or 'unlike' (--photos)", path="--hold-out",
                        fix="e.g. --photos nba --hold-out 40")
    if subjects is None and source is None:
        subjects = 3 if small else 6
    if resume and overwrite:
        raise UsageError("--resume and --overwrite contradict each other", path="--resume",
                         fix="--resume continues an interrupted run; --overwrite starts over")
    complete = resume and os.path.isfile(os.path.join(out_dir, "truth.json"))   # a finished OUT: see below
    if not complete:
        _check_out_dir(out_dir, overwrite)
    partial = out_dir.rstrip(os.sep) + ".partial"
    sample_resume.check_partial(partial)   # never delete an OUT.partial that is not ours
    options = dict(subjects=subjects, seed=int(seed), small=bool(small), ckplus=bool(ckplus), videos=bool(videos),
                   bad_cases=bool(bad_cases), photos=[source] if source else (list(photos) if photos else None),
                   emotions=list(emotions) if emotions else None, takes=int(takes), hold_out=int(hold_out))
    if landmark_files:   # only when asked, so earlier runs' fingerprints (and --resume of them) stay as they were
        options["landmark_files"] = True

    sizes = SMALL if small else DEFAULT
    scan = assignment = None
    if source is not None:
        from . import photo_sources

        sizes = PHOTO
        scan = photo_sources.resolve(source, workers=workers, progress=progress)
        for s in scan.skipped if log else ():
            log(f"skipped photo {s['file']}: {s['reason']} ({s['detail']})")
        assignment = photo_sources.assign(scan, seed, subjects, hold_out, ckplus=ckplus, videos=videos,
                                          neutral_only=source.strip().lower() in photo_sources.NEUTRAL_ONLY)
        jobs = plan(len(assignment.videos), seed, sizes, ckplus=ckplus, videos=videos, bad_cases=bad_cases,
                    emotions=emotions, takes=takes, ck_subjects=len(assignment.ckplus))
        for job in jobs:
            if "ident" in job:
                dataset, i = job["ident"]
                base, flip = (assignment.ckplus if dataset == "ckplus" else assignment.videos)[i]
                job["ident"], job["base"] = (dataset, i, flip), base
        subjects = len(assignment.videos) if videos else len(assignment.ckplus)
        bases = {}
    else:
        jobs = plan(subjects, seed, sizes, ckplus=ckplus, videos=videos, bad_cases=bad_cases, emotions=emotions,
                    takes=takes)
        bases = None  # base_photos(), when there is something to render
    for job in jobs:
        job["photos"] = photos if source is None and photos else None
        if landmark_files:
            job["landmark_files"] = True
    fp = sample_resume.fingerprint(options, jobs)
    if complete:   # a job script reruns the same command after any crash: a finished run is a no-op
        return sample_resume.already_complete(out_dir, fp, options, log)
    # `ckpp sample data/raw/nba` into a tree that does not exist yet makes it, as `mkdir -p` would
    os.makedirs(os.path.dirname(os.path.abspath(out_dir)), exist_ok=True)
    with OutputLock(out_dir, "ckpp sample"):   # one run writes OUT_DIR(.partial) at a time (locking.py)
        return _render(out_dir, partial, jobs, fp, options, resume, workers, small, source, photos, seed, subjects,
                       sizes, scan, assignment, bases, progress, log)


def _render(out_dir, partial, jobs, fp, options, resume, workers, small, source, photos, seed, subjects, sizes,
            scan, assignment, bases, progress, log) -> dict:
    """Render the planned jobs into out_dir.partial (keeping those a resumed run finished), then rename it."""
    from tqdm import tqdm

    state, note = sample_resume.Progress.open(partial, fp, resume)
    if note and log:
        log(note)
    if bases is None:
        bases = base_photos()  # detected once here and handed to workers, so they never load dlib
    if workers is None:  # a spawned worker costs ~1 s to start: not worth it for the small set
        workers = 1 if small and source is None else min(2, os.cpu_count() or 1)
    heavy = [j for j in jobs if j["kind"] in ("video", "ckplus")]
    args = [(i, (j, partial, seed, sizes)) for i, j in enumerate(jobs) if i not in state.done]
    truth_clips, thumbs = {}, {}
    for t, th in state.done.values():
        truth_clips.update(t)
        thumbs.update(th)
    bar = tqdm(total=len(jobs), initial=len(state.done), desc="sample clips", unit="clip", disable=not progress)
    try:
        if workers > 1 and len(heavy) > 1 and len(args) > 1:
            import multiprocessing as mp

            # spawn, not fork: a fork taken while OpenCV's/dlib's thread pools hold a lock deadlocks the child
            from .lifecycle import worker_initializer

            # each render worker dies with this process (kill -9 included), then preloads the photos
            with mp.get_context("spawn").Pool(workers, initializer=worker_initializer,
                                              initargs=(os.getpid(), preload, (bases,))) as pool:
                for i, (t, th) in pool.imap_unordered(_indexed_job, args):
                    state.record(i, t, th)
                    truth_clips.update(t)
                    thumbs.update(th)
                    bar.update()
        else:
            for i, a in args:
                t, th = _job_worker(a)
                state.record(i, t, th)
                truth_clips.update(t)
                thumbs.update(th)
                bar.update()
    finally:
        bar.close()
    # stable order: as planned (copies right after their source)
    order = {j["rel"]: k for k, j in enumerate(jobs)}
    clips = dict(sorted(truth_clips.items(), key=lambda kv: (order.get(kv[0], order.get(kv[1].get("twin") or kv[1].get("truncated_from"), 0) + 0.5), kv[0])))
    truth = {"version": TRUTH_VERSION, "seed": int(seed), "subjects": int(subjects), "small": bool(small),
             "photos": [source] if source else (list(photos) if photos else None), "options": options,
             "fingerprint": fp, "clips": clips}
    if scan is not None:
        from . import photo_sources

        photo_sources.write_report(partial, scan, assignment, jobs)
    contact_sheet(thumbs, clips, os.path.join(partial, "contact_sheet.png"))
    tpath = os.path.join(partial, "truth.json")
    with open(tpath, "w") as fh:
        fh.write(json.dumps(truth, separators=(",", ":")))  # dumps uses the C encoder, dump does not
        fh.flush()
        os.fsync(fh.fileno())
    state.finish()   # the records and the marker go: a folder without the marker is complete
    if os.path.isdir(out_dir):
        if os.listdir(out_dir):  # overwrite of a previous sample (checked above)
            old = out_dir.rstrip(os.sep) + f".old-{os.getpid()}"
            os.replace(out_dir, old)
            os.replace(partial, out_dir)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rmdir(out_dir)
            os.replace(partial, out_dir)
    else:
        os.makedirs(os.path.dirname(out_dir) or ".", exist_ok=True)
        os.replace(partial, out_dir)
    return truth


def load_truth(out_dir) -> dict:
    """truth.json of a sample folder (keys of `clips` are paths relative to out_dir: what prepare records as
    the manifest `source`)."""
    path = os.path.join(os.fspath(out_dir), "truth.json")
    if not os.path.isfile(path):
        raise CkppError("no truth.json: not a `ckpp sample` folder", path=out_dir,
                        fix="make one with `ckpp sample OUT_DIR`")
    with open(path) as fh:
        return json.load(fh)
