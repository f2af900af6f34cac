"""`ckpp demo`: the whole chain on sample data made from real photos, in minutes on a laptop CPU.

sample (hundreds of real people, some held out) -> prepare -> train ours + ConvLSTM + HP (the `demo` recipe,
docs/recipe.md) -> generate from a photo never in training -> benchmark on held-out clips (Fig. 3) and on real
photos of people never in training (held-out people; faces unlike them).
Each step runs the same `ckpp` verb a user would type (printed before it runs), so the demo doubles as a tutorial.
"""
from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import click

from ..disk_space import translate
from ..errors import UsageError

#: the demo trains at 64x64: prepare stores 72x72 so the random 256/289 crop gives 64
DEMO_SIZE = 72


def _run(args: list[str], out=None) -> float:
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
        space = ""
        if out is not None:   # a full disk is the usual cause of a step failing in a long demo
            from ..disk_space import free_bytes, human

            space = f"; {human(free_bytes(str(out)))} free on the disk holding {out}"
        raise click.ClickException(f"demo step `ckpp {' '.join(args)}` failed (exit code {rc}); see its message above"
                                   f"{space}. Once fixed, rerun `ckpp demo --overwrite`")
    return time.perf_counter() - t0


#: the people kept out of training (seeded: the same ones the shipped pretrained weights never saw, see
#: benchmarks/train_pretrained.py), and the faces unlike the training people: the built-in photos (a woman;
#: an older woman in glasses) and those shipped in ckpp_tools/data/unlike/ (older men, one in glasses)
HOLD_OUT = 40
UNLIKE = ("astronaut", "grace_hopper")


def _unlike_photos(folder: Path) -> list[str]:
    """Write the photos of faces unlike the NBA training people into `folder`: the built-in photos and ckpp's
    shipped ones (photo_sources.unlike_folder(), sources and licences in its ATTRIBUTION.md)."""
    import cv2

    from ..disk_space import imwrite
    from ..faces import PHOTOS
    from ..photo_sources import EXTENSIONS, unlike_folder

    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for name in UNLIKE:
        imwrite(folder / f"{name}.png", cv2.cvtColor(PHOTOS[name](), cv2.COLOR_RGB2BGR))
        names.append(f"{name}.png")
    src = unlike_folder()
    for f in sorted(os.listdir(src)):
        if f.lower().endswith(EXTENSIONS):
            shutil.copyfile(os.path.join(src, f), folder / f)
            names.append(f)
    return names


def _pretrained_available(emotion: str) -> bool:
    """Whether ckpp ships pretrained weights for `emotion` (models/pretrained/ours-<emotion>.pt), found
    without importing `models` (the data toolkit never imports the model side)."""
    import importlib.util

    spec = importlib.util.find_spec("models")
    locs = list(spec.submodule_search_locations or []) if spec else []
    return any(os.path.isfile(os.path.join(d, "pretrained", f"ours-{emotion}.pt")) for d in locs)


@click.command()
@click.option("--out", "out", default="demo", show_default=True, type=click.Path(file_okay=False),
              help="Folder for everything the demo makes (raw/, data.h5, runs/, report/, GIF).")
@click.option("--people", default=150, show_default=True, type=click.IntRange(2),
              help="Real people (NBA headshots, one subject each) to train on; another 40 are held out.")
@click.option("--steps", default=None, type=click.IntRange(1),
              help="Training steps of the main model  [default: 1000 from the pretrained weights, 1500 without; "
                   "5 with --small]")
@click.option("--baseline-steps", default=None, type=click.IntRange(1),
              help="Training steps of each baseline  [default: about the main model's training time each, from "
                   "the per-step costs measured with the demo recipe]")
@click.option("--init/--no-init", "init", default=True, show_default=True,
              help="Start the main model from the pretrained weights shipped with ckpp (fine-tuned on this "
                   "demo's data) instead of from scratch.")
@click.option("--subjects", default=3, show_default=True, type=click.IntRange(2),
              help="With --small: sample subjects made from the astronaut photo.")
@click.option("--emotion", default="surprise", show_default=True, help="Expression to train and evaluate.")
@click.option("--overwrite", is_flag=True, help="Replace an existing demo folder.")
@click.option("--small", is_flag=True, help="Smoke test of the chain in about a minute: a few subjects made from "
                                           "one photo, 320-wide frames, a few steps.")
