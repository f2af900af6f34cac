"""No process outlives its parent: worker processes and child commands end when the process that started them
dies, however it dies (kill -9 included).

Why: a killed `ckpp prepare` left its decoder workers asleep forever (a forked worker holds a copy of its own
pipe's other end, so it never sees EOF), and every interrupted job on a cluster node leaked them.

- Linux: the kernel's parent-death signal (prctl PR_SET_PDEATHSIG) delivers a signal to the child the moment
  its parent exits. It is set in the child, so the parent may already be gone: re-check getppid() afterwards.
  Caveat of the kernel: "parent" is the *thread* that forked, so pools are created by the thread that keeps
  using them (they are, in ckpp).
- Elsewhere (or where prctl is refused): a daemon thread in the child polls its parent's pid.
- Child commands (exec'd programs): `popen_kwargs()` sets the signal between fork and exec (it survives
  exec) and, for the portable fallback, names the parent in CKPP_PARENT_PID, which `ckpp` (cli.main) reads.
"""
from __future__ import annotations

import os
import signal
import sys
import threading

PR_SET_PDEATHSIG = 1
PARENT_ENV = "CKPP_PARENT_PID"
_POLL_S = 0.5


_PRCTL = []   # [libc.prctl or None], resolved once (in the parent, before a fork: no dlopen after it)


def _prctl():
    if not _PRCTL:
        fn = None
        if sys.platform.startswith("linux"):
            try:
                import ctypes

                fn = ctypes.CDLL(None, use_errno=True).prctl
            except (OSError, AttributeError):
                fn = None
        _PRCTL.append(fn)
    return _PRCTL[0]


def _prctl_pdeathsig(sig: int) -> bool:
    """Ask the kernel to send `sig` when our parent dies. False where this is not Linux or it is refused."""
    fn = _prctl()
    return fn is not None and fn(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0


def _die(sig: int) -> None:
    try:
        os.kill(os.getpid(), sig)
    finally:  # the signal may be handled or ignored: leave anyway
        os._exit(128 + int(sig))


def _watch(parent_pid: int, sig: int) -> None:
    def loop():
        import time

        while os.getppid() == parent_pid:
            time.sleep(_POLL_S)
        _die(sig)

    threading.Thread(target=loop, name="ckpp-die-with-parent", daemon=True).start()


def die_with_parent(parent_pid: int | None = None, sig: int = signal.SIGKILL) -> str:
    """Call in a child process: end it with `sig` when its parent dies.

    parent_pid: the parent's pid as the parent saw it before starting us (closes the race where it died before
    this call; without it, whoever is our parent now is taken). Returns the mechanism used ("prctl"/"thread")."""
    parent_pid = os.getppid() if parent_pid is None else int(parent_pid)
    how = "prctl" if _prctl_pdeathsig(sig) else "thread"
    if how == "thread":
        _watch(parent_pid, sig)
    if os.getppid() != parent_pid:  # the parent died before the signal was armed
        _die(sig)
    return how


def worker_initializer(parent_pid: int, then=None, args: tuple = ()) -> None:
    """multiprocessing initializer: die_with_parent (SIGKILL), then `then(*args)` (the pool's own initializer)."""
    die_with_parent(parent_pid)
    if then is not None:
        then(*args)


def _preexec(parent_pid: int, sig: int):
    def fn():  # between fork and exec: async-signal-safe enough (no locks, no allocation-heavy work)
        _prctl_pdeathsig(sig)
        if os.getppid() != parent_pid:
            os._exit(128 + int(sig))
    return fn


def popen_kwargs(sig: int = signal.SIGTERM, env: dict | None = None) -> dict:
    """Keyword arguments for subprocess.Popen/call/run so the child command ends when we die.

    SIGTERM by default: a child `ckpp train` then saves its checkpoint and exits; its own workers follow it."""
    env = dict(os.environ if env is None else env)
    env[PARENT_ENV] = f"{os.getpid()}:{int(sig)}"
    kw = {"env": env}
    if os.name == "posix":
        _prctl()   # resolve libc's prctl here, not in the forked child
        kw["preexec_fn"] = _preexec(os.getpid(), sig)
    return kw


def adopt_parent_from_env() -> None:
    """Called by `ckpp` at start: when started through popen_kwargs(), die with that parent (the portable
    fallback of the preexec signal). The variable is consumed so our own children do not see a stale pid."""
    val = os.environ.pop(PARENT_ENV, "")
    if not val:
        return
    try:
        pid, sig = (int(x) for x in val.split(":"))
    except ValueError:
        return
    if os.getppid() == pid:  # only a direct child (not, e.g., `sh -c ckpp ...` started that way)
        die_with_parent(pid, sig)


def live_children(pid: int | None = None) -> list[int]:
    """Pids of the live (not zombie) children of `pid` (default: us), from /proc; [] where there is none."""
    pid = os.getpid() if pid is None else pid
    out = []
    try:
        names = os.listdir("/proc")
    except OSError:
        return out
    for n in names:
        if not n.isdigit():
            continue
        try:
            with open(f"/proc/{n}/stat") as fh:
                st = fh.read()
        except OSError:
            continue
        fields = st[st.rfind(")") + 2:].split()
        if len(fields) > 1 and int(fields[1]) == pid and fields[0] != "Z":
            out.append(int(n))
    return sorted(out)


def is_alive(pid: int) -> bool:
    """True while `pid` runs (a zombie counts as dead; ours is reaped)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            st = fh.read()
        if st[st.rfind(")") + 2:].split()[0] == "Z":
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass
            return False
        return True
    except FileNotFoundError:
        return False
    except OSError:
        pass
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


class opencv_threads_stopped:
    """`with opencv_threads_stopped(): process.start()` -- fork with OpenCV's thread pool stopped.

    A child forked while OpenCV's pthreads pool is live inherits the pool's condition variables with waiters
    recorded on them, and hangs for ever in its first call that reconfigures the pool (a prepare worker's
    `cv2.setNumThreads(1)`: pthread_cond_destroy; opencv/opencv#5150). It happens when prepare() runs in a
    process that used OpenCV before (tests, notebooks). setNumThreads(1) joins the pool's threads, so the
    child starts with none (and its own setNumThreads(1) changes nothing); the parent's setting is restored
    after the fork (OpenCV restarts its threads on the next parallel call)."""

    def __enter__(self):
        self.n = None
        cv2 = sys.modules.get("cv2")   # not imported: no pool to stop
        if cv2 is not None:
            try:
                self.n = cv2.getNumThreads()
                if self.n != 1:
                    cv2.setNumThreads(1)
            except Exception:  # noqa: BLE001 - a cv2 without the threading API: nothing to stop
                self.n = None
        return self

    def __exit__(self, *exc):
        if self.n is not None and self.n != 1:
            sys.modules["cv2"].setNumThreads(self.n)
        return False
