"""The HDF5 contract as written (read back with plain h5py only) and the reader: lazy, fork-safe, run-id checked."""
import json
import os
import pickle
import shutil

import h5py
import numpy as np
import pytest

from ckpp_tools import schema
from ckpp_tools.errors import DataFormatError
from ckpp_tools.prepare import PrepareOptions, prepare
from ckpp_tools.reader import open_dataset
from prepare_helpers import install_fake, make_raw


@pytest.fixture
def out(tmp_path, monkeypatch):
    install_fake(monkeypatch)
    raw = make_raw(tmp_path, n_subjects=3)
    path = str(tmp_path / "o.h5")
    prepare(raw, path, PrepareOptions(size=32, workers=1, progress=False, shard_size=30_000))
    return path


def test_plain_h5py_reads_everything(out):
    with h5py.File(out, "r") as f:
        a = f.attrs
        assert a["format"] == "ckpp" and int(a["schema_version"]) == 1 and int(a["image_size"]) == 32
        assert a["landmark_backend"] == "dlib" and "T" in a["created"] and json.loads(a["config"])["size"] == 32
        assert isinstance(a["ckpp_version"], str)
        m = f["manifest"]
        n = len(m["clip_id"])
        for c in schema.MANIFEST_COLUMNS:
            assert m[c].shape == (n,)
        assert h5py.check_string_dtype(m["clip_id"].dtype).encoding == "utf-8"
        assert m["onset"].dtype.kind == "i"
        ids = [x.decode() for x in m["clip_id"][()]]
        status = [x.decode() for x in m["status"][()]]
        shards = [x.decode() for x in m["shard"][()]]
        accepted = [i for i, s in zip(ids, status) if s == "accepted"]
        assert sorted(f["clips"]) == sorted(accepted) and len(accepted) == 7
        assert len(set(s for s in shards if s)) >= 2  # several shards, reached through links
        for cid in accepted:
            link = f["clips"].get(cid, getlink=True)
            assert isinstance(link, h5py.ExternalLink) and not os.path.isabs(link.filename)
            g = f["clips"][cid]
            T = g["frames"].shape[0]
            assert g["frames"].shape == (T, 32, 32, 3) and g["frames"].dtype == np.uint8
            assert g["frames"].chunks == (1, 32, 32, 3)
            assert g["landmarks"].shape == (T, 68, 2) and g["landmarks"].dtype == np.float32
            assert g["mouth_mask"].shape == (T, 32, 32) and set(np.unique(g["mouth_mask"][()])) <= {0, 1}
            assert np.allclose(g["degree"][()], np.linspace(0, 1, T)) and g["degree"].dtype == np.float32
            assert g["source_index"].dtype == np.int32
            for k in schema.CLIP_ATTRS:
                assert k in g.attrs
            cb = g.attrs["crop_box"]
            assert cb.shape == (4,) and abs((cb[2] - cb[0]) - (cb[3] - cb[1])) < 1e-6
        # a grayscale CK+ source was replicated to RGB
        fr = f["clips"]["S005_001"]["frames"][0]
        assert np.array_equal(fr[..., 0], fr[..., 1]) and np.array_equal(fr[..., 1], fr[..., 2])
        assert f["clips"]["S005_001"].attrs["emotion_code"] == 7


def test_reader_manifest_filters_and_clip(out):
    ds = open_dataset(out)
    m = ds.manifest
    assert list(m.columns) == list(schema.MANIFEST_COLUMNS) and len(m) == 10
    assert ds.clip_ids(emotion="surprise") == ["P001_surprise_01", "P002_surprise_01", "P003_surprise_01", "S005_001"]
    assert set(ds.clip_ids(status="rejected")) == {"P001_anger_01", "P001_fear_09", "S010_002"}
    splits = {s: ds.clip_ids(split=s) for s in ("train", "val", "test")}
    assert sum(len(v) for v in splits.values()) == 7 and all(splits.values())  # 4 subjects: every split non-empty
    c = ds.clip("P002_happy_01")
    assert c.frames.shape[1:] == (32, 32, 3) and c.attrs["emotion"] == "happy" and c.attrs["subject"] == "P002"
    assert list(c.source_index) == list(range(1, 7))
    with pytest.raises(KeyError, match="rejected"):
        ds.clip("P001_anger_01")
    assert len(list(ds.iter_clips(emotion="happy"))) == 3
    d = ds.manifest_dict()
    assert set(d) == set(schema.MANIFEST_COLUMNS)


