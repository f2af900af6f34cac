"""`ckpp sample`: exact CK+ formats, truth that agrees with dlib, the bad cases, determinism, CLI errors."""
from __future__ import annotations

import hashlib
import os
import re

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from ckpp_tools.cli import main
from ckpp_tools.emotions import CODES
from ckpp_tools.errors import CkppError
from ckpp_tools.sample import load_truth, make_sample

FLOAT = r"-?\d\.\d{7}e[+-]\d{2}"
LANDMARK_LINE = re.compile(rf"^   {FLOAT}   {FLOAT}$")
EMOTION_TEXT = re.compile(rf"^   {FLOAT}\n$")


def decode(path):
    cap = cv2.VideoCapture(str(path))
    frames = []
    while cap.isOpened():
        ok, f = cap.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(f, cv2.COLOR_BGR2RGB))
    cap.release()
    return frames


def ck_frames(root, rel):
    d = os.path.join(root, rel)
    return [cv2.imread(os.path.join(d, n), cv2.IMREAD_UNCHANGED) for n in sorted(os.listdir(d))]


def iod(pts):
    pts = np.asarray(pts)
    return float(np.linalg.norm(pts[36] - pts[45]))


@pytest.fixture(scope="module")
def truth(sample_root):
    return load_truth(sample_root)


def check_ckplus_tree(root, truth, size):
    seqs = {k: v for k, v in truth["clips"].items() if v["layout"] == "ckplus"}
    assert seqs
    for rel, e in seqs.items():
        subj, take = e["subject"], e["take"]
        assert rel == f"CK+/cohn-kanade-images/{subj}/{take}"
        assert re.fullmatch(r"S\d{3}", subj) and re.fullmatch(r"\d{3}", take)
        names = sorted(os.listdir(os.path.join(root, rel)))
        n = e["n_frames"]
        assert names == [f"{subj}_{take}_{i:08d}.png" for i in range(1, n + 1)]
        for name in (names[0], names[-1]):
            img = cv2.imread(os.path.join(root, rel, name), cv2.IMREAD_UNCHANGED)
            if e["color"]:
                assert img.ndim == 3 and img.shape[2] == 3 and np.abs(img[..., 0].astype(int) - img[..., 2]).mean() > 5
            else:
                assert img.ndim == 2 and img.dtype == np.uint8, "CK+ frames are 8-bit grayscale"
            assert (img.shape[1], img.shape[0]) == size
        lm_dir = os.path.join(root, "CK+", "Landmarks", subj, take)
        lm_names = sorted(os.listdir(lm_dir))
        assert lm_names == [f"{subj}_{take}_{i:08d}_landmarks.txt" for i in range(1, n + 1)]
        for i in (0, n - 1):
            with open(os.path.join(lm_dir, lm_names[i])) as fh:
                text = fh.read()
            lines = text.split("\n")
            assert lines[-1] == "" and len(lines) == 69, "68 lines, each newline-terminated"
            assert all(LANDMARK_LINE.match(line) for line in lines[:68]), lines[0]
            values = np.array([[float(v) for v in line.split()] for line in lines[:68]])
            np.testing.assert_allclose(values, np.array(e["landmarks"][i]), atol=1e-4)
        em_dir = os.path.join(root, "CK+", "Emotion", subj, take)
        if e["expected_reason"] == "unlabelled":
            assert not os.path.exists(em_dir) or not os.listdir(em_dir)
        else:
            assert os.listdir(em_dir) == [f"{subj}_{take}_{n:08d}_emotion.txt"], "named after the last (peak) frame"
            with open(os.path.join(em_dir, f"{subj}_{take}_{n:08d}_emotion.txt")) as fh:
                text = fh.read()
            assert EMOTION_TEXT.match(text) and text == f"   {float(CODES[e['emotion']]):.7e}\n"
        assert e["onset"] == 0 and e["peak"] == n - 1
    return seqs


def test_ckplus_small_tree_formats(sample_root, truth):
    seqs = check_ckplus_tree(sample_root, truth, (320, 245))
    assert any(e["expected_reason"] == "unlabelled" for e in seqs.values()), "some sequences have no Emotion file"
    assert any(e["expected_status"] == "accepted" for e in seqs.values())
    assert sum(e["color"] for e in seqs.values()) == 1, "one colour sequence, as CK+ has some"


def test_ckplus_default_size_is_640x490(tmp_path):
    tr = make_sample(tmp_path / "raw", subjects=1, seed=1, videos=False, workers=1, progress=False)
    check_ckplus_tree(tmp_path / "raw", tr, (640, 490))
    # the CK+ emotion text for a known code, exactly as in the dataset
    em = next((tmp_path / "raw" / "CK+" / "Emotion").rglob("*_emotion.txt")).read_text()
    assert re.fullmatch(r"   [1-7]\.0000000e\+00\n", em)


