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
    """n distinct photos made from every NBA file (headshots, placeholders, duplicates: a realistic mix) by
    re-cropping, rescaling, mirroring, recolouring and re-encoding; returns {variant file: source file} and
    the pixels of the largest variant."""
    import cv2

    rng = np.random.default_rng(seed)
    srcs = [os.path.join(folder, f) for f in sorted(os.listdir(folder))]
    os.makedirs(out_dir, exist_ok=True)
    source, largest = {}, 0
    for k in range(n):
        img = ps.read_photo(srcs[k % len(srcs)])
        h, w = img.shape[:2]
        dx, dy = rng.integers(0, max(1, w // 12) + 1, 2)
        img = img[dy:h - int(rng.integers(0, max(1, h // 12) + 1)), dx:w - int(rng.integers(0, max(1, w // 12) + 1))]
        s = rng.uniform(0.9, 1.6)
        img = cv2.resize(img, None, fx=s, fy=s, interpolation=cv2.INTER_CUBIC)
        if rng.random() < 0.5:
            img = img[:, ::-1]
        gains = rng.uniform(0.9, 1.1, 3)
        img = np.dstack([cv2.convertScaleAbs(np.ascontiguousarray(img[..., c]), alpha=float(gains[c])) for c in range(3)])
        ext = ".jpg" if rng.random() < 0.5 else ".png"
        name = f"v{k:05d}{ext}"
        cv2.imwrite(os.path.join(out_dir, name), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
        source[name] = os.path.basename(srcs[k % len(srcs)])
        largest = max(largest, img.shape[0] * img.shape[1])
    return source, largest


def _variants_job(args):
    return make_variants(*args)


class ChildPeakMemory:
    """Peak RSS of each child process (VmHWM from /proc, polled): the memory a worker used after it
    started, unlike getrusage(RUSAGE_CHILDREN), whose maxrss also counts the parent's pages a spawned
    child holds between fork and exec (so it reads the parent's size)."""

    def __init__(self, every=0.05):
        import threading

        self.every, self.peaks, self._stop = every, {}, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _children(self):
        me, out = str(os.getpid()), []
        for d in os.listdir("/proc"):
            if d.isdigit():
                try:
                    with open(f"/proc/{d}/stat") as fh:
                        if fh.read().rsplit(")", 1)[1].split()[1] == me:
                            out.append(d)
                except (OSError, IndexError):
                    pass
        return out

    def _run(self):
        while not self._stop.is_set():
            for pid in self._children():
                try:
                    with open(f"/proc/{pid}/status") as fh:
                        kb = next(int(line.split()[1]) for line in fh if line.startswith("VmHWM"))
                    self.peaks[pid] = max(self.peaks.get(pid, 0), kb)
                except (OSError, StopIteration, ValueError):
                    pass
            self._stop.wait(self.every)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def scale_check(n, workers, tmp):
    """Check a folder of n distinct photos from scratch; the variants are made in another process so the
    parent's peak memory is the check's own."""
    import multiprocessing as mp
    import resource

    d = os.path.join(tmp, f"scale{n}")
    with mp.get_context("spawn").Pool(1) as pool:
        source, largest = pool.apply(_variants_job, ((ps.nba_folder(), n, d),))
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    decoded = 0
    import cv2

    for f in os.listdir(d):   # what a naive "load every photo, then check" approach would hold at once
        im = cv2.imread(os.path.join(d, f), cv2.IMREAD_REDUCED_GRAYSCALE_8)
        decoded += im.shape[0] * im.shape[1] * 64 * 3
    t = time.perf_counter()
    with ChildPeakMemory() as mem:
        scan = ps.scan_folder(d, workers=workers, progress=True)
    sec = time.perf_counter() - t
    c = ps.report(scan)["counts"]
    peaks = sorted(mem.peaks.values(), reverse=True)
    res = {"photos": n, "workers": workers, "seconds": round(sec, 1), "photos_per_s": round(n / sec, 2), **c,
           "largest_photo_mpx": round(largest / 1e6, 1),
           "decoded_rgb_all_photos_mb": round(decoded / 2**20, 1),
           "peak_rss_parent_before_check_mb": round(rss0 / 1024, 1),
           "peak_rss_parent_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
           "peak_rss_workers_mb": [round(p / 1024, 1) for p in peaks[:workers]],
           "peak_rss_largest_worker_mb": round(peaks[0] / 1024, 1) if peaks else None}
    usable = {os.path.basename(b.path) for b in scan.usable}
    return res, source, usable


def scale_agreement(source, usable_variants, nba_scan):
    """Variants of usable headshots (any file with the same bytes as one) should be usable, variants of the
    files the NBA check skips (placeholders, the faceless image) skipped."""
    import hashlib

    ok = {b.sha1 for b in nba_scan.usable}
    cls = {}
    for s in set(source.values()):
        with open(os.path.join(nba_scan.folder, s), "rb") as fh:
            cls[s] = hashlib.sha1(fh.read()).hexdigest() in ok
    from_ok = [v for v, s in source.items() if cls[s]]
    from_bad = [v for v, s in source.items() if not cls[s]]
    return {"from_usable_headshots": len(from_ok), "of_those_usable": sum(v in usable_variants for v in from_ok),
            "from_skipped_files": len(from_bad), "of_those_skipped": sum(v not in usable_variants for v in from_bad),
            "skipped_files_with_a_usable_variant": sorted({source[v] for v in from_bad if v in usable_variants})}


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
        if args.scale:   # first, so the parent's peak memory is the check's
            res["scale"], scale_source, scale_usable = scale_check(args.scale, args.workers, tmp)
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
        if args.scale:
            res["scale"]["agreement_with_nba_check"] = scale_agreement(scale_source, scale_usable, scan)
            print("scale agreement:", res["scale"]["agreement_with_nba_check"])
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
    with open(args.out + ".partial", "w") as fh:
        json.dump(res, fh, indent=1)
    os.replace(args.out + ".partial", args.out)
    print("wrote", args.out)


if __name__ == "__main__":
    main()
