"""`ckpp sample --photos nba`: photo check speed, neutralisation quality, sample time, prepare acceptance.

1. Photo check of the NBA folder (decode, dedupe, detect, landmarks), cache off: ours (photo_sources:
   2 worker processes, 4 predictor calls a photo) vs naive (one process, the built-in photos' 24-call
   landmark procedure) on the same --naive-photos files; then the whole folder, ours, and again from the cache.
2. Neutralisation (neutral.py) on the headshots labelled by eye (benchmarks/data/nba_expression_labels.json):
   mouth width / IOD before and after, against the neutral photos' 5-95% range; also with the template fitted
   on half of the neutral photos and the range taken from the other half (no circularity).
3. `ckpp sample` time for --people people x --emotions, and (with --prepare) `ckpp prepare --size 64` acceptance.
4. With --scale N: a folder of N distinct photos (NBA headshots re-cropped, rescaled, mirrored, recoloured and
   re-encoded) checked from scratch: seconds and peak memory of the parent and of the largest worker.

    python benchmarks/bm_photo_sample.py [--people 338] [--emotions surprise,happy] [--prepare] [--scale 1000]

Writes benchmarks/results/bm_photo_sample.json.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from ckpp_tools import photo_sources as ps  # noqa: E402
from ckpp_tools.expressions import displace  # noqa: E402
from ckpp_tools.face_measures import measure  # noqa: E402
from ckpp_tools.neutral import FEATURES, features, neutralise  # noqa: E402


def naive_check(paths):
    """One process, every photo decoded and landmarked with the 24-call procedure."""
    out = []
    for p in paths:
        out.append(ps.check_photo(p, fast=False))
    return out


def make_variants(folder, n, out_dir, seed=0):
    """n distinct photos made from the usable NBA headshots (so their count and faces are realistic)."""
    import cv2

    rng = np.random.default_rng(seed)
    srcs = [os.path.join(folder, f) for f in sorted(os.listdir(folder))]
    os.makedirs(out_dir, exist_ok=True)
    k = 0
    while k < n:
        img = ps.read_photo(srcs[k % len(srcs)])
        h, w = img.shape[:2]
        dx, dy = rng.integers(0, max(1, w // 12) + 1, 2)
        img = img[dy:h - int(rng.integers(0, max(1, h // 12) + 1)), dx:w - int(rng.integers(0, max(1, w // 12) + 1))]
        s = rng.uniform(0.9, 1.6)
        img = cv2.resize(img, None, fx=s, fy=s, interpolation=cv2.INTER_CUBIC)
        if rng.random() < 0.5:
            img = img[:, ::-1]
        img = np.clip(img.astype(np.float32) * rng.uniform(0.9, 1.1, 3), 0, 255).astype(np.uint8)
        ext = ".jpg" if rng.random() < 0.5 else ".png"
        cv2.imwrite(os.path.join(out_dir, f"v{k:05d}{ext}"), cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_RGB2BGR))
        k += 1


def scale_check(n, workers, tmp):
    import resource

    d = os.path.join(tmp, f"scale{n}")
    make_variants(ps.nba_folder(), n, d)
    t = time.perf_counter()
    scan = ps.scan_folder(d, workers=workers, progress=True)
    sec = time.perf_counter() - t
    c = ps.report(scan)["counts"]
    return {"photos": n, "seconds": round(sec, 1), "photos_per_s": round(n / sec, 2), **c,
            "peak_rss_parent_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "peak_rss_largest_worker_mb": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1)}


def neutral_check(scan, labels):
    by = {b.name: b for b in scan.usable}
    neu = [by[n].landmarks for n in labels["neutral"] if n in by]
    smi = [by[n].landmarks for n in labels["smile"] if n in by]

    def widths(pts, tmpl=None):
        before = np.array([measure(p)["mouth_width"] for p in pts])
        after = np.array([measure(displace(p, neutralise(p, *(tmpl or (None, None)))[0]))["mouth_width"] for p in pts])
        return before, after

    nb, _ = widths(neu)
    lo, hi = np.percentile(nb, [5, 95])
    sb, sa = widths(smi)
    res = {"n_neutral": len(neu), "n_smile": len(smi), "neutral_width_p5_p50_p95": np.percentile(nb, [5, 50, 95]).round(4).tolist(),
           "smile_width_before_p5_p50_p95": np.percentile(sb, [5, 50, 95]).round(4).tolist(),
           "smile_width_after_p5_p50_p95": np.percentile(sa, [5, 50, 95]).round(4).tolist(),
           "smile_after_in_neutral_range": round(float(np.mean((sa >= lo) & (sa <= hi))), 4)}
    # held-out template: fit on even neutral photos, range from the odd ones
    fa = np.array([[features(p)[k] for k in FEATURES] for p in neu[0::2]])
    tmpl = ({k: float(fa[:, j].mean()) for j, k in enumerate(FEATURES)}, {k: float(fa[:, j].std()) for j, k in enumerate(FEATURES)})
    ob, _ = widths(neu[1::2])
    lo2, hi2 = np.percentile(ob, [5, 95])
    _, sa2 = widths(smi, tmpl)
    res["split_template"] = {"template": {k: round(v, 4) for k, v in tmpl[0].items()},
                             "range_from_other_half": [round(lo2, 4), round(hi2, 4)],
                             "smile_after_in_range": round(float(np.mean((sa2 >= lo2) & (sa2 <= hi2))), 4),
                             "smile_width_after_p50": round(float(np.median(sa2)), 4)}
    return res


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--naive-photos", type=int, default=40)
    ap.add_argument("--people", type=int, default=None, help="people in the sample [default: all but the held-out]")
    ap.add_argument("--hold-out", type=int, default=40)
    ap.add_argument("--emotions", default="surprise,happy")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--prepare", action="store_true", help="also run ckpp prepare --size 64 on the sample")
    ap.add_argument("--scale", type=int, default=0, help="also check a folder of this many distinct photos")
    ap.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "results", "bm_photo_sample.json"))
    args = ap.parse_args(argv)
    tmp = tempfile.mkdtemp(prefix="bm_photo_sample-")
    env = dict(os.environ, CKPP_CACHE=os.path.join(tmp, "cache"), PYTHONPATH=ROOT)
    os.environ["CKPP_CACHE"] = "off"
    res = {"machine": platform.platform(), "cpus": os.cpu_count()}
    try:
        if args.scale:   # first, so the children's peak memory is the photo workers'
            res["scale"] = scale_check(args.scale, args.workers, tmp)
            print("scale:", res["scale"])
        folder = ps.nba_folder()
        files = sorted(os.path.join(folder, f) for f in os.listdir(folder))
        sub = [f for f in files][:: max(1, len(files) // args.naive_photos)][: args.naive_photos]
        sub_dir = os.path.join(tmp, "subset")
        os.makedirs(sub_dir)
        for f in sub:
            shutil.copy(f, sub_dir)
        t = time.perf_counter()
        naive_check([os.path.join(sub_dir, os.path.basename(f)) for f in sub])
        t_naive = time.perf_counter() - t
        t = time.perf_counter()
        ps.scan_folder(sub_dir, workers=args.workers, progress=False)
        t_ours = time.perf_counter() - t
        res["check_subset"] = {"photos": len(sub), "naive_s": round(t_naive, 2), "ours_s": round(t_ours, 2),
                               "speedup": round(t_naive / t_ours, 2)}
        print("photo check on", len(sub), "photos: naive", round(t_naive, 1), "s, ours", round(t_ours, 1), "s")
        t = time.perf_counter()
        scan = ps.scan_folder(folder, workers=args.workers, progress=True, source="nba")
        res["check_nba"] = {"seconds": round(time.perf_counter() - t, 2), **ps.report(scan)["counts"]}
        iod = np.array([b.iod for b in scan.usable])
        res["check_nba"]["iod_px_p5_p50_p95"] = np.percentile(iod, [5, 50, 95]).round(1).tolist()
        print(json.dumps(res["check_nba"]))
        with open(os.path.join(ROOT, "benchmarks", "data", "nba_expression_labels.json")) as fh:
            res["neutralisation"] = neutral_check(scan, json.load(fh))
        print(json.dumps(res["neutralisation"]))
        out_dir = os.path.join(tmp, "raw")
        cmd = [sys.executable, "-m", "ckpp_tools.cli", "sample", out_dir, "--photos", "nba", "--hold-out",
               str(args.hold_out), "--emotions", args.emotions, "--no-ckplus", "--no-bad-cases",
               "--workers", str(args.workers)] + (["--subjects", str(args.people)] if args.people else [])
        for label in ("sample_first_s", "sample_cached_s"):
            shutil.rmtree(out_dir, ignore_errors=True)
            t = time.perf_counter()
            subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            res[label] = round(time.perf_counter() - t, 2)
        with open(os.path.join(out_dir, "truth.json")) as fh:
            n_clips = len(json.load(fh)["clips"])
        res["sample"] = {"clips": n_clips, "emotions": args.emotions, "hold_out": args.hold_out,
                         "clips_per_s_cached": round(n_clips / res["sample_cached_s"], 2)}
        print("sample:", res["sample"], res["sample_first_s"], "s first,", res["sample_cached_s"], "s cached")
        if args.prepare:
            h5 = os.path.join(tmp, "data.h5")
            t = time.perf_counter()
            subprocess.run([sys.executable, "-m", "ckpp_tools.cli", "prepare", out_dir, h5, "--size", "64",
                            "--workers", str(args.workers)], check=True, env=env, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
            import h5py

            with h5py.File(h5, "r") as f:
                man = f["manifest"]
                status = [s.decode() if isinstance(s, bytes) else str(s) for s in man["status"][()]]
                reason = [s.decode() if isinstance(s, bytes) else str(s) for s in man["reason"][()]]
            from collections import Counter

            res["prepare"] = {"seconds": round(time.perf_counter() - t, 2), "clips": len(status),
                              "accepted": status.count("accepted"),
                              "rejected_by_reason": dict(Counter(r for s, r in zip(status, reason) if s != "accepted"))}
            print("prepare:", res["prepare"])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as fh:
        json.dump(res, fh, indent=1)
    print("wrote", args.out)


if __name__ == "__main__":
    main()
