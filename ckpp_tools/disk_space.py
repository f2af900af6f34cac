"""When the output cannot grow: disk full (ENOSPC), quota used up (EDQUOT), file-size limit (EFBIG), read-only
filesystem (EROFS). Every ckpp writer ends such a failure the same way: one message naming the file, the free
space, what the job needs and the fix; exit 1, no traceback; the unfinished file deleted, the previous complete
output untouched (docs/reliability.md, docs/troubleshooting.md).

Why a module of its own: these failures are not bad input (the fix is on the machine, not in the data), they
reach every writer, and each library reports them its own way: an OSError without a file name (a failed
write() names no file), an h5py error with "errno = 28" in its text, an ffmpeg or OpenCV writer that only prints
a warning and leaves a truncated file behind. So: `writing()` sits around each write (names the file, deletes
its partial), `translate()` around each command (adds the command's fix, catches whatever a guard missed), and
writers encode in memory and write bytes through `atomic_write_bytes` where they can.

Why `DeferredErrorFile`: HDF5 (2.0, h5py 3.16) does not survive a failed write. Its metadata cache is left
inconsistent and the process dies with SIGSEGV at exit, however carefully the file is closed afterwards (issue
25 saw 3 of 4 `prepare` runs on a full tmpfs end with exit 139; 4 of 4 here, and 6 of 6 ways of closing
the file tried). So ckpp's HDF5 files are written through a Python file object that never reports a failure to
HDF5: the first error is kept, later writes are dropped, and the error is raised once the h5py call has
returned; HDF5 then closes a file it believes consistent, and the file is deleted.
"""
from __future__ import annotations

import contextlib
import errno
import functools
import os
import re
import shutil

from .errors import CkppError

#: errno -> what it means for the user
DISK_ERRNOS = {
    errno.ENOSPC: "the disk is full",
    errno.EDQUOT: "the disk quota is used up",
    errno.EFBIG: "the file reached the largest size allowed (ulimit -f, or the filesystem's limit)",
    errno.EROFS: "the filesystem is read-only",
}
_BY_TEXT = {os.strerror(code).lower(): code for code in DISK_ERRNOS}
_ERRNO_IN_TEXT = re.compile(r"errno\s*=\s*(\d+)")


def disk_errno(exc: BaseException | None) -> int | None:
    """The disk errno behind `exc` (or an exception it was raised from), else None. Looks at OSError.errno,
    then at the text (h5py: 'errno = 28'; ffmpeg/imageio: 'No space left on device')."""
    seen = 0
    while exc is not None and seen < 8:
        if isinstance(exc, DiskFullError):
            return exc.code
        if isinstance(exc, CkppError):       # already a clear message of its own
            return None
        if isinstance(exc, (OSError, RuntimeError)):
            if getattr(exc, "errno", None) in DISK_ERRNOS:
                return exc.errno
            text = str(exc).lower()
            for m in _ERRNO_IN_TEXT.finditer(text):
                if int(m.group(1)) in DISK_ERRNOS:
                    return int(m.group(1))
            for s, code in _BY_TEXT.items():
                if s in text:
                    return code
        exc = exc.__cause__ or (None if exc.__suppress_context__ else exc.__context__)
        seen += 1
    return None


def existing_folder(path: str) -> str:
    """The nearest folder of `path` (itself if a folder) that exists."""
    d = os.path.abspath(os.fspath(path))
    if not os.path.isdir(d):
        d = os.path.dirname(d)
    while d and not os.path.isdir(d):
        parent = os.path.dirname(d)
        if parent == d:
            break
        d = parent
    return d or "."


def free_bytes(path: str) -> int | None:
    """Bytes this user may still write on the filesystem holding `path` (None if it cannot be asked)."""
    try:
        return shutil.disk_usage(existing_folder(path)).free
    except OSError:
        return None


def total_bytes(path: str) -> int | None:
    try:
        return shutil.disk_usage(existing_folder(path)).total
    except OSError:
        return None


def human(n: float | None) -> str:
    """3145728 -> '3.1 MB' (decimal units, as --shard-size takes them)."""
    if n is None:
        return "unknown"
    n = float(n)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000.0
    return f"{n:.1f} TB"  # pragma: no cover


