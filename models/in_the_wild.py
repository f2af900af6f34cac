"""`ckpp benchmark --photos DIR`: in-the-wild evaluation on real photos, without ground-truth video.

The automatic stand-in for the paper's user study (issue 10): does an unseen face visibly make the
expression, stay a face and stay the same person? Per photo, model and emotion, with the same dlib
measurement as the clip benchmark (frames upscaled to DETECT_SIZE, models.benchmark.Measurer):
- face found: fraction of generated frames where dlib finds a face;
- expression gains frame 0 -> peak in inter-ocular distances (ckpp_tools.face_measures: mouth opening,
  mouth width, brow height, eye opening);
- direction: cosine between the generated landmark displacement (frame 0 -> peak, face frame) and the
  training clips' mean onset -> peak displacement for that emotion (from the prepared HDF5);
- identity: dlib descriptor distance of the peak frame to the input crop (only the peak: descriptors are
  the slow part, ~0.1-0.4 s each);
- f(I,0) vs I: L1 and PSNR of the model's frame 0 against its input crop.
With starts=("as-is", "neutral", "auto") every model is also run from a *neutral start* (the photo's face
warped back to neutral first, models.generate.neutral_start) and from an *auto start* (neutral only where the
lips are parted, ckpp_tools.neutral.start_for; what `ckpp generate` does by default), as extra rows
"<model>+neutral" / "<model>+auto". Their identity is still measured against the original photo's crop, their
f(I,0) against the crop the model was given (how far a neutralised crop is from the photo: `start_l1`).
Every model sees the photo cropped by models.generate.face_crop (eyes levelled, the crop it trained on);
motion-output models (output="warp") are measured on their motion applied to the same face cropped at
generate.MOTION_SIZE (models.generate.motion_video, the path of `ckpp generate`);
videos are made in batches by ExpressionPipeline.animate (the step `ckpp generate` takes), one pass per
model and emotion. A photo without a face is a row with a reason. Photos are grouped by folder (each --photos DIR, or its sub-folders) so held-out people and faces
unlike them are reported apart.
"""
from __future__ import annotations

import datetime
import os
from dataclasses import dataclass, field

import numpy as np

from ckpp_tools import face_measures as fm
from ckpp_tools.errors import CkppError, UsageError

from . import evaluate as ev
from . import judge_metrics as jm
from . import report as rp

#: image files taken from a --photos folder
IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
#: degrees shown in the contact sheet
SHEET_DEGREES = (0.0, 0.25, 0.5, 0.75, 1.0)
#: photos generated per model call
BATCH = 16
#: photos per group shown in a contact sheet (the tables cover all of them)
SHEET_PHOTOS = 40
#: side of a contact-sheet cell
PANEL = 72
#: row / model key suffix and label of each start (ckpp_tools.neutral.STARTS, --start); pictures use the short tag
START_SUFFIX = {"as-is": "", "neutral": "+neutral", "auto": "+auto"}
START_LABEL = {"as-is": "", "neutral": " (neutral start)", "auto": " (auto start)"}
START_TAG = {"as-is": "", "neutral": "/N", "auto": "/A"}


def _split_key(row_key: str) -> tuple[str, str]:
    """Row key -> (model key, start): 'ours+auto' -> ('ours', 'auto')."""
    for st, suf in START_SUFFIX.items():
        if suf and row_key.endswith(suf):
            return row_key[: -len(suf)], st
    return row_key, "as-is"

#: metric -> (column title, unit, which way is better, meaning); order = table order
WILD_METRICS: dict[str, tuple[str, str, str, str]] = {
    "detection_rate": ("face found", "fraction", "higher", "generated frames where dlib finds a face"),
    "mouth_open_gain": ("mouth open gain", "IOD", "match training", "inner-lip gap, peak − frame 0"),
    "peak_mouth_open": ("mouth open at peak", "IOD", "match training", "inner-lip gap at the peak (absolute: a "
                        "smiling photo's parted lips count here, not in the gain)"),
    "mouth_width_gain": ("mouth width gain", "IOD", "match training", "lip-corner distance, peak − frame 0"),
    "brow_height_gain": ("brow gain", "IOD", "match training", "brow height above the eye line, peak − frame 0"),
    "eye_open_gain": ("eye open gain", "IOD", "match training", "eyelid gap, peak − frame 0"),
    "direction_cosine": ("direction cos", "", "higher", "cosine of the frame 0 → peak landmark motion with the "
                         "training clips' mean onset → peak motion (1 = the right way)"),
    "identity_distance": ("identity dist. (peak)", "dlib", "lower", "descriptor distance peak frame ↔ input "
                          "crop (< 0.6: same person)"),
    "l1_at_zero": ("L1 at a=0", "[0,1]", "lower", "f(I,0) vs the input crop"),
    "psnr_at_zero": ("PSNR at a=0", "dB", "higher", "f(I,0) vs the input crop"),
}


