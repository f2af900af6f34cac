"""A full disk (ENOSPC), quota (EDQUOT), file-size limit (EFBIG) or read-only filesystem (EROFS) at every writer:
one message naming the file, the free space and the fix; exit 1, no traceback; no `.partial` left; the
previous output untouched; and `prepare --resume` after space is freed gives the uninterrupted run's dataset.

The errors are injected where the bytes leave Python (no root needed): `os.pwrite` (HDF5's files, through
disk_space.DeferredErrorFile) and `open` in ckpp_tools.disk_space (every other file). The real thing — a
3 MB tmpfs — is benchmarks/bm_disk_full.py; the crash class (HDF5 segfaulting at exit after a failed write)
is reproduced here for real with a file-size limit (RLIMIT_FSIZE -> EFBIG), which needs no root either.
"""
import errno
import hashlib
import json
import os
import subprocess
import sys

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from ckpp_tools import disk_space
from ckpp_tools.cli import main
from ckpp_tools.disk_space import DeferredErrorFile, DiskFullError
from prepare_helpers import install_fake, make_raw, runner_script

ARGS = ["--size", "32", "--workers", "1", "--shard-size", "20000", "--quiet"]


def _fd_path(fd: int) -> str:
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return ""


class Disk:
    """Makes writes fail like a full disk: files whose path contains `match` accept `room` more bytes in all,
    then the write that crosses it writes what fits and raises OSError(code) (no file name, as a real
    write() does). `free()` lifts it (space was freed)."""

    def __init__(self, monkeypatch):
        self.mp = monkeypatch
        self.match, self.room, self.code, self.hits = None, 0, errno.ENOSPC, 0
        real_pwrite, real_open = os.pwrite, open

        def pwrite(fd, data, offset):
            if self._full(_fd_path(fd), len(data)):
                n = max(0, self.room)
                if n:
                    real_pwrite(fd, bytes(memoryview(data)[:n]), offset)
                self.room = 0
                raise OSError(self.code, os.strerror(self.code))
            self.room -= len(data) if self.match and self.match in _fd_path(fd) else 0
            return real_pwrite(fd, data, offset)

        disk = self

        class File:
            def __init__(self, fh, path):
                self._fh, self._path = fh, path

            def write(self, data):
                if disk._full(self._path, len(data)):
                    n = max(0, disk.room)
                    self._fh.write(data[:n])
                    self._fh.flush()
                    disk.room = 0
                    raise OSError(disk.code, os.strerror(disk.code))
                if disk.match and disk.match in self._path:
                    disk.room -= len(data)
                return self._fh.write(data)

            def __getattr__(self, k):
                return getattr(self._fh, k)

            def __enter__(self):
                return self

            def __exit__(self, *exc):
                self._fh.close()

        def fake_open(path, mode="r", *a, **k):
            if self.code == errno.EROFS and self.match and self.match in os.fspath(path) and "r" not in mode:
                self.hits += 1
                raise OSError(errno.EROFS, os.strerror(errno.EROFS), os.fspath(path))
            fh = real_open(path, mode, *a, **k)
            return File(fh, os.path.abspath(os.fspath(path))) if "r" not in mode else fh

        monkeypatch.setattr(os, "pwrite", pwrite)
        monkeypatch.setattr(disk_space, "open", fake_open, raising=False)

    def _full(self, path: str, n: int) -> bool:
        if self.match and self.match in path and n > self.room:
            self.hits += 1
            return True
        return False

    def fill(self, match: str, room: int = 0, code: int = errno.ENOSPC) -> "Disk":
        self.match, self.room, self.code, self.hits = match, room, code, 0
        return self

    def free(self) -> None:
        self.match = None


@pytest.fixture
def disk(monkeypatch):
    return Disk(monkeypatch)


@pytest.fixture
def fake(monkeypatch):
    install_fake(monkeypatch)


def assert_one_clear_message(res, file_name: str, fix: str):
    assert res.exit_code == 1, res.output
    out = res.output
    assert "Traceback" not in out and "Exception ignored" not in out, out
    assert file_name in out and "cannot write" in out, out
    assert " free" in out and "fix: " in out and fix in out, out


def digest(path) -> str:
    """Everything a reader sees of a prepared file, minus run ids and times (cf. test_prepare_cli.content)."""
    from ckpp_tools.reader import open_dataset

    ds = open_dataset(str(path))
    h = hashlib.sha256()
    m = ds.manifest.to_dict("list")
    m["shard"] = [os.path.basename(s).split("-")[-1] for s in m["shard"]]
    h.update(json.dumps(m, sort_keys=True, default=str).encode())
    for cid in ds.clip_ids():
        c = ds.clip(cid)
        for a in (c.frames, c.landmarks, c.mouth_mask, c.degree, c.source_index):
            h.update(np.ascontiguousarray(a).tobytes())
        h.update(repr(sorted((k, str(v)) for k, v in c.attrs.items())).encode())
    ds.close()
    return h.hexdigest()


