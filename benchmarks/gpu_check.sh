#!/usr/bin/env bash
# The paper config on one CUDA machine in <= 5 minutes, no network (issue 12 §2): sample + prepare at 289²,
# `ckpp train --config paper`, step samples/s (eager fp32 | bf16 + channels_last | + compile), peak memory at
# batch 8/16/32, loader throughput at 8/16 workers, `ckpp generate` latency (32 frames, 256²), torchrun on 2 GPUs.
#
#   bash benchmarks/gpu_check.sh                  # on a CUDA machine -> benchmarks/results/gpu_check-<gpu>.json
#   bash benchmarks/gpu_check.sh --cpu-smoke      # anywhere: every section on CPU, batch 1 -> gpu_check-cpu-smoke.json
#
# Needs only the project's own dependencies (a CUDA build of torch on the GPU machine); runs from the
# source tree without installing it. PYTHON picks the interpreter (default: python3). Options: see
# `python benchmarks/gpu_check.py --help`. The hard stop below backs up the script's own time budget.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
limit=300
for arg in "$@"; do if [[ "$arg" == "--cpu-smoke" ]]; then limit=2400; fi; done
exec timeout --signal=TERM --kill-after=20 "$limit" "${PYTHON:-python3}" benchmarks/gpu_check.py "$@"
