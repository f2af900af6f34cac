"""`ckpp inspect OUT.h5`: what is in a prepared file (counts per emotion/split, reject reasons), whether it
follows the contract (--validate), and what a clip looks like (--preview CLIP_ID -o x.png)."""
from __future__ import annotations

import os
from collections import Counter

import click

from ..disk_space import translate
from ..errors import CkppError, UsageError


def preview_image(ds, clip_id: str, n: int = 8):
    """A strip of up to n evenly spaced frames of a clip with landmarks (green) and the mouth mask (red tint),
    each labelled with its degree and source frame."""
    import cv2
    import numpy as np

    c = ds.clip(clip_id)
    T = len(c.degree)
    idx = np.unique(np.linspace(0, T - 1, min(n, T)).round().astype(int))
    tiles = []
    for t in idx:
        img = c.frames[t].astype(np.float32)
        m = c.mouth_mask[t].astype(bool)
        img[m] = img[m] * 0.5 + np.array([255, 0, 0], np.float32) * 0.5
        img = np.ascontiguousarray(img.clip(0, 255).astype(np.uint8))
        S = img.shape[0]
        scale = max(1, int(round(256 / S)))
        if scale > 1:
            img = cv2.resize(img, (S * scale, S * scale), interpolation=cv2.INTER_NEAREST)
        r = max(1, img.shape[0] // 150)
        for x, y in c.landmarks[t] * scale:
            cv2.circle(img, (int(round(x)), int(round(y))), r, (0, 255, 0), -1, lineType=cv2.LINE_AA)
        label = f"a={c.degree[t]:.2f} src#{int(c.source_index[t])}"
        org, fs = (4, img.shape[0] - 6), img.shape[0] / 600
        cv2.putText(img, label, org, cv2.FONT_HERSHEY_SIMPLEX, fs, (0, 0, 0), 3, cv2.LINE_AA)  # outline: readable on any face
        cv2.putText(img, label, org, cv2.FONT_HERSHEY_SIMPLEX, fs, (255, 255, 0), 1, cv2.LINE_AA)
        tiles.append(img)
    strip = np.concatenate(tiles, axis=1)
    a = c.attrs
    head = np.zeros((28, strip.shape[1], 3), np.uint8)
    cv2.putText(head, f"{clip_id}  {a.get('emotion')}  subject {a.get('subject')}  split {a.get('split')}  T={T}",
                (4, 19), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
    return np.concatenate([head, strip], axis=0)


@click.command("inspect")
@click.argument("path", type=click.Path(path_type=str))
@click.option("--validate", "do_validate", is_flag=True, help="Check every rule of the HDF5 contract; exit 1 on violations.")
@click.option("--preview", "preview_id", default=None, metavar="CLIP_ID", help="Draw frames of this clip with landmarks and mask.")
@click.option("-o", "--output", default=None, help="PNG for --preview [default: <CLIP_ID>.png].")
@click.option("--rejected", is_flag=True, help="Also list every rejected clip with its reason and detail.")
@translate(out="output")
def inspect(path, do_validate, preview_id, output, rejected):
    """Summarise a prepared file: counts per emotion and split, reject reasons."""
    from ..prepare import summary_table
    from ..reader import open_dataset

    if not os.path.exists(path):
        raise CkppError("file not found", path=path, fix="make it with: ckpp prepare RAW OUT.h5")
    if do_validate:
        from ..schema import validate

        problems = validate(path)
        if problems:
            click.echo(f"{path}: {len(problems)} contract violation(s):")
            for p in problems:
                click.echo(f"  - {p}")
            raise SystemExit(1)
    ds = open_dataset(path)
    if preview_id is not None:
        import cv2

        if preview_id not in ds._row:
            raise UsageError(f"no clip {preview_id!r} in the file", path="--preview",
                             fix="pick one of: " + ", ".join(ds.clip_ids()[:10]) + (" ..." if len(ds.clip_ids()) > 10 else ""))
        try:
            img = preview_image(ds, preview_id)
        except KeyError as exc:
            raise UsageError(str(exc.args[0]), path="--preview", fix="preview an accepted clip") from None
        out = output or f"{preview_id}.png"
        if not out.lower().endswith(".png"):
            raise UsageError("preview output must be a .png", path=out, fix="-o preview.png")
        from ..disk_space import atomic_write_bytes

        atomic_write_bytes(out, cv2.imencode(".png", img[..., ::-1].copy())[1].tobytes())
        click.echo(f"wrote {out}")
        return
    rows = ds.manifest.to_dict("records")
    a = ds.attrs
    click.echo(f"{path}: ckpp schema {a.get('schema_version')}, {a.get('image_size')}x{a.get('image_size')} frames, "
               f"landmarks {a.get('landmark_backend')}, created {a.get('created')}")
    acc = [r for r in rows if r["status"] == "accepted"]
    shards = sorted({r["shard"] for r in acc})
    n_frames = 0
    for cid in (r["clip_id"] for r in acc):
        n_frames += int(ds.row(cid)["peak"]) - int(ds.row(cid)["onset"]) + 1
    click.echo(f"{len(rows)} clips found, {len(acc)} accepted ({n_frames} stored frames) in {len(shards)} shard file(s)\n")
    click.echo(summary_table(rows))
    subj = Counter(r["split"] for r in {r["subject"]: r for r in acc}.values())
    click.echo("\nsubjects per split: " + ", ".join(f"{k} {subj.get(k, 0)}" for k in ("train", "val", "test")))
    if rejected:
        click.echo("\nrejected clips:")
        for r in rows:
            if r["status"] != "accepted":
                click.echo(f"  {r['clip_id']:<24} {r['reason']:<16} {r['detail']}")
    if do_validate:
        click.echo("\nvalidate: OK (no contract violations)")
