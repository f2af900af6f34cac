"""Finding clips: CK+ / CK++-style / CSV layouts, auto detection per subtree, emotion normalisation, errors."""
import os

import numpy as np
import pytest

from ckpp_tools.errors import CkppError
from ckpp_tools.sources import ckplus, find_clips
from prepare_helpers import make_raw, write_frames, write_video


def by_id(clips):
    return {c.clip_id: c for c in clips}


def test_auto_finds_ckplus_and_videos_side_by_side(tmp_path):
    raw = make_raw(tmp_path, n_subjects=2)
    clips, notes = find_clips(raw)
    ids = [c.clip_id for c in clips]
    assert ids == sorted(ids)
    c = by_id(clips)
    assert set(c) == {"S005_001", "S010_002", "P001_happy_01", "P001_surprise_01", "P002_happy_01",
                      "P002_surprise_01", "P001_anger_01", "P001_fear_09"}
    assert c["S005_001"].emotion == "surprise" and c["S005_001"].reason == "" and c["S005_001"].already_trimmed
    assert c["S005_001"].source == "CK+/cohn-kanade-images/S005/001"
    assert c["S010_002"].reason == "unlabelled"
    assert c["P001_happy_01"].source == "ours/P001/happy_01.mp4"
    assert (c["P001_happy_01"].subject, c["P001_happy_01"].take) == ("P001", "01")
    assert c["P001_surprise_01"].source == "ours/P001/surprise/01" and c["P001_surprise_01"].emotion == "surprise"
    assert not c["P001_happy_01"].already_trimmed


def test_ckplus_emotion_codes_and_landmark_files(tmp_path):
    raw = make_raw(tmp_path, n_subjects=1, broken=False)
    lm = os.path.join(raw, "CK+", "Landmarks", "S005", "001")
    os.makedirs(lm)
    pts = np.random.default_rng(0).uniform(10, 60, (68, 2))
    for t in (1, 3):
        np.savetxt(os.path.join(lm, f"S005_001_{t:08d}_landmarks.txt"), pts, fmt="   %.7e")
    # a bad code becomes unknown_emotion
    e = os.path.join(raw, "CK+", "Emotion", "S010", "002")
    os.makedirs(e)
    with open(os.path.join(e, "S010_002_00000006_emotion.txt"), "w") as fh:
        fh.write("   9.0000000e+00\n")
    c = by_id(find_clips(os.path.join(raw, "CK+"), source="ckplus")[0])
    assert c["S010_002"].reason == "unknown_emotion" and "9" in c["S010_002"].detail
    files = c["S005_001"].landmark_files
    assert len(files) == 6 and files[0] and not files[1] and files[2]
    arr = ckplus.load_landmarks(files, kept=[0, 1, 2])
    assert arr.shape == (3, 68, 2) and np.allclose(arr[0], pts, atol=1e-4) and np.isnan(arr[1]).all()


def test_aliases_unknown_emotions_and_emotion_filter(tmp_path):
    raw = tmp_path / "raw"
    write_video(str(raw / "A1" / "Happiness_02.avi"), 5)
    write_video(str(raw / "A1" / "angry_01.mov"), 5)
    write_video(str(raw / "A1" / "yawn_01.mp4"), 5)
    write_frames(str(raw / "A2" / "sad" / "take10"), 5)
    write_frames(str(raw / "A2" / "sad" / "take9"), 5)
    c = by_id(find_clips(str(raw))[0])
    assert c["A1_Happiness_02"].emotion == "happy"
    assert c["A1_angry_01"].emotion == "anger"
    assert c["A1_yawn_01"].reason == "unknown_emotion"
    assert c["A2_sad_take9"].emotion == "sadness" and c["A2_sad_take9"].take == "take9"
    kept, notes = find_clips(str(raw), emotions=["anger", "sadness"])
    assert sorted(k.clip_id for k in kept) == ["A1_angry_01", "A2_sad_take10", "A2_sad_take9"]
    assert any("--emotions" in n for n in notes)


def test_csv_labels(tmp_path):
    raw = tmp_path / "raw"
    write_video(str(raw / "v" / "clip1.mp4"), 6)
    write_frames(str(raw / "v" / "seq2"), 6)
    csv = tmp_path / "labels.csv"
    csv.write_text("path,subject,emotion,onset,peak\nv/clip1.mp4,X7,Surprised,1,4\nv/seq2,X8,,,\n")
    c = by_id(find_clips(str(raw), labels=str(csv))[0])
    assert c["X7_v_clip1"].emotion == "surprise" and c["X7_v_clip1"].onset_peak == (1, 4)
    assert c["X8_v_seq2"].reason == "unlabelled" and c["X8_v_seq2"].onset_peak is None
    bad = tmp_path / "bad.csv"
    bad.write_text("file,emotion\nv/clip1.mp4,happy\n")
    with pytest.raises(CkppError, match="missing column.*path.*subject"):
        find_clips(str(raw), labels=str(bad))


def test_missing_raw_and_unknown_layout_are_clear_errors(tmp_path):
    with pytest.raises(CkppError) as e:
        find_clips(str(tmp_path / "nope"))
    assert "nope" in str(e.value) and "does not exist" in str(e.value)
    junk = tmp_path / "junk"
    (junk / "docs").mkdir(parents=True)
    (junk / "docs" / "readme.txt").write_text("hello")
    write_video(str(junk / "holiday.mp4"), 3)
    with pytest.raises(CkppError) as e:
        find_clips(str(junk))
    msg = str(e.value)
    assert str(junk) in msg and "no known clip layout" in msg and "cohn-kanade-images" in msg and "<subject>/<emotion>" in msg
    with pytest.raises(CkppError, match="no CK\\+ tree"):
        find_clips(str(junk), source="ckplus")


