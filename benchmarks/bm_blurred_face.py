"""`blurry` vs `no_face` (ckpp_tools/blurred_face.py), measured: sample trees through `ckpp prepare` against their
truth.json, face-free pictures (scenes, sky title cards; sharp and blurred) through process_clip, and the cost of
the blurred-face search on the clips where no face was found.

    python benchmarks/bm_blurred_face.py --make "small:0-9" --make "nba:9-14"    # makes the trees (temp dir)
    python benchmarks/bm_blurred_face.py --trees /tmp/trees/*                     # trees made before

Each tree: `ckpp prepare TREE out.h5 --size 48`; every clip's (status, reason) must equal truth.json's, the
blurred take's detail says whether the detector missed the face (then the blurred-face search decided). Face-free
pictures: 20 scenes shipped with scikit-image and matplotlib x 3 crops/sizes x 4 blurs + 4 sky title cards, as
12-frame still clips; every one must be `no_face`. Results: benchmarks/results/bm_blurred_face.json
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

import cv2
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from ckpp_tools.lifecycle import popen_kwargs  # noqa: E402

CKPP = [sys.executable, "-m", "ckpp_tools.cli"]
ENV = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
FLAVOURS = {"small": ["--small", "--subjects", "2"], "big": ["--subjects", "1"],
            "nba": ["--photos", "nba", "--subjects", "2"], "unlike": ["--photos", "unlike", "--subjects", "2"]}


def run(cmd, cwd=None):
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, **popen_kwargs(signal.SIGKILL, ENV))


def seeds(spec: str) -> list[int]:
    out = []
    for part in spec.split(","):
        a, _, b = part.partition("-")
        out += list(range(int(a), int(b or a) + 1))
    return out


def make_trees(specs, work) -> list[str]:
    trees = []
    for spec in specs:
        flavour, _, rng = spec.partition(":")
        for k in seeds(rng):
            d = os.path.join(work, f"{flavour}{k}")
            r = run(CKPP + ["sample", d, "--seed", str(k), "--no-ckplus", *FLAVOURS[flavour]])
            assert r.returncode == 0, r.stderr[-2000:]
            trees.append(d)
    return trees


def check_tree(tree, work) -> dict:
    """prepare the tree; every clip's (status, reason) against truth.json."""
    from ckpp_tools.reader import open_dataset

    out = os.path.join(work, os.path.basename(tree) + ".h5")
    t0 = time.perf_counter()
    r = run(CKPP + ["prepare", tree, out, "--size", "48", "--workers", "2", "--quiet", "--overwrite"])
    assert r.returncode == 0, r.stderr[-2000:]
    secs = time.perf_counter() - t0
    with open(os.path.join(tree, "truth.json")) as fh:
        truth = json.load(fh)["clips"]
    ds = open_dataset(out)
    rows = {row["source"]: row for row in ds.manifest.to_dict("records")}
    ds.close()
    wrong, blurred = [], []
    for src, t in truth.items():
        got = rows[src]
        if (got["status"], got["reason"]) != (t["expected_status"], t["expected_reason"]):
            wrong.append(f"{src}: {got['status']}/{got['reason'] or '-'} ({got['detail']}), truth "
                         f"{t['expected_status']}/{t['expected_reason'] or '-'}")
        if t["expected_reason"] == "blurry":
            blurred.append({"source": src, "reason": got["reason"], "detail": got["detail"],
                            "detector_missed_it": "no face found" in got["detail"]})
    for p in glob.glob(out.replace(".h5", "*")):
        os.remove(p)
    return {"tree": os.path.basename(tree), "clips": len(truth), "wrong": wrong, "blurred_takes": blurred,
            "prepare_s": round(secs, 1)}


