"""The output lock: one run writes an OUT at a time (two would clobber each other's .partial files).

Why a kernel lock (flock on OUT.lock) and not a pid file: the kernel drops the lock the moment the holding
process dies, however it dies, so a lock file left by a killed run never blocks, and a reused pid, a zombie or
a file written by another machine cannot fool it. The pid/host/time written into the file are information
for the message only, never the lock itself.

Filesystems without locks (some NFS mounts without lockd, some FUSE/SMB mounts) answer ENOLCK/EOPNOTSUPP:
the run stops with a message saying so; CKPP_NO_LOCK=1 skips locking when you are sure only one run writes
that OUT.
"""
from __future__ import annotations

import errno
import os
import socket
import time

from .disk_space import writing
from .errors import CkppError

NO_LOCK_ENV = "CKPP_NO_LOCK"
_UNSUPPORTED = {getattr(errno, n) for n in ("ENOLCK", "EOPNOTSUPP", "ENOTSUP", "ENOSYS") if hasattr(errno, n)}

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None


#: fds of the locks this process holds: a forked child (a prepare worker) closes its copies, so the lock dies
#: with the run's driver, not with the last of its workers
_HELD: set[int] = set()


def _close_in_child() -> None:
    for fd in list(_HELD):
        try:
            os.close(fd)
        except OSError:
            pass
    _HELD.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_close_in_child)


def locking_disabled() -> bool:
    return os.environ.get(NO_LOCK_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def _try_lock(fd: int) -> None:
    """Take an exclusive lock without waiting: BlockingIOError when held, OSError when unsupported."""
    if fcntl is not None:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    else:  # pragma: no cover - Windows
        import msvcrt

        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError as exc:
            raise BlockingIOError(errno.EAGAIN, str(exc)) from None


class OutputLock:
    """`with OutputLock(out):` holds OUT.lock for the run; raises CkppError naming the holder if another run has it."""

    def __init__(self, out: str, what: str = "ckpp prepare"):
        self.path = os.fspath(out) + ".lock"
        self.what = what
        self.fd: int | None = None

    def holder(self) -> str:
        """What the holder wrote into the lock file ("pid 123 on host n1 since ..."), or "" if unreadable."""
        try:
            with open(self.path) as fh:
                return fh.read(200).strip()
        except OSError:
            return ""

    def __enter__(self):
        if locking_disabled():
            return self
        for _ in range(20):
            try:
                with writing(self.path):     # a read-only or full filesystem: the same message as every writer
                    fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as exc:
                parent = os.path.dirname(os.path.abspath(self.path))
                fix = (f"the folder {parent} does not exist: create it first" if exc.errno == errno.ENOENT
                       else "check the folder is writable")
                raise CkppError(f"cannot create the lock file ({exc.strerror})", path=self.path, fix=fix) from None
            try:
                _try_lock(fd)
            except BlockingIOError:
                os.close(fd)
                who = self.holder()
                raise CkppError(f"another {self.what} is writing this output ({who or 'holder unknown'})", path=self.path,
                                fix="wait for it to finish, or write to another OUT") from None
            except OSError as exc:
                os.close(fd)
                if exc.errno in _UNSUPPORTED:
                    raise CkppError(f"this filesystem does not support file locks ({exc.strerror})", path=self.path,
                                    fix=f"write OUT to a local disk, or set {NO_LOCK_ENV}=1 if you are sure no other "
                                        "run writes this OUT") from None
                raise CkppError(f"cannot lock the output ({exc.strerror})", path=self.path,
                                fix=f"check the folder, or set {NO_LOCK_ENV}=1 to skip locking") from None
            # a previous holder unlinks the file on exit: make sure the path still names the file we locked
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(self.path))
            except OSError:
                same = False
            if not same:
                os.close(fd)
                continue
            info = f"pid {os.getpid()} on host {socket.gethostname()} since {time.strftime('%Y-%m-%d %H:%M:%S')}\n"
            try:
                os.ftruncate(fd, 0)
                os.write(fd, info.encode())
            except OSError:
                pass  # information only
            self.fd = fd
            _HELD.add(fd)
            return self
        raise CkppError("cannot take the lock file (it keeps being replaced)", path=self.path,
                        fix="check no other program rewrites it")

    def __exit__(self, *exc):
        if self.fd is None:
            return
        try:
            os.unlink(self.path)  # while still holding it (see the samestat check above)
        except OSError:
            pass
        _HELD.discard(self.fd)
        os.close(self.fd)
        self.fd = None
