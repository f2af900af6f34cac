"""Per-frame piecewise-affine warp of `ckpp sample`: ckpp's cv2 remap warper vs scikit-image.

ckpp_tools.expressions.PiecewiseAffine rasterises the target triangles once into an index map, builds the
remap tables with six small-table lookups and does one cv2.remap over the face's box. The naive way is
skimage.transform.PiecewiseAffineTransform + skimage.transform.warp over the whole frame, which finds each
pixel's triangle by a point-in-simplex search. Both warp the same identity through the same surprise
trajectory; the outputs are compared (mean absolute difference inside the face) so the speed-up is not
bought with a different picture.

    python benchmarks/bm_sample_warp.py [--size 640x480] [--frames 12] [--naive-frames 3]

Prints ms/frame and the ratio, writes benchmarks/results/bm_sample_warp-<W>x<H>.json.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ckpp_tools import expressions as ex  # noqa: E402
from ckpp_tools.sample import _identity  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", default="640x480")
    ap.add_argument("--frames", type=int, default=12)
    ap.add_argument("--naive-frames", type=int, default=3)
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    w, h = (int(v) for v in args.size.lower().split("x"))
    ident, warper = _identity(("videos", 1), 0, (w, h))
    anchors = warper.src[68:]
    targets = [np.concatenate([ex.displace(ident.landmarks, ident.shape + a * ex.DISPLACEMENTS["surprise"]), anchors])
               for a in np.linspace(0.1, 1.0, args.frames)]

    warper.warp(targets[0])  # warm-up
    fast = []
    for t in targets:
        t0 = time.perf_counter()
        warper.warp(t)
        fast.append(time.perf_counter() - t0)

    from skimage.transform import PiecewiseAffineTransform, warp

    naive, diffs = [], []
    step = max(1, len(targets) // args.naive_frames)
    for t in targets[::step][: args.naive_frames]:
        t0 = time.perf_counter()
        # maps output (target) coordinates to input (source) coordinates
        if hasattr(PiecewiseAffineTransform, "from_estimate"):
            tf = PiecewiseAffineTransform.from_estimate(t, warper.src)
        else:
            tf = PiecewiseAffineTransform()
            tf.estimate(t, warper.src)
        out = warp(ident.image, tf, output_shape=ident.image.shape[:2], order=1, preserve_range=True, mode="reflect")
        naive.append(time.perf_counter() - t0)
        ours = warper.warp(t).astype(np.float64)
        x0, y0, x1, y1 = (int(v) for v in (*t[:68].min(0), *t[:68].max(0)))
        diffs.append(float(np.abs(ours[y0:y1, x0:x1] - out[y0:y1, x0:x1]).mean()))

    res = {
        "benchmark": "bm_sample_warp", "size": [w, h], "frames": len(fast), "naive_frames": len(naive),
        "ours_ms_per_frame": 1000 * statistics.median(fast),
        "naive_skimage_ms_per_frame": 1000 * statistics.median(naive),
        "speedup": statistics.median(naive) / statistics.median(fast),
        "mean_abs_diff_in_face_gray_levels": statistics.mean(diffs),
        "machine": platform.platform(), "cpus": os.cpu_count(),
    }
    print(f"{w}x{h}: ckpp cv2 warper {res['ours_ms_per_frame']:.1f} ms/frame, skimage "
          f"{res['naive_skimage_ms_per_frame']:.1f} ms/frame -> {res['speedup']:.0f}x faster; "
          f"mean |difference| in the face {res['mean_abs_diff_in_face_gray_levels']:.2f} gray levels")
    out = args.out or os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", f"bm_sample_warp-{w}x{h}.json")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w") as fh:
        json.dump(res, fh, indent=2)
    print("wrote", out)


if __name__ == "__main__":
    main()
