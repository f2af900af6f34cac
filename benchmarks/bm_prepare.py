"""Source frames/s of the whole `ckpp prepare` command against a naive landmarking pipeline, same run, same clips.

    python benchmarks/bm_prepare.py                  # makes a sample (3 subjects, seed 0: 12 videos, 405 frames, 640x480)
    python benchmarks/bm_prepare.py --subjects 22 --seed 1 --naive-clips 22 --out benchmarks/results/bm_prepare-22subjects.json
                                                     # a held-out 2,991-frame sample (88 videos): start-up matters less
    python benchmarks/bm_prepare.py --raw raw/ --naive-clips 4
    python benchmarks/bm_prepare.py --compare-with /path/to/older/checkout   # + that code's --workers 1, same rounds

- ours (workers 1): `ckpp prepare RAW out.h5 --workers 1` as a subprocess, wall clock from launch to exit
  (start-up, decoding, detect-once-then-track landmarks, quality checks, crop, masks, compression, writing).
- ours (workers 2): the same with `--workers 2`.
- driver only: `--workers 1` with the analysis replaced by a plain resize (every frame kept and written):
  what decoding, hashing, transfer and writing cost, i.e. the driver's share.
- naive: one process; decode every frame; dlib's HOG detector upsampled once (dlib's standard usage) on
  every frame; the 68-point predictor on the largest face. Timed on the first --naive-clips clips (a rate,
  so a subset is enough; the naive way costs ~100x more per frame), one per subject first.

Landmark accuracy is reported for both against the sample's truth (median NME over frames, normalised by the
inter-ocular distance of the truth), so speed is not bought with accuracy. Writes JSON (default
benchmarks/results/bm_prepare.json) and prints the ratios.

Timings on a shared machine are noisy, so ours (workers 1 and 2) and naive run interleaved --repeats times
(default 3): every ratio is taken within one round (ours and naive seconds apart, under the same load) and
the median over rounds is reported, with each round kept in the JSON. Long inputs (a 10,000-frame video,
500 short clips, peak memory against clip length): benchmarks/bm_prepare_long.py.
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


def nme(pred: np.ndarray, truth: np.ndarray) -> float:
    """Mean point error / truth inter-ocular distance (outer eye corners 36, 45)."""
    d = float(np.linalg.norm(truth[36] - truth[45]))
    return float(np.mean(np.linalg.norm(pred - truth, axis=1)) / max(d, 1e-6))


def run_prepare(raw: str, out: str, workers: int, size: int, code: str | None = None) -> dict:
    """`ckpp prepare` as a subprocess: wall seconds, CPU seconds of it and its workers, frames. `code`: run the
    ckpp_tools found in that checkout instead of this one (before/after comparisons in the same round)."""
    cmd = [sys.executable, "-m", "ckpp_tools.cli", "prepare", raw, out, "--workers", str(workers), "--size", str(size),
           "--quiet", "--overwrite"]
    env = cwd = None
    if code:  # `python -m` imports from the working directory first: run there
        cwd = os.path.abspath(code)
        env = dict(os.environ, PYTHONPATH=cwd)
    before = os.times()
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=cwd)
    sec = time.perf_counter() - t0
    after = os.times()
    cpu = (after.children_user - before.children_user) + (after.children_system - before.children_system)
    if r.returncode != 0:
        raise SystemExit(f"prepare failed:\n{r.stdout}\n{r.stderr}")
    from ckpp_tools.reader import open_dataset

    m = open_dataset(out).manifest
    frames = int(m["n_source_frames"].clip(lower=0).sum())
    return {"seconds": sec, "cpu_seconds": cpu, "source_frames": frames, "frames_per_s": frames / sec,
            "accepted": int((m["status"] == "accepted").sum()), "clips": int(len(m))}


_DRIVER_ONLY = r"""
import sys, numpy as np, cv2
import ckpp_tools.clip_pipeline as cp
from ckpp_tools.clip_pipeline import ClipResult

def passthrough(frames, *, already_trimmed=False, provided_landmarks=None, onset_peak=None, options=None):
    # the cheapest valid analysis: keep every frame, resize it; isolates decode + hash + transfer + write
    S, n = options.size, len(frames)
    fr = np.stack([cv2.resize(np.dstack([f] * 3) if f.ndim == 2 else f, (S, S), interpolation=cv2.INTER_AREA) for f in frames])
    h, w = frames[0].shape[:2]
    return ClipResult("accepted", onset=0, peak=n - 1, frames=fr, landmarks=np.zeros((n, 68, 2), np.float32),
                      mouth_mask=np.zeros((n, S, S), np.uint8), degree=np.linspace(0, 1, n).astype(np.float32),
                      source_index=np.arange(n, dtype=np.int32), crop_box=np.array([0, 0, max(w, h), max(w, h)], float),
                      original_size=(w, h), blur_score=0.0, head_motion=0.0)