def sky_title(w, h, seed):
    """A sharp title over a gradient sky with soft clouds (as tests/test_blurred_face.py)."""
    rng = np.random.default_rng(seed)
    y = np.linspace(0, 1, h)[:, None, None]
    img = np.array([40, 90, 190.]) * (1 - y) + np.array([170, 210, 245.]) * y
    n = cv2.GaussianBlur(rng.normal(0, 1, (h, w)).astype(np.float32), (0, 0), h / 12)
    c = np.clip(((n - n.min()) / (n.max() - n.min()) - 0.45) * 3, 0, 1)[..., None]
    img = np.ascontiguousarray((img * (1 - c) + 245 * c).astype(np.uint8))
    cv2.putText(img, ["SUMMER 2026", "THE END", "Chapter 3", "LIVE"][seed % 4], (w // 8, h * 11 // 20),
                cv2.FONT_HERSHEY_DUPLEX, w / 320, (255, 255, 255), max(2, w // 160), cv2.LINE_AA)
    return img


def scenes() -> dict:
    import matplotlib
    import skimage.data as sd

    out = {n: getattr(sd, n)() for n in ("coffee", "chelsea", "rocket", "coins", "hubble_deep_field", "gravel",
                                        "immunohistochemistry", "clock", "page", "text", "brick", "grass", "moon",
                                        "retina", "cell")}
    out["motorcycle"] = sd.stereo_motorcycle()[0]
    out["logo"] = sd.logo()[..., :3]
    out["horse"] = (sd.horse() * 255).astype(np.uint8)
    for name in ("Minduka_Present_Blue_Pack.png", "logo2.png"):
        img = cv2.imread(os.path.join(matplotlib.get_data_path(), "sample_data", name))
        if img is not None:
            out[name.split(".")[0]] = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    return out


def face_free(n_frames=12, seed=7) -> dict:
    """process_clip on still clips of face-free pictures: crops/sizes x blurs; all must be no_face."""
    from ckpp_tools.clip_pipeline import ClipOptions, process_clip

    rng = np.random.default_rng(seed)
    rows = []
    pics = {f"sky_title{k}": sky_title(*((960, 540), (640, 360), (480, 270), (1280, 720))[k], k) for k in range(4)}
    pics.update(scenes())
    for name, img in pics.items():
        img = np.asarray(img)
        if img.ndim == 3:
            img = np.ascontiguousarray(img[..., :3])
        H, W = img.shape[:2]
        variants = [("whole", img)]
        for size in ((320, 240), (640, 480)):
            ch = int(min(H, W * 3 / 4) * rng.uniform(0.6, 0.9))
            cw = int(ch * 4 / 3)
            y, x = rng.integers(0, H - ch + 1), rng.integers(0, W - cw + 1)
            variants.append((f"crop {size[0]}x{size[1]}", cv2.resize(img[y:y + ch, x:x + cw], size, interpolation=cv2.INTER_AREA)))
        for vname, v in variants:
            for frac in (0.0, 0.005, 0.01, 0.02):
                f = v if frac == 0 else cv2.GaussianBlur(v, (0, 0), frac * v.shape[1])
                res = process_clip([f] * n_frames, options=ClipOptions(size=48))
                rows.append({"picture": name, "variant": vname, "blur_frac": frac, "reason": res.reason,
                             "detail": res.detail, "t_track": res.extra.get("t_track"),
                             "t_blurred_face": res.extra.get("t_blurred_face"),
                             "blurred_face_calls": res.extra.get("blurred_face_calls")})
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--make", action="append", default=[], metavar="FLAVOUR:SEEDS",
                    help=f"make sample trees ({', '.join(FLAVOURS)}), e.g. small:0-9 or nba:9-14")
    ap.add_argument("--trees", nargs="*", default=[], help="sample trees made before")
    ap.add_argument("--no-face-free", action="store_true", help="skip the face-free pictures")
    ap.add_argument("--face-free-seed", type=int, default=7, help="seed of the crops of the face-free pictures")
    ap.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "results", "bm_blurred_face.json"))
    a = ap.parse_args()
    t0 = time.monotonic()
    res = {"cpu_count": os.cpu_count(), "load_avg_start": os.getloadavg()[0]}
    with tempfile.TemporaryDirectory(prefix="bm_blurred_face-") as work:
        trees = list(a.trees) + make_trees(a.make, work)
        res["trees"] = []
        for tree in trees:
            r = check_tree(tree, work)
            res["trees"].append(r)
            print(f"{r['tree']}: {r['clips']} clips, {len(r['wrong'])} wrong; blurred take: "
                  + "; ".join(f"{b['reason']}{' (detector missed it)' if b['detector_missed_it'] else ''}"
                              for b in r["blurred_takes"]), flush=True)
            for w in r["wrong"]:
                print("   WRONG", w, flush=True)
    bt = [b for r in res["trees"] for b in r["blurred_takes"]]
    res["summary_trees"] = {"trees": len(res["trees"]), "clips": sum(r["clips"] for r in res["trees"]),
                            "clips_wrong": sum(len(r["wrong"]) for r in res["trees"]),
                            "blurred_takes": len(bt), "blurred_takes_blurry": sum(b["reason"] == "blurry" for b in bt),
                            "blurred_takes_detector_missed": sum(b["detector_missed_it"] for b in bt),
                            "missed_and_blurry": sum(b["detector_missed_it"] and b["reason"] == "blurry" for b in bt)}
    if not a.no_face_free:
        rows = face_free(seed=a.face_free_seed)
        res["face_free_seed"] = a.face_free_seed
        res["face_free"] = rows
        nf = [r for r in rows if r["reason"] == "no_face"]
        res["summary_face_free"] = {
            "clips": len(rows), "no_face": len(nf),
            "other": [f"{r['picture']} {r['variant']} blur {r['blur_frac']}: {r['reason']} ({r['detail']})"
                      for r in rows if r["reason"] != "no_face"],
            "t_blurred_face_median_s": round(float(np.median([r["t_blurred_face"] for r in nf])), 4),
            "t_track_median_s": round(float(np.median([r["t_track"] for r in nf])), 4),
            "blurred_face_over_track_median": round(float(np.median([r["t_blurred_face"] / r["t_track"] for r in nf])), 3)}
    res["seconds"] = round(time.monotonic() - t0, 1)
    os.makedirs(os.path.dirname(a.out), exist_ok=True)
    with open(a.out, "w") as fh:
        json.dump(res, fh, indent=1)
    print(json.dumps({k: v for k, v in res.items() if k.startswith("summary") or k in ("seconds", "load_avg_start")}, indent=1))


if __name__ == "__main__":
    main()