@translate(rerun="`ckpp demo --overwrite`", out="out")
def demo(out, people, steps, baseline_steps, init, subjects, emotion, overwrite, small):
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
    photos = out / "photos"
    init = init and not small and _pretrained_available(emotion)
    if steps is None:
        steps = 5 if small else (1000 if init else 1500)
    if baseline_steps is None:
        # equal training time: per step, ConvLSTM costs ~2.4x and HP ~3.7x the main model (10 frames per
        # sample; measured with the demo recipe on 2 CPU cores, docs/recipe.md); fine-tuning starts ours ahead
        # of the baselines, so they get the time of a from-scratch run of the same length
        baseline_steps = {"convlstm": max(2, round(steps / 2.4)), "hp": max(2, round(steps / 3.7))}
    else:
        baseline_steps = {"convlstm": baseline_steps, "hp": baseline_steps}
    times = {}
    if small:
        # subjects made from the astronaut photo only; Grace Hopper stays unseen
        times["sample"] = _run(out=out, args=["sample", str(raw), "--subjects", str(subjects), "--seed", "0", "--photos", "astronaut",
                                "--small"])
        config = "tiny"
    else:
        # one subject per real person; the first HOLD_OUT people of the seeded shuffle never enter the sample
        times["sample"] = _run(out=out, args=["sample", str(raw), "--photos", "nba", "--subjects", str(people), "--hold-out",
                                str(HOLD_OUT), "--emotions", emotion, "--no-bad-cases", "--seed", "0"])
        config = "demo"
    times["prepare"] = _run(out=out, args=["prepare", str(raw), str(data), "--size", str(DEMO_SIZE)])
    for model in ("ours", "convlstm", "hp"):
        n = steps if model == "ours" else baseline_steps[model]
        extra = ["--init", f"pretrained:ours-{emotion}"] if (model == "ours" and init) else []
        if extra:
            click.secho("the main model starts from the pretrained weights shipped with ckpp "
                        "(models/pretrained/, trained on NBA people that exclude the held-out ones) and is "
                        f"fine-tuned for {n} steps on this demo's data", fg="yellow")
        times[f"train {model}"] = _run(out=out, args=["train", str(data), "--emotion", emotion, "--model", model, "--config", config,
                                        "--steps", str(n), "--out", str(runs / f"{model}-{emotion}")] + extra)
    import matplotlib

    photo = out / "grace_hopper.jpg"  # a real face photo that no training subject was made from
    shutil.copyfile(os.path.join(matplotlib.get_data_path(), "sample_data", "grace_hopper.jpg"), photo)
    gif = out / f"{emotion}.gif"
    times["generate"] = _run(out=out, args=["generate", str(runs / f"ours-{emotion}"), str(photo), "--emotion", f"{emotion}=1.0",
                              "-o", str(gif)])
    times["benchmark clips"] = _run(out=out, args=["benchmark", str(data), "--model", str(runs / f"ours-{emotion}"), "--baselines",
                                     "convlstm,hp", "--runs", str(runs), "-o", str(report),
                                     # like the paper's Fig. 3: a panel on training clips and one on held-out clips
                                     "--split", "train", "--split", "test", "--max-clips", "4",
                                     "--identity-frames", "3" if small else "4"])
    # in the wild: real photos of people never in training, the held-out people and faces unlike them
    _unlike_photos(photos / "unlike")
    wild_dirs = ["--photos", str(photos / "unlike")]
    if (raw / "held_out").is_dir():
        shutil.copytree(raw / "held_out", photos / "held_out")
        wild_dirs = ["--photos", str(photos / "held_out")] + wild_dirs
    wild = out / "report_wild"
    times["benchmark photos"] = _run(out=out, args=["benchmark", str(data), "--model", str(runs / f"ours-{emotion}"), "--baselines",
                                      "convlstm,hp", "--runs", str(runs), "-o", str(wild), *wild_dirs,
                                      # as the photo is, and `ckpp generate`'s default start (parted lips
                                      # shut first: the models learnt from neutral onsets): docs/recipe.md
                                      "--start", "as-is,auto"])
    total = sum(times.values())
    click.secho("\nckpp demo finished in %.0f s" % total, fg="green", bold=True)
    for k, v in times.items():
        click.echo(f"  {k:<18} {v:6.1f} s")
    click.echo(f"  report (clips):  {os.path.abspath(report / 'report.md')}")
    click.echo(f"  report (photos): {os.path.abspath(wild / 'report.md')}")
    click.echo(f"  video:    {os.path.abspath(gif)}")
    click.echo(f"  sample contact sheet: {os.path.abspath(raw / 'contact_sheet.png')}")
