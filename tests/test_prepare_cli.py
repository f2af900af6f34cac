"""The prepare driver and CLI, with a fake per-clip analysis: error texts, crashes/hangs as rows, determinism over
worker counts, bounded shards, kill -9 + --resume, job arrays + merge, inspect."""
import os
import signal
import subprocess
import sys
import time

import h5py
import pytest
from click.testing import CliRunner

from ckpp_tools.cli import main
from ckpp_tools.prepare import PrepareOptions, prepare
from ckpp_tools.reader import open_dataset
from ckpp_tools.schema import validate
from prepare_helpers import install_fake, make_raw, runner_script, write_video


@pytest.fixture
def fake(monkeypatch):
    install_fake(monkeypatch)


@pytest.fixture
def raw(tmp_path):
    return make_raw(tmp_path, n_subjects=3)


def opts(**kw):
    base = dict(size=32, workers=1, progress=False)
    base.update(kw)
    return PrepareOptions(**base)


def content(path):
    """Everything a reader sees, minus run ids and timestamps: {clip_id: (row, arrays, attrs)} and the shard layout."""
    ds = open_dataset(path)
    out = {"manifest": ds.manifest.to_dict("list")}
    for cid in ds.clip_ids():
        c = ds.clip(cid)
        out[cid] = (c.frames.tobytes(), c.landmarks.tobytes(), c.mouth_mask.tobytes(), c.degree.tobytes(),
                    c.source_index.tobytes(), sorted((k, str(v)) for k, v in c.attrs.items()))
    ds.close()
    return out


def test_cli_errors_missing_raw_unknown_layout_existing_out(tmp_path, raw):
    r = CliRunner().invoke(main, ["prepare", str(tmp_path / "nothing"), str(tmp_path / "o.h5")])
    assert r.exit_code != 0 and "nothing: RAW folder does not exist" in r.output and "ckpp sample" in r.output
    junk = tmp_path / "junk"
    (junk / "a").mkdir(parents=True)
    (junk / "a" / "notes.txt").write_text("x")
    r = CliRunner().invoke(main, ["prepare", str(junk), str(tmp_path / "o.h5")])
    assert r.exit_code != 0 and "junk: no known clip layout found" in r.output
    assert "cohn-kanade-images" in r.output and "<subject>/<emotion>_<take>" in r.output
    out = tmp_path / "o.h5"
    out.write_bytes(b"precious")
    r = CliRunner().invoke(main, ["prepare", raw, str(out)])
    assert r.exit_code != 0 and "o.h5: output already exists" in r.output and "--overwrite" in r.output
    assert out.read_bytes() == b"precious"
    r = CliRunner().invoke(main, ["prepare", raw, str(out), "--resume", "--overwrite"])
    assert r.exit_code != 0 and "contradict" in r.output
    r = CliRunner().invoke(main, ["prepare", raw, str(tmp_path / "x.h5"), "--num-shards", "2", "--shard-index", "2"])
    assert r.exit_code != 0 and "--shard-index" in r.output
    r = CliRunner().invoke(main, ["prepare", raw, str(tmp_path / "x.h5"), "--emotions", "hapy"])
    assert r.exit_code != 0 and "unknown emotion 'hapy'" in r.output


def test_cli_run_summary_and_rows(fake, tmp_path, raw):
    out = tmp_path / "out.h5"
    r = CliRunner().invoke(main, ["prepare", raw, str(out), "--size", "32", "--workers", "2", "--quiet"])
    assert r.exit_code == 0, r.output
    assert "emotion" in r.output and "unreadable" in r.output and "unlabelled" in r.output and "total" in r.output
    m = open_dataset(str(out)).manifest.set_index("clip_id")
    assert len(m) == 10  # every clip found has one row
    assert m.loc["P001_anger_01", "reason"] == "unreadable" and m.loc["P001_fear_09", "reason"] == "unreadable"
    assert m.loc["S010_002", "reason"] == "unlabelled"
    assert (m.loc["P001_happy_01", "onset"], m.loc["P001_happy_01", "peak"]) == (1, 6)
    assert validate(str(out)) == []


def test_crash_and_hang_become_rows(fake, tmp_path, raw, monkeypatch):
    write_video(os.path.join(raw, "ours", "P009", "happy_01.mp4"), 11)   # the fake crashes on 11 frames
    write_video(os.path.join(raw, "ours", "P009", "sad_01.mp4"), 13)     # ... and hangs on 13
    monkeypatch.setenv("CKPP_FAKE_CRASH_N", "11")
    monkeypatch.setenv("CKPP_FAKE_HANG_N", "13")
    t0 = time.monotonic()
    res = prepare(raw, str(tmp_path / "o.h5"), opts(workers=2, timeout=4))
    assert time.monotonic() - t0 < 60
    rows = {r["clip_id"]: r for r in res.rows}
    assert rows["P009_happy_01"]["reason"] == "unreadable" and "died" in rows["P009_happy_01"]["detail"]
    assert rows["P009_sad_01"]["reason"] == "unreadable" and "--timeout" in rows["P009_sad_01"]["detail"]
    assert rows["P003_happy_01"]["status"] == "accepted"  # the run went on
    assert validate(str(tmp_path / "o.h5")) == []


