"""Is the face as large in the network's training view as in the view `ckpp generate` takes of a photo, and what
does a mismatch cost? (the finding behind Config.crop_from, docs/recipe.md "The view").

`prepare` stores one crop box per clip that holds the union of ALL its frames (DESIGN §4); the network trains on
its central crop_fraction. A photo has one frame: `ckpp generate` (face_geometry.crop_matrix) takes the same box of
that frame alone. Where the clip's face grows (surprise's jaw drops), the training view shows it smaller than a
photo's view does. This measures, on people never in training:

1. scale: for every accepted clip of a prepared file, the similarity scale from the training view's onset
   landmarks (models.data.ClipDataset, un-augmented, crop_from clip and onset) to generate's view of the same
   onset frame (face_geometry.face_crop on the raw frame, eyes not levelled) — 1.0 = the same face size;
2. motion: a model's videos (`generate.animate`, 2 frames, degree 1) from each clip's onset frame cropped as
   generate crops it, and as the training view would (`--zoom`: the crop enlarged by that factor), dlib's 68
   landmarks at frame 0 and the peak, motion length in IOD units; beside it the same clips' own onset -> peak as
   dlib sees them (the data's motion: what a model that learnt it fully would show).

    ckpp sample /tmp/v/raw --photos held-out-folder --emotions surprise,sadness --hold-out 0 --no-bad-cases
    ckpp prepare /tmp/v/raw /tmp/v/data.h5 --size 88 --split 0,0,1
    python benchmarks/bm_view_scale.py --raw /tmp/v/raw --data /tmp/v/data.h5 --model pretrained \\
        --zoom 1.19 --out benchmarks/results/view_scale.json
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def rgb(frame: np.ndarray) -> np.ndarray:
    return np.repeat(frame[..., None], 3, axis=2) if frame.ndim == 2 else frame


def main() -> None:
    import cv2
    import h5py
    import torch
    from tqdm import tqdm

    from bm_landmark_motion import square_around
    from ckpp_tools import video_io
    from ckpp_tools.emotions import EXPRESSIONS
    from ckpp_tools.face_geometry import face_crop
    from ckpp_tools.sample import load_truth
    from models import landmark_motion as lm
    from models.benchmark import Measurer
    from models.data import ClipDataset
    from models.generate import animate
    from models.pipeline import ExpressionPipeline

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--raw", required=True, help="the `ckpp sample` folder the prepared file was made from")
    ap.add_argument("--data", required=True, help="the prepared file (its people never in the model's training)")
    ap.add_argument("--model", default="pretrained")
    ap.add_argument("--split", default="test")
    ap.add_argument("--emotions", default="surprise,sadness")
    ap.add_argument("--zoom", type=float, default=1.19, help="crop enlargement that mimics the clip-box view")
    ap.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "results", "view_scale.json"))
    args = ap.parse_args()
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    t0 = time.time()
    emotions = args.emotions.split(",")
    truth = load_truth(args.raw)["clips"]
    pipe = ExpressionPipeline.from_pretrained(args.model)
    fam, size, frac = pipe.family, pipe.family.cfg.image_size, pipe.family.cfg.crop_fraction
    meas = Measurer(identity=False)
    views = {v: ClipDataset([args.data], list(EXPRESSIONS), args.split, image_size=size, crop_fraction=frac,
                            augment=False, target="peak", require_all=False, crop_from=v) for v in ("clip", "onset")}
    rows = []
    with h5py.File(args.data) as f:
        clips = [(i, cid, EXPRESSIONS[e]) for i, (_, cid, e, _) in enumerate(views["clip"].clips)
                 if EXPRESSIONS[e] in emotions]
        for i, cid, emotion in tqdm(clips, desc="clips", unit="clip"):
            source = str(f["clips"][cid].attrs["source"])
            e = truth[source]
            dec = video_io.read_clip(os.path.join(args.raw, source), max_frames=int(e["peak"]) + 1)
            frame = rgb(dec.frames[0])                       # the raw clip's first frame, as a photo
            fc = face_crop(frame, size, frac, align=False)
            row = {"clip": cid, "emotion": emotion}
            for v, ds in views.items():
                s, _, _ = lm.similarity(np.asarray(ds[i]["input_landmarks"]) * size, fc.crop_landmarks)
                row[f"scale_{v}_view"] = round(float(s), 4)
            # the data's own motion as dlib sees it, and the model's from generate's view and a zoomed-out one
            pts0 = np.asarray(e["landmarks"][int(e["onset"])], np.float64)
            f0, _, _ = square_around(dec.frames[int(e["onset"])], pts0)
            f1, _, _ = square_around(dec.frames[int(e["peak"])], pts0)
            l, _ = meas.measure(np.stack([f0, f1]))
            row["data_motion"] = lm.magnitude(lm.normalised_motion(l[0], l[1])) if np.all(np.isfinite(l)) else None
            for tag, zoom in (("model_motion_generate_view", 1.0), ("model_motion_zoomed_view", args.zoom)):
                c = fc.crop if zoom == 1.0 else face_crop(frame, size, frac * zoom, align=False,
                                                          landmarks=fc.landmarks).crop   # detected once
                v = animate(fam, [c], {emotion: 1.0}, 2, crops_hr=[cv2.resize(c, (256, 256),
                                                                              interpolation=cv2.INTER_CUBIC)])[0]
                l2, _ = meas.measure(np.stack([v[0], v[1]]))
                row[tag] = lm.magnitude(lm.normalised_motion(l2[0], l2[1])) if np.all(np.isfinite(l2)) else None
            rows.append(row)

    def med(key, emotion):
        v = [r[key] for r in rows if r["emotion"] == emotion and r.get(key) is not None]
        return round(float(np.median(v)), 4) if v else None

    keys = ("scale_clip_view", "scale_onset_view", "data_motion", "model_motion_generate_view",
            "model_motion_zoomed_view")
    summary = {e: dict({k: med(k, e) for k in keys}, clips=sum(r["emotion"] == e for r in rows)) for e in emotions}
    out = {"what": __doc__.split("\n")[0], "command": "python benchmarks/bm_view_scale.py " + " ".join(sys.argv[1:]),
           "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
           "seconds": round(time.time() - t0, 1), "model": {"arg": args.model, "step": pipe.meta.get("step"),
                                                           "crop_from": getattr(fam.cfg, "crop_from", "clip")},
           "data": os.path.abspath(args.data), "zoom": args.zoom,
           "notes": ["scale_*_view: similarity scale training view -> generate's view of the same onset frame "
                     "(median; > 1: the face is larger in generate's view)",
                     "*_motion: dlib, frame 0 -> peak, IOD units (landmark_motion.normalised_motion, eye frame)"],
           "summary": summary, "rows": rows}
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out + ".partial", "w") as fh:
        json.dump(out, fh, indent=1)
    os.replace(args.out + ".partial", args.out)
    for e, s in summary.items():
        print(e, json.dumps(s))


if __name__ == "__main__":
    main()