def test_clip_id_collisions_are_made_unique(tmp_path):
    raw = tmp_path / "raw"
    write_video(str(raw / "P1" / "happy_01.mp4"), 4)
    write_video(str(raw / "P1" / "happy" / "01.mp4"), 4, shift=3)
    clips = find_clips(str(raw))[0]
    assert [c.clip_id for c in clips] == ["P1_happy_01", "P1_happy_01_2"]


def test_raw_may_be_the_ckplus_image_folder_itself(tmp_path):
    raw = make_raw(tmp_path, n_subjects=1, broken=False)
    clips = find_clips(os.path.join(raw, "CK+", "cohn-kanade-images"))[0]
    c = by_id(clips)
    assert set(c) == {"S005_001", "S010_002"} and c["S005_001"].emotion == "surprise"
    assert c["S005_001"].source == "S005/001"


@pytest.mark.timeout(60)
def test_links_each_real_clip_once_outside_followed_once_loops_end(tmp_path):
    """Issue 11 item 6: a directory link back into RAW does not count a clip twice (by resolved path), a link
    to a folder outside RAW is followed once (even when two links name it), and link loops end."""
    plain, _ = find_clips(make_raw(tmp_path / "plain", n_subjects=2, broken=False))
    raw = make_raw(tmp_path, n_subjects=2, broken=False)
    ours = os.path.join(raw, "ours")
    os.symlink(os.path.join(ours, "P001"), os.path.join(ours, "P003"))  # back into RAW
    os.symlink(ours, os.path.join(ours, "P002", "again"))                 # loop: ours/P002/again -> ours
    os.symlink(raw, os.path.join(raw, "loop"))                            # loop at the top
    outside = tmp_path / "elsewhere" / "P009"
    write_video(str(outside / "happy_01.mp4"), 6)
    os.symlink(str(outside), os.path.join(ours, "P009"))
    os.symlink(str(outside), os.path.join(ours, "P010"))                  # a second link to the same folder
    clips, notes = find_clips(raw)
    srcs = sorted(c.source for c in clips)
    real = [os.path.realpath(c.path) for c in clips]
    assert len(real) == len(set(real)), srcs
    assert srcs == sorted([c.source for c in plain] + ["ours/P009/happy_01.mp4"]), srcs
    assert any("links to clips already found" in n and "ours/P003/happy_01.mp4" in n for n in notes), notes


@pytest.mark.parametrize("text,detail", [("   inf\n", "cannot read"), ("   1e+308\n", "1e+308"), ("", "cannot read"),
                                         ("\x00\xff\x13garbage", "cannot read")])
def test_broken_emotion_files_are_rows_not_crashes(tmp_path, text, detail):
    """Fuzz pass: an infinite emotion code raised OverflowError (a traceback before any clip was analysed)."""
    p = tmp_path / "S005_001_00000008_emotion.txt"
    p.write_text(text, encoding="latin-1")
    emotion, reason, why = ckplus.read_emotion_file(str(p))
    assert reason == "unknown_emotion" and detail in why and len(why) < 120, why


@pytest.mark.parametrize("blob,why", [(b"\xf8\x81\x00binary" * 50, "not UTF-8"),
                                      (b"path,subject,emotion\n" + b"x" * 200_000 + b",P001,happy\n", "not a readable CSV")])
def test_binary_or_huge_labels_csv_is_a_clear_error(tmp_path, blob, why):
    """Fuzz pass: a binary --labels file raised UnicodeDecodeError, a 200 kB field csv.Error (tracebacks)."""
    (tmp_path / "raw").mkdir()
    (tmp_path / "labels.csv").write_bytes(blob)
    with pytest.raises(CkppError, match=why) as e:
        find_clips(str(tmp_path / "raw"), labels=str(tmp_path / "labels.csv"))
    assert "labels.csv" in str(e.value) and "fix:" in str(e.value)


def test_video_landmark_sidecars_are_found_and_read_defensively(tmp_path):
    from ckpp_tools.sources import videos

    raw = tmp_path / "raw"
    write_video(str(raw / "ours" / "P001" / "happy_01.mp4"), 6)
    write_frames(str(raw / "ours" / "P001" / "surprise" / "01"), 6)
    pts = np.arange(3 * 136, dtype=np.float64).reshape(3, 68, 2)
    side = raw / "ours" / "P001" / "happy_01.landmarks.txt"
    videos.write_landmark_track(str(side), pts)
    clips, notes = find_clips(str(raw))
    assert not any("ignored" in n for n in notes)
    assert {c.source: c.landmarks_file for c in clips} == {"ours/P001/happy_01.mp4": str(side),
                                                           "ours/P001/surprise/01": ""}   # the folder has none
    got = videos.load_landmark_track(str(side))
    assert np.array_equal(got, pts.astype(np.float32))
    assert np.array_equal(videos.load_landmark_track(str(side), kept=[2, 0, 7])[:2], pts[[2, 0]].astype(np.float32))
    assert np.isnan(videos.load_landmark_track(str(side), kept=[2, 0, 7])[2]).all()   # no line for frame 7
    lines = side.read_text().splitlines()
    side.write_text("\n".join([lines[0], "1 2 3", lines[2].replace("1", "nan", 1), "1e30 " * 136, lines[3]]) + "\n")
    got = videos.load_landmark_track(str(side))
    assert np.isnan(got[:3]).all() and np.array_equal(got[3], pts[2].astype(np.float32))
    side.write_text("not numbers at all\n")
    assert videos.load_landmark_track(str(side)) is None                # nothing usable: detect instead
    assert videos.load_landmark_track(str(tmp_path / "missing.landmarks.txt")) is None
