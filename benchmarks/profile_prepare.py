"""Where `ckpp prepare`'s worker spends its time: ms per source frame of `prepare.analyse` over every clip of a
RAW tree, by cost (cProfile; adds ~10 %), as JSON.

    python benchmarks/profile_prepare.py RAW
    python benchmarks/profile_prepare.py RAW --code /path/to/older/checkout    # that checkout's ckpp_tools

Run two checkouts back to back for a before/after (the machine's load drifts). The whole command (parent:
start-up, model load, writing) is better seen with py-spy: `py-spy record --subprocesses -- ckpp prepare ...`.
"""
import argparse
import cProfile
import dataclasses
import json
import os
import pstats
import sys
import time

ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
ap.add_argument("raw")
ap.add_argument("--code", default=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                help="checkout whose ckpp_tools to profile (default: this one)")
args = ap.parse_args()
sys.path.insert(0, os.path.abspath(args.code))
from ckpp_tools import prepare as P  # noqa: E402
from ckpp_tools.sources import find_clips  # noqa: E402
raw = args.raw
clips = [c for c in find_clips(raw)[0] if not c.reason]
P._preflight_backend("dlib")
opts = dataclasses.asdict(P.PrepareOptions())
import cv2  # noqa: E402

cv2.setNumThreads(1)  # as in the workers
P.analyse(clips[0].to_dict(), opts)
pr = cProfile.Profile(); nf = 0; kept = 0
t0 = time.perf_counter(); pr.enable()
for c in clips:
    r = P.analyse(c.to_dict(), opts); nf += r["n_source_frames"]; kept += (r["peak"] - r["onset"] + 1) if r["status"] == "accepted" else 0
pr.disable(); dt = time.perf_counter() - t0
st = pstats.Stats(pr).stats
def tot(pred, cum=False):
    return sum((v[3] if cum else v[2]) for k, v in st.items() if pred(k))
def calls(pred):
    return sum(v[1] for k, v in st.items() if pred(k))
isf = lambda name, file=None: (lambda k: k[2] == name and (file is None or k[0].endswith(file)))
rows = [
 ("dlib predictor calls (incl. points -> numpy)", tot(isf("predict", "dlib_backend.py"), True), calls(isf("predict", "dlib_backend.py"))),
 ("Gaussian smoothing of the face region (tracking fit)", tot(lambda k: "GaussianBlur" in k[2]), calls(lambda k: "GaussianBlur" in k[2])),
 ("video decode (VideoCapture.read)", tot(lambda k: "method 'read' of 'cv2.VideoCapture'" in k[2]), None),
 ("HOG detector", tot(isf("detect", "dlib_backend.py"), True), calls(isf("detect", "dlib_backend.py"))),
 ("image motion + NCC (warpAffine 64x64, phaseCorrelate, patch resize)", tot(isf("image_shift", "tracking.py"), True) + tot(isf("_patch", "tracking.py"), True), None),
 ("trim (quality.trim_landmarks)", tot(isf("trim_landmarks", "quality.py"), True), None),
 ("blur score + head motion", tot(isf("blur_score", "quality.py"), True) + tot(isf("head_motion", "quality.py"), True), None),
 ("crop (289x289 per kept frame)", tot(isf("crop_image", "crop.py"), True), None),
 ("mouth masks", tot(isf("mouth_masks", "masks.py"), True), None),
 ("mask compression (zlib)", tot(lambda k: "zlib.compress" in k[2]), None),
 ("gray conversion (to_gray)", tot(isf("to_gray", "tracking.py"), True), None),
 ("content hash", tot(isf("content_hash", "video_io.py"), True), None),
]
acc = sum(r[1] for r in rows)
rows.append(("other Python/numpy (tracking bookkeeping, checks, arrays)", dt - acc, None))
out = {"code": os.path.abspath(args.code), "load_averages": list(os.getloadavg()), "frames": nf, "kept": kept, "seconds": dt, "ms_per_frame": 1000 * dt / nf,
       "rows": [(n, 1000 * t / nf, c) for n, t, c in rows]}
print(json.dumps(out, indent=1))
