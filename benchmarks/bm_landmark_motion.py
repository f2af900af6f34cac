"""Does a model move the landmarks the way its training data does, for every expression, and do its mixes lie
between the pure expressions? (issue 23's landmark targets: cosine with the training data's mean motion ≥ 0.8
per expression; a 0.5/0.5 mix between the two pure expressions.)

    python benchmarks/bm_landmark_motion.py [--model pretrained] [--photos held-out] [--subjects 40] \\
        [--pairs happy+surprise,anger+surprise,happy+sadness] [--picture docs/images/landmark-motion.png]

1. The training data's motion: `ckpp sample --photos nba --hold-out 40 --emotions all --takes 1 --no-bad-cases
   --seed 0 --subjects N` (the joint model's recipe, benchmarks/train_pretrained_joint.py, with fewer people;
   or --truth DIR: an existing sample folder), onset -> peak of its exact truth landmarks (truth.json), per clip.
   Also the same clips' onset and peak frames as dlib sees them ("data as detected"): the ceiling a perfect
   model could reach through the detector that measures it.
2. The model: for each photo (default the 40 held-out NBA people, never in training) and expression,
   `ExpressionPipeline(photo, {E: 1}, num_frames=2)` (the public API, as `ckpp generate` makes it: --start
   auto, eyes levelled); dlib's 68 landmarks (models.benchmark.Measurer) at frame 0 and the peak; for each pair
   also {A: 0.5, B: 0.5}.
3. Every motion (peak - frame 0) normalised by a similarity alignment of frame 0 onto the training data's mean
   onset face, in IOD units (models/landmark_motion.py); the eye-corner frame alone as a second normalisation.
With --train-data H5 (the prepared file a model trained on), also its train split's onset -> peak as `ckpp
prepare` stored it (dlib, tracked): the motion the network was literally taught (`*_vs_training_file`).
Reported per expression: the cosine of each photo's motion with the data's mean motion (median, share ≥ 0.8),
the cosine of the model's mean motion, per face region, the magnitudes; per pair: where the mix lies on the line
from pure A to pure B (t: 0 = A, 1 = B; off_line: distance from the line / |B - A|), medians over photos.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bm_judge_photos import photo_group  # noqa: E402

DEFAULT_PAIRS = "happy+surprise,anger+surprise,happy+sadness"
HOLD_OUT = 40
TARGET_COSINE = 0.8


def make_truth(subjects: int, work: str) -> tuple[dict, str]:
    """A fresh `ckpp sample` of all seven expressions in `work`; returns (truth, command)."""
    from ckpp_tools.lifecycle import popen_kwargs
    from ckpp_tools.sample import load_truth

    args = ["sample", work, "--photos", "nba", "--hold-out", str(HOLD_OUT), "--emotions", "all", "--takes", "1",
            "--no-bad-cases", "--seed", "0", "--subjects", str(subjects), "--overwrite"]
    print("$ ckpp " + " ".join(args), flush=True)
    rc = subprocess.call([sys.executable, "-m", "ckpp_tools.cli", *args], cwd=ROOT, stdout=subprocess.DEVNULL,
                         **popen_kwargs())
    if rc != 0:
        sys.exit(f"`ckpp {' '.join(args)}` failed (exit code {rc})")
    return load_truth(work), "ckpp " + " ".join(a if a != work else "DIR" for a in args)


def square_around(frame: np.ndarray, points: np.ndarray, side: int = 256) -> tuple[np.ndarray, float, np.ndarray]:
    """A square crop (side px) around a face's landmarks, 2.2 face heights wide, as RGB: what Measurer expects."""
    import cv2

    if frame.ndim == 2:
        frame = np.repeat(frame[..., None], 3, axis=2)
    lo, hi = points.min(0), points.max(0)
    c, half = (lo + hi) / 2, 1.1 * float(max(hi - lo))
    k = side / (2 * half)
    m = np.array([[k, 0, side / 2 - k * c[0]], [0, k, side / 2 - k * c[1]]])
    return cv2.warpAffine(frame, m, (side, side), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE), k, m