class DiskFullError(CkppError):
    """The output could not be written for lack of room (or a read-only filesystem): names the file, the free
    space, what the job needs (when known), what was deleted or kept, and the fix."""

    def __init__(self, path: str, code: int, *, free_at_failure: int | None = None, need: int | None = None,
                 notes: list[str] | None = None, resume: str | None = None, rerun: str | None = None):
        self.code = code
        self.target = os.fspath(path)
        self.free_at_failure = free_at_failure
        self.free_now = free_bytes(self.target)
        self.total = total_bytes(self.target)
        self.need = need
        self.notes = list(notes or [])
        self.resume = resume
        self.rerun = rerun
        self._render()

    def update(self, *, need: int | None = None, note: str | None = None, resume: str | None = None,
               rerun: str | None = None) -> "DiskFullError":
        """Add what only an outer level knows (the job's estimate, what it kept, the command's rerun)."""
        if need is not None and self.need is None:
            self.need = need
        if note and note not in self.notes:
            self.notes.append(note)
        if resume is not None and self.resume is None and self.rerun is None:
            self.resume = resume
        if rerun is not None and self.resume is None and self.rerun is None:
            self.rerun = rerun
        self.free_now = free_bytes(self.target)
        self._render()
        return self

    def _render(self) -> None:
        code = self.code
        why = DISK_ERRNOS.get(code, "the disk refused the write")
        msg = f"cannot write: {why} ({os.strerror(code)})"
        folder = existing_folder(self.target)
        if code != errno.EROFS:
            space = f"{human(self.free_now)} free"
            if self.free_at_failure is not None and human(self.free_at_failure) != human(self.free_now):
                space = f"{human(self.free_at_failure)} free when the write failed, {human(self.free_now)} now"
            msg += f"\n  space: {space} on the filesystem holding {folder}"
            if self.total:
                msg += f" (size {human(self.total)})"
            if self.need:
                msg += f"; the job still needs about {human(self.need)}"
            if code == errno.EDQUOT:
                msg += " (your quota may be lower: `quota -s`)"
        for n in self.notes:
            msg += f"\n  {n}"
        if code == errno.EROFS:
            act = "write the output to a writable folder (or remount this one read-write)"
        elif code == errno.EFBIG:
            act = "raise the file-size limit (`ulimit -f unlimited`) or write to a filesystem that allows larger files"
        else:
            more = ""
            if self.need and self.free_now is not None and self.need > self.free_now:
                more = f" at least {human(self.need - self.free_now)} more"
            act = f"free{more} space on that disk (or write the output to another disk)"
        if self.resume:
            act += f", then rerun the same command with {self.resume}: what was completed is kept"
        elif self.rerun:
            act += f", then rerun {self.rerun}"
        else:
            act += ", then run the same command again"
        CkppError.__init__(self, msg, path=self.target, fix=act)

    def __reduce__(self):  # picklable (multiprocessing hands exceptions between processes)
        return (_rebuild, (self.target, self.code, self.free_at_failure, self.need, self.notes, self.resume, self.rerun))


def _rebuild(path, code, free_at_failure, need, notes, resume, rerun):
    return DiskFullError(path, code, free_at_failure=free_at_failure, need=need, notes=notes, resume=resume,
                         rerun=rerun)


def _remove(path: str) -> bool:
    try:
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.unlink(path)
        return True
    except FileNotFoundError:
        return False
    except OSError:
        return False


@contextlib.contextmanager
def writing(path, *, partial=None, on_fail=None):
    """Around the code that writes `path` (via `partial`, a file or a folder): a disk errno raised inside
    becomes a DiskFullError naming `path` (or the file the OSError names); `on_fail()` releases handles
    first, then `partial` is deleted. Other exceptions pass through untouched."""
    try:
        yield
    except BaseException as exc:  # noqa: BLE001 - re-raised unless it is a disk errno
        code = disk_errno(exc)
        if code is None:
            raise
        free = free_bytes(os.fspath(path))
        if on_fail is not None:
            try:
                on_fail()
            except Exception:  # noqa: BLE001 - best effort: the disk error is what the user must see
                pass
        removed = partial is not None and _remove(os.fspath(partial))
        if isinstance(exc, DiskFullError):
            if removed:
                exc.update(note=f"deleted the unfinished {os.path.basename(os.fspath(partial))}")
            raise
        named = getattr(exc, "filename", None)
        target = os.fspath(path)
        if isinstance(named, str) and named and (partial is None or os.path.abspath(named) != os.path.abspath(os.fspath(partial))):
            target = named          # the file that failed, e.g. one inside the folder being written (sample)
        err = DiskFullError(target, code, free_at_failure=free)
        if removed:
            err.update(note=f"deleted the unfinished {os.path.basename(os.fspath(partial))}")
        raise err from None


