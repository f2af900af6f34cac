"""Shared fixtures.

`sample_root`: the SMALL sample tree (`ckpp sample --small --subjects 3 --seed 0`), built once per test
session. It is shared by every test file: treat it as READ-ONLY; copy it (shutil.copytree) if you need
to change anything in it. Its truth is `ckpp_tools.sample.load_truth(sample_root)`.
"""
from __future__ import annotations

import pytest


SAMPLE_KW = dict(subjects=3, seed=0, small=True)


@pytest.fixture(scope="session")
def sample_root(tmp_path_factory):
    from ckpp_tools.sample import make_sample

    root = tmp_path_factory.mktemp("sample") / "raw"
    make_sample(root, workers=1, progress=False, **SAMPLE_KW)
    return root


# ---------------------------------------------------------------------------------------------------------
# no process outlives the suite: pytest adopts every orphaned descendant (Linux child subreaper), so a worker
# left behind by a killed subprocess becomes our child, and the session fails if any child is still alive
# at its end (after a grace period for ones that are exiting). docs/reliability.md.
# ---------------------------------------------------------------------------------------------------------

_PR_SET_CHILD_SUBREAPER = 36
#: children that legitimately live as long as pytest (multiprocessing's helpers)
_EXPECTED_CHILDREN = ("resource_tracker", "forkserver", "semaphore_tracker")


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return fh.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def pytest_configure(config):
    import sys

    if sys.platform.startswith("linux"):
        try:
            import ctypes

            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
        except (OSError, AttributeError):
            pass


def _leftover_children(grace: float = 5.0) -> list[tuple[int, str]]:
    import os
    import time

    from ckpp_tools.lifecycle import live_children

    deadline = time.monotonic() + grace
    while True:
        try:  # reap adopted zombies so they do not pile up
            while os.waitpid(-1, os.WNOHANG)[0] > 0:
                pass
        except ChildProcessError:
            pass
        left = [(p, _cmdline(p)) for p in live_children()]
        left = [(p, c) for p, c in left if not any(x in c for x in _EXPECTED_CHILDREN)]
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.1)


@pytest.hookimpl(trylast=True)  # after session fixtures are torn down
def pytest_sessionfinish(session, exitstatus):
    import os
    import signal

    left = _leftover_children()
    if not left:
        return
    tr = session.config.pluginmanager.get_plugin("terminalreporter")
    msg = "\nthe test suite left %d process(es) behind (killed now):\n" % len(left) + "\n".join(
        f"  pid {p}: {c[:200]}" for p, c in left)
    if tr is not None:
        tr.write_line(msg, red=True, bold=True)
    else:
        print(msg)
    for p, _ in left:
        try:
            os.kill(p, signal.SIGKILL)
        except OSError:
            pass
    session.exitstatus = pytest.ExitCode.TESTS_FAILED