def leftovers(folder) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if ".partial" in p.name or "probe" in p.name)


# ------------------------------------------------------------------------------------------------ prepare

def test_prepare_full_disk_at_a_shard_then_resume_gives_the_same_dataset(fake, tmp_path, disk):
    raw = make_raw(tmp_path, n_subjects=3)
    out = tmp_path / "o" / "out.h5"
    ref = tmp_path / "ref" / "out.h5"
    assert CliRunner().invoke(main, ["prepare", raw, str(ref)] + ARGS).exit_code == 0
    (tmp_path / "o").mkdir()
    (tmp_path / "o" / "older.h5").write_bytes(b"a previous complete output")
    disk.fill("out-00002.h5", room=5000)                    # shards 0 and 1 complete, shard 2 runs out of room
    res = CliRunner().invoke(main, ["prepare", raw, str(out)] + ARGS)
    assert disk.hits
    assert_one_clear_message(res, "out-00002.h5", "rerun the same command with --resume")
    assert "No space left on device" in res.output and "deleted the unfinished out-00002.h5.partial" in res.output
    assert "kept the 2 completed shard(s) for --resume" in res.output and "the job still needs about" in res.output
    assert sorted(os.listdir(tmp_path / "o")) == ["older.h5", "out-00000.h5", "out-00001.h5"]   # no .partial, no lock
    assert (tmp_path / "o" / "older.h5").read_bytes() == b"a previous complete output"
    disk.free()
    res = CliRunner().invoke(main, ["prepare", raw, str(out), "--resume"] + ARGS)
    assert res.exit_code == 0, res.output
    assert "resumed: reused 2 completed shard(s)" in res.output
    assert digest(out) == digest(ref)


def test_prepare_full_disk_at_the_master_keeps_every_shard(fake, tmp_path, disk):
    raw = make_raw(tmp_path, n_subjects=2)
    out = tmp_path / "out.h5"
    disk.fill("out.h5.partial")
    res = CliRunner().invoke(main, ["prepare", raw, str(out)] + ARGS)
    assert_one_clear_message(res, "out.h5", "--resume")
    shards = sorted(p for p in os.listdir(tmp_path) if p.startswith("out-"))
    assert shards and not out.exists() and not leftovers(tmp_path)
    assert f"kept the {len(shards)} completed shard(s)" in res.output
    disk.free()
    res = CliRunner().invoke(main, ["prepare", raw, str(out), "--resume"] + ARGS)
    assert res.exit_code == 0 and f"reused {len(shards)} completed shard(s)" in res.output, res.output


@pytest.mark.parametrize("code, says, fix", [
    (errno.EDQUOT, "the disk quota is used up", "free"),
    (errno.EFBIG, "largest size allowed", "ulimit -f unlimited"),
])
def test_prepare_quota_and_file_size_limit(fake, tmp_path, disk, code, says, fix):
    raw = make_raw(tmp_path, n_subjects=1, broken=False)
    disk.fill("out-00000.h5", room=3000, code=code)
    res = CliRunner().invoke(main, ["prepare", raw, str(tmp_path / "out.h5")] + ARGS)
    assert_one_clear_message(res, "out-00000.h5", fix)
    assert says in res.output and not leftovers(tmp_path)


def test_read_only_output_folder(fake, tmp_path, monkeypatch):
    raw = make_raw(tmp_path, n_subjects=1, broken=False)
    # creating the shard is where a read-only filesystem answers (os.open in DeferredErrorFile)
    real_open = os.open

    def ro_open(path, flags, *a, **k):
        if "out-00000.h5" in os.fspath(path) and flags & os.O_CREAT:
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), os.fspath(path))
        return real_open(path, flags, *a, **k)

    monkeypatch.setattr(os, "open", ro_open)
    res = CliRunner().invoke(main, ["prepare", raw, str(tmp_path / "out.h5")] + ARGS)
    assert res.exit_code == 1 and "Traceback" not in res.output, res.output
    assert "read-only" in res.output and "write the output to a writable folder" in res.output
    assert not leftovers(tmp_path)


