"""User-facing errors.

Every error a user can cause is a ClickException that names the offending file (or option) and how to
fix it, so the CLI prints one clear message instead of a traceback.
"""
from __future__ import annotations

import os

import click


class CkppError(click.ClickException):
    """An error caused by input the user can fix: says *what*, *where* and *how to fix it*."""

    def __init__(self, message: str, path: str | os.PathLike | None = None, fix: str | None = None):
        self.path = None if path is None else os.fspath(path)
        self.fix = fix
        text = message if self.path is None else f"{self.path}: {message}"
        if fix:
            text += f"\n  fix: {fix}"
        super().__init__(text)


class DataFormatError(CkppError):
    """A file that exists but does not follow the expected layout / HDF5 contract."""


class MissingWeightsError(CkppError):
    """Model weights (dlib, face-alignment, a checkpoint) that are not available offline."""


class UsageError(CkppError):
    """An option value or combination that makes no sense."""