def test_truth_onset_peak_conventions(truth):
    videos = [e for e in truth["clips"].values() if e["layout"] == "videos" and e["onset"] >= 0]
    assert videos
    for e in videos:
        a = np.array(e["intensity"])
        on, pk = e["onset"], e["peak"]
        assert len(a) == e["n_frames"] == len(e["landmarks"])
        assert on >= 2 and e["n_frames"] - 1 - pk >= 2, "neutral pre-roll and stationary peak tail"
        assert np.all(a[: on + 1] == 0) and a[on + 1] > 0, "onset = last frame with intensity 0"
        assert np.all(a[pk:] == 1.0) and a[pk - 1] < 1.0, "peak = first frame at the maximum"
        assert np.all(np.diff(a) >= 0)
        steps = np.diff(a[on:pk + 1])
        assert steps[0] < steps[len(steps) // 2] and steps[-1] < steps[len(steps) // 2], "eased, not linear"
        lm = np.array(e["landmarks"])
        if not any(e["head_motion"].values()):
            assert np.abs(lm[pk:] - lm[pk]).max() < 1e-6, "the peak tail is stationary"
            assert np.abs(lm[: on + 1] - lm[0]).max() < 1e-6
        assert np.abs(lm[pk] - lm[on]).max() > 0.03 * iod(lm[on]), "the expression moves landmarks"


def test_truth_landmarks_agree_with_dlib(sample_root, truth):
    from ckpp_tools.landmarks.dlib_backend import DlibLandmarker

    lm = DlibLandmarker.shared()
    picks = []
    for emotion in ("surprise", "happy", "anger"):
        picks.append(next(k for k, e in truth["clips"].items() if e["emotion"] == emotion and e["layout"] == "videos"
                          and e["expected_status"] == "accepted" and not any(e["head_motion"].values())))
    picks.append(next(k for k, e in truth["clips"].items() if e["layout"] == "ckplus"))
    picks.append(next(k for k, e in truth["clips"].items() if e["expected_reason"] == "head_motion"))
    nmes = []
    for rel in picks:
        e = truth["clips"][rel]
        frames = decode(sample_root / rel) if e["layout"] == "videos" else ck_frames(sample_root, rel)
        idx = sorted({0, e["onset"], (e["onset"] + e["peak"]) // 2, e["peak"], e["n_frames"] - 1})
        for t in idx:
            gt = np.array(e["landmarks"][t])
            boxes = lm.detect(frames[t], upsample=1)
            assert boxes, f"no face found in {rel} frame {t}"
            pred = lm.predict(frames[t], boxes[0])
            nmes.append(float(np.linalg.norm(pred - gt, axis=1).mean() / iod(gt)))
    assert np.median(nmes) < 0.05, nmes
    assert np.max(nmes) < 0.10, nmes


def test_open_mouth_shows_a_dark_cavity(sample_root, truth):
    rel = next(k for k, e in truth["clips"].items() if e["emotion"] == "surprise" and e["layout"] == "videos"
               and e["expected_status"] == "accepted")
    e = truth["clips"][rel]
    frame = cv2.cvtColor(decode(sample_root / rel)[e["peak"]], cv2.COLOR_RGB2GRAY)
    pts = np.array(e["landmarks"][e["peak"]])
    mask = np.zeros(frame.shape, np.uint8)
    cv2.fillPoly(mask, [np.round(pts[60:68]).astype(np.int32)], 1)
    mask = cv2.erode(mask, np.ones((3, 3), np.uint8))
    assert mask.sum() > 20, "the mouth is open at the surprise peak"
    cheeks = np.array([frame[int(pts[i, 1]), int(pts[i, 0])] for i in (29, 30)]).mean()
    assert frame[mask > 0].mean() < 0.6 * cheeks, "inside the open mouth is dark, not smeared lip/skin"


def laplacian_variance(gray, pts):
    x0, y0 = np.asarray(pts).min(0).astype(int)
    x1, y1 = np.asarray(pts).max(0).astype(int)
    return float(cv2.Laplacian(gray[y0:y1, x0:x1], cv2.CV_64F).var())


def test_blurred_take_has_low_laplacian_variance(sample_root, truth):
    rel, e = next((k, e) for k, e in truth["clips"].items() if e["expected_reason"] == "blurry")
    assert e["blur_sigma"] > 0
    twin = e["twin"]
    assert truth["clips"][twin]["expected_status"] == "accepted"
    blurred, sharp = decode(sample_root / rel), decode(sample_root / twin)
    assert len(blurred) == len(sharp) == e["n_frames"]
    for t in (0, e["peak"]):
        pts = e["landmarks"][t]
        vb = laplacian_variance(cv2.cvtColor(blurred[t], cv2.COLOR_RGB2GRAY), pts)
        vs = laplacian_variance(cv2.cvtColor(sharp[t], cv2.COLOR_RGB2GRAY), pts)
        assert vb < 0.15 * vs, (vb, vs)


def test_videos_decode_with_truth_frame_counts(sample_root, truth):
    for rel, e in truth["clips"].items():
        if e["layout"] != "videos" or e["expected_reason"] == "unreadable":
            continue
        assert re.fullmatch(r"ours/P\d{3}/[a-z]+_\d{2}\.mp4", rel)
        frames = decode(sample_root / rel)
        assert len(frames) == e["n_frames"], rel
        h, w = frames[0].shape[:2]
        assert [w, h] == e["size"] == [320, 240]
        f = frames[e["peak"]].astype(int)
        assert np.abs(f[..., 0] - f[..., 2]).mean() > 5, "videos are colour"


def test_bad_cases(sample_root, truth):
    clips = truth["clips"]
    reasons = {e["expected_reason"] for e in clips.values()}
    assert {"blurry", "head_motion", "unreadable", "unlabelled", "no_expression", "too_short", "unknown_emotion"} <= reasons
    still = next(e for e in clips.values() if e["expected_reason"] == "no_expression")
    assert np.ptp(np.array(still["landmarks"]), axis=0).max() < 1e-6 and still["n_frames"] >= 10
    short = next(e for e in clips.values() if e["expected_reason"] == "too_short")
    assert 0 < short["n_frames"] < 4
    yawn = next(k for k, e in clips.items() if e["expected_reason"] == "unknown_emotion")
    assert yawn.split("/")[-1].startswith("yawn_") and clips[yawn]["emotion"] == "yawn"
    unreadable = [k for k, e in clips.items() if e["expected_reason"] == "unreadable"]
    assert len(unreadable) == 3
    sizes = {k: os.path.getsize(sample_root / k) for k in unreadable}
    assert 0 in sizes.values(), "an empty file"
    for k in unreadable:
        assert k.endswith(".mp4")
        assert decode(sample_root / k) == [], f"{k} must not decode"
        if "truncated_from" in clips[k]:
            full = os.path.getsize(sample_root / clips[k]["truncated_from"])
            assert sizes[k] == full // 3
            assert decode(sample_root / clips[k]["truncated_from"]), "its source decodes"
    moving = [e for e in clips.values() if e["expected_reason"] == "head_motion"]
    assert {e["head_motion"]["max_yaw_deg"] >= 10 for e in moving} == {True, False}, "a turn and a roll/slide take"
    for e in moving:
        hm = e["head_motion"]
        assert hm["max_rotation_deg"] >= 10 or hm["max_translation_iod"] >= 0.5
        # the truth landmarks really move that way: roll of the eye line, slide of the eyes, or the nose tip
        # sweeping sideways against the eye corners (a turn)
        lm = np.array(e["landmarks"])
        eye = lm[:, 45] - lm[:, 36]
        roll = np.degrees(np.arctan2(eye[:, 1], eye[:, 0]))
        eyes = lm[:, [36, 39, 42, 45]].mean(1)
        slide = np.linalg.norm(eyes - eyes[0], axis=1) / iod(lm[0])
        nose = (lm[:, 30, 0] - (lm[:, 36, 0] + lm[:, 45, 0]) / 2) / np.linalg.norm(eye, axis=1)
        if hm["max_yaw_deg"] >= 10:
            assert np.abs(nose - nose[0]).max() >= 0.08 and np.abs(roll - roll[0]).max() < 1
        else:
            assert np.abs(roll - roll[0]).max() >= 10 or slide.max() >= 0.5
    drift = [e for e in clips.values() if e["expected_reason"] != "head_motion" and any(e["head_motion"].values())]
    assert drift and all(e["expected_status"] == "accepted" for e in drift)
    assert all(0.15 <= e["head_motion"]["max_translation_iod"] <= 0.3 for e in drift)


def tree_digest(root):
    h = {}
    for dirpath, _, files in os.walk(root):
        for name in files:
            p = os.path.join(dirpath, name)
            with open(p, "rb") as fh:
                h[os.path.relpath(p, root)] = hashlib.sha1(fh.read()).hexdigest()
    return h


def test_deterministic_for_a_seed_and_any_worker_count(tmp_path):
    kw = dict(subjects=1, small=True, progress=False)
    a = make_sample(tmp_path / "a", seed=5, workers=1, **kw)
    b = make_sample(tmp_path / "b", seed=5, workers=2, **kw)
    c = make_sample(tmp_path / "c", seed=6, workers=1, **kw)
    assert a == b
    assert tree_digest(tmp_path / "a") == tree_digest(tmp_path / "b")
    assert a["clips"].keys() == c["clips"].keys() and a != c
    assert not (tmp_path / "a.partial").exists()


def test_contact_sheet(sample_root):
    sheet = cv2.imread(str(sample_root / "contact_sheet.png"))
    assert sheet is not None and sheet.shape[0] >= 5 * 64 and sheet.shape[1] >= 5 * 64


def test_cli_refuses_existing_file_and_nonempty_dir(tmp_path):
    f = tmp_path / "notes.txt"
    f.write_text("keep me")
    res = CliRunner().invoke(main, ["sample", str(f)])
    assert res.exit_code != 0
    assert str(f) in res.output and "is a file" in res.output and "fix:" in res.output
    assert f.read_text() == "keep me"

    d = tmp_path / "full"
    d.mkdir()
    (d / "mine.txt").write_text("x")
    res = CliRunner().invoke(main, ["sample", str(d)])
    assert res.exit_code != 0
    assert str(d) in res.output and "not empty" in res.output and "--overwrite" in res.output
    res = CliRunner().invoke(main, ["sample", str(d), "--overwrite"])
    assert res.exit_code != 0 and "truth.json" in res.output, "--overwrite never replaces a foreign folder"
    assert (d / "mine.txt").read_text() == "x"

    res = CliRunner().invoke(main, ["sample", str(tmp_path / "x"), "--subjects", "0"])
    assert res.exit_code != 0 and "--subjects" in res.output


def test_leftover_partial_folder(tmp_path):
    """A killed run leaves OUT.partial (with our marker): the next run replaces it. A foreign OUT.partial is
    never deleted."""
    stale = tmp_path / "raw.partial"
    stale.mkdir()
    (stale / ".ckpp-sample-partial").touch()
    (stale / "half_written.png").write_bytes(b"x")
    make_sample(tmp_path / "raw", subjects=1, small=True, videos=False, progress=False)
    assert not stale.exists() and (tmp_path / "raw" / "truth.json").is_file()

    foreign = tmp_path / "other.partial"
    foreign.mkdir()
    (foreign / "precious.txt").write_text("x")
    res = CliRunner().invoke(main, ["sample", str(tmp_path / "other"), "--small", "--subjects", "1"])
    assert res.exit_code != 0 and str(foreign) in res.output and "fix:" in res.output
    assert (foreign / "precious.txt").read_text() == "x" and not (tmp_path / "other").exists()


def test_sample_into_a_tree_that_does_not_exist_yet(tmp_path):
    out = tmp_path / "data" / "raw" / "nba"
    make_sample(out, subjects=1, small=True, videos=False, progress=False)
    assert (out / "truth.json").is_file()
    from ckpp_tools.locking import OutputLock

    with pytest.raises(CkppError, match="does not exist: create it first"):
        with OutputLock(str(tmp_path / "missing" / "out.h5")):
            pass


def test_cli_writes_and_overwrites_a_previous_sample(tmp_path):
    out = tmp_path / "raw"
    out.mkdir()  # an existing empty folder is fine
    res = CliRunner().invoke(main, ["sample", str(out), "--small", "--subjects", "1", "--workers", "1"])
    assert res.exit_code == 0, res.output
    assert "contact_sheet.png" in res.output and "ckpp prepare" in res.output
    first = load_truth(out)
    res = CliRunner().invoke(main, ["sample", str(out), "--small", "--subjects", "1", "--workers", "1", "--seed", "2", "--overwrite"])
    assert res.exit_code == 0, res.output
    assert load_truth(out)["seed"] == 2 and first["seed"] == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["raw"], "no .partial or .old folder left behind"


def test_landmark_files_hold_each_videos_exact_landmarks(tmp_path):
    """--landmark-files: a <clip>.landmarks.txt beside each video, read back as the truth's points."""
    import numpy as np

    from ckpp_tools.sample import make_sample
    from ckpp_tools.sources import videos

    out = tmp_path / "raw"
    truth = make_sample(out, subjects=1, small=True, ckplus=False, bad_cases=False, emotions=("happy", "anger"),
                        workers=1, progress=False, landmark_files=True)
    assert truth["options"]["landmark_files"] is True
    for src, t in truth["clips"].items():
        side = videos.landmarks_sidecar(str(out / src))
        assert side.endswith("_01.landmarks.txt")
        got = videos.load_landmark_track(side)
        assert got.shape == (t["n_frames"], 68, 2) if isinstance(t["n_frames"], int) else got.shape[1:] == (68, 2)
        assert np.abs(got - np.asarray(t["landmarks"])).max() < 1e-3
    plain = make_sample(tmp_path / "plain", subjects=1, small=True, ckplus=False, bad_cases=False,
                        emotions=("happy",), workers=1, progress=False)
    assert "landmark_files" not in plain["options"]
    assert not list((tmp_path / "plain").rglob("*.landmarks.txt"))
