"""`ckpp benchmark`: compare the main model with the baselines on held-out clips; writes a report folder.

Thin: option parsing, run discovery and loading; the protocol is models/benchmark.py, the metrics
models/evaluate.py, the pages models/report.py. torch is imported only when the command runs.
"""
from __future__ import annotations

import os
import shlex
import shutil
import sys

import click

from ckpp_tools.disk_space import translate


@click.command("benchmark")
@click.argument("data", required=False, type=click.Path(dir_okay=False))
@click.option("--model", "model_run", metavar="RUN", help="main-model run folder, checkpoint (.pt) or `pretrained` (the weights shipped with ckpp)  [default: newest `ours` run under --runs]")
@click.option("--baselines", default="", metavar="LIST", help="comma-separated baselines to compare: convlstm,hp (or none)  [default: none]")
@click.option("--runs", "runs_dir", default="runs", show_default=True, type=click.Path(file_okay=False),
              help="folder holding the run folders of `ckpp train`")
@click.option("--split", "splits", multiple=True, type=click.Choice(["test", "val", "train"]),
              help="split(s) to evaluate, repeatable (one Fig. 3 panel each)  [default: test]")
@click.option("--emotion", "emotion_names", multiple=True, metavar="NAME",
              help="emotion(s) to evaluate, repeatable  [default: those the main run was trained on]")
@click.option("-o", "--out", "out_dir", default="report", show_default=True, type=click.Path(file_okay=False),
              help="report folder (written as OUT.partial, then swapped in; an old report survives a failed run)")
@click.option("--max-clips", type=click.IntRange(min=1), metavar="N", help="at most N clips per emotion and split")
@click.option("--gifs", type=click.IntRange(min=0), default=3, show_default=True, metavar="N",
              help="compare_<clip>.gif strips per emotion and split")
@click.option("--identity/--no-identity", default=True, show_default=True,
              help="dlib face-descriptor identity distances (the slowest measurement)")
@click.option("--identity-frames", type=click.IntRange(min=1), metavar="N",
              help="descriptors on at most N evenly spaced frames per video (~0.1 s each on a CPU)  [default: all]")
@click.option("--device", default="auto", type=click.Choice(["auto", "cpu", "cuda"]), show_default=True,
              help="where the models run (latency is measured there)")
@click.option("--photos", "photo_dirs", multiple=True, type=click.Path(file_okay=False), metavar="DIR",
              help="evaluate on the portrait photos in DIR instead of clips (no ground truth: expression gains, "
                   "face found, identity); repeatable, each DIR (or sub-folder) is reported as its own group")
@click.option("--start", "start", default="as-is", show_default=True, metavar="LIST",
              help="with --photos, comma-separated: models start from the photo as it is (as-is), from its face "
                   "warped back to neutral, lips shut (neutral), or neutral only where the lips are parted (auto, "
                   "`ckpp generate`'s default); each start after the first adds its own rows; 'all' = all three")
