"""`ckpp prepare` on HD recordings (issue 26): one real-face take at 640x360, 1920x1080 and 3840x2160, and a
2-minute 1080p take, against the code before issue 26 (which held every decoded frame, cut at 2 GiB).

    python benchmarks/bm_hd_video.py                                  # ~15-20 min on a busy 2-core machine
    python benchmarks/bm_hd_video.py --rounds 1 --long-seconds 0      # the three sizes only
    python benchmarks/bm_hd_video.py --workdir /tmp/hd                # keep (and reuse) the clips there

1. The take: a real photo (ckpp_tools/data/unlike/obama.jpg: a man) placed on a 640x360 canvas and warped along
   a smile with the sample renderer (sample.render): 432 neutral frames (14.4 s at 30 fps) with a slight
   head sway (< 1 px) and sensor noise (sigma 2), a 12-frame eased rise, 108 frames held -- 552 frames, H.264
   (libx264 CRF 20, imageio-ffmpeg's ffmpeg); then scaled (bicubic) to 1920x1080 and 3840x2160 and encoded again.
2. Each copy, `ckpp prepare RAW out.h5 --workers 1`, this code and the old code (`--old`: a checkout; default
   the commit before issue 26 via `git archive`), interleaved over --rounds rounds (medians; ratios within a
   round): frames read, status, onset/peak, source frames/s of the whole command, peak memory.
3. Peak memory of the whole command: the sum of PSS over its process tree (parent + workers; shared pages
   counted once), sampled every 50 ms, and the largest single process' peak RSS (ru_maxrss).
4. Landmarks: median NME of the HD copies' stored landmarks (back in source pixels) against the 640x360
   copy's scaled up, over the kept frames they share.
5. --long-seconds (default 120): a 1080p take that long (the take's neutral frames played back and forth,
   then its smile), twice (the second mirrored) so `--workers 2` analyses two at once: time, memory, trims.

Writes benchmarks/results/bm_hd_video.json.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

#: the code before issue 26 (read_clip of whole clips, 2 GiB guard)
OLD_COMMIT = "0d0bb7e5ad703917e01f7d468fb080460ef15805"
SIZES = ((640, 360), (1920, 1080), (3840, 2160))
N_PRE, N_RISE, N_FRAMES, FPS = 432, 12, 552, 30

_PEAK = r"""
import json, os, resource, subprocess, sys, threading, time

def tree(pid):
    kids, out = {}, [pid]
    for d in os.listdir('/proc'):
        if d.isdigit():
            try:
                with open(f'/proc/{d}/stat') as fh:
                    ppid = int(fh.read().rsplit(')', 1)[1].split()[1])
                kids.setdefault(ppid, []).append(int(d))
            except (OSError, ValueError, IndexError):
                pass
    for p in out:
        out.extend(kids.get(p, []))
    return out

def pss(pid):
    try:
        with open(f'/proc/{pid}/smaps_rollup') as fh:
            for line in fh:
                if line.startswith('Pss:'):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0