def test_prepare_checks_the_free_space_before_any_work(fake, tmp_path, monkeypatch):
    from ckpp_tools import space_estimate

    raw = make_raw(tmp_path, n_subjects=2)
    out = tmp_path / "out.h5"
    monkeypatch.setattr(space_estimate, "free_bytes", lambda p: 1000)
    res = CliRunner().invoke(main, ["prepare", raw, str(out)] + ARGS)
    assert res.exit_code == 1 and "Traceback" not in res.output
    assert "not enough space: this run writes about" in res.output and "1.0 kB free" in res.output
    assert "--no-space-check" in res.output and os.listdir(tmp_path) == ["raw"]          # nothing was started
    est = space_estimate.estimate(__import__("ckpp_tools.sources", fromlist=["x"]).find_clips(raw)[0], 32)
    monkeypatch.setattr(space_estimate, "free_bytes", lambda p: (est.typical + est.upper) // 2)
    res = CliRunner().invoke(main, ["prepare", raw, str(out)] + ARGS)
    assert res.exit_code == 0 and "not for the upper bound" in res.output, res.output
    monkeypatch.setattr(space_estimate, "free_bytes", lambda p: 1000)
    res = CliRunner().invoke(main, ["prepare", raw, str(tmp_path / "b.h5"), "--no-space-check"] + ARGS)
    assert res.exit_code == 0, res.output
    # the estimate is close to what was written (CK+ frame folders are counted, videos probed)
    written = sum(os.path.getsize(tmp_path / p) for p in os.listdir(tmp_path) if p.startswith("out"))
    assert 0.5 * written < est.typical < 2.5 * written, (est, written)


def test_merge_full_disk(fake, tmp_path, disk):
    raw = make_raw(tmp_path, n_subjects=2)
    parts = []
    for i in range(2):
        p = str(tmp_path / f"part{i}.h5")
        assert CliRunner().invoke(main, ["prepare", raw, p, "--num-shards", "2", "--shard-index", str(i)] + ARGS).exit_code == 0
        parts.append(p)
    before = {p: open(p, "rb").read() for p in parts}
    disk.fill("merged.h5")
    res = CliRunner().invoke(main, ["merge", *parts, str(tmp_path / "merged.h5")])
    assert_one_clear_message(res, "merged.h5", "run the same command again")
    assert not (tmp_path / "merged.h5").exists() and not leftovers(tmp_path)
    assert before == {p: open(p, "rb").read() for p in parts}


def test_hdf5_never_sees_the_failed_write(tmp_path, disk):
    """h5py through DeferredErrorFile on a 'full disk': no exception inside h5py, the error comes after the call,
    and the file closes cleanly (HDF5 crashes the interpreter at exit when it sees a failed write)."""
    disk.fill("x.h5", room=20_000)
    fh = DeferredErrorFile(tmp_path / "x.h5")
    f = h5py.File(fh, "w")
    f.create_dataset("a", data=np.arange(100_000, dtype=np.int64), chunks=(1000,))
    assert fh.error is not None and fh.error.errno == errno.ENOSPC and fh.error.filename == str(tmp_path / "x.h5")
    f.create_group("more").attrs["after"] = 1      # HDF5 goes on as if it had written
    f.close()
    fh.close()
    with pytest.raises(OSError, match="No space left"):
        fh.raise_error()


def test_a_file_size_limit_ends_prepare_with_exit_1_not_a_crash(tmp_path):
    """The real failure, no root needed: RLIMIT_FSIZE makes the kernel refuse writes past 300 kB (EFBIG).
    Before DeferredErrorFile, HDF5 segfaulted at exit (exit 139) after such a failed write."""
    resource = pytest.importorskip("resource")
    raw = make_raw(tmp_path, n_subjects=3, n_frames=12)
    limit = 300_000

    def cap():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    p = subprocess.run([sys.executable, runner_script(tmp_path), "prepare", raw, str(tmp_path / "o" / "out.h5"),
                        "--size", "96", "--workers", "1", "--quiet"], preexec_fn=cap, capture_output=True, text=True,
                       timeout=120)
    text = p.stdout + p.stderr
    assert p.returncode == 1, (p.returncode, text[-3000:])
    assert "Traceback" not in text and "Exception ignored" not in text, text[-3000:]
    assert "out-00000.h5: cannot write" in text and "File too large" in text and "ulimit -f" in text
    assert not [n for n in os.listdir(tmp_path / "o") if n.endswith(".partial")]


# ------------------------------------------------------------------------------------------------ train

SMALL = {"preset": "tiny", "image_size": 32, "levels": 5, "base_width": 8, "max_width": 32, "d_width": 8,
         "batch_size": 4, "num_workers": 0, "log_every": 1, "ckpt_every": 2, "sample_every": 2}


def weights(run_dir):
    from models.checkpoint import read_checkpoint

    ck = read_checkpoint(run_dir)
    return ck["step"], {k: {n: t.clone() for n, t in sd.items()} for k, sd in ck["modules"].items()}


def test_train_full_disk_at_a_checkpoint_then_resume(tmp_path, monkeypatch, disk):
    import torch

    from tests.fakes import make_fake_dataset

    torch.set_num_threads(1)
    monkeypatch.chdir(tmp_path)
    make_fake_dataset(tmp_path / "out.h5", emotions=("surprise",), n_clips=3, T=6, size=36)
    (tmp_path / "small.json").write_text(json.dumps(SMALL))
    cmd = ["train", "out.h5", "--emotion", "surprise", "--config", "small.json", "--steps", "4", "--quiet"]
    assert CliRunner().invoke(main, cmd + ["--out", "runs/ref"]).exit_code == 0
    disk.fill("ckpt-00000004.pt", room=10_000)
    res = CliRunner().invoke(main, cmd + ["--out", "runs/r"])
    assert_one_clear_message(res, "ckpt-00000004.pt", "rerun the same command with --resume")
    assert "kept ckpt-00000002.pt, the newest complete checkpoint" in res.output
    run = tmp_path / "runs" / "r"
    assert not leftovers(run) and open(run / "latest").read().strip() == "ckpt-00000002.pt"
    disk.free()
    res = CliRunner().invoke(main, cmd + ["--out", "runs/r", "--resume"])
    assert res.exit_code == 0, res.output
    (sa, wa), (sb, wb) = weights("runs/ref"), weights("runs/r")
    assert sa == sb == 4 and wa.keys() == wb.keys()
    for k in wa:
        for n in wa[k]:
            assert torch.equal(wa[k][n], wb[k][n]), (k, n)


def test_metrics_are_appended_whole_or_not_at_all(tmp_path, disk):
    path = tmp_path / "metrics.jsonl"
    disk_space.append_bytes(path, b'{"step": 1}\n')
    disk.fill("metrics.jsonl", room=5)
    with pytest.raises(DiskFullError) as e:
        disk_space.append_bytes(path, b'{"step": 2, "rec": 0.5}\n')
    assert path.read_bytes() == b'{"step": 1}\n'          # the torn half-line was cut back
    assert "metrics.jsonl" in str(e.value.format_message())


@pytest.mark.parametrize("code, fix", [(errno.ENOSPC, "free"), (errno.EDQUOT, "quota -s"),
                                       (errno.EFBIG, "ulimit -f"), (errno.EROFS, "writable folder")])
def test_atomic_write_names_the_file_and_leaves_the_old_one(tmp_path, disk, code, fix):
    path = tmp_path / "config.json"
    path.write_text("old")
    disk.fill("config.json", room=2, code=code)
    with pytest.raises(DiskFullError) as e:
        disk_space.atomic_write_bytes(path, b"new content")
    text = e.value.format_message()
    assert str(path) in text and fix in text and os.strerror(code) in text
    assert path.read_text() == "old" and os.listdir(tmp_path) == ["config.json"]


# ------------------------------------------------------------------------------------------------ generate, report

HOPPER = os.path.join(__import__("matplotlib").get_data_path(), "sample_data", "grace_hopper.jpg")


def test_generate_full_disk_gif_and_mp4(tmp_path, disk, monkeypatch):
    import models.generate as gen

    old = tmp_path / "hopper.gif"
    old.write_bytes(b"a previous video")
    disk.fill("hopper.gif", room=1000)
    cmd = ["generate", "pretrained", HOPPER, "--emotion", "surprise", "--frames", "4"]
    res = CliRunner().invoke(main, cmd + ["-o", str(old)])
    assert_one_clear_message(res, "hopper.gif", "run the same command again")
    assert old.read_bytes() == b"a previous video" and not leftovers(tmp_path)
    # mp4: ffmpeg only prints a full disk and leaves a file without its index; the disk is then asked why
    disk.fill(".ckpp-probe")
    monkeypatch.setattr(gen, "mp4_complete", lambda p: False)
    res = CliRunner().invoke(main, cmd + ["-o", str(tmp_path / "hopper.mp4")])
    assert_one_clear_message(res, "hopper.mp4", "free")
    assert "deleted the unfinished hopper.mp4.partial.mp4" in res.output
    assert os.listdir(tmp_path) == ["hopper.gif"]


def test_benchmark_full_disk_keeps_the_previous_report(tmp_path, disk, monkeypatch):
    from models import benchmark as bm
    from models import report as rp
    from tests.fakes import make_fake_dataset
    from tests.test_benchmark import synthetic_results

    monkeypatch.chdir(tmp_path)
    make_fake_dataset(tmp_path / "out.h5", emotions=("surprise",), n_clips=3, T=4, size=64)
    res_ = synthetic_results(np.random.default_rng(0))
    monkeypatch.setattr(bm, "run_benchmark", lambda **kw: (rp.write_report(kw["out_dir"], res_), res_)[1])
    cmd = ["benchmark", "out.h5", "--model", "pretrained", "--baselines", "none", "--no-identity", "-o", "rep"]
    assert CliRunner().invoke(main, cmd).exit_code == 0
    before = {p: (tmp_path / "rep" / p).read_bytes() for p in os.listdir(tmp_path / "rep")}
    disk.fill("report.md")
    res = CliRunner().invoke(main, cmd)
    assert_one_clear_message(res, "report.md", "run the same command again")
    assert "the previous report in rep is untouched" in res.output and "deleted the unfinished rep.partial" in res.output
    assert not (tmp_path / "rep.partial").exists() and not leftovers(tmp_path)
    assert before == {p: (tmp_path / "rep" / p).read_bytes() for p in os.listdir(tmp_path / "rep")}


# ------------------------------------------------------------------------------------------------ sample, demo

def test_sample_full_disk_keeps_the_previous_sample(tmp_path, disk):
    out = tmp_path / "raw"
    out.mkdir()
    (out / "truth.json").write_text("{}")                  # a previous sample (what --overwrite may replace)
    disk.fill("cohn-kanade-images")                        # the first CK+ frame
    res = CliRunner().invoke(main, ["sample", str(out), "--small", "--subjects", "2", "--overwrite"])
    assert_one_clear_message(res, "cohn-kanade-images", "run the same command again")
    assert "deleted the unfinished raw.partial" in res.output
    assert sorted(os.listdir(tmp_path)) == ["raw"] and os.listdir(out) == ["truth.json"]


def test_a_video_without_its_index_is_caught(tmp_path):
    import cv2

    path = str(tmp_path / "v.mp4")
    w = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"mp4v"), 25, (64, 48))
    for t in range(5):
        w.write(np.full((48, 64, 3), 40 * t, np.uint8))
    w.release()
    assert disk_space.mp4_complete(path)
    data = open(path, "rb").read()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) * 2 // 3])
    assert not disk_space.mp4_complete(cut)
    with pytest.raises(Exception, match="stopped before the file was complete"):   # the disk is fine: not "full"
        disk_space.raise_write_failure(cut, "OpenCV's video writer", partial=cut)
    assert not cut.exists()