@translate(out="out_dir")
def benchmark(data, model_run, baselines, runs_dir, splits, emotion_names, out_dir, max_clips, gifs, identity, identity_frames, device,
              photo_dirs, start):
    """Evaluate the main model (and baselines) on held-out clips: paper Fig. 3 and more, as a report.

    \b
    In the folder where these ran:
      ckpp prepare raw/ out.h5
      ckpp train --emotion surprise
      ckpp train --model convlstm --emotion surprise
      ckpp train --model hp --emotion surprise
    this compares all three on the test clips (an emotion without test clips falls back to val, then
    train, with a warning) and writes report/ (report.md, index.html, report.json, Fig. 3 curves,
    metric charts, compare_<clip>.gif):
      ckpp benchmark --baselines convlstm,hp
    Real photos of unseen people (in the wild, e.g. photos/heldout/*.jpg and photos/unlike/*.jpg):
      ckpp benchmark --photos photos --model runs/ours-surprise --baselines none
    Metrics are explained in docs/evaluation.md.
    """
    import torch

    from ckpp_tools.errors import UsageError

    from .. import benchmark as bm
    from ..checkpoint import load_run

    names = [b.strip().lower() for b in baselines.split(",") if b.strip() and b.strip().lower() not in ("none", "''", '""')]
    for b in names:
        if b not in bm.BASELINES:
            raise UsageError(f"unknown baseline {b!r}", path="--baselines", fix="use convlstm, hp or convlstm,hp")
    if photo_dirs and (splits or max_clips or identity_frames):
        raise UsageError("--split, --max-clips and --identity-frames choose clips and frames of the clip benchmark, "
                         "not photos", path="--photos",
                         fix="leave them out with --photos (every photo is evaluated; identity on the peak frame)")
    from ckpp_tools.neutral import parse_starts

    starts = parse_starts(start)
    if starts != ("as-is",) and not photo_dirs:
        raise UsageError(f"--start {start} applies to photos, not clips (clips start from their recorded onset)",
                         path="--start", fix="add --photos DIR, or leave --start out")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    elif device == "cuda" and not torch.cuda.is_available():
        raise UsageError("CUDA was requested but torch sees no GPU", path="--device", fix="use --device cpu (or auto)")
    dev = torch.device(device)

    sel = bm.find_runs(model_run=model_run, baselines=names, runs_dir=runs_dir, data=data,
                       emotions=list(emotion_names) or None, need_data=not photo_dirs)
    click.echo(f"data: {sel.data}   emotions: {', '.join(sel.emotions)}")

    def load(run: bm.RunInfo, key: str) -> bm.LoadedModel:
        ckpt = bm.checkpoint_of(run)
        family, meta = load_run(ckpt or run.path, device=dev)
        if getattr(family, "name", key) != key:
            raise UsageError(f"{run.path} holds a {family.name!r} model, not {key!r}", path=run.path,
                             fix=f"pass a run of `ckpp train --model {key}`")
        click.echo(f"  {bm.LABELS.get(key, key):9s} {run.path}  (step {meta.get('step')}, {os.path.basename(meta.get('path') or '')})")
        return bm.LoadedModel(key=key, family=family, run=run.path, checkpoint=meta.get("path"), meta=meta)

    ours = load(sel.ours, "ours")
    models = {"ours": {e: ours for e in sel.emotions}}
    for b, per_e in sel.baselines.items():
        models[b] = {e: load(r, b) for e, r in per_e.items()}

    out_dir = os.path.normpath(out_dir)
    partial = out_dir + ".partial"
    if os.path.exists(partial):
        shutil.rmtree(partial)
    os.makedirs(partial)
    command = _command_line(click.get_current_context())
    if photo_dirs:
        return _photos(sel, models, photo_dirs, partial, out_dir, dev, identity, gifs, command, starts)
    results = _build_into(partial, out_dir, lambda: bm.run_benchmark(
        data=sel.data, models=models, emotions=sel.emotions, splits=list(splits) or ["test"], out_dir=partial,
        device=dev, max_clips=max_clips, n_gifs=gifs, identity=identity, split_explicit=bool(splits),
        command=command, warn=lambda m: click.echo(m, err=True), identity_frames=identity_frames))
    click.echo(bm.summary_text(results))
    click.echo(f"report: {os.path.join(out_dir, 'report.md')}  (or open {os.path.join(out_dir, 'index.html')})")
    click.echo(f"Fig. 3: {os.path.join(out_dir, 'fig3_curves.png')}")
    for c in results["compare"][:3]:
        click.echo(f"GIF:    {os.path.join(out_dir, c['gif'])}")


def _build_into(partial, out_dir, build):
    """Run `build()` (it writes the report into `partial`), then swap `partial` in for `out_dir`; on any
    failure the partial folder is removed and an existing report stays untouched."""
    from ckpp_tools.disk_space import explained, writing

    from ..report import swap_into_place

    try:
        with explained(note=f"the previous report in {out_dir} is untouched" if os.path.isdir(out_dir) else None), \
                writing(out_dir, partial=partial):     # a full disk names the file and deletes OUT.partial
            results = build()
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    swap_into_place(partial, out_dir)
    return results


def _photos(sel, models, photo_dirs, partial, out_dir, dev, identity, gifs, command, starts) -> None:
    """The --photos branch: models/in_the_wild.py evaluates, the report is swapped in like the clip one."""
    from .. import in_the_wild as iw

    results = _build_into(partial, out_dir, lambda: iw.run_photos(
        photo_dirs=list(photo_dirs), models=models, emotions=sel.emotions, out_dir=partial, device=dev,
        data=sel.data, identity=identity, n_gifs=gifs, command=command, warn=lambda m: click.echo(m, err=True),
        starts=starts))
    click.echo(iw.summary_text(results))
    click.echo(f"report: {os.path.join(out_dir, 'report.md')}  (or open {os.path.join(out_dir, 'index.html')})")
    for name in list(results["sheets"].values())[:3]:
        click.echo(f"sheet:  {os.path.join(out_dir, name)}")


def _command_line(ctx: click.Context) -> str:
    """The command as typed (from sys.argv when run as `ckpp benchmark ...`), else an equivalent one rebuilt
    from the options that differ from their defaults (e.g. when called from `ckpp demo` or a test)."""
    if os.path.basename(sys.argv[0]).startswith("ckpp") and sys.argv[1:2] == ["benchmark"]:
        return "ckpp " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    parts = ["ckpp", "benchmark"]
    for p in ctx.command.params:
        v = ctx.params.get(p.name)
        if v in (None, (), "") or v == p.default or (isinstance(v, tuple) and p.default is None and not v):
            continue
        if isinstance(p, click.Argument):
            parts.append(str(v))
        elif isinstance(v, bool):
            parts.append(p.opts[0] if v else p.secondary_opts[0])
        elif isinstance(v, tuple):
            for x in v:
                parts += [p.opts[-1], str(x)]
        else:
            parts += [p.opts[-1], str(v)]
    return " ".join(shlex.quote(x) for x in parts)
