"""End to end on the sample tree (real analysis): `ckpp prepare raw/ out.h5` finds every clip, decides what
truth.json expects, and writes a file that validates and that plain h5py reads."""

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from ckpp_tools.cli import main
from ckpp_tools.crop import to_crop
from ckpp_tools.reader import open_dataset
from ckpp_tools.sample import load_truth
from ckpp_tools.schema import validate

S = 64


@pytest.fixture(scope="module")
def prepared(sample_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("e2e") / "out.h5"
    r = CliRunner().invoke(main, ["prepare", str(sample_root), str(out), "--size", str(S), "--workers", "2", "--quiet"])
    assert r.exit_code == 0, r.output
    return out, r.output, load_truth(sample_root)["clips"]


def test_every_clip_has_the_expected_row(prepared):
    out, output, truth = prepared
    m = open_dataset(str(out)).manifest
    assert sorted(m["source"]) == sorted(truth)  # one row per clip found, nothing else
    got = {r["source"]: r for r in m.to_dict("records")}
    wrong = []
    for src, t in truth.items():
        r = got[src]
        assert r["subject"] == t["subject"]
        if r["reason"] != "unlabelled":
            assert r["emotion"] == t["emotion"], src
        if (r["status"], r["reason"]) != (t["expected_status"], t["expected_reason"]):
            wrong.append(f"{src}: got {r['status']}/{r['reason'] or '-'} ({r['detail']}), truth {t['expected_status']}/{t['expected_reason'] or '-'}")
    assert not wrong, "\n".join(wrong)
    assert "total" in output and "accepted" in output


def test_output_validates_and_plain_h5py_reads_it(prepared):
    out, _, truth = prepared
    assert validate(str(out)) == []
    with h5py.File(out, "r") as f:
        ids = [x.decode() for x in f["manifest"]["clip_id"][()]]
        src = [x.decode() for x in f["manifest"]["source"][()]]
        ck = [i for i, s in zip(ids, src) if s.startswith("CK+/") and i in f["clips"]]
        assert ck
        for cid in ck:  # CK+ Landmarks files are used as given: stored landmarks = truth mapped into the crop
            g = f["clips"][cid]
            t = truth[g.attrs["source"]]
            idx = g["source_index"][()]
            want = to_crop(np.asarray(t["landmarks"], np.float64)[idx], g.attrs["crop_box"], S)
            assert np.abs(g["landmarks"][()] - want).max() < 0.5
            assert g["frames"].shape == (len(idx), S, S, 3)
            assert g.attrs["landmarks_given"] == len(idx)
        videos_ = [i for i, s in zip(ids, src) if s.startswith("ours/") and i in f["clips"]]
        assert videos_ and all(f["clips"][i].attrs["landmarks_given"] == 0 for i in videos_)   # detected


def test_workers_do_not_change_the_result(prepared, sample_root, tmp_path):
    out, _, _ = prepared
    one = tmp_path / "one.h5"
    r = CliRunner().invoke(main, ["prepare", str(sample_root), str(one), "--size", str(S), "--workers", "1", "--quiet"])
    assert r.exit_code == 0, r.output
    a, b = open_dataset(str(out)), open_dataset(str(one))
    ma, mb = a.manifest.drop(columns=["shard"]), b.manifest.drop(columns=["shard"])
    assert ma.equals(mb)
    for cid in a.clip_ids():
        ca, cb = a.clip(cid), b.clip(cid)
        assert np.array_equal(ca.frames, cb.frames) and np.array_equal(ca.landmarks, cb.landmarks)


def test_a_videos_own_landmarks_are_used_as_given(sample_root, tmp_path):
    """<clip>.landmarks.txt beside a video: prepare stores those points (mapped into the crop) instead of dlib's;
    a line that is not 136 numbers is a frame the detector fills in; --ck-landmarks detect ignores the file."""
    import os
    import shutil

    from ckpp_tools.sources import videos

    truth = load_truth(sample_root)["clips"]
    picks = sorted(s for s, t in truth.items() if t["layout"] == "videos" and t["expected_status"] == "accepted"
                   and t["emotion"] in ("surprise", "happy"))[:2]
    raw = tmp_path / "raw"
    for src in picks:
        dst = raw / src
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(sample_root / src, dst)
        videos.write_landmark_track(os.path.splitext(dst)[0] + videos.LANDMARKS_SUFFIX, np.asarray(truth[src]["landmarks"]))
    side = os.path.splitext(raw / picks[1])[0] + videos.LANDMARKS_SUFFIX
    lines = open(side).read().splitlines()
    lines[2] = "1 2 3"                                          # frame 1 (after the header): not 68 points
    open(side, "w").write("\n".join(lines) + "\n")
    stored = {}
    for mode in ("provided", "detect"):
        out = tmp_path / f"{mode}.h5"
        r = CliRunner().invoke(main, ["prepare", str(raw), str(out), "--size", str(S), "--workers", "1", "--quiet",
                                      "--ck-landmarks", mode])
        assert r.exit_code == 0, r.output
        assert "ignored" not in r.output                        # the sidecars are not paths matching no layout
        with h5py.File(out, "r") as f:
            for cid in f["clips"]:
                g = f["clips"][cid]
                idx = g["source_index"][()]
                want = to_crop(np.asarray(truth[g.attrs["source"]]["landmarks"], np.float64)[idx], g.attrs["crop_box"], S)
                stored[mode, g.attrs["source"]] = (np.abs(g["landmarks"][()] - want).max(axis=(1, 2)), idx)
                given = len(idx) - int(g.attrs["source"] == picks[1] and 1 in idx) if mode == "provided" else 0
                assert g.attrs["landmarks_given"] == given
    for src in picks:
        err, idx = stored["provided", src]
        given = idx != 1 if src == picks[1] else np.ones(len(idx), bool)
        assert err[given].max() < 0.05                           # used as given (float32 in the crop)
        assert stored["detect", src][0].max() > 0.1               # dlib's own points differ