@dataclass
class Photo:
    path: str
    group: str
    name: str
    image: np.ndarray | None = None
    landmarks: np.ndarray | None = None
    reason: str = ""
    angle: float = 0.0
    views: dict = field(default_factory=dict)     # (size, crop_fraction[, "neutral"]) -> dict(crop, lm, desc, ...)
    auto: str = "as-is"                           # what --start auto applies to this face
    neutral_info: dict | None = None              # what the neutral start did (neutral_start's info)
    faces: int = 0                                # faces found (ckpp_tools.face_pick); the first is measured
    face_used: dict | None = None                 # that face: rank, box [x0,y0,x1,y1], why it ranks first
    sharpness: float = float("nan")               # the face's detail in the photo (judge_metrics.input_sharpness)


# ================================================================ photos
def collect_photos(dirs: list[str]) -> list[Photo]:
    """Photos of every --photos DIR: files directly inside form the group named after DIR, each
    sub-folder's files a group of its own name (e.g. photos/heldout/, photos/unlike/)."""
    out: list[Photo] = []
    for d in dirs:
        if not os.path.isdir(d):
            raise UsageError("not a folder of photos", path=d, fix="pass a folder holding JPEG/PNG portraits: --photos DIR")
        top = os.path.basename(os.path.normpath(d)) or "photos"
        for entry in sorted(os.listdir(d)):
            p = os.path.join(d, entry)
            if os.path.isdir(p):
                for sub in sorted(os.listdir(p)):
                    if sub.lower().endswith(IMAGE_EXTS):
                        out.append(Photo(path=os.path.join(p, sub), group=entry, name=f"{entry}/{sub}"))
            elif entry.lower().endswith(IMAGE_EXTS):
                out.append(Photo(path=p, group=top, name=f"{top}/{entry}"))
    if not out:
        raise UsageError("no photos (.jpg/.png/...) in " + ", ".join(dirs), path=dirs[0] if dirs else "--photos",
                         fix="put portrait photos in the folder (or in sub-folders, one per group)")
    return out


def find_faces(photos: list[Photo], progress: bool = True) -> None:
    """Load every photo and find its face (landmarks at full resolution); failures get a reason."""
    from tqdm import tqdm

    from ckpp_tools.face_geometry import face_box
    from .generate import load_photo

    for ph in tqdm(photos, desc="faces", unit="photo", disable=not progress):
        try:
            img = load_photo(ph.path)
        except CkppError as exc:
            ph.reason = _reason(exc)
            continue
        if max(img.shape[:2]) > 1280:              # as generate does: big photos are shrunk first
            import cv2

            k = 1280 / max(img.shape[:2])
            img = cv2.resize(img, (round(img.shape[1] * k), round(img.shape[0] * k)), interpolation=cv2.INTER_AREA)
        ph.image = img
        try:
            found: dict = {}
            _, ph.landmarks = face_box(img, ph.path, report=found)
            ph.faces = len(found["faces"])
            ph.face_used = {k: v for k, v in found["face"].summary().items() if k in ("rank", "box", "reasons")}
        except CkppError as exc:
            ph.reason = _reason(exc)


def _reason(exc: CkppError) -> str:
    """The what of a CkppError, without its path prefix and fix line."""
    text = str(exc.message).split("\n")[0]
    prefix = f"{exc.path}: " if exc.path else ""
    return text[len(prefix):] if prefix and text.startswith(prefix) else text


# ================================================================ reference motion
def reference_motion(data: str | None, emotions: list[str], max_clips: int = 400, view: tuple | None = None,
                     measurer=None, n_measured: int = 20) -> dict[str, dict]:
    """Per emotion: the training clips' mean onset -> peak landmark displacement (68,2, face-frame IOD
    units) and mean gains (from the file's landmarks), from the prepared HDF5 (train split, else every
    accepted clip of the emotion). With `view` (size, crop_fraction, crop_from) and a landmark-only `measurer`,
    also `measured_gains`: the onset and peak frames of up to n_measured clips put through the very measurement
    generated frames get (model view, dlib) — the ceiling a model can reach on this yardstick.
    Without a data file (or clips) the synthetic expression table ckpp_tools.expressions is the reference."""
    from ckpp_tools import expressions as ex

    out: dict[str, dict] = {}
    ds = None
    if data and os.path.isfile(data):
        from ckpp_tools.reader import open_dataset

        try:
            ds = open_dataset(data)
        except Exception:       # unreadable: fall back to the table, said in the report
            ds = None
    try:
        for e in emotions:
            fields, gains = [], []
            if ds is not None:
                ids = ds.clip_ids(emotion=e, split="train") or ds.clip_ids(emotion=e)
                for cid in ids[:max_clips]:
                    lm = ds.clip(cid, frames=False).landmarks
                    if len(lm) < 2 or not np.all(np.isfinite(lm[[0, -1]])):
                        continue
                    fields.append(fm.to_face_frame(lm[-1]) - fm.to_face_frame(lm[0]))
                    gains.append(fm.gains(lm[0], lm[-1]))
            if fields:
                out[e] = {"source": os.path.abspath(data), "n_clips": len(fields), "field": np.mean(fields, axis=0),
                          "gains": {k: float(np.mean([g[k] for g in gains])) for k in fm.MEASURES},
                          "measured_gains": None}
                if view is not None and measurer is not None:
                    out[e]["measured_gains"] = _measured_reference(ds, ids[:n_measured], view, measurer)
            else:
                f = ex.DISPLACEMENTS.get(e, np.zeros((68, 2)))
                out[e] = {"source": "ckpp_tools.expressions table (no training clips found)", "n_clips": 0,
                          "field": f, "gains": None, "measured_gains": None}
    finally:
        if ds is not None:
            ds.close()
    return out


