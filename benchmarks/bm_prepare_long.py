"""`ckpp prepare` on long inputs, where start-up no longer counts: one 10,000-frame video, 500 short clips,
and the peak memory of the run against clip length.

    python benchmarks/bm_prepare_long.py                     # ~10 min on a busy 2-core machine
    python benchmarks/bm_prepare_long.py --frames 3000 --clips 100

Inputs are made from a small sample (`make_sample(small=True)`, 320x240 -- at 640x480 a 10,000-frame clip
alone would hold ~12 GB of decoded frames in its worker):
- long video: a take's neutral frames played back and forth, then the take (one expression at the end of
  a long recording), --frames frames in all, prepared with --max-frames raised to fit it;
- many clips: --clips takes, each a sample take with its own brightness offset / mirror / start frame (so no
  two are byte-identical and none is rejected as a duplicate);
- memory: single-clip inputs of 250 / 1,000 / 3,000 frames (and the long video), `--workers 1`: peak RSS of
  the largest process of the run (the worker holding the clip), from the OS (ru_maxrss of the children).

The naive pipeline (bm_prepare.naive) is timed in the same run on a part of the same frames, just before and
just after ours (the mean of the two rates; both are in the JSON), so the ratios hold under whatever load the
machine has. Writes benchmarks/results/bm_prepare_long.json.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

_PEAK = r"""
import resource, subprocess, sys, time, json
t0 = time.perf_counter()
r = subprocess.run(sys.argv[1:], capture_output=True, text=True)
sec = time.perf_counter() - t0
print(json.dumps({"rc": r.returncode, "seconds": sec, "peak_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
                  "stderr": r.stderr[-2000:]}))