def data_as_detected(root: str, clips: dict, measurer, reference, per_emotion: int) -> dict[str, list]:
    """{emotion: [normalised motion]} of the sample clips' onset and peak frames as dlib finds them."""
    from tqdm import tqdm

    from ckpp_tools import video_io
    from models import landmark_motion as lm

    todo, count = [], {}
    for rel, e in clips.items():
        if e.get("expected_status") != "accepted" or not (0 <= int(e.get("onset", -1)) < int(e.get("peak", -1))):
            continue
        if count.get(e["emotion"], 0) < per_emotion:
            count[e["emotion"]] = count.get(e["emotion"], 0) + 1
            todo.append((rel, e))
    out: dict[str, list] = {}
    for rel, e in tqdm(todo, desc="data (dlib)", unit="clip"):
        dec = video_io.read_clip(os.path.join(root, rel), max_frames=int(e["peak"]) + 1)
        if dec.n <= int(e["peak"]):
            continue
        pts0 = np.asarray(e["landmarks"][int(e["onset"])], np.float64)
        f0, _, _ = square_around(dec.frames[int(e["onset"])], pts0)
        f1, _, _ = square_around(dec.frames[int(e["peak"])], pts0)
        lms, _ = measurer.measure(np.stack([f0, f1]))
        if np.all(np.isfinite(lms)):
            out.setdefault(e["emotion"], []).append(lm.normalised_motion(lms[0], lms[1], reference))
    return out


def _med(v) -> float | None:
    v = np.asarray([x for x in v if x is not None and np.isfinite(x)], np.float64)
    return round(float(np.median(v)), 4) if v.size else None


def _r(x) -> float | None:
    return None if x is None or not np.isfinite(x) else round(float(x), 4)


def expression_summary(gen: list, gen_eye: list, truth: list, truth_eye: list, detected: list,
                       trained: list | None = None) -> dict:
    from models import landmark_motion as lm

    mu, mu_eye = lm.mean_motion(truth), lm.mean_motion(truth_eye)
    mu_det = lm.mean_motion(detected)
    g = [m for m in gen if m is not None]
    g_mean = lm.mean_motion(g)
    cos = [lm.cosine(m, mu) for m in g]
    fin = [c for c in cos if np.isfinite(c)]
    return {
        "photos_measured": len(g),
        "cos_per_photo_median": _med(cos),
        "cos_per_photo_q25_q75": ([round(float(q), 4) for q in np.percentile(fin, [25, 75])] if fin else None),
        "share_cos_ge_0_8": (round(float(np.mean(np.asarray(fin) >= TARGET_COSINE)), 4) if fin else None),
        "cos_of_mean": _r(lm.cosine(g_mean, mu)),
        "cos_of_mean_eye_frame": _r(lm.cosine(lm.mean_motion([m for m in gen_eye if m is not None]), mu_eye)),
        "cos_of_mean_by_region": {k: _r(v) for k, v in lm.region_cosines(g_mean, mu).items()},
        "cos_per_photo_median_vs_data_detected": _med(lm.cosine(m, mu_det) for m in g),
        "cos_of_mean_vs_data_detected": _r(lm.cosine(g_mean, mu_det)),
        "magnitude_per_photo_median_iod": _med(lm.magnitude(m) for m in g),
        "magnitude_of_mean_iod": _r(lm.magnitude(g_mean)),
        "data_clips": len(truth),
        "data_magnitude_of_mean_iod": _r(lm.magnitude(mu)),
        "data_cos_per_clip_median": _med(lm.cosine(m, mu) for m in truth),
        "data_detected_clips": len(detected),
        "data_detected_cos_of_mean": _r(lm.cosine(mu_det, mu)),
        "data_detected_cos_per_clip_median": _med(lm.cosine(m, mu) for m in detected),
        "data_detected_magnitude_of_mean_iod": _r(lm.magnitude(mu_det)),
        **(training_file_summary(g, g_mean, trained, mu) if trained else {}),
    }


def training_file_summary(g: list, g_mean, trained: list, mu) -> dict:
    """The model against the motion of the prepared file it trained on (--train-data)."""
    from models import landmark_motion as lm

    mu_tr = lm.mean_motion(trained)
    return {"training_file_clips": len(trained),
            "cos_of_mean_vs_training_file": _r(lm.cosine(g_mean, mu_tr)),
            "cos_per_photo_median_vs_training_file": _med(lm.cosine(m, mu_tr) for m in g),
            "cos_of_mean_by_region_vs_training_file": {k: _r(v) for k, v in lm.region_cosines(g_mean, mu_tr).items()},
            "training_file_magnitude_of_mean_iod": _r(lm.magnitude(mu_tr)),
            "training_file_cos_with_truth": _r(lm.cosine(mu_tr, mu))}


