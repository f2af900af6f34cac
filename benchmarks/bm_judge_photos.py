"""What a viewer sees in `ckpp generate MODEL PHOTO --emotion surprise`, photo by photo: the judge and the blur.

For every photo the video is made exactly as `ckpp generate` makes it (models.generate.generate_video with the
command's defaults: 16 frames, --start auto, eyes levelled, no paste-back unless --paste-back), then measured
as a viewer would, with judges nobody on this project trained:
- the expression judge (models/expression_judge.py, fer's FER2013 classifier): P(target) at frame 0 and at
  the peak, and whether the peak's top label is the target ("recognised");
- sharpness: the face's detail in the frame / in the photo (ckpp_tools.face_measures.face_sharpness:
  variance of the Laplacian inside dlib's face box, face 128 px wide), at frame 0 and at the peak;
- dlib: face found per frame, mouth-open gain frame 0 -> peak (IOD), identity distance of the peak to the photo.
Photos: `--photos held-out` = the 40 NBA people `ckpp sample --photos nba --hold-out 40 --seed 0` keeps out
(the people the shipped weights and `ckpp demo` never trained on), `--photos unlike` = the demo's 5 faces
unlike them (astronaut, Grace Hopper, Obama, Biden, Kanade), or any folder (repeat --photos; each is a group).

    python benchmarks/bm_judge_photos.py pretrained --photos held-out --photos unlike \\
        --out benchmarks/results/judge_photos_pretrained.json
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


def photo_group(spec: str) -> tuple[str, list[tuple[str, object]]]:
    """(group name, [(photo name, loader)]) of a --photos value."""
    from ckpp_tools import photo_io

    if spec == "held-out":
        from ckpp_tools import photo_sources as ps

        scan = ps.resolve("nba", progress=False)
        held = ps.assign(scan, seed=0, hold_out=40).held_out
        return "held-out NBA people (40, seed 0)", [(b.name, lambda p=b.path: photo_io.read_photo(p))
                                                     for b in sorted(held, key=lambda b: b.name)]
    if spec == "unlike":
        import matplotlib
        import skimage.data

        from ckpp_tools.photo_sources import unlike_folder

        out = [("astronaut", skimage.data.astronaut),
               ("grace_hopper", lambda: photo_io.read_photo(os.path.join(matplotlib.get_data_path(), "sample_data",
                                                                         "grace_hopper.jpg")))]
        for f in sorted(os.listdir(unlike_folder())):
            if f.endswith(".jpg"):
                out.append((f[:-4], lambda p=os.path.join(unlike_folder(), f): photo_io.read_photo(p)))
        return "unlike faces (5)", out
    if not os.path.isdir(spec):
        sys.exit(f"--photos {spec}: not a folder (or 'held-out' / 'unlike')")
    files = [f for f in sorted(os.listdir(spec)) if f.lower().endswith(IMAGE_EXTS)]
    return os.path.basename(os.path.normpath(spec)), [(f, lambda p=os.path.join(spec, f): photo_io.read_photo(p))
                                                      for f in files]


def median(v) -> float | None:
    v = np.asarray([x for x in v if x is not None and np.isfinite(x)], np.float64)
    return float(np.median(v)) if v.size else None


def summarise(rows: list[dict]) -> dict:
    ok = [r for r in rows if "error" not in r]
    rec = [r["judge_recognised"] for r in ok if np.isfinite(r.get("judge_recognised", np.nan))]
    return {"photos": len(rows), "videos": len(ok), "errors": len(rows) - len(ok),
            "recognised": int(sum(rec)), "recognised_share": (float(np.mean(rec)) if rec else None),
            "judge_p_start_median": median(r["judge_p_start"] for r in ok),
            "judge_p_peak_median": median(r["judge_p_peak"] for r in ok),
            "sharpness_start_median": median(r["sharpness_start"] for r in ok),
            "sharpness_peak_median": median(r["sharpness_peak"] for r in ok),
            "face_found_all_frames": int(sum(r["face_found"] == 1.0 for r in ok)),
            "mouth_open_gain_median": median(r["mouth_open_gain"] for r in ok),
            "identity_distance_peak_median": median(r["identity_distance_peak"] for r in ok)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", help="run folder, checkpoint or `pretrained` (as `ckpp generate` takes it)")
    ap.add_argument("--photos", action="append", required=True, help="held-out | unlike | FOLDER (repeatable)")
    ap.add_argument("--emotion", default="surprise")
    ap.add_argument("--frames", type=int, default=16, help="as `ckpp generate` (default 16)")
    ap.add_argument("--start", default="auto", help="as `ckpp generate --start` (default auto)")
    ap.add_argument("--paste-back", action="store_true", help="measure the whole pasted-back photos")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (2 shared cores: 1 is fastest)")
    ap.add_argument("--out", required=True, help="results JSON")
    args = ap.parse_args()
    import torch
    from tqdm import tqdm

    from ckpp_tools import face_measures as fm
    from ckpp_tools.errors import CkppError
    from ckpp_tools.face_geometry import face_box
    from ckpp_tools.identity import FaceEncoder, distance
    from models import evaluate as ev
    from models import judge_metrics as jm
    from models.benchmark import Measurer, sha256
    from models.checkpoint import load_run
    from models.expression_judge import WEIGHTS_SHA256
    from models.generate import generate_video, parse_weights

    torch.set_num_threads(args.threads)
    t0 = time.time()
    family, meta = load_run(args.model, device="cpu")
    weights = parse_weights([args.emotion], family.emotions)
    emotion = next(iter(weights))
    measurer, encoder = Measurer(identity=False), FaceEncoder.shared()
    groups = {}
    for spec in args.photos:
        name, items = photo_group(spec)
        rows = []
        for pname, load in tqdm(items, desc=name[:24], unit="photo"):
            row = {"photo": pname}
            try:
                photo = load()
                _, pts = face_box(photo, pname)
                found: dict = {}
                video = generate_video(family, photo, weights, args.frames, paste=args.paste_back, where=pname,
                                       start=args.start, report=found)
            except CkppError as exc:
                rows.append(dict(row, error=str(exc.message).split("\n")[0]))
                continue
            lms, _ = measurer.measure(video)
            fb = lms[0] if np.all(np.isfinite(lms[0])) else None
            s = jm.video_scores(video, lms, emotion, input_sharp=jm.input_sharpness(photo, pts), fallback_landmarks=fb)
            det = ev.detected(lms)
            peak_desc = encoder.descriptor_from_landmarks(video[-1], lms[-1]) if det[-1] else None
            row.update({k: s[k] for k in jm.JUDGE_METRICS}, judge_curve=[round(x, 5) for x in s.get("judge_curve", [])],
                       start=found.get("start"), frame_side=int(video.shape[1]), face_found=float(det.mean()),
                       mouth_open_gain=(fm.gains(lms[0], lms[-1])["mouth_open"] if det[0] and det[-1] else None),
                       identity_distance_peak=distance(peak_desc, encoder.descriptor_from_landmarks(photo, pts)))
            rows.append(row)
        groups[name] = {"summary": summarise(rows), "rows": rows}
    result = {
        "what": "ckpp generate MODEL PHOTO --emotion " + emotion + " as typed, judged as a viewer would "
                "(FER2013 judge, face sharpness vs the photo, dlib)",
        "command": "python benchmarks/bm_judge_photos.py " + " ".join(sys.argv[1:]),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "seconds": round(time.time() - t0, 1),
        "model": {"arg": args.model, "path": meta.get("path"), "step": meta.get("step"), "family": family.name,
                  "image_size": int(family.cfg.image_size), "sha256": sha256(meta.get("path"))},
        "options": {"emotion": emotion, "frames": args.frames, "start": args.start, "paste_back": args.paste_back},
        "judge_weights_sha256": WEIGHTS_SHA256,
        "notes": jm.NOTES + ["recognised: the judge's top label at the last frame is the target; P medians over "
                             "videos; identity: dlib descriptor distance peak frame vs the photo's face"],
        "groups": groups,
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out + ".partial", "w") as fh:
        json.dump(result, fh, indent=1, default=lambda o: None)
    os.replace(args.out + ".partial", args.out)
    for name, g in groups.items():
        print(name, json.dumps(g["summary"]))
    print("wrote", args.out)


if __name__ == "__main__":
    main()