cp.process_clip = passthrough
from ckpp_tools.cli import main
main(sys.argv[1:])
"""


def run_driver_only(raw: str, out: str, size: int) -> dict:
    """`ckpp prepare --workers 1` with the analysis replaced by a resize: what the driver itself costs."""
    cmd = [sys.executable, "-c", _DRIVER_ONLY, "prepare", raw, out, "--workers", "1", "--size", str(size), "--quiet", "--overwrite"]
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True)
    sec = time.perf_counter() - t0
    if r.returncode != 0:
        raise SystemExit(f"driver-only prepare failed:\n{r.stdout}\n{r.stderr}")
    from ckpp_tools.reader import open_dataset

    frames = int(open_dataset(out).manifest["n_source_frames"].clip(lower=0).sum())
    return {"seconds": sec, "source_frames": frames, "frames_per_s": frames / sec}


def ours_accuracy(out: str, truth: dict) -> dict:
    """{(source, frame index): NME} of the stored landmarks mapped back to source pixels."""
    from ckpp_tools.crop import from_crop
    from ckpp_tools.reader import open_dataset

    ds = open_dataset(out)
    errs = {}
    for cid in ds.clip_ids():
        c = ds.clip(cid, frames=False)
        t = truth.get(c.attrs["source"])
        if not t or not t.get("landmarks"):
            continue
        tl = np.asarray(t["landmarks"], np.float64)
        src = from_crop(c.landmarks, c.attrs["crop_box"], ds.image_size)
        errs.update({(c.attrs["source"], int(i)): nme(src[k], tl[i]) for k, i in enumerate(c.source_index)})
    return errs


def naive(paths: list[tuple[str, str]], truth: dict) -> dict:
    """Decode every frame, HOG detector (upsample 1) on every frame, predictor on the largest face."""
    import cv2
    import dlib

    from ckpp_tools.landmarks.dlib_backend import model_path

    t0 = time.perf_counter()
    det = dlib.get_frontal_face_detector()
    pred = dlib.shape_predictor(model_path("shape_predictor_68_face_landmarks.dat"))
    frames, errs, found = 0, {}, 0
    for rel, path in paths:
        cap = cv2.VideoCapture(path)
        tl = np.asarray(truth.get(rel, {}).get("landmarks") or [], np.float64)
        i = 0
        while True:
            ok, img = cap.read()
            if not ok:
                break
            gray = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
            rects = det(gray, 1)
            if len(rects):
                r = max(rects, key=lambda r: r.width() * r.height())
                s = pred(gray, r)
                pts = np.array([(p.x, p.y) for p in s.parts()], np.float64)
                found += 1
                if i < len(tl):
                    errs[(rel, i)] = nme(pts, tl[i])
            frames += 1
            i += 1
        cap.release()
    sec = time.perf_counter() - t0
    return {"seconds": sec, "source_frames": frames, "frames_per_s": frames / sec, "frames_with_face": found,
            "errors": errs}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--raw", default=None, help="RAW tree (default: make a video-only sample)")
    ap.add_argument("--subjects", type=int, default=3, help="sample subjects when --raw is not given (default 3: 12 videos, "
                    "405 frames at seed 0; 22 at seed 1: 88 videos, 2,991 frames)")
    ap.add_argument("--seed", type=int, default=0, help="sample seed when --raw is not given (default 0)")
    ap.add_argument("--compare-with", default=None, help="another checkout whose `ckpp prepare --workers 1` also runs in "
                    "every round (e.g. the code before a change): ratios against it, same load")
    ap.add_argument("--size", type=int, default=289)
    ap.add_argument("--naive-clips", type=int, default=3, help="clips the naive pipeline is timed on")
    ap.add_argument("--repeats", type=int, default=3, help="interleaved rounds of ours/naive (medians reported)")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "bm_prepare.json"))
    args = ap.parse_args()

    from ckpp_tools.sample import load_truth, make_sample

    tmp = tempfile.mkdtemp(prefix="bm_prepare-")
    raw = args.raw
    if raw is None:
        raw = os.path.join(tmp, "raw")
        print(f"making a video sample ({args.subjects} subjects, seed {args.seed}, 640x480) in {raw} ...", flush=True)
        make_sample(raw, subjects=args.subjects, seed=args.seed, small=False, ckplus=False, bad_cases=False, workers=1, progress=False)
    try:
        truth = load_truth(raw)["clips"]
    except Exception:  # noqa: BLE001 - a user's RAW has no truth: speed only
        truth = {}

    res = {"machine": {"python": platform.python_version(), "cpu_count": os.cpu_count(), "platform": platform.platform(),
                       "load_average_1min": os.getloadavg()[0], "load_averages_start": list(os.getloadavg())},
           "raw": raw, "subjects": None if args.raw else args.subjects, "seed": None if args.raw else args.seed,
           "size": args.size, "repeats": args.repeats, "compare_with": args.compare_with}
    from ckpp_tools.sources import find_clips

    # one clip per subject first (different faces: dlib's accuracy depends far more on the face than on the
    # take), then more takes in order, up to --naive-clips
    cands = [c for c in find_clips(raw)[0] if os.path.isfile(c.path) and not c.reason]
    firsts = list({c.subject: c for c in reversed(cands)}.values())[::-1]
    clips = (firsts + [c for c in cands if c not in firsts])[: args.naive_clips]

    out1 = os.path.join(tmp, "w1.h5")
    rounds = []
    naive_err = {}
    for k in range(args.repeats):
        print(f"round {k + 1}/{args.repeats}: ckpp prepare --workers 1, --workers 2, naive on {len(clips)} clips ...", flush=True)
        r = {"load_average_1min": os.getloadavg()[0], "load_averages": list(os.getloadavg())}
        r["ours_workers1"] = run_prepare(raw, out1, 1, args.size)
        r["ours_workers2"] = run_prepare(raw, os.path.join(tmp, "w2.h5"), 2, args.size)
        if args.compare_with:
            r["compare_workers1"] = run_prepare(raw, os.path.join(tmp, "cmp.h5"), 1, args.size, code=args.compare_with)
            r["ratio_workers1_vs_compare"] = r["ours_workers1"]["frames_per_s"] / r["compare_workers1"]["frames_per_s"]
        nv = naive([(c.source, c.path) for c in clips], truth)
        naive_err = nv.pop("errors")  # the same every round (deterministic)
        r["naive"] = nv
        r["ratio_workers1_vs_naive"] = r["ours_workers1"]["frames_per_s"] / nv["frames_per_s"]
        r["ratio_workers2_vs_naive"] = r["ours_workers2"]["frames_per_s"] / nv["frames_per_s"]
        r["ratio_workers2_vs_workers1"] = r["ours_workers2"]["frames_per_s"] / r["ours_workers1"]["frames_per_s"]
        rounds.append(r)
        if args.compare_with:
            r["ratio_compare_vs_naive"] = r["compare_workers1"]["frames_per_s"] / nv["frames_per_s"]
        print(f"  x{r['ratio_workers1_vs_naive']:.1f} (workers 1), x{r['ratio_workers2_vs_naive']:.1f} (workers 2) vs naive; "
              f"workers 2 / workers 1 x{r['ratio_workers2_vs_workers1']:.2f} (load {r['load_average_1min']:.1f})"
              + (f"; --compare-with x{r['ratio_compare_vs_naive']:.1f} vs naive, ours x{r['ratio_workers1_vs_compare']:.2f} it"
                 if args.compare_with else ""), flush=True)
    res["rounds"] = rounds

    def mid(key, sub=None):
        return float(np.median([r[key][sub] if sub else r[key] for r in rounds]))

    # the round with the median workers-1 ratio stands for the run (its seconds and frame counts)
    med_round = sorted(rounds, key=lambda r: r["ratio_workers1_vs_naive"])[len(rounds) // 2]
    res["ours_workers1"] = dict(med_round["ours_workers1"], frames_per_s=mid("ours_workers1", "frames_per_s"))
    res["ours_workers2"] = dict(med_round["ours_workers2"], frames_per_s=mid("ours_workers2", "frames_per_s"))
    res["naive"] = dict(med_round["naive"], frames_per_s=mid("naive", "frames_per_s"))
    ours_err = ours_accuracy(out1, truth)

    # fixed start-up of the command (interpreter, imports, dlib models): paid once per run, not per frame
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import ckpp_tools.cli, ckpp_tools.commands.prepare; from ckpp_tools.prepare "
                    "import _preflight_backend; _preflight_backend('dlib')"], check=True)
    res["startup_seconds"] = startup = time.perf_counter() - t0
    for k in ("ours_workers1", "ours_workers2"):
        r = res[k]
        r["frames_per_s_after_startup"] = r["source_frames"] / max(1e-6, r["source_frames"] / r["frames_per_s"] - startup)
    print("driver only (analysis replaced by a resize, --workers 1) ...", flush=True)
    res["driver_only_workers1"] = run_driver_only(raw, os.path.join(tmp, "drv.h5"), args.size)

    common = sorted(set(ours_err) & set(naive_err))  # the same stored (onset..peak) frames of the same clips

    def med(d, keys):
        v = [d[k] for k in keys]
        return float(np.median(v)) if v else float("nan")

    res["accuracy"] = {"frames_compared": len(common), "ours_median_nme": med(ours_err, common),
                       "naive_median_nme": med(naive_err, common), "ours_median_nme_all_stored": med(ours_err, list(ours_err))}
    res["ours_workers1"]["median_nme"] = res["accuracy"]["ours_median_nme"]
    res["naive"]["median_nme"] = res["accuracy"]["naive_median_nme"]

    res["ratio_workers1_vs_naive"] = r1 = mid("ratio_workers1_vs_naive")
    res["ratio_workers2_vs_naive"] = r2 = mid("ratio_workers2_vs_naive")
    res["ratio_workers2_vs_workers1"] = r21 = mid("ratio_workers2_vs_workers1")
    if args.compare_with:
        res["ratio_workers1_vs_compare"] = mid("ratio_workers1_vs_compare")
        res["ratio_compare_vs_naive"] = mid("ratio_compare_vs_naive")
        cmp_err = ours_accuracy(os.path.join(tmp, "cmp.h5"), truth)
        both = sorted(set(cmp_err) & set(naive_err))
        res["accuracy"].update(compare_frames_compared=len(both), compare_median_nme=med(cmp_err, both),
                               naive_median_nme_on_compare_frames=med(naive_err, both))
    res["machine"]["load_averages_end"] = list(os.getloadavg())
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as fh:
        json.dump(res, fh, indent=2)
    w1, w2, nv = res["ours_workers1"], res["ours_workers2"], res["naive"]
    print(f"\nnaive (decode + HOG upsample 1 every frame + predictor): {nv['frames_per_s']:8.1f} frames/s  "
          f"({nv['source_frames']} frames, median NME {nv['median_nme']:.4f})")
    print(f"ckpp prepare --workers 1 (whole command):             {w1['frames_per_s']:8.1f} frames/s  "
          f"({w1['source_frames']} frames in {w1['seconds']:.1f}s, median NME {w1['median_nme']:.4f})  x{r1:.1f} vs naive")
    print(f"ckpp prepare --workers 2 (whole command):             {w2['frames_per_s']:8.1f} frames/s  "
          f"({w2['source_frames']} frames in {w2['seconds']:.1f}s)  x{r2:.1f} vs naive, x{r21:.2f} workers 1")
    print(f"(medians over {len(rounds)} interleaved rounds; ratios taken within each round)")
    print(f"start-up (interpreter, imports, dlib models): {startup:.1f}s per run; after it: workers 1 "
          f"{w1['frames_per_s_after_startup']:.0f} frames/s, workers 2 {w2['frames_per_s_after_startup']:.0f} frames/s")
    dv = res["driver_only_workers1"]
    print(f"driver only (decode+hash+resize+write, all frames kept):{dv['frames_per_s']:8.1f} frames/s  "
          f"({dv['source_frames']} frames in {dv['seconds']:.1f}s; the rest of ours is the analysis)")
    print(f"landmark NME (median, same {res['accuracy']['frames_compared']} stored frames): ours "
          f"{res['accuracy']['ours_median_nme']:.4f} vs naive {res['accuracy']['naive_median_nme']:.4f}")
    if args.compare_with:
        print(f"--compare-with {args.compare_with} (workers 1): x{res['ratio_compare_vs_naive']:.1f} vs naive; ours x"
              f"{res['ratio_workers1_vs_compare']:.2f} it; its NME {res['accuracy']['compare_median_nme']:.4f}")
    print(f"load averages (1, 5, 15 min) at start {res['machine']['load_averages_start']}, end {res['machine']['load_averages_end']}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