t0 = time.perf_counter()
p = subprocess.Popen(sys.argv[1:], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
peak = [0]
def poll():
    while p.poll() is None:
        peak[0] = max(peak[0], sum(pss(q) for q in tree(p.pid)))
        time.sleep(0.05)
th = threading.Thread(target=poll, daemon=True)
th.start()
out, err = p.communicate()
sec = time.perf_counter() - t0
th.join()
print(json.dumps({"rc": p.returncode, "seconds": sec, "pss_peak_mb": peak[0] / 2 ** 20,
                  "max_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, "stderr": err[-3000:]}))
"""


def ffmpeg() -> str:
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def encode(path: str, frames, size, vf: str | None = None, preset: str = "fast") -> None:
    """Raw RGB frames (an iterable of (H,W,3) uint8 of `size`) -> H.264 mp4, optionally through a filter."""
    w, h = size
    cmd = [ffmpeg(), "-y", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}", "-r", str(FPS),
           "-i", "-"] + (["-vf", vf] if vf else []) + ["-c:v", "libx264", "-preset", preset, "-crf", "20",
                                                      "-pix_fmt", "yuv420p", path]
    os.makedirs(os.path.dirname(path), exist_ok=True)
    p = subprocess.Popen(cmd, stdin=subprocess.PIPE)
    for f in frames:
        p.stdin.write(np.ascontiguousarray(f).tobytes())
    p.stdin.close()
    if p.wait() != 0:
        raise SystemExit(f"ffmpeg failed on {path}")


def make_take(path: str, seed: int = 5) -> list:
    """The 552-frame 640x360 take (see the module docstring); returns its RGB frames."""
    import cv2

    from ckpp_tools import expressions as ex, photo_sources, sample

    base = next(p for p in photo_sources.resolve("unlike", workers=1, progress=False).usable if p.name == "obama")
    W, H = SIZES[0]
    ident, warper = sample._identity(("videos", 0, False), 0, (W, H), (0.13, 0.15), None, base)
    frames, _, _ = sample.render(ident, warper, "happy", ex.video_intensity(N_PRE, N_RISE, N_FRAMES - N_PRE - N_RISE))
    rng = np.random.default_rng(seed)
    out = []
    for t, f in enumerate(frames):   # a living head: sub-pixel sway, and a camera's noise
        dx = 0.8 * np.sin(2 * np.pi * t / 97) + 0.4 * np.sin(2 * np.pi * t / 41 + 1)
        dy = 0.5 * np.sin(2 * np.pi * t / 131 + 2)
        g = cv2.warpAffine(f, np.float32([[1, 0, dx], [0, 1, dy]]), (W, H), flags=cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_REFLECT101)
        out.append(np.clip(g + rng.normal(0, 2.0, g.shape), 0, 255).astype(np.uint8))
    encode(path, out, (W, H))
    return out


def long_order(n_total: int) -> list[int]:
    """Frame indices of a long take: the neutral frames back and forth, then the smile and what follows it."""
    tail = list(range(N_PRE - 1, N_FRAMES))
    neutral = list(range(N_PRE - 1)) + list(range(N_PRE - 2, 0, -1))
    body = [neutral[i % len(neutral)] for i in range(max(0, n_total - len(tail)))]
    return body + tail


def clips(work: str, long_seconds: float) -> dict:
    """Make (or reuse) the takes under `work`: {name: RAW folder}."""
    import cv2

    raws = {}
    p360 = os.path.join(work, "raw640x360", "ours", "P001", "happy_01.mp4")
    frames = None
    if not os.path.isfile(p360):
        print("rendering the 640x360 take ...", flush=True)
        frames = make_take(p360)
    raws["640x360"] = os.path.dirname(os.path.dirname(os.path.dirname(p360)))
    for w, h in SIZES[1:]:
        p = os.path.join(work, f"raw{w}x{h}", "ours", "P001", "happy_01.mp4")
        if not os.path.isfile(p):
            print(f"scaling it to {w}x{h} ...", flush=True)
            os.makedirs(os.path.dirname(p), exist_ok=True)
            r = subprocess.run([ffmpeg(), "-y", "-loglevel", "error", "-i", p360, "-vf", f"scale={w}:{h}:flags=bicubic",
                                "-c:v", "libx264", "-preset", "veryfast", "-crf", "20", "-pix_fmt", "yuv420p", p])
            if r.returncode:
                raise SystemExit(f"ffmpeg failed on {p}")
        raws[f"{w}x{h}"] = os.path.dirname(os.path.dirname(os.path.dirname(p)))
    if long_seconds > 0:
        n = int(round(long_seconds * FPS))
        raw = os.path.join(work, f"raw1080p-{n}")
        if frames is None:
            cap = cv2.VideoCapture(p360)
            frames = []
            while True:
                ok, img = cap.read()
                if not ok:
                    break
                frames.append(cv2.cvtColor(img, cv2.COLOR_BGR2RGB))
        order = long_order(n)
        for sid, vf in (("P001", "scale=1920:1080:flags=bicubic"), ("P002", "hflip,scale=1920:1080:flags=bicubic")):
            p = os.path.join(raw, "ours", sid, "happy_01.mp4")
            if not os.path.isfile(p):
                print(f"encoding a {n}-frame 1080p take ({sid}) ...", flush=True)
                encode(p + ".partial.mp4", (frames[i] for i in order), SIZES[0], vf=vf, preset="ultrafast")
                os.replace(p + ".partial.mp4", p)
        raws["long"] = raw
    return raws


def run(raw: str, out: str, workers: int, code: str | None = None, extra=()) -> dict:
    """`ckpp prepare` (this code, or the checkout `code`) in a fresh wrapper: seconds, memory, the rows."""
    cmd = [sys.executable, "-m", "ckpp_tools.cli", "prepare", raw, out, "--workers", str(workers), "--quiet",
           "--overwrite", *extra]
    env = dict(os.environ, PYTHONPATH=code or ROOT)
    r = json.loads(subprocess.run([sys.executable, "-c", _PEAK, *cmd], capture_output=True, text=True, check=True,
                                  env=env, cwd=code or ROOT).stdout)
    if r["rc"] != 0:
        raise SystemExit(f"prepare failed: {r['stderr']}")
    from ckpp_tools.reader import open_dataset

    m = open_dataset(out).manifest
    frames = int(m["n_source_frames"].clip(lower=0).sum())
    rows = [{k: (int(v) if k in ("n_source_frames", "onset", "peak") else str(v)) for k, v in row.items()
             if k in ("clip_id", "status", "reason", "n_source_frames", "onset", "peak", "detail")}
            for row in m.to_dict("records")]
    return {"seconds": r["seconds"], "source_frames": frames, "frames_per_s": frames / r["seconds"],
            "pss_peak_mb": r["pss_peak_mb"], "max_rss_mb": r["max_rss_mb"], "rows": rows}


def stored_landmarks(out: str):
    from ckpp_tools.crop import from_crop
    from ckpp_tools.reader import open_dataset

    ds = open_dataset(out)
    ids = ds.clip_ids()
    if not ids:
        return None
    c = ds.clip(ids[0], frames=False)
    return (from_crop(c.landmarks, c.attrs["crop_box"], ds.image_size).astype(np.float64),
            [int(i) for i in c.source_index], float(c.attrs["blur_score"]))


def nme_vs(ref, ref_w: int, got, got_w: int) -> dict:
    """Median / max NME of `got` against `ref` scaled to got's size (pixel centres: x' = f x + (f - 1) / 2)."""
    if ref is None or got is None:
        return {}
    f = got_w / ref_w
    (rl, ri, _), (gl, gi, _) = ref, got
    e = []
    for i in sorted(set(ri) & set(gi)):
        r = rl[ri.index(i)] * f + (f - 1) / 2
        e.append(float(np.linalg.norm(gl[gi.index(i)] - r, axis=1).mean() / np.linalg.norm(r[36] - r[45])))
    return {"frames": len(e), "median_nme": float(np.median(e)) if e else float("nan"),
            "max_nme": float(np.max(e)) if e else float("nan")}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds of the three sizes (medians)")
    ap.add_argument("--long-seconds", type=float, default=120.0, help="the long 1080p take (0: skip)")
    ap.add_argument("--old", default=None, help="checkout of the code to compare with (default: git archive of "
                    f"{OLD_COMMIT[:7]}, the code before issue 26)")
    ap.add_argument("--no-old", action="store_true", help="skip the old code")
    ap.add_argument("--workdir", default=None, help="where the clips are made and kept (default: a temp folder)")
    ap.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "results", "bm_hd_video.json"))
    args = ap.parse_args()

    work = args.workdir or tempfile.mkdtemp(prefix="bm_hd_video-")
    os.makedirs(work, exist_ok=True)
    raws = clips(work, args.long_seconds)
    old = args.old
    if old is None and not args.no_old:
        old = os.path.join(work, f"old-{OLD_COMMIT[:7]}")
        if not os.path.isdir(os.path.join(old, "ckpp_tools")):
            os.makedirs(old, exist_ok=True)
            subprocess.run(f"git -C {ROOT} archive {OLD_COMMIT} ckpp_tools | tar -x -C {old}", shell=True, check=True)
    res = {"machine": {"python": platform.python_version(), "cpu_count": os.cpu_count(), "platform": platform.platform(),
                       "load_averages_start": list(os.getloadavg())},
           "take": {"frames": N_FRAMES, "smile_from": N_PRE, "rise_frames": N_RISE, "fps": FPS,
                    "photo": "ckpp_tools/data/unlike/obama.jpg"}, "old_code": OLD_COMMIT if old else None, "rounds": []}
    names = [f"{w}x{h}" for w, h in SIZES]
    for r in range(args.rounds):
        print(f"round {r + 1}/{args.rounds} (load {os.getloadavg()[0]:.1f})", flush=True)
        rnd = {"load_average_1min": os.getloadavg()[0]}
        for name in names:
            o = run(raws[name], os.path.join(work, f"new-{name}.h5"), 1)
            rnd[f"new_{name}"] = o
            msg = f"  {name:>9}: {o['frames_per_s']:6.1f} frames/s, PSS {o['pss_peak_mb']:5.0f} MB, " \
                  f"RSS {o['max_rss_mb']:5.0f} MB, {[(x['status'], x['reason'], x['n_source_frames'], x['onset'], x['peak']) for x in o['rows']]}"
            print(msg, flush=True)
            if old and r == 0:   # the old code's result does not change between rounds: once is enough
                o = run(raws[name], os.path.join(work, f"old-{name}.h5"), 1, code=old)
                rnd[f"old_{name}"] = o
                print(f"  {name:>9} (old code): {o['frames_per_s']:6.1f} frames/s, PSS {o['pss_peak_mb']:5.0f} MB, "
                      f"RSS {o['max_rss_mb']:5.0f} MB, {[(x['status'], x['reason'], x['n_source_frames'], x['onset'], x['peak']) for x in o['rows']]}",
                      flush=True)
        base = rnd[f"new_{names[0]}"]["frames_per_s"]
        for name in names[1:]:
            rnd[f"speed_{name}_vs_{names[0]}"] = rnd[f"new_{name}"]["frames_per_s"] / base
        res["rounds"].append(rnd)
    rounds = res["rounds"]
    summary = {}
    ref = stored_landmarks(os.path.join(work, f"new-{names[0]}.h5"))
    ref_row = rounds[-1][f"new_{names[0]}"]["rows"][0]
    for (w, h), name in zip(SIZES, names):
        last = rounds[-1][f"new_{name}"]
        row = last["rows"][0]
        s = {"frames_read": row["n_source_frames"], "status": row["status"], "reason": row["reason"],
             "onset": row["onset"], "peak": row["peak"],
             "trim_vs_640x360": [row["onset"] - ref_row["onset"], row["peak"] - ref_row["peak"]],
             "frames_per_s_median": float(np.median([x[f"new_{name}"]["frames_per_s"] for x in rounds])),
             "pss_peak_mb_max": float(max(x[f"new_{name}"]["pss_peak_mb"] for x in rounds)),
             "max_rss_mb_max": float(max(x[f"new_{name}"]["max_rss_mb"] for x in rounds))}
        if name != names[0]:
            s["speed_vs_640x360_median"] = float(np.median([x[f"speed_{name}_vs_{names[0]}"] for x in rounds]))
            got = stored_landmarks(os.path.join(work, f"new-{name}.h5"))
            s["landmarks_vs_640x360"] = nme_vs(ref, SIZES[0][0], got, w)
            s["blur_score"] = got[2] if got else None
        else:
            s["blur_score"] = ref[2] if ref else None
        if old:
            o = rounds[0][f"old_{name}"]
            orow = o["rows"][0]
            s["old_code"] = {"frames_read": orow["n_source_frames"], "status": orow["status"], "reason": orow["reason"],
                             "onset": orow["onset"], "peak": orow["peak"], "frames_per_s": o["frames_per_s"],
                             "pss_peak_mb": o["pss_peak_mb"], "max_rss_mb": o["max_rss_mb"], "seconds": o["seconds"]}
        summary[name] = s
    res["summary"] = summary
    if args.long_seconds > 0:
        n = int(round(args.long_seconds * FPS))
        print(f"two {n}-frame 1080p takes, --workers 2 ...", flush=True)
        o = run(raws["long"], os.path.join(work, "new-long.h5"), 2)
        o["expected_smile_from"] = len(long_order(n)) - (N_FRAMES - N_PRE)
        res["long_1080p_workers2"] = o
        print(f"  {o['frames_per_s']:.1f} frames/s ({o['source_frames']} frames in {o['seconds']:.0f} s), PSS "
              f"{o['pss_peak_mb']:.0f} MB, RSS {o['max_rss_mb']:.0f} MB, "
              f"{[(x['status'], x['reason'], x['n_source_frames'], x['onset'], x['peak']) for x in o['rows']]}", flush=True)
    res["machine"]["load_averages_end"] = list(os.getloadavg())
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as fh:
        json.dump(res, fh, indent=2)
    print("\n| copy | frames read | result | trim | peak memory (PSS sum / largest RSS) | frames/s | vs 640x360 |")
    print("|---|---|---|---|---|---|---|")
    for name in names:
        s = summary[name]
        print(f"| {name} | {s['frames_read']} | {s['status']} {s['reason']} | {s['onset']}..{s['peak']} | "
              f"{s['pss_peak_mb_max'] / 1024:.2f} / {s['max_rss_mb_max'] / 1024:.2f} GB | {s['frames_per_s_median']:.0f} | "
              f"{s.get('speed_vs_640x360_median', 1.0):.2f} |")
        if "old_code" in s:
            o = s["old_code"]
            print(f"| {name} (old code) | {o['frames_read']} | {o['status']} {o['reason']} | {o['onset']}..{o['peak']} | "
                  f"{o['pss_peak_mb'] / 1024:.2f} / {o['max_rss_mb'] / 1024:.2f} GB | {o['frames_per_s']:.0f} | |")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
