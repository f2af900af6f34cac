"""`ckpp demo`: the whole chain on sample data made from real photos, in minutes on a laptop CPU.

sample all seven expressions of real people (some held out) -> prepare -> train ours on all seven at once (the
paper's joint model, fine-tuned from the shipped joint weights) -> show control on a face never in training: a
contact sheet (expressions x degrees, `ckpp sheet`) and a mix (`ckpp generate --emotion happy=0.5 --emotion
surprise=0.5`) -> train the ConvLSTM / HP baselines on one expression (they are one model per expression) ->
benchmark the three on that expression: held-out clips (Fig. 3) and real photos of people never in training.
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

#: the demo trains at 64x64 on the onset view (the `demo` config's crop_from="onset", the box a photo's face gets in
#: `ckpp generate`; all three models), which covers ~65 of 88 stored pixels, so the network's input is not upscaled
DEMO_SIZE = 88


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


def _pretrained_available(name: str) -> bool:
    """Whether ckpp ships the pretrained weights NAME (models/pretrained/NAME.pt), found without importing
    `models` (the data toolkit never imports the model side)."""
    import importlib.util

    spec = importlib.util.find_spec("models")
    locs = list(spec.submodule_search_locations or []) if spec else []
    return any(os.path.isfile(os.path.join(d, "pretrained", f"{name}.pt")) for d in locs)


def _trainable(data: Path) -> list[str]:
    """The expressions with accepted training clips in the prepared file, in the canonical order (the order of
    the shipped joint weights' residual encoders)."""
    from ..emotions import EXPRESSIONS
    from ..reader import open_dataset

    with open_dataset(str(data)) as ds:
        return [e for e in EXPRESSIONS if ds.clip_ids(emotion=e, split="train")]


#: the shipped weights the main model is fine-tuned from: all seven expressions (models/pretrained/ours-joint.pt)
JOINT = "ours-joint"
#: the mix the demo animates, and the degrees (rows) of its contact sheet
MIX = ("happy", "surprise")
SHEET_DEGREES = "0.25,0.5,1"
#: a training step of the joint main model (seven residual encoders) over one of the single-expression model:
#: 1.40x the CPU time (60 steps each from the shipped weights, run side by side on 2 busy cores, 2026-12-07)
JOINT_COST = 1.4
#: people sampled by default (each with all seven expressions, so 7 clips a person): sample + prepare scale with
#: clips, training does not; sized so the demo keeps to its ~10 minutes on 2 CPU cores (README)
PEOPLE = 60


@click.command()
@click.option("--out", "out", default="demo", show_default=True, type=click.Path(file_okay=False),
              help="Folder for everything the demo makes (raw/, data.h5, runs/, expressions.png, the mix GIF, "
                   "report/).")
@click.option("--people", default=PEOPLE, show_default=True, type=click.IntRange(2),
              help="Real people (NBA headshots, one subject each, all seven expressions) to train on; another 40 "
                   "are held out.")
@click.option("--steps", default=None, type=click.IntRange(1),
              help="Training steps of the main model  [default: 600 from the pretrained weights, 1500 without; "
                   "5 with --small]")
@click.option("--baseline-steps", default=None, type=click.IntRange(1),
              help="Training steps of each baseline  [default: about the main model's training time each, from "
                   "the per-step costs measured with the demo recipe]")
@click.option("--init/--no-init", "init", default=True, show_default=True,
              help="Start the main model from the joint pretrained weights shipped with ckpp (fine-tuned on this "
                   "demo's data) instead of from scratch.")
@click.option("--subjects", default=3, show_default=True, type=click.IntRange(2),
              help="With --small: sample subjects made from the astronaut photo.")
@click.option("--emotion", default="surprise", show_default=True,
              help="Expression the baselines (one model per expression) learn and the benchmarks compare the three "
                   "models on; the main model learns all seven.")
@click.option("--overwrite", is_flag=True, help="Replace an existing demo folder.")
@click.option("--small", is_flag=True, help="Smoke test of the chain in about a minute: a few subjects made from "
                                           "one photo, 320-wide frames, a few steps.")
@translate(rerun="`ckpp demo --overwrite`", out="out")
def demo(out, people, steps, baseline_steps, init, subjects, emotion, overwrite, small):
    """Run sample -> prepare -> train ours (all seven expressions) -> contact sheet + mix GIF -> train convlstm,
    hp -> benchmark, on sample data."""
    from ..emotions import EXPRESSIONS, require

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
    times = {}
    if small:
        # subjects made from the astronaut photo only; Grace Hopper stays unseen
        times["sample"] = _run(out=out, args=["sample", str(raw), "--subjects", str(subjects), "--seed", "0",
                                              "--photos", "astronaut", "--small"])
        config = "tiny"
    else:
        # one subject per real person, each with all seven expressions; the first HOLD_OUT people of the seeded
        # shuffle never enter the sample
        times["sample"] = _run(out=out, args=["sample", str(raw), "--photos", "nba", "--subjects", str(people),
                                              "--hold-out", str(HOLD_OUT), "--emotions", "all", "--no-bad-cases",
                                              "--seed", "0"])
        config = "demo"
    times["prepare"] = _run(out=out, args=["prepare", str(raw), str(data), "--size", str(DEMO_SIZE)])
    joint = _trainable(data)
    if emotion not in joint:
        raise UsageError(f"the demo's data has no training clips of {emotion}", path=data,
                         fix="sample more people (--people) or pick another --emotion of: " + ", ".join(joint))
    # the shipped joint weights have one residual encoder per expression, all seven in the canonical order
    if init and not small and joint != list(EXPRESSIONS):
        click.secho(f"the demo's data has no training clips of {', '.join(e for e in EXPRESSIONS if e not in joint)}: "
                    "the main model learns the others from scratch (the shipped joint weights know all seven; "
                    "more --people gives every expression training clips)", fg="yellow")
    init = init and not small and joint == list(EXPRESSIONS) and _pretrained_available(JOINT)
    if steps is None:
        steps = 5 if small else (600 if init else 1500)
    if baseline_steps is None:
        # equal training time: per step, ConvLSTM costs ~2.4x and HP ~3.7x the single-expression main model
        # (10 frames per sample; measured with the demo recipe on 2 CPU cores, docs/recipe.md) and the joint
        # main model JOINT_COST x; fine-tuning starts ours ahead of the baselines, so they get the time of a
        # from-scratch run of the same length
        baseline_steps = {"convlstm": max(2, round(steps * JOINT_COST / 2.4)),
                          "hp": max(2, round(steps * JOINT_COST / 3.7))}
    else:
        baseline_steps = {"convlstm": baseline_steps, "hp": baseline_steps}
    ours_run = runs / "ours-joint"
    init_args = ["--init", f"pretrained:{JOINT}"] if init else []
    if init:
        click.secho("the main model starts from the joint pretrained weights shipped with ckpp (models/pretrained/"
                    f"{JOINT}.pt, trained on NBA people that exclude the held-out ones) and is fine-tuned for "
                    f"{steps} steps on this demo's data", fg="yellow")
    times["train ours"] = _run(out=out, args=["train", str(data), *[a for e in joint for a in ("--emotion", e)],
                                              "--model", "ours", "--config", config, "--steps", str(steps),
                                              "--out", str(ours_run)] + init_args)
    # control, shown as soon as the model exists: every expression x degree, and a mix
    import matplotlib

    photo = out / "grace_hopper.jpg"  # a real face photo that no training subject was made from
    shutil.copyfile(os.path.join(matplotlib.get_data_path(), "sample_data", "grace_hopper.jpg"), photo)
    sheet = out / "expressions.png"
    times["sheet"] = _run(out=out, args=["sheet", str(ours_run), str(photo), "--degrees", SHEET_DEGREES,
                                         "-o", str(sheet)])
    mix = [e for e in MIX if e in joint]
    mix = (mix + [e for e in joint if e not in mix])[:2]
    gif = out / f"mix-{'+'.join(mix)}.gif"
    times["generate mix"] = _run(out=out, args=["generate", str(ours_run), str(photo),
                                                *[a for e in mix for a in ("--emotion", f"{e}=0.5")], "-o", str(gif)])
    click.secho(f"look: {sheet} and {gif} (the demo's own model on a face never in training); next the baselines "
                f"learn {emotion}, then the three are compared", fg="yellow")
    for model in ("convlstm", "hp"):
        times[f"train {model}"] = _run(out=out, args=["train", str(data), "--emotion", emotion, "--model", model,
                                                      "--config", config, "--steps", str(baseline_steps[model]),
                                                      "--out", str(runs / f"{model}-{emotion}")])
    bench = ["--model", str(ours_run), "--emotion", emotion, "--baselines", "convlstm,hp", "--runs", str(runs)]
    times["benchmark clips"] = _run(out=out, args=["benchmark", str(data), *bench, "-o", str(report),
                                                   # like the paper's Fig. 3: a panel on training clips and one on
                                                   # held-out clips
                                                   "--split", "train", "--split", "test", "--max-clips", "4",
                                                   "--identity-frames", "3" if small else "4"])
    # in the wild: real photos of people never in training, the held-out people and faces unlike them
    _unlike_photos(photos / "unlike")
    wild_dirs = ["--photos", str(photos / "unlike")]
    if (raw / "held_out").is_dir():
        shutil.copytree(raw / "held_out", photos / "held_out")
        wild_dirs = ["--photos", str(photos / "held_out")] + wild_dirs
    wild = out / "report_wild"
    times["benchmark photos"] = _run(out=out, args=["benchmark", str(data), *bench, "-o", str(wild), *wild_dirs,
                                                    # as the photo is, and `ckpp generate`'s default start (parted
                                                    # lips shut first: the models learnt from neutral onsets):
                                                    # docs/recipe.md
                                                    "--start", "as-is,auto"])
    total = sum(times.values())
    click.secho("\nckpp demo finished in %.0f s" % total, fg="green", bold=True)
    for k, v in times.items():
        click.echo(f"  {k:<18} {v:6.1f} s")
    click.echo(f"  contact sheet:   {os.path.abspath(sheet)}  (Grace Hopper, never in training: "
               f"{len(joint)} expressions x degrees {SHEET_DEGREES})")
    click.echo(f"  mix:             {os.path.abspath(gif)}  ({' + '.join(f'{e}=0.5' for e in mix)})")
    click.echo(f"  report (clips):  {os.path.abspath(report / 'report.md')}  ({emotion}: ours vs ConvLSTM vs HP)")
    click.echo(f"  report (photos): {os.path.abspath(wild / 'report.md')}")
    click.echo(f"  sample contact sheet: {os.path.abspath(raw / 'contact_sheet.png')}")
