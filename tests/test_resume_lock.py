"""`--resume` on a finished OUT is a no-op (and refuses other options); the output lock is a kernel lock that
dies with its holder (docs/reliability.md)."""
import errno
import os
import subprocess
import sys
import textwrap

import pytest
from click.testing import CliRunner

from ckpp_tools import locking
from ckpp_tools.cli import main
from ckpp_tools.errors import CkppError
from ckpp_tools.prepare import PrepareOptions, prepare
from prepare_helpers import install_fake, make_raw


@pytest.fixture
def fake(monkeypatch):
    install_fake(monkeypatch)


@pytest.fixture
def raw(tmp_path):
    return make_raw(tmp_path, n_subjects=2)


def snapshot(folder):
    return {n: (os.stat(folder / n).st_mtime_ns, (folder / n).read_bytes()) for n in sorted(os.listdir(folder))}


def test_resume_on_a_complete_output_is_a_noop(fake, tmp_path, raw):
    out = tmp_path / "o" / "out.h5"
    args = ["prepare", raw, str(out), "--size", "32", "--workers", "1", "--shard-size", "20000", "--quiet"]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    before = snapshot(out.parent)
    assert len(before) >= 3   # master + shards
    r = CliRunner().invoke(main, args + ["--resume"])
    assert r.exit_code == 0, r.output
    assert "already complete" in r.output and "nothing to do" in r.output
    assert "total" in r.output   # the summary of what is there
    assert snapshot(out.parent) == before   # byte-identical and not even rewritten
    # other options than the finished run's: refused, still untouched
    r = CliRunner().invoke(main, args[:3] + ["--size", "48", "--workers", "1", "--shard-size", "20000", "--quiet", "--resume"])
    assert r.exit_code != 0
    assert "out.h5: output is complete but was made with other options" in r.output
    assert "--size 32 then, 48 now" in r.output and "--overwrite" in r.output
    # other clips (one added to RAW): refused too
    from prepare_helpers import write_video
    write_video(os.path.join(raw, "ours", "P002", "sad_01.mp4"), 8)
    r = CliRunner().invoke(main, args + ["--resume"])
    assert r.exit_code != 0 and "the clips found in RAW changed" in r.output
    assert snapshot(out.parent) == before


HOLDER = textwrap.dedent("""
    import sys, time
    from ckpp_tools.locking import OutputLock
    with OutputLock(sys.argv[1]):
        print("locked", flush=True)
        sys.stdin.read()          # hold until the test closes our stdin
""")


def test_held_lock_names_its_holder(fake, tmp_path, raw):
    out = tmp_path / "out.h5"
    script = tmp_path / "holder.py"
    script.write_text(HOLDER)
    p = subprocess.Popen([sys.executable, str(script), str(out)], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert p.stdout.readline().strip() == b"locked"
        with pytest.raises(CkppError, match=rf"another ckpp prepare is writing this output \(pid {p.pid} on host "):
            prepare(raw, str(out), PrepareOptions(size=32, workers=1, progress=False))
        assert not out.exists()
    finally:
        p.stdin.close()
        p.wait(10)
    prepare(raw, str(out), PrepareOptions(size=32, workers=1, progress=False))   # released with its holder
    assert out.exists() and not os.path.exists(str(out) + ".lock")


def test_stale_lock_of_a_dead_or_unrelated_process_does_not_block(fake, tmp_path, raw):
    """A lock file left by a kill -9, naming a pid that now belongs to an unrelated live process (pid reuse)."""
    out = tmp_path / "out.h5"
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        (tmp_path / "out.h5.lock").write_text(str(sleeper.pid))          # the old pid-file format
        prepare(raw, str(out), PrepareOptions(size=32, workers=1, progress=False))
        assert out.exists()
        (tmp_path / "out.h5.lock").write_text(f"pid {sleeper.pid} on host elsewhere since 2020-01-01 00:00:00\n")
        prepare(raw, str(out), PrepareOptions(size=32, workers=1, progress=False, overwrite=True))
    finally:
        sleeper.kill()
        sleeper.wait()
    assert not os.path.exists(str(out) + ".lock")


def test_filesystem_without_locks(fake, tmp_path, raw, monkeypatch):
    def no_locks(fd, op):
        raise OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))

    monkeypatch.setattr(locking.fcntl, "flock", no_locks)
    r = CliRunner().invoke(main, ["prepare", raw, str(tmp_path / "out.h5"), "--size", "32", "--workers", "1", "--quiet"])
    assert r.exit_code != 0
    assert "out.h5.lock: this filesystem does not support file locks" in r.output and "CKPP_NO_LOCK=1" in r.output
    monkeypatch.setenv("CKPP_NO_LOCK", "1")
    r = CliRunner().invoke(main, ["prepare", raw, str(tmp_path / "out.h5"), "--size", "32", "--workers", "1", "--quiet"])
    assert r.exit_code == 0, r.output


FORKING_HOLDER = textwrap.dedent("""
    import os, sys, time
    from ckpp_tools.locking import OutputLock
    lock = OutputLock(sys.argv[1]).__enter__()
    pid = os.fork()
    if pid == 0:            # a worker: outlives the driver for a moment (or for ever, if it were an orphan)
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, 1), os.dup2(null, 2)   # let the test's subprocess.run see EOF now
        time.sleep(30)
        os._exit(0)
    print(pid, flush=True)
    os._exit(0)             # the driver dies without unlocking (like kill -9)
""")


def test_the_lock_dies_with_the_driver_not_with_its_workers(tmp_path):
    out = tmp_path / "out.h5"
    script = tmp_path / "forking.py"
    script.write_text(FORKING_HOLDER)
    r = subprocess.run([sys.executable, str(script), str(out)], capture_output=True, text=True, check=True)
    child = int(r.stdout.strip())
    try:
        assert os.path.exists(str(out) + ".lock")      # left behind, but not held
        with locking.OutputLock(str(out)):
            pass
    finally:
        os.kill(child, 9)
