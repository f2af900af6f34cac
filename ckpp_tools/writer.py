"""Writing the HDF5 contract (DESIGN §4): shard files with the clips, and a master with the manifest that links
them with relative ExternalLinks.

Crash safety (DESIGN §8): every file is written as `<name>.partial`, flushed, fsynced and renamed into place
only when complete, so a killed run never leaves a file that looks complete; the master is written last. A
shard also records the manifest rows it covers and the run id / fingerprint of its run, which is what
`--resume` needs to reuse it and what the reader checks so a same-named shard from another run is never read.

A full disk (or quota, file-size limit, read-only filesystem): HDF5 writes through a
disk_space.DeferredErrorFile, so the library never sees a failed write (it crashes the interpreter at exit when
it does); the error is raised after the h5py call, the `.partial` is closed once and deleted, and a
DiskFullError names the file (docs/reliability.md).
"""
from __future__ import annotations

import json
import os
import zlib

import h5py
import numpy as np

from . import schema
from .disk_space import DeferredErrorFile, writing

STR = h5py.string_dtype("utf-8")
#: masks are deflate-compressed (mostly zeros: ~50x smaller for ~0.1 ms a frame), level 1 (one frame per chunk)
DEFLATE_LEVEL = 1
#: frames are stored uncompressed: face frames deflate only ~1.3x (measured on sample and CK+-like frames) at
#: ~4-15 ms per 289x289 frame, which would be a third of prepare's time, and readers would pay it again
FRAMES_DEFLATE = False
#: private per-shard columns (not part of the manifest contract)
SHARD_EXTRA_COLUMNS = ("content_hash",)


def shard_path(out_path: str, index: int) -> str:
    """OUT.h5 -> OUT-00000.h5 (beside OUT)."""
    root, ext = os.path.splitext(out_path)
    return f"{root}-{index:05d}{ext or '.h5'}"


def _fsync_path(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: str) -> None:
    try:
        _fsync_path(os.path.dirname(os.path.abspath(path)) or ".")
    except OSError:  # some filesystems refuse directory fsync; the rename is still atomic
        pass


class PartialH5:
    """An HDF5 file written as `<final>.partial` through a DeferredErrorFile: `with h.guard(): ...write...;
    h.check()` around each step, `h.commit()` at the end. A disk errno closes the file once (HDF5 sees a
    consistent file: its failed writes were kept from it), deletes the .partial and raises DiskFullError."""

    def __init__(self, final_path: str):
        self.final_path = final_path
        self.partial = final_path + ".partial"
        self.fh: DeferredErrorFile | None = None
        self.f: h5py.File | None = None
        with self.guard():
            self.fh = DeferredErrorFile(self.partial)
            self.f = h5py.File(self.fh, "w")
            self.check()

    def guard(self):
        return writing(self.final_path, partial=self.partial, on_fail=self.discard)

    def check(self) -> None:
        """Raise the write error the file kept from HDF5 (if any)."""
        if self.fh is not None:
            self.fh.raise_error()

    def commit(self) -> None:
        with self.guard():
            self.f.close()
            self.fh.fsync()
            self.fh.close()
            self.check()
            commit(self.partial, self.final_path, synced=True)

    def discard(self) -> None:
        """Close without committing (the .partial is the caller's to delete). Never raises."""
        f, fh = self.f, self.fh
        self.f = None
        try:
            if f is not None and f.id.valid:
                f.close()
        except Exception:  # noqa: BLE001 - on the way out
            pass
        if fh is not None:
            fh.close()


def commit(partial: str, final: str, synced: bool = False) -> None:
    """fsync `partial` (unless `synced`) and atomically rename it to `final`."""
    if not synced:
        _fsync_path(partial)
    os.replace(partial, final)
    _fsync_dir(final)


def compress_chunks(arr: np.ndarray) -> list[bytes]:
    """One deflate chunk per frame, made where the frames are (in the worker process), so the single writer
    process only copies bytes: `write_direct_chunk` stores them as HDF5's gzip filter would."""
    arr = np.ascontiguousarray(arr)
    return [zlib.compress(arr[t].tobytes(), DEFLATE_LEVEL) for t in range(arr.shape[0])]


def _write_chunked(group: h5py.Group, name: str, shape: tuple, dtype, chunks: list[bytes] | None, data: np.ndarray | None,
                   deflate: bool = True):
    """One frame per chunk. With deflate, pre-compressed `chunks` are stored as they are (write_direct_chunk)."""
    ds = group.create_dataset(name, shape=shape, dtype=dtype, chunks=(1,) + tuple(shape[1:]),
                              **({"compression": "gzip", "compression_opts": DEFLATE_LEVEL} if deflate else {}))
    if not deflate:
        ds[...] = np.asarray(data, dtype=dtype).reshape(shape)
        return ds
    if chunks is None:
        chunks = compress_chunks(np.asarray(data, dtype=dtype))
    zeros = (0,) * (len(shape) - 1)
    for t, c in enumerate(chunks):
        ds.id.write_direct_chunk((t,) + zeros, c)
    return ds


