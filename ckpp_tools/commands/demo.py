"""`ckpp demo`: the whole chain on sample data made from real photos, in minutes on a laptop CPU.

sample -> prepare -> train ours + ConvLSTM + HP (tiny config) -> generate from a photo not in training -> benchmark.
Each step runs the same `ckpp` verb a user would type (printed before it runs), so the demo doubles as a tutorial.
"""
from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import click

from ..errors import UsageError

#: the demo trains at 64x64: prepare stores 72x72 so the random 256/289 crop gives 64
DEMO_SIZE = 72


def _run(args: list[str]) -> float:
    """Run one verb in a fresh process, exactly as a user would type it.

    A fresh process per step also keeps state of one step (OpenCV/dlib thread pools, worker pools) from
    leaking into the next: forking DataLoader workers from a process that has run OpenCV's thread pool
    can deadlock them."""
    import subprocess
    import sys

    click.secho("\n$ ckpp " + " ".join(args), fg="cyan", bold=True)
    t0 = time.perf_counter()
    from ..lifecycle import popen_kwargs

    # the step dies with the demo (kill -9 included), and its own workers with it
    rc = subprocess.call([sys.executable, "-m", "ckpp_tools.cli", *args], **popen_kwargs())
    if rc != 0:
        raise click.ClickException(f"demo step `ckpp {' '.join(args)}` failed (exit code {rc}); see its message above")
    return time.perf_counter() - t0


@click.command()
@click.option("--out", "out", default="demo", show_default=True, type=click.Path(file_okay=False),
              help="Folder for everything the demo makes (raw/, data.h5, runs/, report/, GIF).")
@click.option("--steps", default=1000, show_default=True, type=click.IntRange(1),
              help="Training steps of the main model (tiny config).")
@click.option("--baseline-steps", default=300, show_default=True, type=click.IntRange(1),
              help="Training steps of each baseline (they cost more per step: 10 frames per sample).")
@click.option("--subjects", default=6, show_default=True, type=click.IntRange(2), help="Sample subjects to make.")
@click.option("--emotion", default="surprise", show_default=True, help="Expression to train and evaluate.")
@click.option("--overwrite", is_flag=True, help="Replace an existing demo folder.")
@click.option("--small", is_flag=True, help="Tiny sample data (320-wide): a smoke test of the chain in about a minute.")
def demo(out, steps, baseline_steps, subjects, emotion, overwrite, small):
    """Run sample -> prepare -> train (ours, convlstm, hp) -> generate -> benchmark on sample data."""
    from ..emotions import require

    emotion = require(emotion)
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise UsageError("the demo folder exists and is not empty", path=out,
                             fix="pass --overwrite to replace it, or --out another folder")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    raw, data, runs, report = out / "raw", out / "data.h5", out / "runs", out / "report"
    times = {}
    # subjects are made from the astronaut photo only; Grace Hopper stays unseen for `ckpp generate`
    times["sample"] = _run(["sample", str(raw), "--subjects", str(subjects), "--seed", "0", "--photos", "astronaut"]
                           + (["--small"] if small else []))
    times["prepare"] = _run(["prepare", str(raw), str(data), "--size", str(DEMO_SIZE)])
    for model in ("ours", "convlstm", "hp"):
        times[f"train {model}"] = _run(["train", str(data), "--emotion", emotion, "--model", model, "--config", "tiny",
                                        "--steps", str(steps if model == "ours" else baseline_steps), "--out", str(runs / f"{model}-{emotion}")])
    import matplotlib

    photo = out / "grace_hopper.jpg"  # a real face photo that no training subject was made from
    shutil.copyfile(os.path.join(matplotlib.get_data_path(), "sample_data", "grace_hopper.jpg"), photo)
    gif = out / f"{emotion}.gif"
    times["generate"] = _run(["generate", str(runs / f"ours-{emotion}"), str(photo), "--emotion", f"{emotion}=1.0",
                              "-o", str(gif)])
    times["benchmark"] = _run(["benchmark", str(data), "--model", str(runs / f"ours-{emotion}"), "--baselines",
                               "convlstm,hp", "--runs", str(runs), "-o", str(report),
                               # like the paper's Fig. 3: a panel on training clips and one on held-out clips
                               "--split", "train", "--split", "test", "--max-clips", "4",
                               "--identity-frames", "3" if small else "4"])
    total = sum(times.values())
    click.secho("\nckpp demo finished in %.0f s" % total, fg="green", bold=True)
    for k, v in times.items():
        click.echo(f"  {k:<16} {v:6.1f} s")
    click.echo(f"  report:   {os.path.abspath(report / 'report.md')}")
    click.echo(f"  video:    {os.path.abspath(gif)}")
    click.echo(f"  sample contact sheet: {os.path.abspath(raw / 'contact_sheet.png')}")