def test_demo_step_failure_says_the_free_space(tmp_path, monkeypatch):
    import subprocess as sp

    monkeypatch.setattr(sp, "call", lambda *a, **k: 1)
    res = CliRunner().invoke(main, ["demo", "--small", "--out", str(tmp_path / "d")])
    assert res.exit_code == 1 and "Traceback" not in res.output
    assert "demo step `ckpp sample" in res.output and "free on the disk holding" in res.output
    assert "ckpp demo --overwrite" in res.output


def test_disk_errno_reads_every_library_s_way_of_saying_it():
    assert disk_space.disk_errno(OSError(errno.ENOSPC, "x")) == errno.ENOSPC
    assert disk_space.disk_errno(RuntimeError("Can't decrement id ref count (file write failed: errno = 28, "
                                              "error message = 'No space left on device')")) == errno.ENOSPC
    assert disk_space.disk_errno(OSError(errno.EPIPE, "Broken pipe: Disk quota exceeded")) == errno.EDQUOT
    try:
        try:
            raise OSError(errno.EROFS, "ro")
        except OSError as inner:
            raise RuntimeError("wrapped") from inner
    except RuntimeError as outer:
        assert disk_space.disk_errno(outer) == errno.EROFS
    assert disk_space.disk_errno(OSError(errno.EACCES, "Permission denied")) is None
    assert disk_space.disk_errno(ValueError("No space left on device")) is None
    import pickle

    e = pickle.loads(pickle.dumps(DiskFullError("/x/out.h5", errno.ENOSPC, need=5_000_000, resume="--resume")))
    assert (e.target, e.code, e.need, e.resume) == ("/x/out.h5", errno.ENOSPC, 5_000_000, "--resume")
    assert "the job still needs about 5.0 MB" in e.format_message() and "--resume" in e.format_message()
