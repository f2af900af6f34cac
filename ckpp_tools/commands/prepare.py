"""`ckpp prepare RAW OUT.h5`: raw CK+ / CK++-style clips -> trimmed, checked, landmarked, masked HDF5 (DESIGN §4)."""
from __future__ import annotations

import re

import click

from ..disk_space import translate
from ..errors import UsageError

_UNITS = {"": 1, "b": 1, "k": 10**3, "kb": 10**3, "m": 10**6, "mb": 10**6, "g": 10**9, "gb": 10**9, "t": 10**12, "tb": 10**12}


def parse_size(text: str) -> int:
    """'1G' / '500M' / '2000000' -> bytes."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([A-Za-z]*)\s*", str(text))
    if not m or m.group(2).lower() not in _UNITS:
        raise UsageError(f"bad size {text!r}", path="--shard-size", fix="use bytes or a unit: 500M, 1G, 2GB")
    return max(1, int(float(m.group(1)) * _UNITS[m.group(2).lower()]))


@click.command("prepare")
@click.argument("raw", type=click.Path(path_type=str))
@click.argument("out", type=click.Path(path_type=str))
@click.option("--source", type=click.Choice(["auto", "ckplus", "videos", "csv"]), default="auto", show_default=True,
              help="Layout of RAW; auto recognises each subtree (CK+ next to CK++-style folders).")
@click.option("--labels", type=click.Path(path_type=str), default=None, help="CSV with columns path,subject,emotion[,onset,peak].")
@click.option("--emotions", "emotions_", default=None, help="Keep only these emotions, e.g. happy,anger,surprise.")
@click.option("--size", type=int, default=289, show_default=True, help="Stored frame side S (frames are S×S).")
@click.option("--workers", type=int, default=None, help="Worker processes [default: all cores].")
@click.option("--landmarks", type=click.Choice(["dlib", "face-alignment"]), default="dlib", show_default=True)
@click.option("--num-shards", type=int, default=1, show_default=True, help="Job array: number of jobs (join with ckpp merge).")
@click.option("--shard-index", type=int, default=0, show_default=True, help="Job array: this job's index 0..K-1.")
@click.option("--resume", is_flag=True, help="Continue an interrupted run, reusing its completed shards (on a finished OUT: nothing to do).")
@click.option("--overwrite", is_flag=True, help="Replace an existing OUT.")
@click.option("--min-frames", type=int, default=4, show_default=True, help="Fewer kept frames -> rejected too_short.")
@click.option("--blur-threshold", type=float, default=None, help="Face sharpness below this -> blurry [default: analysis default].")
@click.option("--head-motion-threshold", type=float, default=None, help="Rigid head motion (inter-ocular distances) above this -> head_motion.")
@click.option("--head-rotation-threshold", type=float, default=None, help="Head rotation (degrees) above this -> head_motion.")
@click.option("--multiple-faces", type=click.Choice(["largest", "reject"]), default="largest", show_default=True)
@click.option("--ck-landmarks", type=click.Choice(["provided", "detect"]), default="provided", show_default=True,
              help="Use the landmarks that come with the clips (CK+ Landmarks/ files, a video's <clip>.landmarks.txt), or detect.")
@click.option("--shard-size", default="1G", show_default=True, help="Bytes of frames per shard file (500M, 1G, ...).")
@click.option("--split", "split_", default="0.8,0.1,0.1", show_default=True, help="train,val,test fractions (subject-disjoint).")
@click.option("--timeout", type=float, default=600, show_default=True,
              help="Seconds a clip may go without decoding a frame before its worker is killed.")
@click.option("--max-frames", type=int, default=9000, show_default=True,  # = prepare.DEFAULT_MAX_FRAMES
              help="Frames read per clip at most (5 min at 30 fps); a longer clip's row says it was cut.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.option("--no-space-check", "no_space_check", is_flag=True,
              help="Start even when the estimated output does not fit the free space of OUT's disk.")
@translate(resume="--resume", out="out")
def prepare(raw, out, source, labels, emotions_, size, workers, landmarks, num_shards, shard_index, resume, overwrite,
            min_frames, blur_threshold, head_motion_threshold, head_rotation_threshold, multiple_faces, ck_landmarks, shard_size, split_, timeout, max_frames, quiet,
            no_space_check):
    """Turn RAW clips into OUT.h5 (+ OUT-00000.h5 ... shards): one manifest row per clip found.

    \b
    Examples:
      ckpp prepare raw/ out.h5
      ckpp prepare raw/ out.h5 --emotions happy,surprise --size 128 --workers 4
      ckpp prepare raw/ part-3.h5 --num-shards 8 --shard-index 3   # then: ckpp merge part-*.h5 out.h5
    """
    from .. import emotions as emo
    from ..prepare import PrepareOptions, prepare as run, summary_table

    opts = PrepareOptions(
        source=source, labels=labels, emotions=emo.parse_list(emotions_), size=size, workers=workers, landmarks=landmarks,
        num_shards=num_shards, shard_index=shard_index, resume=resume, overwrite=overwrite, min_frames=min_frames,
        blur_threshold=blur_threshold, head_motion_threshold=head_motion_threshold,
        head_rotation_threshold=head_rotation_threshold, multiple_faces=multiple_faces,
        ck_landmarks=ck_landmarks, shard_size=parse_size(shard_size), split=split_, timeout=timeout, max_frames=max_frames,
        progress=not quiet, space_check=not no_space_check,
    )
    if workers is not None and workers < 1:
        raise UsageError("--workers must be at least 1", path="--workers", fix="e.g. --workers 2")
    res = run(raw, out, opts)
    for n in res.notes:
        click.echo(f"note: {n}")
    click.echo(summary_table(res.rows))
    if res.already_complete:
        click.echo(f"\n{out} is already complete: nothing to do (no file was changed)")
        click.echo(f"next: ckpp inspect {out}   |   ckpp train {out} --emotion <name>")
        return
    n_acc = sum(r["status"] == "accepted" for r in res.rows)
    fps = res.n_source_frames / res.seconds if res.seconds > 0 else 0.0
    click.echo(f"\n{n_acc} of {len(res.rows)} clips accepted; {res.n_source_frames} source frames in {res.seconds:.1f}s "
               f"({fps:.0f} frames/s); wrote {out} + {len(res.shards)} shard file(s)")
    click.echo(f"next: ckpp inspect {out}   |   ckpp train {out} --emotion <name>")