def training_file_motions(paths: list[str], reference) -> dict[str, list]:
    """{emotion: [normalised motion]} of the train split of prepared files (ckpp_tools.reader)."""
    from ckpp_tools.reader import open_dataset
    from models import landmark_motion as lm

    out: dict[str, list] = {}
    for path in paths:
        with open_dataset(path) as ds:
            for e, ms in lm.prepared_motions(ds.iter_clips(split="train", frames=False), reference).items():
                out.setdefault(e, []).extend(ms)
    return out


def pair_summary(rows: list[dict], a: str, b: str, key: str) -> dict:
    from models import landmark_motion as lm

    per = [lm.between(r["mix"][key], r["pure"][a], r["pure"][b]) for r in rows
           if r["mix"].get(key) is not None and r["pure"].get(a) is not None and r["pure"].get(b) is not None]
    ts = [p["t"] for p in per if np.isfinite(p["t"])]
    means = lm.between(lm.mean_motion([r["mix"].get(key) for r in rows if r["mix"].get(key) is not None]),
                       lm.mean_motion([r["pure"][a] for r in rows if r["pure"].get(a) is not None]),
                       lm.mean_motion([r["pure"][b] for r in rows if r["pure"].get(b) is not None]))
    return {"photos_measured": len(per), "t_median": _med(ts),
            "t_q25_q75": ([round(float(q), 4) for q in np.percentile(ts, [25, 75])] if ts else None),
            "share_t_in_0_1": (round(float(np.mean([0 <= t <= 1 for t in ts])), 4) if ts else None),
            "off_line_median": _med(p["off_line"] for p in per),
            "off_segment_median": _med(p["off_segment"] for p in per),
            "cos_with_midpoint_median": _med(p["cos_mid"] for p in per),
            "of_the_means": {k: _r(v) for k, v in means.items()}}


def _f2(v) -> str:
    return "-" if v is None else f"{v:.2f}"


