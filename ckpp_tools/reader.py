"""Reading ckpp HDF5 files: lazy, fork-safe, run-id checked.

`open_dataset(path)` checks the format and schema version and reads the manifest (small); frames are read
only when asked for, from the shard file that holds them, opened per process (h5py handles do not survive
fork or pickling, DESIGN §8). Shards are opened by their path relative to the master, never through HDF5's
external-link search (which also tries the current folder), and each must carry the run id the master
recorded for it. Plain h5py reads the same files: `h5py.File(p)["clips"][clip_id]["frames"]`.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

import h5py
import numpy as np

from . import schema
from .errors import DataFormatError

#: per-file chunk cache: a few 289x289x3 frames (one per chunk) plus masks
RDCC_NBYTES = 8 * 1024 * 1024


def _attr_str(v) -> str:
    return v.decode("utf-8") if isinstance(v, bytes) else str(v)


def check_header(f: h5py.File, path: str) -> None:
    """Raise DataFormatError unless `f` is a ckpp master of the schema version this code reads."""
    fmt = f.attrs.get("format")
    if fmt is None or _attr_str(fmt) != schema.FORMAT:
        raise DataFormatError("not a ckpp dataset (root attribute format != 'ckpp')", path=path,
                              fix="make one with: ckpp prepare RAW OUT.h5")
    if _attr_str(f.attrs.get("role", "master")) == "shard":
        raise DataFormatError("this is a shard file, not the master", path=path,
                              fix="open the master OUT.h5 that lists this shard")
    ver = f.attrs.get("schema_version")
    try:
        ver = int(ver)
    except (TypeError, ValueError):
        raise DataFormatError("missing or bad schema_version attribute", path=path, fix="re-run ckpp prepare to rewrite it") from None
    if ver < schema.SCHEMA_VERSION:
        raise DataFormatError(f"schema_version {ver} is older than this ckpp's {schema.SCHEMA_VERSION}", path=path,
                              fix="migrate by re-running `ckpp prepare RAW OUT.h5 --overwrite` with this version of ckpp")
    if ver > schema.SCHEMA_VERSION:
        raise DataFormatError(f"schema_version {ver} is newer than this ckpp's {schema.SCHEMA_VERSION}", path=path,
                              fix="upgrade ckpp (pip install -U ckpp)")


@dataclass
class ClipData:
    clip_id: str
    frames: np.ndarray          # (T,S,S,3) uint8
    landmarks: np.ndarray       # (T,68,2) float32
    mouth_mask: np.ndarray      # (T,S,S) uint8
    degree: np.ndarray          # (T,) float32
    source_index: np.ndarray    # (T,) int32
    attrs: dict = field(default_factory=dict)


class Dataset:
    """A ckpp master file. Cheap to create and to pickle; h5py handles are opened lazily per process."""

    def __init__(self, path: str):
        self.path = os.path.abspath(path)
        if not os.path.isfile(self.path):
            raise DataFormatError("file not found", path=path, fix="check the path, or make it with: ckpp prepare RAW OUT.h5")
        try:
            with h5py.File(self.path, "r") as f:
                check_header(f, path)
                self.attrs = {k: (_attr_str(v) if isinstance(v, (bytes, str)) else v) for k, v in f.attrs.items()}
                if schema.MANIFEST not in f:
                    raise DataFormatError("no /manifest group", path=path, fix="re-run ckpp prepare")
                m = f[schema.MANIFEST]
                self._manifest = {}
                for col in schema.MANIFEST_COLUMNS:
                    if col not in m:
                        raise DataFormatError(f"/manifest has no column {col!r}", path=path, fix="re-run ckpp prepare")
                    v = m[col][()]
                    if col in schema.MANIFEST_STR_COLUMNS:
                        v = np.array([x.decode("utf-8") if isinstance(x, bytes) else str(x) for x in v], dtype=object)
                    self._manifest[col] = v
        except OSError as exc:
            raise DataFormatError(f"cannot open as HDF5 ({exc})", path=path,
                                  fix="the file is damaged or incomplete; re-run ckpp prepare (with --resume if it was interrupted)") from None
        self.run_id = _attr_str(self.attrs.get("run_id", ""))
        self.shard_run_ids = json.loads(self.attrs.get("shard_run_ids", "{}") or "{}")
        self.image_size = int(self.attrs.get("image_size", 0))
        self.config = json.loads(self.attrs.get("config", "{}") or "{}")
        self._row = {cid: i for i, cid in enumerate(self._manifest["clip_id"])}
        self._handles: dict[str, h5py.File] = {}
        self._pid = os.getpid()

    # -- pickling / fork safety -------------------------------------------------------------------------
    def __getstate__(self):
        d = self.__dict__.copy()
        d["_handles"] = {}
        return d

    def __setstate__(self, d):
        self.__dict__.update(d)
        self._pid = os.getpid()

    def _shard(self, shard: str) -> h5py.File:
        if os.getpid() != self._pid:  # forked: inherited handles are unusable, drop without closing
            self._handles = {}
            self._pid = os.getpid()
        f = self._handles.get(shard)
        if f is None:
            p = os.path.normpath(os.path.join(os.path.dirname(self.path), shard))
            if not os.path.isfile(p):
                raise DataFormatError(f"shard {shard!r} listed by the master is missing", path=p,
                                      fix="keep the shard files beside the master (move them together), or re-run ckpp prepare --resume")
            try:
                f = h5py.File(p, "r", rdcc_nbytes=RDCC_NBYTES)
            except OSError as exc:
                raise DataFormatError(f"shard {shard!r} cannot be opened as HDF5 ({str(exc)[:160]})", path=p,
                                      fix="the shard is damaged or incomplete: re-run ckpp prepare (with --resume "
                                          "if it was interrupted) and keep its shards beside the master") from None
            want = self.shard_run_ids.get(shard, self.run_id)
            got = _attr_str(f.attrs.get("run_id", ""))
            if want and got != want:
                f.close()
                raise DataFormatError(f"shard {shard!r} belongs to another run (run id {got or 'none'} != {want})", path=p,
                                      fix="a moved or mixed folder picked up a same-named shard: copy the master with its own shards, or re-run ckpp prepare")
            self._handles[shard] = f
        return f

    def close(self) -> None:
        if os.getpid() == self._pid:
            for f in self._handles.values():
                try:
                    f.close()
                except Exception:  # noqa: BLE001
                    pass
        self._handles = {}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- manifest ---------------------------------------------------------------------------------------
    @property
    def manifest(self):
        """The manifest as a pandas DataFrame (one row per clip found)."""
        import pandas as pd

        return pd.DataFrame({k: v for k, v in self._manifest.items()}, columns=list(schema.MANIFEST_COLUMNS))

    def manifest_dict(self) -> dict[str, np.ndarray]:
        return {k: v.copy() for k, v in self._manifest.items()}

    def clip_ids(self, emotion=None, split=None, status: str | None = schema.STATUS_ACCEPTED) -> list[str]:
        """Clip ids in clip_id order, filtered; emotion / split may be a name or a list of names."""
        m = self._manifest
        keep = np.ones(len(m["clip_id"]), dtype=bool)
        for col, want in (("emotion", emotion), ("split", split), ("status", status)):
            if want is None:
                continue
            want = {want} if isinstance(want, str) else set(want)
            keep &= np.array([x in want for x in m[col]], dtype=bool)
        return [str(c) for c in m["clip_id"][keep]]

    def row(self, clip_id: str) -> dict:
        i = self._row[clip_id]
        return {k: (v[i].item() if isinstance(v[i], np.generic) else v[i]) for k, v in self._manifest.items()}

    def __len__(self) -> int:
        return len(self.clip_ids())

    # -- clips ------------------------------------------------------------------------------------------
    def group(self, clip_id: str) -> h5py.Group:
        """The h5py group of an accepted clip (datasets read lazily: g['frames'][t])."""
        if clip_id not in self._row:
            raise KeyError(f"no clip {clip_id!r} in {self.path}")
        r = self.row(clip_id)
        if r["status"] != schema.STATUS_ACCEPTED:
            raise KeyError(f"clip {clip_id!r} was rejected ({r['reason']}: {r['detail']})")
        f = self._shard(r["shard"])
        try:
            return f[f"{schema.CLIPS}/{clip_id}"]
        except (KeyError, OSError) as exc:  # a damaged shard: its index no longer leads to the clip
            raise DataFormatError(f"clip {clip_id!r} cannot be read from shard {r['shard']!r} ({str(exc)[:160]})",
                                  path=f.filename, fix="the shard is damaged: re-run ckpp prepare "
                                                       "(`ckpp inspect MASTER --validate` lists what else is wrong)") from None

    def clip(self, clip_id: str, frames: bool = True) -> ClipData:
        g = self.group(clip_id)
        attrs = {k: (_attr_str(v) if isinstance(v, (bytes, str)) else (v.tolist() if isinstance(v, np.ndarray) else v))
                 for k, v in g.attrs.items()}
        return ClipData(
            clip_id=clip_id,
            frames=g[schema.FRAMES][()] if frames else None,
            landmarks=g[schema.LANDMARKS][()],
            mouth_mask=g[schema.MOUTH_MASK][()] if frames else None,
            degree=g[schema.DEGREE][()],
            source_index=g[schema.SOURCE_INDEX][()],
            attrs=attrs,
        )

    def iter_clips(self, emotion=None, split=None, frames: bool = True):
        for cid in self.clip_ids(emotion=emotion, split=split):
            yield self.clip(cid, frames=frames)

    def __iter__(self):
        return self.iter_clips()


def open_dataset(path: str) -> Dataset:
    """Open a ckpp master file (checks format and schema version; reads only the manifest)."""
    return Dataset(path)
