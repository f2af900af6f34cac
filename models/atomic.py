"""Crash-safe file writes, torch-free: the one helper `config` (config.json) and `checkpoint` (ckpt-*.pt,
`latest`) both need, kept below them so neither imports the other for it."""
from __future__ import annotations

import os


def atomic_write_bytes(path, data: bytes) -> None:
    """Write `data` to `path` so that a crash leaves either the old file or the new one, never a torn one:
    temp file in the same folder, fsync, os.replace, fsync the folder."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    tmp = f"{path}.partial.{os.getpid()}"
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    try:
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        pass