def picture(path: str, reference, means: dict, summary: dict, cell: int = 190) -> None:
    """One panel per expression: the reference face (grey), the data's mean motion (green) and the model's
    (red), drawn at 1.5x their size."""
    import cv2

    emotions = list(means)
    iod_px, gain = cell * 0.3, 1.5
    centre = np.array([cell / 2, cell * 0.27])
    head, foot = 34, 22
    sheet = np.full((cell + head + foot, cell * len(emotions), 3), 255, np.uint8)
    font = cv2.FONT_HERSHEY_SIMPLEX

    def pt(v):
        return tuple(int(round(x)) for x in v)

    for i, e in enumerate(emotions):
        ox = np.array([i * cell, head]) + centre
        base = reference * iod_px + ox
        for p in base:
            cv2.circle(sheet, pt(p), 1, (150, 150, 150), -1, cv2.LINE_AA)
        for mu, colour in ((means[e]["data"], (0, 150, 0)), (means[e]["model"], (220, 0, 0))):
            if mu is None or not np.all(np.isfinite(mu)):
                continue
            for p, d in zip(base, np.asarray(mu) * iod_px * gain):
                if np.hypot(*d) > 0.8:
                    cv2.arrowedLine(sheet, pt(p), pt(p + d), colour, 1, cv2.LINE_AA, tipLength=0.3)
        s = summary[e]
        cv2.putText(sheet, e, (i * cell + 6, 14), font, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
        cv2.putText(sheet, f"cos {_f2(s['cos_per_photo_median'])} / mean {_f2(s['cos_of_mean'])}", (i * cell + 6, 29),
                    font, 0.38, (0, 0, 0), 1, cv2.LINE_AA)
        if s.get("cos_of_mean_vs_training_file") is not None:
            cv2.putText(sheet, f"vs training file {_f2(s['cos_of_mean_vs_training_file'])}", (i * cell + 6, cell + head),
                        font, 0.38, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(sheet, "green: the sample's exact mean motion   red: the model's (held-out photos)   arrows x1.5   "
                "cos: median over photos / of the mean motion (vs green); vs training file: the mean motion vs the "
                "landmarks prepare stored", (6, cell + head + 14), font, 0.38, (0, 0, 0), 1, cv2.LINE_AA)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".partial.png"
    from PIL import Image

    Image.fromarray(sheet).quantize(32).save(tmp, optimize=True)     # a few colours: 13 kB instead of 80
    os.replace(tmp, path)
    print("wrote", path)


def default_out(model: str) -> str:
    name = "pretrained" if model == "pretrained" else os.path.basename(os.path.normpath(model)).replace(":", "-")
    return os.path.join(ROOT, "benchmarks", "results", f"landmark_motion_{name}.json")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="pretrained", help="`pretrained`, pretrained:NAME, a run folder or ckpt-*.pt")
    ap.add_argument("--photos", default="held-out", help="held-out | unlike | FOLDER (as bm_judge_photos.py)")
    ap.add_argument("--limit", type=int, default=0, help="at most this many photos (0: all)")
    ap.add_argument("--subjects", type=int, default=40, help="training people in the fresh sample (all seven each)")
    ap.add_argument("--truth", help="an existing `ckpp sample` folder instead of a fresh sample")
    ap.add_argument("--data-clips", type=int, default=40, help="clips per expression for 'data as detected'")
    ap.add_argument("--train-data", action="append", default=[],
                    help="a prepared .h5 the model trained on: also compare with its train split's motion (repeatable)")
    ap.add_argument("--pairs", default=DEFAULT_PAIRS, help="A+B,... mixed 0.5/0.5 ('' for none)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (2 shared cores: 1 is fastest)")
    ap.add_argument("--out", help="results JSON [default: benchmarks/results/landmark_motion_<model>.json]")
    ap.add_argument("--picture", help="also draw the mean motions (data vs model) per expression to this PNG")
    args = ap.parse_args()
    import torch
    from tqdm import tqdm

    from ckpp_tools.errors import CkppError
    from models import landmark_motion as lm
    from models.benchmark import Measurer, sha256
    from models.pipeline import ExpressionPipeline

    torch.set_num_threads(args.threads)
    t0 = time.time()
    out_path = args.out or default_out(args.model)
    pipe = ExpressionPipeline.from_pretrained(args.model)
    pairs = [tuple(p.split("+")) for p in args.pairs.split(",") if p]
    if args.pairs == DEFAULT_PAIRS:          # a model of fewer expressions: the default pairs it knows
        pairs = [p for p in pairs if all(e in pipe.emotions for e in p)]
    for p in pairs:
        if len(p) != 2 or any(e not in pipe.emotions for e in p):
            sys.exit(f"--pairs {'+'.join(p)}: expected two of {', '.join(pipe.emotions)}")

    # 1. the training data's motion
    work = None if args.truth else tempfile.mkdtemp(prefix="ckpp-lm-")
    try:
        if args.truth:
            from ckpp_tools.sample import load_truth

            root = args.truth
            truth, sample_cmd = load_truth(root), f"(given) {root}"
        else:
            root = os.path.join(work, "sample")
            truth, sample_cmd = make_truth(args.subjects, root)
        clips = truth["clips"]
        reference = lm.reference_face(lm.truth_onsets(clips))
        data = lm.truth_motions(clips, reference)
        data_eye = lm.truth_motions(clips, None)
        measurer = Measurer(identity=False)
        detected = data_as_detected(root, clips, measurer, reference, args.data_clips) if args.data_clips else {}
        trained = training_file_motions(args.train_data, reference) if args.train_data else {}
    finally:
        if work:
            shutil.rmtree(work, ignore_errors=True)
    emotions = [e for e in pipe.emotions if e in data]

    # 2. the model's videos
    name, items = photo_group(args.photos)
    if args.limit:
        items = items[:args.limit]
    rows = []
    mixes = {f"{a}+{b}": {a: 0.5, b: 0.5} for a, b in pairs}
    for pname, load in tqdm(items, desc=name[:24], unit="photo"):
        row = {"photo": pname, "pure": {}, "pure_eye": {}, "mix": {}, "cos": {}, "magnitude": {}}
        try:
            photo = load()
            for key, weights in [(e, {e: 1.0}) for e in emotions] + list(mixes.items()):
                out = pipe(photo, weights, num_frames=2, where=pname)
                lms, _ = measurer.measure(out.frames)
                ok = bool(np.all(np.isfinite(lms)))
                m = lm.normalised_motion(lms[0], lms[1], reference) if ok else None
                if key in mixes:
                    row["mix"][key] = m
                else:
                    row["pure"][key] = m
                    row["pure_eye"][key] = lm.normalised_motion(lms[0], lms[1]) if ok else None
                    row["cos"][key] = _r(lm.cosine(m, lm.mean_motion(data[key]))) if ok else None
                    row["magnitude"][key] = _r(lm.magnitude(m)) if ok else None
        except CkppError as exc:
            row["error"] = str(exc.message).split("\n")[0]
        rows.append(row)

    # 3. summaries
    per_expression = {e: expression_summary([r["pure"].get(e) for r in rows], [r["pure_eye"].get(e) for r in rows],
                                            data[e], data_eye[e], detected.get(e, []), trained.get(e))
                      for e in emotions}
    per_pair = {f"{a}+{b}": pair_summary(rows, a, b, f"{a}+{b}") for a, b in pairs}
    means = {e: {"data": lm.mean_motion(data[e]),
                 "model": lm.mean_motion([r["pure"][e] for r in rows if r["pure"].get(e) is not None])}
             for e in emotions}
    result = {
        "what": "landmark motion (dlib, frame 0 -> peak, similarity-aligned to the training data's mean onset face, "
                "IOD units) of the model's videos vs the training data's mean motion per expression; 0.5/0.5 mixes "
                "vs the pure expressions",
        "command": "python benchmarks/bm_landmark_motion.py " + " ".join(sys.argv[1:]),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "seconds": round(time.time() - t0, 1),
        "model": {"arg": args.model, "path": pipe.meta.get("path"), "step": pipe.meta.get("step"),
                  "family": pipe.name, "emotions": pipe.emotions, "sha256": sha256(pipe.meta.get("path"))},
        "photos": {"group": name, "count": len(items), "errors": sum("error" in r for r in rows)},
        "data": {"sample": sample_cmd, "clips": {e: len(v) for e, v in data.items()},
                 "detected_clips": {e: len(v) for e, v in detected.items()},
                 "training_files": [os.path.abspath(p) for p in args.train_data],
                 "training_file_clips": {e: len(v) for e, v in trained.items()}},
        "target": {"cos": TARGET_COSINE, "issue": 23},
        "notes": ["cos_per_photo: cosine (136 values) of one photo's motion with the data's mean motion of that "
                  "expression; cos_of_mean: of the model's mean motion over photos; *_eye_frame: normalised by the "
                  "outer eye corners alone; *_vs_data_detected: against the same sample clips' onset/peak frames "
                  "as dlib sees them (data_detected_cos_of_mean = the detector's own ceiling); *_vs_training_file: against "
                  "the train split of --train-data, the landmarks `ckpp prepare` stored and the model was taught",
                  "pairs: t = projection of the mix's motion on the line pure A -> pure B (0 = A, 1 = B, per photo); "
                  "off_line = distance from that line / |B - A|; of_the_means: the same on mean motions",
                  "videos as `ckpp generate MODEL PHOTO --emotion E --frames 2` (start auto, eyes levelled)"],
        "per_expression": per_expression,
        "per_pair": per_pair,
        "mean_motion": {e: {k: (None if v is None else np.round(v, 4).tolist()) for k, v in m.items()}
                        for e, m in means.items()},
        "reference_face": np.round(reference, 4).tolist(),
        "rows": [{"photo": r["photo"], "cos": r["cos"], "magnitude": r["magnitude"],
                  **({"error": r["error"]} if "error" in r else {}),
                  "mix": {k: {kk: _r(vv) for kk, vv in lm.between(v, r["pure"].get(k.split("+")[0]),
                                                                  r["pure"].get(k.split("+")[1])).items()}
                          for k, v in r["mix"].items() if v is not None and r["pure"].get(k.split("+")[0]) is not None
                          and r["pure"].get(k.split("+")[1]) is not None}} for r in rows],
    }
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    with open(out_path + ".partial", "w") as fh:
        json.dump(result, fh, indent=1)
    os.replace(out_path + ".partial", out_path)
    print(f"{'expression':10s} {'cos/photo':>9s} {'>=0.8':>6s} {'cos(mean)':>9s} {'eye-frame':>9s} "
          f"{'vs dlib data':>12s} {'|model|':>7s} {'|data|':>6s} {'ceiling':>7s} {'vs trained':>9s}")
    for e, s in per_expression.items():
        print(f"{e:10s} {s['cos_per_photo_median']!s:>9s} {s['share_cos_ge_0_8']!s:>6s} {s['cos_of_mean']!s:>9s} "
              f"{s['cos_of_mean_eye_frame']!s:>9s} {s['cos_of_mean_vs_data_detected']!s:>12s} "
              f"{s['magnitude_of_mean_iod']!s:>7s} {s['data_magnitude_of_mean_iod']!s:>6s} "
              f"{s['data_detected_cos_of_mean']!s:>7s} {s.get('cos_of_mean_vs_training_file', '')!s:>9s}")
    for k, s in per_pair.items():
        print(f"{k:16s} t {s['t_median']} (in [0,1]: {s['share_t_in_0_1']}) off-line {s['off_line_median']} "
              f"means: {s['of_the_means']}")
    if args.picture:
        picture(args.picture, reference, means, per_expression)
    print("wrote", out_path)


if __name__ == "__main__":
    main()