def test_reader_is_fork_and_pickle_safe(out):
    ds = open_dataset(out)
    ref = ds.clip("P001_happy_01").frames  # opens a shard handle in this process
    ds2 = pickle.loads(pickle.dumps(ds))
    assert np.array_equal(ds2.clip("P001_happy_01").frames, ref)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: must reopen, not reuse the parent's handle
        ok = 0
        try:
            ok = int(np.array_equal(ds.clip("P001_happy_01").frames, ref) and np.array_equal(ds.clip("P003_surprise_01").frames, ds.clip("P003_surprise_01").frames))
        finally:
            os.write(w, str(ok).encode())
            os._exit(0)
    os.close(w)
    os.waitpid(pid, 0)
    assert os.read(r, 8) == b"1"
    assert np.array_equal(ds.clip("P001_happy_01").frames, ref)


def test_foreign_same_named_shard_is_refused(out, tmp_path, monkeypatch):
    ds = open_dataset(out)
    shard = ds.row("P002_happy_01")["shard"]
    # another run (same raw, same names) in another folder; move its shard over ours
    other = tmp_path / "other"
    other.mkdir()
    raw = str(tmp_path / "raw")
    prepare(raw, str(other / "o.h5"), PrepareOptions(size=32, workers=1, progress=False, shard_size=30_000))
    shutil.copy(other / shard, tmp_path / shard)
    with pytest.raises(DataFormatError, match="belongs to another run"):
        open_dataset(out).clip("P002_happy_01")
    assert any("run id" in p for p in schema.validate(out))


def test_old_schema_version_and_non_ckpp_files(out, tmp_path):
    old = tmp_path / "old.h5"
    shutil.copy(out, old)
    with h5py.File(old, "r+") as f:
        f.attrs["schema_version"] = 0
    with pytest.raises(DataFormatError, match="(?s)older.*--overwrite"):
        open_dataset(str(old))
    with h5py.File(tmp_path / "x.h5", "w") as f:
        f["a"] = 1
    with pytest.raises(DataFormatError, match="not a ckpp dataset"):
        open_dataset(str(tmp_path / "x.h5"))
    (tmp_path / "junk.h5").write_bytes(b"\0" * 100)
    with pytest.raises(DataFormatError, match="cannot open as HDF5"):
        open_dataset(str(tmp_path / "junk.h5"))
    shard = open_dataset(out).row("P002_happy_01")["shard"]
    with pytest.raises(DataFormatError, match="shard file, not the master"):
        open_dataset(str(tmp_path / shard))


@pytest.mark.parametrize("damage", ["empty", "truncated"])
def test_damaged_shard_is_a_clear_error_for_train_and_inspect(out, damage):
    """Fuzz pass: `ckpp train` on a master whose shard was emptied or cut in half showed h5py's OSError traceback."""
    from click.testing import CliRunner

    from ckpp_tools.cli import main

    ds = open_dataset(out)
    shard = os.path.join(os.path.dirname(out), ds.row("P002_happy_01")["shard"])
    data = open(shard, "rb").read()
    open(shard, "wb").write(b"" if damage == "empty" else data[: len(data) // 2])
    with pytest.raises(DataFormatError, match="cannot be opened as HDF5") as e:
        open_dataset(out).clip("P002_happy_01")
    assert os.path.basename(shard) in str(e.value) and "re-run ckpp prepare" in str(e.value)
    r = CliRunner().invoke(main, ["inspect", out, "--validate"])
    assert r.exit_code == 1 and "Traceback" not in r.output and os.path.basename(shard) in r.output, r.output
