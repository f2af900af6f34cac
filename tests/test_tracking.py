"""Detect once, track, re-detect on trouble; face lost -> usable part ends; no_face / multiple_faces."""
import os
import sys

import cv2
import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from _synth_clips import make_clip  # noqa: E402

from ckpp_tools.landmarks.dlib_backend import DlibLandmarker  # noqa: E402
from ckpp_tools.landmarks.tracking import FaceTracker, to_gray  # noqa: E402

CROP = (100, 0, 356, 300)


def _track(frames, **kw):
    provided = kw.pop("provided", None)
    return FaceTracker(DlibLandmarker.shared(), **kw).run([to_gray(f) for f in frames], provided=provided)


def _nme(a, b, iod):
    return np.linalg.norm(a - b, axis=-1).mean(-1) / iod


def test_detects_once_and_tracks_accurately():
    frames, truth = make_clip("surprise", crop=CROP)
    tr = _track(frames)
    assert tr.status == "ok" and (tr.start, tr.stop) == (0, len(frames))
    assert tr.detector_calls == 1, tr.events
    assert np.median(_nme(tr.landmarks, truth["landmarks"], truth["iod"])) < 0.05


def test_face_leaving_the_picture_ends_the_usable_part():
    frames, _ = make_clip("smile", crop=CROP, n_pre=4, n_rise=4, n_tail=4)
    f0 = frames[-1]
    h, w = f0.shape[:2]
    # then the face slides out to the left over 8 frames (black border comes in)
    for k in range(1, 9):
        m = np.float32([[1, 0, -k * w / 8], [0, 1, 0]])
        frames.append(cv2.warpAffine(f0, m, (w, h), borderMode=cv2.BORDER_CONSTANT))
    tr = _track(frames)
    assert tr.status == "ok"
    assert 12 <= tr.stop < len(frames) - 2, (tr.stop, tr.events)
    assert np.isfinite(tr.landmarks[: tr.stop]).all() and np.isnan(tr.landmarks[tr.stop:]).all()


def test_cut_to_no_face_ends_the_usable_part():
    import skimage.data

    frames, _ = make_clip("smile", crop=CROP, n_pre=4, n_rise=4, n_tail=2)
    other = cv2.resize(skimage.data.coffee(), frames[0].shape[1::-1])
    tr = _track(frames + [other] * 5)
    assert tr.stop == 10, tr.events
    assert tr.redetections >= 1


def test_no_face_and_multiple_faces():
    import skimage.data

    coffee = skimage.data.coffee()[:300, :300]
    tr = _track([coffee] * 6)
    assert tr.status == "no_face" and "no face" in tr.detail
    assert tr.detector_calls <= 9
    frames, _ = make_clip("smile", crop=CROP, n_pre=3, n_rise=3, n_tail=2)
    small = [cv2.resize(f, None, fx=0.8, fy=0.8) for f in frames]
    pair = [np.hstack([f, np.pad(s, ((0, f.shape[0] - s.shape[0]), (0, 0), (0, 0)))]) for f, s in zip(frames, small)]
    rej = _track(pair, multiple_faces="reject")
    assert rej.status == "multiple_faces" and "2 faces" in rej.detail
    big = _track(pair, multiple_faces="largest")
    assert big.status == "ok" and big.stop == len(pair)
    assert big.landmarks[:, :, 0].max() < frames[0].shape[1]  # the larger (left) face was tracked


def test_provided_landmarks_skip_the_detector():
    frames, truth = make_clip("smile", crop=CROP, n_pre=4, n_rise=6, n_tail=4)
    prov = truth["landmarks"].astype(np.float32).copy()
    tr = _track(frames, provided=prov)
    assert tr.detector_calls == 0 and tr.provided_used == len(frames)
    assert np.allclose(tr.landmarks, prov)
    prov[5:9] = np.nan  # missing rows are tracked from their neighbours, still without the detector
    tr = _track(frames, provided=prov)
    assert tr.detector_calls == 0 and tr.provided_used == len(frames) - 4
    assert np.median(_nme(tr.landmarks[5:9], truth["landmarks"][5:9], truth["iod"])) < 0.06


def test_face_alignment_backend_without_package_or_weights_says_how(monkeypatch, tmp_path):
    import subprocess

    import pytest

    from ckpp_tools.errors import MissingWeightsError
    from ckpp_tools.landmarks import fa_backend

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # an empty cache: never the user's real one
    with pytest.raises(MissingWeightsError) as exc:
        fa_backend.FaceAlignmentLandmarker()
    text = str(exc.value)
    assert "ckpp[fa]" in text and ("not installed" in text or str(tmp_path) in text)
    code = "import sys, ckpp_tools.landmarks.fa_backend, ckpp_tools.clip_pipeline; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_shipped_detector_file_is_dlibs_frontal_face_detector(tmp_path):
    """The fast-loading copy (frontal_face_detector.svm) must be byte-identical to dlib's built-in detector, so
    detections are the same; if dlib ever ships another detector this fails (re-save the file)."""
    import dlib

    from ckpp_tools.landmarks import dlib_backend

    builtin = dlib.get_frontal_face_detector()
    builtin.save(str(tmp_path / "builtin.svm"))
    with open(dlib_backend.DETECTOR_FILE, "rb") as fh:
        assert fh.read() == (tmp_path / "builtin.svm").read_bytes()
    frames, _ = make_clip("smile", crop=CROP, n_pre=1, n_rise=1, n_tail=0)
    g = to_gray(frames[0])
    fast = dlib_backend.load_frontal_face_detector()
    for up in (0, 1):
        assert [tuple((r.left(), r.top(), r.right(), r.bottom())) for r in fast(g, up)] == \
               [tuple((r.left(), r.top(), r.right(), r.bottom())) for r in builtin(g, up)]
    assert len(fast(g, 0)) == 1


def test_shape_to_array_matches_dlibs_points():
    """The fast text parse of the predictor's points equals walking dlib's point objects (negative too)."""
    import dlib

    from ckpp_tools.landmarks.dlib_backend import shape_to_array

    frames, _ = make_clip("smile", crop=CROP, n_pre=1, n_rise=1, n_tail=0)
    lm = DlibLandmarker.shared()
    g = to_gray(frames[0])
    box = lm.detect(g)[0]
    for dx in (0, -int(box[2]) - 40):  # the second box lies left of the image: negative x
        shape = lm.predictor(g, dlib.rectangle(int(box[0]) + dx, int(box[1]), int(box[2]) + dx, int(box[3])))
        walked = np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float32)
        got = shape_to_array(shape)
        assert got.dtype == np.float32 and got.shape == (68, 2) and np.array_equal(got, walked)
    assert (shape_to_array(shape)[:, 0] < 0).any()
