"""Which face of a photo with several is animated (ckpp_tools.face_pick), and `--face N` for another."""
from __future__ import annotations

import numpy as np
import pytest

from ckpp_tools import face_pick
from ckpp_tools.errors import UsageError
from ckpp_tools.face_geometry import face_box
from ckpp_tools.landmarks.dlib_backend import DlibLandmarker
from tests.fakes import group_photo


def _at(face, layout, name) -> bool:
    """Is `face` the one placed as `name` (its landmark centre within a fifth of its size of the layout's)?"""
    extent, (cx, cy) = layout[name]
    c = (face.box[:2] + face.box[2:]) / 2
    return float(np.hypot(c[0] - cx, c[1] - cy)) < 0.2 * extent


def test_the_central_whole_face_wins_over_a_larger_one_cut_by_the_border():
    photo, layout = group_photo()
    # the case exists: the old "largest box first" pick is the face the right edge cuts
    old = DlibLandmarker.shared().detect(photo, upsample=0, max_side=640)
    old_c = ((old[0][0] + old[0][2]) / 2, (old[0][1] + old[0][3]) / 2)
    assert np.hypot(old_c[0] - layout["cut"][1][0], old_c[1] - layout["cut"][1][1]) < 40
    faces = face_pick.faces(photo)
    assert len(faces) == 3 and [f.rank for f in faces] == [1, 2, 3]
    first = faces[0]
    assert _at(first, layout, "central"), first.summary()
    assert "central" in first.reasons and "whole" in first.reasons
    cut = next(f for f in faces if _at(f, layout, "cut"))
    assert cut.size == 1.0 and cut.landmarks_outside > 0 and "cut by the edge" in cut.reasons
    small = next(f for f in faces if _at(f, layout, "small"))
    assert small.size < 0.6 and "whole" in small.reasons
    # face_box: the first by default, any other by its 1-based number; all of them in the report
    rep: dict = {}
    box, pts = face_box(photo, "group.png", report=rep)
    assert rep["face"] is rep["faces"][0] and np.array_equal(pts, first.landmarks)
    assert np.allclose(box, first.crop_box)
    _, pts2 = face_box(photo, "group.png", face=2)
    assert np.array_equal(pts2, faces[1].landmarks)
    with pytest.raises(UsageError) as err:
        face_box(photo, "group.png", face=4)
    text = str(err.value.message)
    assert "--face" in text and "group.png has 3 faces; there is no face 4" in text and "1 to 3" in text
    assert first.box_text() in text and cut.box_text() in text
    with pytest.raises(UsageError, match="there is no face 0"):
        face_box(photo, "group.png", face=0)
    note = face_pick.describe(faces, first)
    assert note.startswith(f"3 faces found; animating face 1 at {first.box_text()} (")
    assert f"--face 2 for the one at {faces[1].box_text()}" in note


def test_a_weak_candidate_is_checked_by_the_cnn(tmp_path):
    """A greyscale JPEG of the astronaut: HOG finds her face (~1.5) and a larger patch of her suit (~0.01). The
    suit is checked by dlib's CNN detector and dropped; her face is confirmed by it too."""
    import cv2
    import imageio.v3 as iio
    import skimage.data

    from ckpp_tools.photo_io import read_photo

    gray = cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2GRAY)
    iio.imwrite(tmp_path / "gray.jpg", gray)
    photo = read_photo(tmp_path / "gray.jpg")
    cands = face_pick.candidates(DlibLandmarker.shared(), photo)
    assert len(cands) == 2
    face, suit = sorted(cands, key=lambda c: -max(c["scores"].values()))
    assert max(suit["scores"].values()) < face_pick.MARGINAL_SCORE <= max(face["scores"].values())
    assert suit["box"][2] - suit["box"][0] > face["box"][2] - face["box"][0]      # the larger box
    assert face_pick.cnn_confidence(photo, suit["box"]) is None
    assert face_pick.cnn_confidence(photo, face["box"]) > 0.5
    (only,) = face_pick.faces(photo)
    assert only.box[1] < 200 and face_pick.describe([only], only) == ""