def _measured_reference(ds, ids: list[str], view: tuple, measurer) -> dict | None:
    """Median gains onset -> peak of training clips measured like generated frames (None: no face found)."""
    from ckpp_tools import schema

    from .benchmark import model_view

    size, frac, crop_from = view
    gains = []
    for cid in ids:
        frames = ds.group(cid)[schema.FRAMES]
        pair = np.stack([frames[0], frames[len(frames) - 1]])
        lm0 = ds.group(cid)[schema.LANDMARKS][0]
        lms, _ = measurer.measure(model_view(pair, lm0, size, frac, crop_from))
        if np.all(np.isfinite(lms)):
            gains.append(fm.gains(lms[0], lms[1]))
    if not gains:
        return None
    return dict({k: float(np.median([g[k] for g in gains])) for k in fm.MEASURES}, n_clips=len(gains))


# ================================================================ measuring
def _measure_video(measurer, frames: np.ndarray, encoder=None):
    """(landmarks (T,68,2) NaN where no face, descriptor of the last (peak) frame or None). `measurer` is a
    benchmark.Measurer without identity (landmarks only); the one descriptor comes from `encoder`."""
    import cv2

    from .benchmark import DETECT_SIZE

    lms, _ = measurer.measure(frames)
    desc = None
    if encoder is not None and np.all(np.isfinite(lms[-1])):
        s = frames.shape[1]
        k = max(1.0, DETECT_SIZE / s)
        big = frames[-1] if k == 1 else cv2.resize(frames[-1], (round(s * k), round(s * k)), interpolation=cv2.INTER_CUBIC)
        desc = encoder.descriptor_from_landmarks(big, (lms[-1] + 0.5) * k - 0.5)
    return lms, desc


def score_video(frames: np.ndarray, lms: np.ndarray, peak_desc, view: dict, reference: np.ndarray | None) -> dict:
    """The metrics of one generated video (see WILD_METRICS)."""
    from ckpp_tools.identity import distance

    found = ev.detected(lms)
    m = {"detection_rate": float(found.mean()) if len(found) else float("nan")}
    if found[0] and found[-1]:
        g = fm.gains(lms[0], lms[-1])
        for k in fm.MEASURES:
            m[f"{k}_gain"] = g[k]
        m["direction_cosine"] = fm.displacement_cosine(lms[0], lms[-1], reference) if reference is not None else float("nan")
        m["peak_mouth_open"] = fm.measure(lms[-1])["mouth_open"]
    else:
        for k in fm.MEASURES:
            m[f"{k}_gain"] = float("nan")
        m["direction_cosine"] = float("nan")
        m["peak_mouth_open"] = float("nan")
    m["identity_distance"] = distance(peak_desc, view.get("desc"))
    m["l1_at_zero"] = float(ev.l1(frames[:1], view["crop"][None])[0])
    m["psnr_at_zero"] = float(min(ev.PSNR_IDENTICAL, ev.psnr(frames[:1], view["crop"][None])[0]))
    return m


