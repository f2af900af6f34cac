"""Crash-safe file writes, torch-free: the one helper `config` (config.json), `checkpoint` (ckpt-*.pt, `latest`)
and the training loop (metrics, sample grids) need, kept below them so neither imports the other for it. The
implementation is ckpp_tools.disk_space's (a full disk ends in one clear message and leaves no temp file)."""
from __future__ import annotations

from ckpp_tools.disk_space import append_bytes, atomic_write_bytes

__all__ = ["atomic_write_bytes", "append_bytes"]