def test_same_output_for_any_worker_count_and_bounded_shards(fake, tmp_path, raw):
    a = prepare(raw, str(tmp_path / "a.h5"), opts(workers=1, shard_size=20_000))
    b = prepare(raw, str(tmp_path / "b.h5"), opts(workers=2, shard_size=20_000))
    assert len(a.shards) >= 3 and [os.path.basename(p)[1:] for p in a.shards] == [os.path.basename(p)[1:] for p in b.shards]
    ca, cb = content(str(tmp_path / "a.h5")), content(str(tmp_path / "b.h5"))
    ma, mb = ca.pop("manifest"), cb.pop("manifest")
    ma["shard"] = [s[1:] for s in ma["shard"]]
    mb["shard"] = [s[1:] for s in mb["shard"]]
    assert ma == mb and ca == cb
    for p in a.shards:  # each shard holds about shard_size bytes of frames (one clip may overshoot)
        assert os.path.getsize(p) < 200_000
    assert validate(str(tmp_path / "a.h5")) == []
    # links are relative: the tree can move
    os.makedirs(tmp_path / "moved")
    for p in [str(tmp_path / "a.h5")] + a.shards:
        os.replace(p, tmp_path / "moved" / os.path.basename(p))
    with h5py.File(tmp_path / "moved" / "a.h5", "r") as f:
        assert f["clips"]["S005_001"]["frames"].shape == (6, 32, 32, 3)
    assert validate(str(tmp_path / "moved" / "a.h5")) == []