def median_ci(values, n_boot: int = 2000, level: float = 0.95, seed: int = 0) -> dict[str, float]:
    """Median and its percentile-bootstrap interval (NaNs dropped), like evaluate.bootstrap_ci for means."""
    v = np.asarray(list(values), dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return {"median": float("nan"), "median_lo": float("nan"), "median_hi": float("nan")}
    med = float(np.median(v))
    if v.size == 1:
        return {"median": med, "median_lo": med, "median_hi": med}
    rng = np.random.default_rng(seed)
    boots = np.median(v[rng.integers(0, v.size, size=(n_boot, v.size))], axis=1)
    a = (1.0 - level) / 2.0
    lo, hi = np.quantile(boots, [a, 1.0 - a])
    return {"median": med, "median_lo": float(min(lo, med)), "median_hi": float(max(hi, med))}


def summarize(rows: list[dict]) -> dict[str, dict]:
    """{metric: {mean, lo, hi, n, median, median_lo, median_hi}} over per-photo rows."""
    out = {}
    for k in [*WILD_METRICS, *jm.JUDGE_METRICS]:
        vals = [r.get(k, float("nan")) for r in rows]
        out[k] = dict(ev.bootstrap_ci(vals), **median_ci(vals))
    return out


# ================================================================ the evaluation
def run_photos(*, photo_dirs: list[str], models: dict, emotions: list[str], out_dir: str, device, data: str | None = None,
               n_frames: int = 10, identity: bool = True, n_gifs: int = 3, command: str = "", progress: bool = True,
               warn=print, starts: tuple[str, ...] = ("as-is",)) -> dict:
    """Evaluate models (key -> emotion -> benchmark.LoadedModel) on the photos of `photo_dirs`; writes
    report.md / index.html / report.json, contact sheets and GIFs into `out_dir` (which must exist).
    `starts` (subset of ckpp_tools.neutral.STARTS): from the photo as it is, from its neutralised face, and/or
    neutralised only where the lips are parted (see the module docstring). Returns the results dict (= report.json)."""
    from tqdm import tqdm

    from .benchmark import LABELS, Measurer, _versions
    from ckpp_tools.neutral import STARTS, neutral_photo, parse_starts, start_for

    import cv2

    from ckpp_tools.face_geometry import face_crop, neutral_start

    from .generate import full_res_crop, motion_size
    from .pipeline import ExpressionPipeline

    starts = parse_starts(starts)
    warnings_out: list[str] = []

    def warn_(msg):
        warnings_out.append(msg)
        warn("warning: " + msg)

    photos = collect_photos(photo_dirs)
    find_faces(photos, progress)
    faces = [p for p in photos if p.landmarks is not None]
    if not faces:
        warn_("no face found in any photo: nothing to generate")
    measurer = Measurer(identity=False)            # landmarks of every frame; descriptors only where asked
    encoder = None
    if identity:
        from ckpp_tools.identity import FaceEncoder

        encoder = FaceEncoder.shared()
    all_models = [m for per_e in models.values() for m in per_e.values()]
    main = next(iter(models.get("ours", {}).values()), all_models[0] if all_models else None)
    ref = reference_motion(data, emotions, view=(main.size, main.crop_fraction, main.crop_from) if main else None,
                           measurer=measurer)
    for e, r in ref.items():
        if not r["n_clips"]:
            warn_(f"{e}: no training clips to take the reference motion from ({data or 'no data file'}); "
                  "direction cosines use the synthetic expression table")
    from .benchmark import model_view                  # the judge's ceiling: training clips, in the model's view

    viewer = (lambda fr, lm0: model_view(fr, lm0, main.size, main.crop_fraction, main.crop_from)) if main else None
    ceiling = jm.ceiling(data, emotions, viewer, measurer, summarize)
    # ---- every model view of every face: the crop, its dlib landmarks and descriptor
    view_keys = sorted({(m.size, round(m.crop_fraction, 6)) for m in all_models})
    # motion-output models: the same faces also cropped at generate.MOTION_SIZE from the photo (their frames' size)
    hr_sizes = {(m.size, round(m.crop_fraction, 6)): motion_size(m.family) for m in all_models
                if motion_size(m.family)}
    for ph in tqdm(faces, desc="input crops", unit="photo", disable=not progress):
        warped = {}                                # the neutralised photo by interpolation: one warp per kind
        for size, frac in view_keys:
            fc = face_crop(ph.image, size, frac, landmarks=ph.landmarks, where=ph.path)
            ph.angle = fc.angle
            lm, desc = _measure_video(measurer, fc.crop[None], encoder)
            ph.views[(size, frac)] = {"crop": fc.crop, "crop_lm": fc.crop_landmarks, "lm": lm[0], "desc": desc}
            hr = hr_sizes.get((size, frac))
            if hr:
                crop_hr = full_res_crop(ph.image, fc.matrix, size, hr)
                ph.views[(size, frac)]["hr"] = {"crop": crop_hr, "desc": _measure_video(measurer, crop_hr[None], encoder)[1]}
            ph.auto = start_for(fc.landmarks, "auto")
            if "neutral" in starts or ("auto" in starts and ph.auto == "neutral"):
                kind = cv2.INTER_CUBIC if hr else None     # as generate_video: motion models show the photo's
                if kind not in warped:                     # pixels, so their neutral warp is bicubic
                    warped[kind] = neutral_photo(ph.image, fc.landmarks, interpolation=kind)
                nphoto, nfc, ph.neutral_info = neutral_start(ph.image, fc, size, warped[kind])
                # identity is still measured against the photo as it is
                ph.views[(size, frac, "neutral")] = {"crop": nfc.crop, "crop_lm": nfc.crop_landmarks, "desc": desc,
                                                     "start": ph.neutral_info}
                if hr:
                    ph.views[(size, frac, "neutral")]["hr"] = dict(ph.views[(size, frac)]["hr"],
                                                                   crop=full_res_crop(nphoto, fc.matrix, size, hr))
        ph.sharpness = jm.input_sharpness(ph.image, ph.landmarks)
        ph.image = None                            # memory stays bounded on big folders: crops only
    for ph in photos:
        if ph.image is not None:                   # no face: a thumbnail for the sheet
            ph.image = rp._fit(ph.image, PANEL)
    # ---- generate (batched) and measure; keep whole videos only for the GIFs, sheet frames for the sheets
    index = {id(p): i for i, p in enumerate(photos)}
    gif_photos, sheet_photos = set(), set()
    for g in dict.fromkeys(p.group for p in photos):
        in_g = [index[id(p)] for p in photos if p.group == g]
        sheet_photos.update(in_g[:SHEET_PHOTOS])
        gif_photos.update([i for i in in_g if photos[i].landmarks is not None][:n_gifs])
    sheet_idx = lambda n: [int(round(a * (n - 1))) for a in SHEET_DEGREES]   # noqa: E731
    rows: list[dict] = []
    videos: dict[tuple, np.ndarray] = {}           # (photo index, model key, emotion) -> video (GIF photos)
    stills: dict[tuple, np.ndarray] = {}           # the same -> frames at SHEET_DEGREES (sheet photos)
    # (row key, emotion, model, start): each start's rows are models of their own in the tables and sheets
    jobs = [(key + START_SUFFIX[st], e, per_e[e], st)
            for st in STARTS if st in starts for key, per_e in models.items() for e in emotions if e in per_e]
    row_models = {rk: models[_split_key(rk)[0]] for rk, _, _, _ in jobs}
    bar = tqdm(total=len(jobs) * len(faces), desc="generate+measure", unit="video", disable=not progress)
    for key, e, m, st in jobs:
        base_vk = (m.size, round(m.crop_fraction, 6))

        def view_key(ph, st=st, base_vk=base_vk):
            applied = ph.auto if st == "auto" else st
            return base_vk + (() if applied == "as-is" else ("neutral",))
        n = n_frames if m.key == "ours" else int(getattr(m.family, "native_frames", None) or n_frames)
        pipe = ExpressionPipeline(m.family, m.meta, m.run)      # the videos come from the API's own step
        for b0 in range(0, len(faces), BATCH):
            chunk = faces[b0:b0 + BATCH]
            keys = [view_key(p) for p in chunk]
            hr = motion_size(m.family)
            vids = pipe.animate([p.views[k]["crop"] for p, k in zip(chunk, keys)], {e: 1.0}, n,
                                landmarks=[p.views[k]["crop_lm"] / float(m.size) for p, k in zip(chunk, keys)],
                                crops_hr=[p.views[k]["hr"]["crop"] for p, k in zip(chunk, keys)] if hr else None)
            for ph, vid, vk in zip(chunk, vids, keys):
                lms, desc = _measure_video(measurer, vid, encoder)
                view = ph.views[vk]["hr"] if hr else ph.views[vk]
                met = score_video(vid, lms, desc, view, ref[e]["field"])
                fallback = ph.views[vk]["crop_lm"] * (hr / float(m.size) if hr else 1.0)
                met.update(jm.video_scores(vid, lms, e, input_sharp=ph.sharpness, fallback_landmarks=fallback))
                if "start" in ph.views[vk]:
                    met["start_l1"] = ph.views[vk]["start"]["l1_vs_photo"]
                rows.append(dict(photo=ph.name, group=ph.group, model=key, emotion=e, start=st,
                                 applied_start="neutral" if len(vk) == 3 else "as-is", n_frames=int(len(vid)),
                                 undetected_frames=[int(i) for i in np.flatnonzero(~ev.detected(lms))], **met))
                i = index[id(ph)]
                if i in gif_photos:
                    videos[(i, key, e)] = vid
                if i in sheet_photos:
                    stills[(i, key, e)] = np.stack([rp._fit(vid[j], PANEL) for j in sheet_idx(len(vid))])
                bar.update(1)
    bar.close()
    # ---- summaries per group (and over all photos when there are several groups)
    groups = list(dict.fromkeys(p.group for p in photos))
    scopes = groups + (["all"] if len(groups) > 1 else [])
    summary: dict[str, dict] = {}
    for g in scopes:
        members = [p for p in photos if g == "all" or p.group == g]
        gs = {"n_photos": len(members), "n_faces": sum(p.landmarks is not None for p in members),
              "no_face": [{"photo": p.name, "reason": p.reason} for p in members if p.landmarks is None],
              "several_faces": [{"photo": p.name, "faces": p.faces, "face_used": p.face_used}
                                for p in members if p.faces > 1],
              "metrics": {}}
        for key, e, _, _ in jobs:
            sel = [r for r in rows if r["model"] == key and r["emotion"] == e and (g == "all" or r["group"] == g)]
            gs["metrics"].setdefault(key, {})[e] = summarize(sel)
            gs.setdefault("judge_curves", {}).setdefault(e, {})[key] = jm.aggregate(sel)
        summary[g] = gs
    headline = {}
    if "ours" in models:
        for g in scopes:
            headline[g] = {}
            for e in emotions:
                for st in starts:
                    ms = summary[g]["metrics"].get("ours" + START_SUFFIX[st], {}).get(e)
                    if not ms:
                        continue
                    h = {"n_faces": summary[g]["n_faces"], "face_found": ms["detection_rate"]["mean"],
                         "mouth_open_gain_median": ms["mouth_open_gain"]["median"],
                         "mouth_open_gain_mean": ms["mouth_open_gain"]["mean"],
                         "peak_mouth_open_median": ms["peak_mouth_open"]["median"],
                         "direction_cosine_median": ms["direction_cosine"]["median"],
                         "identity_distance_median": ms["identity_distance"]["median"],
                         "l1_at_zero_mean": ms["l1_at_zero"]["mean"],
                         "training_mouth_open_gain_measured": (ref[e]["measured_gains"] or {}).get("mouth_open"),
                         **jm.headline(ms)}
                    if st == "as-is":
                        headline[g][e] = dict(h, **headline[g].get(e, {}))
                    else:                  # the other starts' figures sit beside the as-is ones
                        headline[g].setdefault(e, {})[f"{st}_start"] = h
    # ---- pictures
    labels = {key: LABELS.get(key, key) for key in models}
    labels.update({rk: labels[_split_key(rk)[0]] + START_LABEL[_split_key(rk)[1]] for rk in row_models})
    # pictures have 72-128 px columns: "/N", "/A" mark the starts there (said in the report's notes)
    short = {rk: labels[_split_key(rk)[0]] + START_TAG[_split_key(rk)[1]] for rk in row_models}
    first_vk = {key: (m.size, round(m.crop_fraction, 6)) for key, e, m, _ in jobs}
    sheets, compare, judge_figs = {}, [], {}
    for g in groups:
        members = [(i, p) for i, p in enumerate(photos) if p.group == g]
        for e in emotions:
            curves = {k: c for k, c in summary[g].get("judge_curves", {}).get(e, {}).items() if c}
            if curves:
                judge_figs[f"{g}/{e}"] = f"judge_{_safe(g)}_{e}.png"
                rp.plot_curves(os.path.join(out_dir, judge_figs[f"{g}/{e}"]), jm.curve_results(
                    g, e, summary[g]["n_faces"], curves, labels, (ceiling.get(e) or {}).get("curve")), **rp.JUDGE_CURVE)
            name = f"sheet_{_safe(g)}_{e}.png"
            rp.write_png(os.path.join(out_dir, name),
                         contact_sheet([x for x in members if x[0] in sheet_photos], row_models, e, stills, short))
            sheets[f"{g}/{e}"] = name
            for i, p in members:
                if i not in gif_photos:
                    continue
                ref_vk = first_vk.get("ours") or next(iter(first_vk.values()))
                cols = [("input", p.views[ref_vk]["crop"])]
                cols += [(short[k], videos[(i, k, e)]) for k in row_models if (i, k, e) in videos]
                gif = f"wild_{_safe(p.name)}_{e}.gif"
                rp.write_gif(os.path.join(out_dir, gif), rp.compare_frames(cols, n_frames=n_frames, panel=128))
                compare.append({"photo": p.name, "group": g, "emotion": e, "gif": gif})
    model_info = {}
    for key, per_e in row_models.items():
        for e, m in per_e.items():
            k = key if len({id(x) for x in per_e.values()}) == 1 else f"{key}:{e}"
            model_info.setdefault(k, {"label": labels[key], "family": _split_key(key)[0], "start": _split_key(key)[1],
                                      "emotions": list(m.family.emotions),
                                      "run": m.run, "checkpoint": m.checkpoint, "step": m.meta.get("step"),
                                      "image_size": m.size, "crop_fraction": m.crop_fraction,
                                      "frame_size": motion_size(m.family) or m.size})
    results = {
        "kind": "in-the-wild", "command": command,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "versions": _versions(), "device": str(device), "models": model_info, "emotions": list(emotions),
        "n_frames": n_frames, "photo_dirs": [os.path.abspath(d) for d in photo_dirs],
        "reference": {e: {"source": r["source"], "n_clips": r["n_clips"], "gains": r["gains"],
                          "measured_gains": r["measured_gains"]} for e, r in ref.items()},
        "headline": headline, "groups": summary, "judge_ceiling": ceiling, "judge_figs": judge_figs,
        "starts": list(starts),
        "photos": [{"photo": p.name, "group": p.group, "path": os.path.abspath(p.path), "face": p.landmarks is not None,
                    "reason": p.reason, "roll_deg": round(p.angle, 2), "auto_start": p.auto if p.landmarks is not None else None,
                    "faces": p.faces, "face_used": p.face_used,
                    **({"neutral_start": p.neutral_info} if p.neutral_info is not None else {})} for p in photos],
        "rows": rows, "sheets": sheets, "compare": compare, "warnings": warnings_out,
        "notes": NOTES + jm.NOTES + [
            f"ours: {n_frames} frames at degrees a = t/{n_frames - 1}; baselines: their native frames "
            "(degrees k/(N−1)), so frame 0 and the peak are at the same degrees"],
    }
    write_report(out_dir, results)
    return results


NOTES = [
    "no ground-truth video: each photo is its own reference (frame 0 and the input crop)",
    "every model sees the face cropped as `ckpp generate` crops it: eyes levelled, prepare's box, the model's "
    "crop fraction and size",
    "dlib looks at frames upscaled to ≥ 256 px (as in the clip benchmark)",
    "motion-output models (output=warp) move the photo's face cropped at 256² (their flow, mask and "
    "residual upsampled), each frame relative to frame 0's prediction, so their frame 0 is the input crop itself "
    "(f(I,0) = I by construction); their identity and f(I,0) are measured against that crop",
    "gains are peak − frame 0 of the generated video, in inter-ocular distances (IOD) of the face frame; a video "
    "whose frame 0 or peak has no detected face has no gain (it counts in 'face found')",
    "direction cosine: generated frame 0 → peak landmark displacement vs the training clips' mean onset → peak "
    "displacement, both in face-frame units",
    "identity: dlib 128-d descriptor of the peak frame vs the input crop (dlib's same-person threshold: 0.6)",
    "'(neutral start)' rows: the photo's face was first warped back to neutral, lips shut (`--start`); '(auto "
    "start)': the same only where the lips are parted (inner gap > 0.04 IOD), else the photo as it is; their "
    "identity is measured against the photo as it is, f(I,0) against the crop the model was given; in the "
    "contact sheets and GIFs they are labelled '<model>/N' and '<model>/A'",
    "mean [95% bootstrap interval] and median [95% bootstrap interval] over photos (2000 resamples)",
]


def _safe(s: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in s)


def contact_sheet(members, models, emotion, stills, labels, panel: int = PANEL) -> np.ndarray:
    """One line per photo: the input, then each model's frames at SHEET_DEGREES (`stills`: (photo index,
    model, emotion) -> those frames); a photo without a face shows the photo and its reason."""
    import cv2

    def cell(img, text=""):
        c = np.pad(rp._fit(img, panel), ((1, 1), (1, 1), (0, 0)), constant_values=255)
        return rp._label(c, text, height=14) if text is not None else c

    keys = [k for k in models if emotion in models[k]]
    n_cols = 1 + len(SHEET_DEGREES) * len(keys)
    head = [cell(np.full((panel, panel, 3), 255, np.uint8), "input")]
    for k in keys:
        head += [cell(np.full((panel, panel, 3), 255, np.uint8), f"{labels[k]} a={a:g}") for a in SHEET_DEGREES]
    lines = [np.concatenate(head, axis=1)[:16]]
    for i, p in members:
        if p.landmarks is None:
            thumb = p.image if p.image is not None else np.full((panel, panel, 3), 200, np.uint8)
            first = cell(thumb, os.path.basename(p.name)[:20])
            blank = np.full((first.shape[0], first.shape[1] * (n_cols - 1), 3), 255, np.uint8)
            why = p.reason if p.reason.startswith("no face") else "no face: " + p.reason
            cv2.putText(blank, why[:90], (6, blank.shape[0] // 2), cv2.FONT_HERSHEY_SIMPLEX,
                        0.45, (160, 0, 0), 1, cv2.LINE_AA)
            lines.append(np.concatenate([first, blank], axis=1))
            continue
        vk = next(iter(p.views))
        row = [cell(p.views[vk]["crop"], os.path.basename(p.name)[:20])]
        for k in keys:
            v = stills.get((i, k, emotion))
            for j in range(len(SHEET_DEGREES)):
                row.append(cell(v[j], "") if v is not None else cell(np.full((panel, panel, 3), 255, np.uint8), ""))
        lines.append(np.concatenate(row, axis=1))
    w = max(x.shape[1] for x in lines)
    return np.concatenate([np.pad(x, ((0, 0), (0, w - x.shape[1]), (0, 0)), constant_values=255) for x in lines], axis=0)


# ================================================================ report
def _blocks(results: dict) -> list[tuple]:
    B: list[tuple] = [("h", 1, "ckpp benchmark report — photos in the wild")]
    B.append(("p", f"Created {results.get('created', '')} on {results.get('device', '?')}. "
                   "How to read every number: docs/evaluation.md (in-the-wild evaluation)."))
    B.append(("code", results.get("command", "")))
    rows = [[m["label"], m["family"], ", ".join(m["emotions"]), str(m["run"]), str(m.get("step", ""))]
            for m in results.get("models", {}).values()]
    if rows:
        B.append(("table", ["model", "family", "emotions", "run", "step"], rows))
    if results.get("warnings"):
        B.append(("h", 2, "Warnings"))
        B.append(("list", list(results["warnings"])))
    B.append(("h", 2, "Protocol"))
    B.append(("list", list(results.get("notes", []))))
    B.append(("h", 2, "Reference motion (training clips, onset → peak)"))
    rrows = []
    for e, r in results.get("reference", {}).items():
        g = r.get("gains") or {}
        rrows.append([e, "file landmarks, mean", str(r.get("n_clips", 0)), r.get("source", "")]
                     + [rp._fmt(g.get(k)) for k in fm.MEASURES])
        mg = r.get("measured_gains")
        if mg:
            rrows.append([e, "measured like generated frames, median", str(mg.get("n_clips", 0)), "model view, dlib"]
                         + [rp._fmt(mg.get(k)) for k in fm.MEASURES])
    B.append(("table", ["emotion", "how", "clips", "source"] + [f"{k} gain" for k in fm.MEASURES], rrows))
    B.append(("p", "The second row is the yardstick for the gains below: real training frames through the same "
                   "crop, size and dlib measurement as the generated ones."))
    labels = {k: m["label"] for k, m in results.get("models", {}).items()}
    for g, gs in results.get("groups", {}).items():
        B.append(("h", 2, f"{g} ({gs['n_faces']} faces in {gs['n_photos']} photos)"))
        if gs["no_face"]:
            B.append(("list", [f"{x['photo']}: {x['reason']}" for x in gs["no_face"]]))
        if gs.get("several_faces"):
            B.append(("list", [f"{x['photo']}: {x['faces']} faces; measured face {x['face_used']['rank']} at "
                               f"{x['face_used']['box']} ({', '.join(x['face_used']['reasons'])})"
                               for x in gs["several_faces"]]))
        for e in results.get("emotions", []):
            present = [k for k in gs["metrics"] if e in gs["metrics"][k]]
            if not present:
                continue
            B.append(("h", 3, f"{e}"))
            header = ["model"] + [f"{WILD_METRICS[m][0]} ({WILD_METRICS[m][2]})" for m in WILD_METRICS]
            trows, mrows = [], []
            for k in present:
                ms = gs["metrics"][k][e]
                n = max((v.get("n", 0) for v in ms.values()), default=0)
                lab = labels.get(k, labels.get(f"{k}:{e}", k))
                trows.append([f"{lab} (n={n})"] + [rp.fmt_ci(ms[m]) for m in WILD_METRICS])
                mrows.append([f"{lab} (n={n})"] + [_fmt_median(ms[m]) for m in WILD_METRICS])
            B.append(("p", "mean [95% bootstrap interval over photos]"))
            B.append(("table", header, trows))
            B.append(("p", "median [95% bootstrap interval over photos]"))
            B.append(("table", header, mrows))
            B.extend(jm.wild_blocks(results, g, gs, e, labels, rp.fmt_ci, _fmt_median))
            sheet = results.get("sheets", {}).get(f"{g}/{e}")
            if sheet:
                B.append(("img", sheet, f"contact sheet {g} {e}"))
    if results.get("compare"):
        B.append(("h", 2, "Side by side"))
        B.append(("p", "input | each model at the same degrees (animated)."))
        for c in results["compare"]:
            B.append(("h", 3, f"{c['photo']} ({c['emotion']})"))
            B.append(("img", c["gif"], f"compare {c['photo']}"))
    B.append(("h", 2, "Per photo"))
    prow = []
    for r in results.get("rows", []):
        prow.append([r["photo"], labels.get(r["model"], r["model"]), r["emotion"]]
                    + [rp._fmt(r.get(m)) for m in WILD_METRICS])
    for p in results.get("photos", []):
        if not p["face"]:
            prow.append([p["photo"], "–", "–", "no face: " + p["reason"]] + [""] * (len(WILD_METRICS) - 1))
    B.append(("table", ["photo", "model", "emotion"] + [WILD_METRICS[m][0] for m in WILD_METRICS], prow))
    B.append(("h", 2, "Metrics"))
    B.append(("table", ["metric", "unit", "better", "meaning"], [list(v) for v in WILD_METRICS.values()]))
    return B


def _fmt_median(s: dict) -> str:
    if not s or s.get("n", 0) == 0:
        return "–"
    if s["median_lo"] == s["median_hi"]:
        return rp._fmt(s["median"])
    return f"{rp._fmt(s['median'])} [{rp._fmt(s['median_lo'])}, {rp._fmt(s['median_hi'])}]"


def write_report(out_dir: str, results: dict) -> None:
    blocks = _blocks(results)
    rp._fsync_write(os.path.join(out_dir, "report.md"), rp.render_markdown(results, blocks).encode())
    rp._fsync_write(os.path.join(out_dir, "index.html"), rp.render_html(results, blocks).encode())
    rp.write_json(os.path.join(out_dir, "report.json"), results)


def summary_text(results: dict) -> str:
    """Terminal summary: per group and emotion, each model's medians of the headline metrics."""
    keys = ["detection_rate", "mouth_open_gain", "direction_cosine", "identity_distance", "l1_at_zero",
            "judge_recognised", "judge_p_peak", "sharpness_peak"]
    lines = []
    labels = {k: m["label"] for k, m in results.get("models", {}).items()}
    for g, gs in results["groups"].items():
        lines.append(f"{g}: {gs['n_faces']} faces in {gs['n_photos']} photos"
                     + (f" ({len(gs['no_face'])} without a face)" if gs["no_face"] else ""))
        short = {"detection_rate": "face found", "mouth_open_gain": "mouth open gain", "direction_cosine": "direction cos",
                 "identity_distance": "identity @peak", "l1_at_zero": "L1 at a=0", "judge_recognised": "judge: target",
                 "judge_p_peak": "P(target) peak", "sharpness_peak": "sharpness peak"}
        lines.append(f"  {'model':24s}{'emotion':10s}" + "".join(f"{short[k]:>18s}" for k in keys))
        for k, per_e in gs["metrics"].items():
            for e, ms in per_e.items():
                cells = "".join(f"{rp._fmt(ms[m]['mean' if m in ('detection_rate', 'judge_recognised') else 'median']):>18s}"
                                for m in keys)
                lines.append(f"  {labels.get(k, k)[:24]:24s}{e[:10]:10s}{cells}")
    lines.append("  (face found, judge: target = share recognised at the peak: means; others: median over photos)")
    return "\n".join(lines)
