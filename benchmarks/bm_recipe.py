"""Recipe experiments: train config variants and measure them on held-out people, with the official path.

    python benchmarks/bm_recipe.py --data /work/exp/pre/data.h5 --work /work/exp/recipe --steps 3000 \\
        --init pretrained --variant const='{}' --variant linear='{"lr_decay": "linear"}'

Each --variant NAME=JSON is a set of config overrides on top of --config (default `demo`); every variant
gets the same seed, steps, data and --init (the control is simply the variant with `{}`). Per variant:
  1. ckpp train DATA --emotion E --config <variant JSON> --steps N --out WORK/NAME [--init INIT] --resume
  2. ckpp benchmark DATA --model WORK/NAME --baselines none -o WORK/NAME/report_wild --photos HELD_OUT
     (the same command `ckpp demo` runs; HELD_OUT defaults to DATA's raw/held_out/, the people never
     sampled into DATA)
and prints the held-out medians: face found, mouth-opening gain (IOD), direction cosine, identity distance.
Results are appended to --results (default benchmarks/results/bm_recipe.json), one entry per variant, with
the command, config, steps, wall-clock and the figures. Variants run one after another (2 shared cores:
run a second copy of this script for a second job); an existing finished run is measured, not retrained.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from train_pretrained import ckpp  # noqa: E402  (the same step runner: printed, dies with us)

KEYS = ("detection_rate", "mouth_open_gain", "direction_cosine", "identity_distance")


def figures(report_dir: str, emotion: str) -> dict:
    """{group: {metric: median, metric_lo/hi: its CI}} from a benchmark --photos report.json."""
    res = json.load(open(os.path.join(report_dir, "report.json")))
    out = {}
    for g, gs in res["groups"].items():
        ms = gs["metrics"]["ours"][emotion]
        out[g] = {"photos": gs["n_photos"], "faces": gs["n_faces"]}
        for k in KEYS:
            if k in ms:
                out[g][k] = round(ms[k]["median"], 4)
                out[g][k + "_ci"] = [round(ms[k]["median_lo"], 4), round(ms[k]["median_hi"], 4)]
        out[g]["detection_rate_mean"] = round(ms["detection_rate"]["mean"], 4)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True, help="prepared HDF5 (e.g. the pretrained data)")
    ap.add_argument("--held-out", default=None, help="folder of held-out photos [default: DATA's raw/held_out]")
    ap.add_argument("--work", required=True, help="folder for the runs")
    ap.add_argument("--config", default="demo", help="preset or JSON the variants start from")
    ap.add_argument("--steps", type=int, required=True)
    ap.add_argument("--init", default=None, help="RUN|pretrained: start every variant from these weights")
    ap.add_argument("--emotion", default="surprise")
    ap.add_argument("--variant", action="append", required=True, metavar="NAME=JSON")
    ap.add_argument("--results", default=os.path.join(ROOT, "benchmarks", "results", "bm_recipe.json"))
    args = ap.parse_args()
    held = args.held_out or os.path.join(os.path.dirname(os.path.abspath(args.data)), "raw", "held_out")
    if not os.path.isdir(held):
        sys.exit(f"no held-out photos in {held}: pass --held-out DIR")
    os.makedirs(args.work, exist_ok=True)
    for spec in args.variant:
        name, _, js = spec.partition("=")
        overrides = json.loads(js or "{}")
        base = {"preset": args.config} if not os.path.isfile(args.config) else json.load(open(args.config))
        cfg_path = os.path.join(args.work, name + ".json")
        with open(cfg_path, "w") as fh:
            json.dump({**base, **overrides}, fh)
        run = os.path.join(args.work, name)
        cmd = ["train", args.data, "--emotion", args.emotion, "--config", cfg_path, "--steps", str(args.steps),
               "--out", run, "--resume", "--quiet"] + (["--init", args.init] if args.init else [])
        t_train = ckpp(*cmd)
        report = os.path.join(run, "report_wild")
        t_bench = ckpp("benchmark", args.data, "--model", run, "--baselines", "none", "-o", report, "--photos", held)
        figs = figures(report, args.emotion)
        entry = {"variant": name, "overrides": overrides, "config": args.config, "steps": args.steps,
                 "init": args.init, "data": os.path.abspath(args.data), "held_out": os.path.abspath(held),
                 "command": "ckpp " + " ".join(cmd), "train_s": round(t_train, 1), "benchmark_s": round(t_bench, 1),
                 "when": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"), "figures": figs}
        g = figs.get(os.path.basename(os.path.normpath(held))) or next(iter(figs.values()))
        print(f"\n== {name}: face found {g['detection_rate_mean']:.2f}  mouth gain {g['mouth_open_gain']:.3f} "
              f"{g['mouth_open_gain_ci']}  cosine {g.get('direction_cosine', float('nan')):.2f}  identity "
              f"{g['identity_distance']:.3f}  (train {t_train:.0f} s)", flush=True)
        old = json.load(open(args.results)) if os.path.isfile(args.results) else {"runs": []}
        (old["runs"] if isinstance(old, dict) else old).append(entry)
        tmp = args.results + ".partial"
        with open(tmp, "w") as fh:
            json.dump(old, fh, indent=1)
            fh.write("\n")
        os.replace(tmp, args.results)


if __name__ == "__main__":
    main()