def translate(resume: str | None = None, rerun: str | None = None, out: str | None = None):
    """Decorator for a click command: a disk errno escaping it becomes a DiskFullError whose fix is the
    command's (`resume`: its resume option; `rerun`: the command to rerun). `out`: the name of the
    parameter holding the output path, named when the error names no file."""

    def deco(fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            try:
                return fn(*args, **kwargs)
            except BaseException as exc:  # noqa: BLE001
                code = disk_errno(exc)
                if code is None:
                    raise
                if isinstance(exc, DiskFullError):
                    raise exc.update(resume=resume, rerun=rerun) from None
                where = getattr(exc, "filename", None) or (kwargs.get(out) if out else None) or os.getcwd()
                raise DiskFullError(os.fspath(where), code, resume=resume, rerun=rerun) from None

        return wrapper

    return deco


# ---------------------------------------------------------------------------------------------- writers

def _fsync_dir(folder: str) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:  # some filesystems refuse directory fsync; the rename is still atomic
        pass


def atomic_write_bytes(path, data: bytes) -> None:
    """Write `data` to `path` so that a crash leaves the old file or the new one, never a torn one (temp file
    `<path>.partial.<pid>` in the same folder, fsync, rename, fsync the folder); a full disk raises
    DiskFullError and leaves no temp file."""
    path = os.fspath(path)
    tmp = f"{path}.partial.{os.getpid()}"
    with writing(path, partial=tmp):
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    _fsync_dir(os.path.dirname(os.path.abspath(path)))


def append_bytes(path, data: bytes) -> None:
    """Append `data` whole or not at all: a failed append is cut back to the old length (a log never ends in
    a torn line), then raises DiskFullError."""
    path = os.fspath(path)
    with open(path, "ab") as fh:
        start = fh.tell()
        with writing(path, on_fail=lambda: os.truncate(path, start)):
            fh.write(data)
            fh.flush()


def write_bytes(path, data: bytes) -> None:
    """Plain write of a whole file (inside a folder that is itself written as a .partial), disk errors named."""
    with writing(path):
        with open(path, "wb") as fh:
            fh.write(data)


def imwrite(path, image, params=()) -> None:
    """cv2.imwrite that reports a failed write: OpenCV's returns False and says nothing (a full disk leaves a
    truncated or missing PNG behind a sample that looks complete). Encodes in memory, writes with Python."""
    import cv2

    path = os.fspath(path)
    ok, buf = cv2.imencode(os.path.splitext(path)[1] or ".png", image, list(params))
    if not ok:
        raise CkppError("OpenCV cannot encode this image", path=path, fix="report this as a bug")
    write_bytes(path, buf.tobytes())


def mp4_complete(path) -> bool:
    """Whether an .mp4 ends with its index: every top-level box fits the file and a 'moov' box is there. A
    writer cut off by a full disk (OpenCV's VideoWriter, ffmpeg under imageio) says nothing and leaves a file
    without it, which no player opens."""
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as fh:
            pos, moov = 0, False
            while pos + 8 <= size:
                fh.seek(pos)
                head = fh.read(16)
                n, kind = int.from_bytes(head[:4], "big"), head[4:8]
                if n == 1 and len(head) >= 16:
                    n = int.from_bytes(head[8:16], "big")
                elif n == 0:
                    n = size - pos
                if n < 8 or pos + n > size:
                    return False
                moov |= kind == b"moov"
                pos += n
            return moov and pos == size
    except OSError:
        return False


def raise_write_failure(path, what: str, partial=None, original: BaseException | None = None,
                        probe_bytes: int = 1 << 20) -> None:
    """A library (`what`) failed to write `path` without saying why (or with an unrelated error such as ffmpeg's
    broken pipe, `original`): ask the filesystem by writing `probe_bytes` beside it with Python. A disk errno
    becomes DiskFullError(path); otherwise `original` is re-raised, or a CkppError says the file is incomplete.
    `partial` (the library's unfinished file) is deleted either way, after the probe."""
    path = os.fspath(path)
    probe = os.path.join(existing_folder(path), f".ckpp-probe.{os.getpid()}")
    free = free_bytes(path)
    code = None
    try:
        with open(probe, "wb") as fh:
            fh.write(b"\0" * probe_bytes)
            fh.flush()
            os.fsync(fh.fileno())
    except OSError as exc:
        code = disk_errno(exc)
    finally:
        _remove(probe)
    removed = partial is not None and _remove(os.fspath(partial))
    if code is not None:
        err = DiskFullError(path, code, free_at_failure=free)
        if removed:
            err.update(note=f"deleted the unfinished {os.path.basename(os.fspath(partial))}")
        raise err from None
    if original is not None:
        raise original
    raise CkppError(f"{what} stopped before the file was complete (the disk accepted a test write, so it is "
                    "not full now)", path=path, fix="check the disk and the output folder, then run the command again")


class DeferredErrorFile:
    """A binary file for a C library that must never see a write fail (h5py's 'fileobj' driver): the first
    OSError is kept and raised by `raise_error()` after the library call returns; later writes are dropped
    (small ones kept in memory so a read-back still sees them). See the module docstring for why."""

    _KEEP_DROPPED = 1 << 16        # writes up to this size are kept in memory after an error (metadata)

    def __init__(self, path):
        self.path = os.fspath(path)
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_TRUNC | getattr(os, "O_BINARY", 0), 0o666)
        self.pos = 0
        self.size = 0
        self.error: OSError | None = None
        self._dropped: dict[int, bytes] = {}

    def _fail(self, exc: OSError) -> None:
        if self.error is None:
            if getattr(exc, "filename", None) is None:
                exc.filename = self.path
            self.error = exc

    def seek(self, offset: int, whence: int = 0) -> int:
        self.pos = offset if whence == 0 else (self.pos + offset if whence == 1 else self.size + offset)
        return self.pos

    def tell(self) -> int:
        return self.pos

    def write(self, data) -> int:
        mv = memoryview(data).cast("B")
        n = mv.nbytes
        if self.error is None:
            done = 0
            try:
                while done < n:
                    done += os.pwrite(self.fd, mv[done:], self.pos + done)
            except OSError as exc:
                self._fail(exc)
        if self.error is not None and n <= self._KEEP_DROPPED:
            self._dropped[self.pos] = bytes(mv)
        self.pos += n
        self.size = max(self.size, self.pos)
        return n

    def read(self, n: int = -1) -> bytes:
        if n < 0:
            n = max(0, self.size - self.pos)
        buf = bytearray(os.pread(self.fd, n, self.pos))
        buf.extend(bytes(n - len(buf)))          # past the end reads zeros, as HDF5's own driver does
        for at, b in self._dropped.items():      # what an error made us drop, as the library wrote it
            lo, hi = max(at, self.pos), min(at + len(b), self.pos + n)
            if lo < hi:
                buf[lo - self.pos:hi - self.pos] = b[lo - at:hi - at]
        self.pos += n
        return bytes(buf)

    def truncate(self, size: int | None = None) -> int:
        size = self.pos if size is None else size
        if self.error is None:
            try:
                os.ftruncate(self.fd, size)
            except OSError as exc:
                self._fail(exc)
        self.size = size
        return size

    def flush(self) -> None:
        pass

    def fsync(self) -> None:
        if self.error is None and self.fd is not None:
            try:
                os.fsync(self.fd)
            except OSError as exc:
                self._fail(exc)

    def close(self) -> None:
        if self.fd is not None:
            fd, self.fd = self.fd, None
            try:
                os.close(fd)
            except OSError as exc:  # NFS reports a full disk at close
                self._fail(exc)

    def raise_error(self) -> None:
        if self.error is not None:
            raise self.error


@contextlib.contextmanager
def explained(need=None, note=None):
    """Around a job's writing phase: a DiskFullError leaving it gets the job's estimate (`need`: bytes, or a
    callable giving them then) and a `note` (text, or a callable giving it then) saying what was kept."""
    try:
        yield
    except DiskFullError as err:
        if callable(need):
            try:
                need = need()
            except Exception:  # noqa: BLE001 - the estimate is a courtesy; the disk error is the message
                need = None
        err.update(need=need, note=note() if callable(note) else note)
        raise


def writes_into(partial_of, owned=None):
    """Decorator for a function `fn(out, ...)` that builds its output in the folder `partial_of(out, ...)` and
    renames it at the end (ckpp sample): a disk errno inside deletes that folder (the previous output is not
    touched before the rename) and raises DiskFullError naming the file that failed. A folder that was there
    before and is not `owned(path)` (a left-over of ours) is never deleted: `fn` refuses it."""

    def deco(fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            partial = partial_of(*args, **kwargs)
            foreign = os.path.exists(partial) and not (owned is not None and owned(partial))
            with writing(args[0] if args else partial, partial=None if foreign else partial):
                return fn(*args, **kwargs)

        return wrapper

    return deco