def write_columns(group: h5py.Group, rows: list[dict], columns=schema.MANIFEST_COLUMNS, extra=()) -> None:
    """Manifest-style columns: strings as UTF-8 vlen, numbers as int64; equal length."""
    for col in tuple(columns) + tuple(extra):
        vals = [r.get(col, -1 if col in schema.MANIFEST_INT_COLUMNS else "") for r in rows]
        if col in schema.MANIFEST_INT_COLUMNS:
            group.create_dataset(col, data=np.asarray(vals, dtype=np.int64).reshape(len(rows)))
        else:
            group.create_dataset(col, data=np.asarray([str(v) for v in vals], dtype=object).reshape(len(rows)), dtype=STR)
    group.attrs["columns"] = json.dumps(list(columns) + list(extra))


def read_columns(group: h5py.Group) -> list[dict]:
    names = list(group.keys())
    if not names:
        return []
    cols = {}
    for n in names:
        v = group[n][()]
        cols[n] = [x.decode("utf-8") if isinstance(x, bytes) else (int(x) if isinstance(x, np.integer) else x) for x in v]
    n = len(next(iter(cols.values())))
    return [{k: cols[k][i] for k in cols} for i in range(n)]


class ShardWriter:
    """One shard file, written as `.partial` and committed when closed."""

    def __init__(self, final_path: str, run_id: str, shard_index: int, fingerprint: str, image_size: int):
        self.final_path = final_path
        self.partial = final_path + ".partial"
        self.rows: list[dict] = []
        self.nbytes = 0
        self.n_clips = 0
        self.h = PartialH5(final_path)  # a .partial is never anyone's finished output
        self.f = self.h.f
        with self.h.guard():
            a = self.f.attrs
            a["format"] = schema.FORMAT
            a["role"] = "shard"
            a["schema_version"] = schema.SCHEMA_VERSION
            a["run_id"] = run_id
            a["shard_index"] = shard_index
            a["fingerprint"] = fingerprint
            a["image_size"] = image_size
            self.clips = self.f.create_group(schema.CLIPS)
            self.h.check()

    def add_clip(self, clip_id: str, res: dict, attrs: dict) -> None:
        """res: frames_chunks / mask_chunks (compressed, from compress_chunks) or frames / mouth_mask arrays,
        plus landmarks, degree, source_index."""
        T = int(len(res["degree"]))
        S = int(res["size"])
        with self.h.guard():
            g = self.clips.create_group(clip_id)
            _write_chunked(g, schema.FRAMES, (T, S, S, 3), np.uint8, res.get("frames_chunks"), res.get("frames"),
                           deflate=FRAMES_DEFLATE or res.get("frames_chunks") is not None)
            g.create_dataset(schema.LANDMARKS, data=np.asarray(res["landmarks"], dtype=np.float32).reshape(T, 68, 2))
            _write_chunked(g, schema.MOUTH_MASK, (T, S, S), np.uint8, res.get("mask_chunks"), res.get("mouth_mask"))
            g.create_dataset(schema.DEGREE, data=np.asarray(res["degree"], dtype=np.float32).reshape(T))
            g.create_dataset(schema.SOURCE_INDEX, data=np.asarray(res["source_index"], dtype=np.int32).reshape(T))
            for k, v in attrs.items():
                g.attrs[k] = v
            del g
            self.h.check()
        self.nbytes += sum(len(c) for c in res.get("frames_chunks") or []) + sum(len(c) for c in res.get("mask_chunks") or [])
        if res.get("frames_chunks") is None:
            self.nbytes += T * S * S * 3
        self.nbytes += T * (68 * 2 * 4 + 8) + 4096
        self.n_clips += 1

    def add_row(self, row: dict) -> None:
        self.rows.append(row)

    def close(self) -> None:
        """Write the covered rows, then flush, fsync and rename into place."""
        with self.h.guard():
            rows = self.f.create_group("rows")
            write_columns(rows, self.rows, extra=SHARD_EXTRA_COLUMNS)
            self.f.attrs["n_rows"] = len(self.rows)
            self.f.attrs["complete"] = 1
            del rows
            self.h.check()
        self.h.commit()

    def abort(self) -> None:
        self.h.discard()


def write_master(out_path: str, rows: list[dict], root_attrs: dict, shard_run_ids: dict[str, str]) -> None:
    """The master: root attributes, /manifest (one row per clip found), /clips/<id> -> ExternalLink(shard, /clips/<id>).

    rows must be sorted by clip_id; `shard` of accepted rows is the shard's path relative to OUT's folder.
    """
    h = PartialH5(out_path)
    with h.guard():
        f = h.f
        for k, v in root_attrs.items():
            f.attrs[k] = v
        f.attrs["shard_run_ids"] = json.dumps(shard_run_ids, sort_keys=True)
        write_columns(f.create_group(schema.MANIFEST), rows)
        clips = f.create_group(schema.CLIPS)
        for r in rows:
            if r["status"] == schema.STATUS_ACCEPTED:
                clips[r["clip_id"]] = h5py.ExternalLink(r["shard"], f"/{schema.CLIPS}/{r['clip_id']}")
        del f, clips
        h.check()
    h.commit()
