"""No process outlives its parent (docs/reliability.md): prepare workers, DataLoader workers and the demo's
child commands end within seconds of a kill -9 of the process that started them."""
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from ckpp_tools.lifecycle import is_alive, live_children
from prepare_helpers import make_raw, runner_script

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")


def _wait_children(proc, n, timeout=60.0):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        assert proc.poll() is None, "the parent ended before it could be killed"
        kids = live_children(proc.pid)
        if len(kids) >= n:
            return kids
        time.sleep(0.05)
    raise AssertionError(f"the parent never had {n} child process(es)")


def _kill9_and_check(proc, kids, within=3.0):
    """kill -9 the parent; every child must be gone `within` seconds (killed here if not, then failed)."""
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    t0 = time.monotonic()
    while time.monotonic() - t0 < within and any(is_alive(k) for k in kids):
        time.sleep(0.05)
    left = [k for k in kids if is_alive(k)]
    for k in left:
        os.kill(k, signal.SIGKILL)
    assert not left, f"child process(es) {left} outlived their parent's kill -9 by {within}s"


@pytest.mark.parametrize("workers", [1, 2])
def test_prepare_workers_die_with_the_driver(tmp_path, workers):
    raw = make_raw(tmp_path, n_subjects=2)
    env = dict(os.environ, CKPP_FAKE_SLEEP="30")   # workers are busy in "analysis" when the driver dies
    proc = subprocess.Popen([sys.executable, runner_script(tmp_path), "prepare", raw, str(tmp_path / "o.h5"),
                             "--size", "32", "--workers", str(workers), "--quiet"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    kids = _wait_children(proc, workers)
    time.sleep(0.3)   # let them pick up a clip
    _kill9_and_check(proc, kids)


DATALOADER = textwrap.dedent("""
    import sys, time
    import numpy as np
    from models.data import make_loader

    class DS:
        def __len__(self): return 8
        def __getitem__(self, i): return {"x": np.zeros(4, np.float32)}

    it = iter(make_loader(DS(), 2, num_workers=2))
    next(it)
    print("ready", flush=True)
    time.sleep(120)
""")


def test_dataloader_workers_die_with_training(tmp_path):
    """Loader workers idle between batches (torch's own watchdog only looks every 5 s)."""
    script = tmp_path / "loader.py"
    script.write_text(DATALOADER)
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert proc.stdout.readline().strip() == b"ready"
    kids = _wait_children(proc, 2)
    _kill9_and_check(proc, kids, within=2.5)


DEMO = textwrap.dedent("""
    import sys
    from ckpp_tools.commands import demo
    sys.executable = sys.argv[1]      # a stand-in for `python -m ckpp_tools.cli ...`: sleeps
    demo._run(["sample", "x"])
""")


def test_demo_steps_die_with_the_demo(tmp_path):
    fake_python = tmp_path / "fakepython"
    fake_python.write_text("#!/bin/sh\nexec sleep 120\n")
    fake_python.chmod(0o755)
    script = tmp_path / "demo.py"
    script.write_text(DEMO)
    proc = subprocess.Popen([sys.executable, str(script), str(fake_python)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    kids = _wait_children(proc, 1)
    _kill9_and_check(proc, kids)


FORKED = textwrap.dedent("""
    import os, sys, time
    import ckpp_tools.lifecycle as L
    if sys.argv[1] == "thread":
        L._prctl_pdeathsig = lambda sig: False      # the portable fallback
    parent = os.getpid()
    if os.fork() == 0:
        assert L.die_with_parent(parent) == sys.argv[1]
        time.sleep(120)
        os._exit(0)
    time.sleep(120)
""")


@pytest.mark.parametrize("how", ["prctl", "thread"])
def test_die_with_parent_both_mechanisms(tmp_path, how):
    script = tmp_path / "forked.py"
    script.write_text(FORKED)
    proc = subprocess.Popen([sys.executable, str(script), how])
    kids = _wait_children(proc, 1)
    time.sleep(0.3)
    assert all(is_alive(k) for k in kids)   # alive while the parent lives
    _kill9_and_check(proc, kids)


def test_a_child_whose_parent_already_died_exits(tmp_path):
    """The race: the parent dies between fork and die_with_parent(); the re-check of getppid() catches it."""
    script = tmp_path / "late.py"
    script.write_text(textwrap.dedent("""
        import os, sys, time
        import ckpp_tools.lifecycle as L
        parent = os.getpid()
        if os.fork() == 0:
            time.sleep(0.5)                       # the parent is gone by now
            L.die_with_parent(parent)
            open(sys.argv[1], "w").write("survived")
            os._exit(0)
        os._exit(0)
    """))
    flag = tmp_path / "flag"
    subprocess.run([sys.executable, str(script), str(flag)], check=True)
    time.sleep(1.5)
    assert not flag.exists()


@pytest.mark.parametrize("phase", ["check photos", "render clips"])
def test_sample_workers_die_with_the_sampler(tmp_path, phase):
    """`ckpp sample`'s two process pools: the photo check (--photos DIR, > 8 photos) and the clip renderer."""
    import shutil

    import matplotlib

    hopper = os.path.join(matplotlib.get_data_path(), "sample_data", "grace_hopper.jpg")
    env = dict(os.environ, CKPP_CACHE="off", OMP_NUM_THREADS="1")
    if phase == "check photos":
        photos = tmp_path / "photos"
        photos.mkdir()
        import cv2

        img = cv2.imread(hopper)
        for k in range(40):   # distinct files (the check de-duplicates by content): rescaled copies
            cv2.imwrite(str(photos / f"p{k:02d}.png"), cv2.resize(img, None, fx=1 + k / 40, fy=1 + k / 40))
        args = ["--photos", str(photos)]
    else:
        args = ["--workers", "2"]
    proc = subprocess.Popen([sys.executable, "-m", "ckpp_tools.cli", "sample", str(tmp_path / "out"), *args],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    kids = _wait_children(proc, 2, timeout=120)
    time.sleep(1.0)   # let them start work
    # spawned Pythons: one still importing when its parent dies arms the parent-death signal only once its pool
    # initializer runs, then ends at once (lifecycle.die_with_parent's getppid check); on 2 cores shared with a
    # training run that start-up took over 3 s (seen once), so this waits longer than the forked pools' 3 s
    _kill9_and_check(proc, kids, within=15.0)


def test_fork_with_opencv_threads_stopped():
    """prepare forks its workers with OpenCV's thread pool stopped: a child forked amid a live pool hung in
    its cv2.setNumThreads(1) (seen in the test suite once a test ran OpenCV in the pytest process)."""
    import cv2
    import numpy as np

    from ckpp_tools.lifecycle import opencv_threads_stopped

    def n_threads():
        return len(os.listdir("/proc/self/task"))

    before = cv2.getNumThreads()
    try:
        cv2.setNumThreads(3)
        cv2.GaussianBlur(np.random.rand(1500, 1500).astype(np.float32), (0, 0), 8)   # the pool runs now
        live = n_threads()
        with opencv_threads_stopped():
            assert cv2.getNumThreads() == 1 and n_threads() <= live - 2, "the pool's threads are joined"
        assert cv2.getNumThreads() == 3, "the parent's setting comes back"
    finally:
        cv2.setNumThreads(before)