def test_kill_during_write_then_resume_gives_identical_datasets(tmp_path, raw, monkeypatch):
    script = runner_script(tmp_path)
    ref = tmp_path / "ref.h5"
    env = dict(os.environ, CKPP_FAKE_SLEEP="0.4")
    args = ["prepare", raw, "--size", "32", "--workers", "1", "--shard-size", "1", "--quiet"]
    out = tmp_path / "out.h5"
    p = subprocess.Popen([sys.executable, script] + args[:2] + [str(out)] + args[2:], env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    shard2 = tmp_path / "out-00002.h5"
    deadline = time.monotonic() + 90
    while not shard2.exists() and time.monotonic() < deadline and p.poll() is None:
        time.sleep(0.05)
    p.send_signal(signal.SIGKILL)
    p.wait()
    assert shard2.exists(), "the run ended before it could be killed mid-way"
    assert not out.exists()  # the master is written last: nothing looks complete
    r = CliRunner().invoke(main, ["inspect", str(out)])
    assert r.exit_code != 0 and "file not found" in r.output
    for f in os.listdir(tmp_path):  # whatever is on disk is either complete or named .partial
        if f.startswith("out-") and f.endswith(".h5"):
            with h5py.File(tmp_path / f, "r") as h:
                assert h.attrs["complete"] == 1
    done = subprocess.run([sys.executable, script] + args[:2] + [str(out)] + args[2:] + ["--resume"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr + done.stdout
    assert "resumed: reused" in done.stdout
    subprocess.run([sys.executable, script] + args[:2] + [str(ref)] + args[2:], env=dict(os.environ),
                   capture_output=True, text=True, timeout=120, check=True)
    a, b = content(str(out)), content(str(ref))
    ma, mb = a.pop("manifest"), b.pop("manifest")
    assert ma["shard"] == [s.replace("ref-", "out-") for s in mb["shard"]]
    ma.pop("shard"), mb.pop("shard")
    assert ma == mb and a == b
    assert not [f for f in os.listdir(tmp_path) if f.endswith(".partial") or f.endswith(".lock")]
    assert validate(str(out)) == []


def test_job_array_and_merge(fake, tmp_path, raw):
    whole = prepare(raw, str(tmp_path / "whole.h5"), opts())
    os.makedirs(tmp_path / "jobs")
    for i in range(2):
        prepare(raw, str(tmp_path / "jobs" / f"part{i}.h5"), opts(num_shards=2, shard_index=i))
    merged = tmp_path / "merged.h5"
    r = CliRunner().invoke(main, ["merge", str(tmp_path / "jobs" / "part0.h5"), str(tmp_path / "jobs" / "part1.h5"), str(merged)])
    assert r.exit_code == 0, r.output
    assert validate(str(merged)) == []
    a, b = content(str(merged)), content(str(tmp_path / "whole.h5"))
    ma, mb = a.pop("manifest"), b.pop("manifest")
    assert all(s.startswith("jobs/part") for s in ma["shard"] if s)
    ma.pop("shard"), mb.pop("shard")
    assert ma == mb and a == b
    total_frames = sum(os.path.getsize(p) for p in whole.shards)
    assert os.path.getsize(merged) < total_frames / 2  # links only, no frames copied
    r = CliRunner().invoke(main, ["merge", str(tmp_path / "jobs" / "part0.h5"), str(tmp_path / "jobs" / "part0.h5"), str(tmp_path / "m2.h5")])
    assert r.exit_code != 0 and "is in both" in r.output


def test_inspect_summary_validate_preview(fake, tmp_path, raw):
    out = tmp_path / "o.h5"
    prepare(raw, str(out), opts())
    r = CliRunner().invoke(main, ["inspect", str(out), "--validate"])
    assert r.exit_code == 0, r.output
    assert "validate: OK" in r.output and "surprise" in r.output and "subjects per split" in r.output
    png = tmp_path / "prev.png"
    r = CliRunner().invoke(main, ["inspect", str(out), "--preview", "P002_surprise_01", "-o", str(png)])
    assert r.exit_code == 0, r.output
    import cv2

    img = cv2.imread(str(png))
    assert img is not None and img.shape[1] >= 4 * 32
    r = CliRunner().invoke(main, ["inspect", str(out), "--preview", "P001_anger_01", "-o", str(png)])
    assert r.exit_code != 0 and "rejected" in r.output
    # break the contract in several ways: --validate lists each and exits 1
    shard = open_dataset(str(out)).row("P002_surprise_01")["shard"]
    with h5py.File(tmp_path / shard, "r+") as f:
        g = f["clips/P002_surprise_01"]
        del g.attrs["crop_box"]
        g["mouth_mask"][0, 0, 0] = 7
    with h5py.File(out, "r+") as f:
        del f.attrs["created"]
    r = CliRunner().invoke(main, ["inspect", str(out), "--validate"])
    assert r.exit_code == 1
    assert "'created' missing" in r.output and "crop_box" in r.output and "mouth_mask" in r.output


def test_missing_face_alignment_weights_stop_before_any_work(tmp_path, raw, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty-torch-home"))
    out = tmp_path / "o.h5"
    r = CliRunner().invoke(main, ["prepare", raw, str(out), "--landmarks", "face-alignment", "--quiet"])
    assert r.exit_code != 0 and "face-alignment" in r.output and "fix:" in r.output
    assert not [f for f in os.listdir(tmp_path) if f.startswith("o")]  # no output, no lock, no partial shard


def test_too_short_and_csv_onset_peak(fake, tmp_path):
    raw = tmp_path / "raw"
    write_video(str(raw / "v" / "long.mp4"), 12)
    write_video(str(raw / "v" / "short.mp4"), 3)
    csv = tmp_path / "labels.csv"
    csv.write_text("path,subject,emotion,onset,peak\nv/long.mp4,A,happy,2,9\nv/short.mp4,B,fear,,\n")
    res = prepare(str(raw), str(tmp_path / "o.h5"), opts(labels=str(csv)))
    rows = {r["clip_id"]: r for r in res.rows}
    assert rows["B_v_short"]["reason"] == "too_short" and "only 3" in rows["B_v_short"]["detail"]
    assert (rows["A_v_long"]["onset"], rows["A_v_long"]["peak"]) == (2, 9)
    assert list(open_dataset(str(tmp_path / "o.h5")).clip("A_v_long").source_index) == list(range(2, 10))
    # --max-frames caps decoding (memory guard) and says so
    res = prepare(str(raw), str(tmp_path / "m.h5"), opts(labels=str(csv), max_frames=10))
    row = {r["clip_id"]: r for r in res.rows}["A_v_long"]
    assert row["n_source_frames"] == 10 and "--max-frames" in row["detail"] and row["peak"] == 9


def test_malformed_analysis_result_is_a_row_not_a_crash(tmp_path, raw, monkeypatch):
    import ckpp_tools.clip_pipeline as cp

    good = install_fake(monkeypatch)

    def bad(frames, **kw):
        r = good(frames, **kw)
        if len(frames) == 6:  # the CK+ sequences: wrong frame size
            r.frames = r.frames[:, :16]
        return r

    monkeypatch.setattr(cp, "process_clip", bad)
    res = prepare(raw, str(tmp_path / "o.h5"), opts())
    rows = {r["clip_id"]: r for r in res.rows}
    assert rows["S005_001"]["status"] == "rejected" and "shape" in rows["S005_001"]["detail"]
    assert rows["P001_happy_01"]["status"] == "accepted"
    assert validate(str(tmp_path / "o.h5")) == []
