"""`ckpp merge A.h5 B.h5 ... OUT.h5`: join the masters of job-array runs into one master that links their shards
(relative ExternalLinks, no frame is copied), after checking each input and that they fit together."""
from __future__ import annotations

import json
import os

import click

from ..disk_space import translate
from ..errors import CkppError, UsageError


def merge_files(inputs: list[str], out: str, overwrite: bool = False) -> dict:
    """Write OUT (atomically) from the masters `inputs`; returns counts. Raises CkppError on conflicts."""
    from datetime import datetime, timezone

    from .. import __version__, schema
    from ..reader import open_dataset
    from ..writer import write_master

    if len(inputs) < 1:
        raise UsageError("nothing to merge", path="merge", fix="ckpp merge A.h5 B.h5 ... OUT.h5")
    out = os.path.abspath(out)
    if os.path.exists(out) and not overwrite:
        raise CkppError("output already exists", path=out, fix="pass --overwrite, or choose another OUT name")
    out_dir = os.path.dirname(out)
    for p in inputs:
        if os.path.abspath(p) == out:
            raise UsageError("OUT is also an input", path=out, fix="write the merged master to a new file")
    rows, shard_run_ids, seen, first = [], {}, {}, None
    for p in inputs:
        problems = schema.validate(p)
        if problems:
            raise CkppError(f"not a valid ckpp file ({len(problems)} problem(s)), first: {problems[0]}", path=p,
                            fix=f"run `ckpp inspect --validate {p}`; re-run its prepare job (--resume if interrupted)")
        ds = open_dataset(p)
        a = ds.attrs
        key = (int(a["image_size"]), str(a["landmark_backend"]))
        if first is None:
            first = (p, key, ds)
        elif key != first[1]:
            raise CkppError(f"image_size/landmark backend {key} differ from {first[0]}'s {first[1]}", path=p,
                            fix="prepare every job with the same --size and --landmarks")
        cfg_a, cfg_b = dict(ds.config), dict(first[2].config)
        for k in ("split", "emotions", "min_frames", "multiple_faces", "ck_landmarks", "source", "num_shards"):
            if cfg_a.get(k) != cfg_b.get(k):
                raise CkppError(f"option {k}={cfg_a.get(k)!r} differs from {first[0]}'s {cfg_b.get(k)!r}", path=p,
                                fix="prepare every job of the array with the same options")
        src_dir = os.path.dirname(ds.path)
        for r in ds.manifest.to_dict("records"):
            cid = r["clip_id"]
            if cid in seen:
                raise CkppError(f"clip {cid!r} is in both {seen[cid]} and {p}", path=p,
                                fix="merge each job's output once (jobs of one array never share clips)")
            seen[cid] = p
            r = {k: (int(v) if k in schema.MANIFEST_INT_COLUMNS else str(v)) for k, v in r.items()}
            if r["status"] == "accepted":
                shard_abs = os.path.normpath(os.path.join(src_dir, r["shard"]))
                rel = os.path.relpath(shard_abs, out_dir).replace(os.sep, "/")
                shard_run_ids[rel] = ds.shard_run_ids.get(r["shard"], ds.run_id)
                r["shard"] = rel
            rows.append(r)
    rows.sort(key=lambda r: r["clip_id"])
    n_dup = _reject_cross_duplicates(rows, out_dir)
    # subject-disjointness across inputs (same --split everywhere gives the same assignment)
    split_of = {}
    for r in rows:
        if r["status"] == "accepted":
            if split_of.setdefault(r["subject"], r["split"]) != r["split"]:
                raise CkppError(f"subject {r['subject']!r} is in split {split_of[r['subject']]} in one input and {r['split']} in another",
                                path=seen[r["clip_id"]], fix="prepare every job with the same --split and the same RAW")
    import uuid

    ds0 = first[2]
    cfg = dict(ds0.config, merged_from=[os.path.relpath(os.path.abspath(p), out_dir) for p in inputs])
    root_attrs = {
        "format": schema.FORMAT, "schema_version": schema.SCHEMA_VERSION, "ckpp_version": __version__,
        "image_size": int(ds0.attrs["image_size"]), "landmark_backend": str(ds0.attrs["landmark_backend"]),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"), "config": json.dumps(cfg, sort_keys=True, default=str),
        "run_id": uuid.uuid4().hex, "role": "master",
    }
    write_master(out, rows, root_attrs, shard_run_ids)
    problems = schema.validate(out)
    if problems:
        os.replace(out, out + ".invalid")
        raise CkppError(f"the merged file failed validation: {problems[0]}", path=out + ".invalid",
                        fix="report this as a bug; the inputs are untouched")
    return {"clips": len(rows), "accepted": sum(r["status"] == "accepted" for r in rows), "inputs": len(inputs),
            "shards": len({r["shard"] for r in rows if r["shard"]}), "duplicates": n_dup}


def _reject_cross_duplicates(rows: list[dict], out_dir: str) -> int:
    """Jobs of an array cannot see each other's clips: the same content prepared by two jobs is found here
    (shards keep each clip's content hash) and the later clip_id becomes a `duplicate` row, unlinked."""
    import h5py

    from ..writer import read_columns

    hashes: dict[str, str] = {}
    for shard in sorted({r["shard"] for r in rows if r["shard"]}):
        try:
            with h5py.File(os.path.join(out_dir, shard), "r") as f:
                for sr in read_columns(f["rows"]) if "rows" in f else []:
                    if sr.get("content_hash"):
                        hashes[sr["clip_id"]] = sr["content_hash"]
        except OSError:
            continue
    first: dict[str, str] = {}
    n = 0
    for r in rows:  # sorted by clip_id: the first occurrence wins, as within one run
        h = hashes.get(r["clip_id"])
        if not h:
            continue
        if h in first and r["status"] == "accepted":
            r.update(status="rejected", reason="duplicate", detail=f"same content as {first[h]}", split="", shard="")
            n += 1
        first.setdefault(h, r["clip_id"])
    return n


@click.command("merge")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=str))
@click.option("--overwrite", is_flag=True, help="Replace an existing OUT.")
@translate()
def merge(files, overwrite):
    """Join prepared files (job-array outputs) into one master: ckpp merge A.h5 B.h5 ... OUT.h5

    Frames are not copied: OUT links the inputs' shard files, so keep them where they are (paths are relative)."""
    if len(files) < 2:
        raise UsageError("give at least one input and the output", path="merge", fix="ckpp merge A.h5 B.h5 ... OUT.h5")
    *inputs, out = files
    for p in inputs:
        if not os.path.isfile(p):
            raise CkppError("input not found", path=p, fix="pass the master files written by ckpp prepare")
    res = merge_files(list(inputs), out, overwrite=overwrite)
    click.echo(f"wrote {out}: {res['clips']} clips ({res['accepted']} accepted) from {res['inputs']} file(s), "
               f"linking {res['shards']} shard file(s); no frames copied"
               + (f"; {res['duplicates']} duplicate(s) across inputs rejected" if res["duplicates"] else ""))
