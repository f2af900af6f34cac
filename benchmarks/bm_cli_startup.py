"""Start-up time of `ckpp --help` and `ckpp prepare --help` (lazy verbs, no torch) against a naive CLI that imports
every verb's dependencies up front (torch + the model zoo), measured in the same run.

    python benchmarks/bm_cli_startup.py [--repeat 7] [--out benchmarks/results/bm_cli_startup.json]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time


def _time(cmd: list[str], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results", "bm_cli_startup.json"))
    args = ap.parse_args()
    py = sys.executable
    cases = {
        "ckpp --help": [py, "-m", "ckpp_tools.cli", "--help"],
        "ckpp prepare --help": [py, "-m", "ckpp_tools.cli", "prepare", "--help"],
        "naive: import torch + models, then --help": [
            py, "-c", "import torch, models.training_loop, models.benchmark, ckpp_tools.prepare; "
                      "from ckpp_tools.cli import main; main(['--help'])"],
    }
    res = {name: _time(cmd, args.repeat) for name, cmd in cases.items()}
    naive = res["naive: import torch + models, then --help"]
    for name, t in res.items():
        print(f"{name:<45} {t * 1000:7.0f} ms   x{naive / t:5.1f} faster than naive")
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as fh:
        json.dump({"median_seconds": res, "speedup_vs_naive": {k: naive / v for k, v in res.items()},
                   "repeat": args.repeat}, fh, indent=2)
    print("wrote", args.out)


if __name__ == "__main__":
    main()