"""


def prepare_peak(raw: str, out: str, workers: int, extra=()) -> dict:
    """Run `ckpp prepare` in a fresh wrapper process: wall seconds, peak RSS of its largest process, frames."""
    cmd = [sys.executable, "-m", "ckpp_tools.cli", "prepare", raw, out, "--workers", str(workers), "--quiet",
           "--overwrite", *extra]
    r = json.loads(subprocess.run([sys.executable, "-c", _PEAK, *cmd], capture_output=True, text=True, check=True).stdout)
    if r["rc"] != 0:
        raise SystemExit(f"prepare failed: {r['stderr']}")
    from ckpp_tools.reader import open_dataset

    m = open_dataset(out).manifest
    frames = int(m["n_source_frames"].clip(lower=0).sum())
    return {"seconds": r["seconds"], "source_frames": frames, "frames_per_s": frames / r["seconds"],
            "peak_rss_mb": r["peak_rss_mb"], "clips": int(len(m)), "accepted": int((m["status"] == "accepted").sum()),
            "statuses": m["status"].str.cat(m["reason"], sep=":").value_counts().to_dict()}


def sandwich(before: dict, after: dict) -> dict:
    """The naive pipeline timed before and after ours: the mean of the two rates (both kept)."""
    before.pop("errors", None)
    after.pop("errors", None)
    return dict(after, frames_per_s=(before["frames_per_s"] + after["frames_per_s"]) / 2,
                frames_per_s_before=before["frames_per_s"], frames_per_s_after=after["frames_per_s"])


def loop_frames(frames: list, n: int) -> list:
    seq = list(frames) + list(frames[::-1])
    return [seq[i % len(seq)] for i in range(n)]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--frames", type=int, default=10_000, help="frames of the long video")
    ap.add_argument("--clips", type=int, default=500, help="short clips")
    ap.add_argument("--lengths", default="250,1000,3000", help="clip lengths for the memory curve")
    ap.add_argument("--naive-frames", type=int, default=240, help="frames the naive pipeline is timed on, per input")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "bm_prepare_long.json"))
    args = ap.parse_args()

    from bm_prepare import naive

    from ckpp_tools import video_io
    from ckpp_tools.sample import make_sample, write_mp4
    from ckpp_tools.sources import find_clips

    tmp = tempfile.mkdtemp(prefix="bm_prepare_long-")
    base = os.path.join(tmp, "base")
    print(f"making a small sample in {base} ...", flush=True)
    make_sample(base, subjects=3, seed=0, small=True, ckplus=False, bad_cases=False, workers=1, progress=False)
    takes = [c for c in find_clips(base)[0] if not c.reason]
    decoded = {c.path: video_io.read_clip(c.path).frames for c in takes}
    res = {"machine": {"python": platform.python_version(), "cpu_count": os.cpu_count(), "platform": platform.platform(),
                       "load_average_1min_start": os.getloadavg()[0],
                       "load_averages_start": list(os.getloadavg())}, "frame_size": list(decoded[takes[0].path][0].shape[1::-1])}

    def single(n: int, name: str) -> str:
        raw = os.path.join(tmp, name)
        os.makedirs(os.path.join(raw, "ours", "P001"), exist_ok=True)
        path = os.path.join(raw, "ours", "P001", "happy_01.mp4")
        happy = decoded[next(c for c in takes if c.emotion == "happy").path]
        # a long recording with one expression at its end: the take's neutral frames back and forth, then the take
        write_mp4(path, loop_frames(happy[:4], max(0, n - len(happy))) + happy[: n])
        return raw

    # 1. one long video
    print(f"long video: {args.frames} frames ...", flush=True)
    raw_long = single(args.frames, "long")
    # naive on the first --naive-frames frames of the same video (a rate: a part is enough), timed just before
    # and just after ours (the load of a shared machine drifts over a run): their mean rate
    part = single(args.naive_frames, "long_part")
    nv_before = naive([("x", os.path.join(part, "ours", "P001", "happy_01.mp4"))], {})
    r = prepare_peak(raw_long, os.path.join(tmp, "long.h5"), 1, ["--max-frames", str(args.frames + 10)])
    nv = sandwich(nv_before, naive([("x", os.path.join(part, "ours", "P001", "happy_01.mp4"))], {}))
    res["long_video"] = {"frames": args.frames, "ours_workers1": r, "naive": nv,
                         "ratio_workers1_vs_naive": r["frames_per_s"] / nv["frames_per_s"]}
    print(f"  ours {r['frames_per_s']:.0f} frames/s (peak {r['peak_rss_mb']:.0f} MB, {r['statuses']}), naive "
          f"{nv['frames_per_s']:.1f} frames/s: x{res['long_video']['ratio_workers1_vs_naive']:.1f}", flush=True)

    # 2. many short clips
    print(f"{args.clips} short clips ...", flush=True)
    raw_many = os.path.join(tmp, "many")
    for k in range(args.clips):
        c = takes[k % len(takes)]
        v = k // len(takes)
        fr = decoded[c.path][v % 3:]
        if (v // 3) % 2:
            fr = [np.ascontiguousarray(f[:, ::-1]) for f in fr]
        shift = (v // 6) % 9 - 4
        fr = [np.clip(f.astype(np.int16) + shift, 0, 255).astype(np.uint8) for f in fr]
        d = os.path.join(raw_many, "ours", f"S{k // 4:03d}")
        os.makedirs(d, exist_ok=True)
        write_mp4(os.path.join(d, f"{c.emotion}_{k % 4 + 1:02d}.mp4"), fr)
    many = {}
    sel, n = [], 0
    for c in sorted(find_clips(raw_many)[0], key=lambda c: c.clip_id):
        sel.append((c.source, c.path))
        n += video_io.read_clip(c.path).n
        if n >= args.naive_frames:
            break
    nv_before = naive(sel, {})
    for w in (1, 2):
        many[f"ours_workers{w}"] = prepare_peak(raw_many, os.path.join(tmp, f"many{w}.h5"), w)
    nv = sandwich(nv_before, naive(sel, {}))
    many["naive"] = nv
    many["ratio_workers1_vs_naive"] = many["ours_workers1"]["frames_per_s"] / nv["frames_per_s"]
    many["ratio_workers2_vs_naive"] = many["ours_workers2"]["frames_per_s"] / nv["frames_per_s"]
    many["ratio_workers2_vs_workers1"] = many["ours_workers2"]["frames_per_s"] / many["ours_workers1"]["frames_per_s"]
    res["short_clips"] = dict(many, clips=args.clips)
    print(f"  ours {many['ours_workers1']['frames_per_s']:.0f} / {many['ours_workers2']['frames_per_s']:.0f} frames/s "
          f"(workers 1 / 2), naive {nv['frames_per_s']:.1f}: x{many['ratio_workers1_vs_naive']:.1f} / "
          f"x{many['ratio_workers2_vs_naive']:.1f}, workers 2 / 1 x{many['ratio_workers2_vs_workers1']:.2f}", flush=True)

    # 3. peak memory against clip length
    mem = []
    for n in [int(x) for x in args.lengths.split(",") if x]:
        raw = single(n, f"len{n}")
        r = prepare_peak(raw, os.path.join(tmp, f"len{n}.h5"), 1, ["--max-frames", str(n + 10)])
        mem.append({"frames": n, "peak_rss_mb": r["peak_rss_mb"], "frames_per_s": r["frames_per_s"], "statuses": r["statuses"]})
        print(f"  {n:6d} frames: peak {r['peak_rss_mb']:.0f} MB, {r['frames_per_s']:.0f} frames/s", flush=True)
    mem.append({"frames": args.frames, "peak_rss_mb": res["long_video"]["ours_workers1"]["peak_rss_mb"],
                "frames_per_s": res["long_video"]["ours_workers1"]["frames_per_s"]})
    xs = np.array([m["frames"] for m in mem], float)
    ys = np.array([m["peak_rss_mb"] for m in mem], float)
    slope, icpt = np.polyfit(xs, ys, 1)
    res["memory"] = {"points": mem, "mb_per_frame": float(slope), "mb_at_zero": float(icpt),
                     "bytes_per_pixel_per_frame": float(slope * 2 ** 20 / np.prod(res["frame_size"]))}
    print(f"  peak memory ~ {icpt:.0f} MB + {slope:.3f} MB/frame ({res['memory']['bytes_per_pixel_per_frame']:.1f} bytes "
          f"per source pixel per frame)", flush=True)
    res["machine"]["load_average_1min_end"] = os.getloadavg()[0]
    res["machine"]["load_averages_end"] = list(os.getloadavg())
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as fh:
        json.dump(res, fh, indent=2)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
