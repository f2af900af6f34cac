"""The paper config proven on one CUDA machine, end to end, in one run (issue 12 §2). No network.

    bash benchmarks/gpu_check.sh                 # CUDA: <= 5 minutes; writes results/gpu_check-<gpu>.json
    bash benchmarks/gpu_check.sh --cpu-smoke     # CPU: every section at paper size, batch 1, a few steps

Sections, each recorded in the JSON (rewritten after every section, so a killed run keeps what it measured;
a failing section is recorded with its error and the run goes on):

 data     `ckpp sample --small` + `ckpp prepare --size 289` (289² stored frames, the paper's), plus a
          many-clip 289² file (tests.fakes) whose clips outnumber the loader's cache of open clips, as CK+ does
 train    `ckpp train --config paper` for --train-steps steps through the CLI (loader, bf16 + channels_last
          as the CLI defaults on CUDA, sample grid, checkpoint): samples/s from its metrics.jsonl
 step     training-step samples/s on on-device batches (benchmarks/bm_train.py): eager fp32,
          bf16 + channels_last, bf16 + channels_last + torch.compile, with first-step (compile) time and
          peak memory; the goals (>= 1,000 samples/s compiled, >= 2.5x eager fp32) are checked
 memory   peak GPU memory (allocated, reserved) and samples/s at batch 8/16/32, bf16 + channels_last
 loader   models.data throughput with 8 and 16 workers (benchmarks/bm_loader.py) against the fastest step:
          input_bound says whether the GPU would wait for data
 generate `ckpp generate` for 32 frames at 256²: the whole command (fresh process), generate_video
          (dlib + crop + model) and the model's one batched pass, fp32 (as the CLI) and bf16 + channels_last
 ddp      `torchrun --nproc-per-node 2 ... train` when 2 GPUs exist (else the JSON says why not)

--cpu-smoke runs the same sections on CPU at paper size with batch 1 and 1-3 steps (DDP as 2 gloo
processes), to show the script works where no GPU is; its figures are not GPU figures and the JSON says so.
torch.compile is skipped on CPU unless --smoke-compile (inductor's CPU build of the paper model takes
minutes on 2 cores).
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)
sys.path.insert(0, HERE)

import torch  # noqa: E402

import bm_generate  # noqa: E402
import bm_loader  # noqa: E402
import bm_train  # noqa: E402

VARIANTS = {  # label -> bm_train.build keywords
    "eager fp32": dict(),
    "bf16 + channels_last": dict(amp=torch.bfloat16, channels_last=True),
    "bf16 + channels_last + compile": dict(amp=torch.bfloat16, channels_last=True, compile_=True),
}
GOAL_SAMPLES_PER_S, GOAL_SPEEDUP = 1000.0, 2.5


def settings(smoke: bool) -> dict:
    """Sizes of every section: the CUDA run fits in ~5 minutes on one H100/H200, the smoke run in a few on 2 cores."""
    if smoke:
        return dict(subjects=3, fake_clips=4, fake_frames=6, train_steps=2, train_batch=1, train_workers=1,
                    step_batch=1, step_steps=1, step_warmup=1, memory_batches=[1], memory_steps=1,
                    loader_workers=[0, 1], loader_batch=4, loader_batches=2, gen_repeats=1, gen_warmup=0, ddp_steps=1, ddp_batch=2,
                    ddp_workers=0, log_every=1)
    return dict(subjects=6, fake_clips=136, fake_frames=10, train_steps=200, train_batch=64, train_workers=8,
                step_batch=64, step_steps=30, step_warmup=5, memory_batches=[8, 16, 32], memory_steps=5,
                loader_workers=[8, 16], loader_batch=64, loader_batches=20, gen_repeats=10, gen_warmup=1, ddp_steps=100,
                ddp_batch=64, ddp_workers=8, log_every=25)


# ---- bookkeeping ---------------------------------------------------------------------------------

class Check:
    """The JSON report, written atomically after each section; sections past the time budget are skipped."""

    def __init__(self, out_path: str, budget_s: float, report: dict):
        self.out, self.budget, self.t0, self.report = out_path, budget_s, time.perf_counter(), report

    def left(self) -> float:
        return self.budget - (time.perf_counter() - self.t0)

    def section(self, name: str, fn, *args, min_left: float = 5.0):
        if self.left() < min_left:
            self.report["sections"][name] = {"status": "skipped", "why": f"time budget of {self.budget:.0f} s spent"}
            print(f"[{name}] skipped: time budget spent", flush=True)
            self.write()
            return None
        print(f"[{name}] ...", flush=True)
        t0 = time.perf_counter()
        try:
            res = fn(*args)
            res = {"status": "ok", **(res or {})}
        except Exception as exc:  # record and go on: one broken section must not hide the others
            res = {"status": "failed", "error": f"{type(exc).__name__}: {str(exc)[-1500:]}",
                   "traceback": traceback.format_exc()[-3000:]}
            print(f"[{name}] FAILED: {res['error']}", flush=True)
        res["seconds"] = round(time.perf_counter() - t0, 1)
        self.report["sections"][name] = res
        self.write()
        print(f"[{name}] {res['status']} in {res['seconds']} s", flush=True)
        return res

    def write(self) -> None:
        self.report["wall_s"] = round(time.perf_counter() - self.t0, 1)
        os.makedirs(os.path.dirname(self.out), exist_ok=True)
        tmp = self.out + ".partial"
        with open(tmp, "w") as fh:
            json.dump(self.report, fh, indent=2, default=str)
        os.replace(tmp, self.out)


def run_cmd(args: list[str], timeout: float, log: str, env: dict | None = None) -> float:
    """Run a command in its own process group (killed whole on timeout or when we are interrupted, so no
    torchrun child or loader worker outlives this script); output to `log`. Returns wall seconds."""
    t0 = time.perf_counter()
    with open(log, "w") as fh:
        p = subprocess.Popen(args, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True, cwd=ROOT,
                             env={**os.environ, "PYTHONPATH": ROOT, "PYTHONUNBUFFERED": "1", **(env or {})})
        try:
            rc = p.wait(timeout=max(timeout, 1))
        except BaseException:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
            raise
    if rc != 0:
        with open(log) as fh:
            tail = fh.read()[-1500:]
        raise RuntimeError(f"{' '.join(args[:4])} ... exited {rc}:\n{tail}")
    return time.perf_counter() - t0


def ckpp(*args) -> list[str]:
    return [sys.executable, "-m", "ckpp_tools.cli", *map(str, args)]


def sync(device):
    bm_train.sync(device)


def peak_memory(device) -> dict:
    if device.type == "cuda":
        return {"peak_allocated_gib": round(torch.cuda.max_memory_allocated(device) / 2 ** 30, 2),
                "peak_reserved_gib": round(torch.cuda.max_memory_reserved(device) / 2 ** 30, 2)}
    # CPU: the process's high-water RSS (never goes down: a bound, not the section's own need)
    return {"process_peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20, 2)}


def reset_memory(device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def read_metrics(run_dir: str) -> list[dict]:
    with open(os.path.join(run_dir, "metrics.jsonl")) as fh:
        return [json.loads(line) for line in fh if line.strip()]


def rate(x: float) -> float:
    """Samples/s rounded for the JSON, keeping 3 significant digits of the small CPU-smoke figures."""
    return round(x, 1) if x >= 10 else float(f"{x:.3g}")


def steady_rate(lines: list[dict], batch: int) -> float:
    """Mean samples/s over the metrics windows after the first (which holds start-up: workers, autotune)."""
    steady = lines[1:] or lines
    return rate(sum(m["steps_per_s"] for m in steady) / len(steady) * batch)


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "device"


# ---- sections ------------------------------------------------------------------------------------

def sec_data(ctx) -> dict:
    from models.data import emotion_counts
    from tests.fakes import make_fake_dataset

    s, work = ctx["s"], ctx["work"]
    raw, data = os.path.join(work, "raw"), os.path.join(work, "data.h5")
    workers = max(1, min(16, os.cpu_count() or 1))
    t_sample = run_cmd(ckpp("sample", raw, "--small", "--subjects", s["subjects"], "--photos", "astronaut",
                            "--workers", workers), ctx["check"].left(), os.path.join(work, "sample.log"))
    t_prep = run_cmd(ckpp("prepare", raw, data, "--size", 289, "--workers", workers),
                     ctx["check"].left(), os.path.join(work, "prepare.log"))
    counts = emotion_counts(data, "train")
    if not counts:
        raise RuntimeError("prepare kept no training clips")
    ctx["emotion"] = counts.most_common(1)[0][0]
    ctx["data"] = data
    t0 = time.perf_counter()
    ctx["fake"] = make_fake_dataset(os.path.join(work, "many-clips.h5"), emotions=(ctx["emotion"],),
                                    n_clips=s["fake_clips"], T=s["fake_frames"], size=289, compression="gzip")
    return {"sample_s": round(t_sample, 1), "prepare_s": round(t_prep, 1), "stored_size": 289,
            "train_clips_per_emotion": dict(counts), "emotion": ctx["emotion"],
            "many_clip_file": {"clips": s["fake_clips"], "frames_per_clip": s["fake_frames"],
                               "made_s": round(time.perf_counter() - t0, 1)}}


def sec_train(ctx) -> dict:
    s, work = ctx["s"], ctx["work"]
    cfg_path = os.path.join(work, "paper-check.json")
    with open(cfg_path, "w") as fh:       # the paper preset; only logging made denser for the measurement
        json.dump({"preset": "paper", "log_every": s["log_every"]}, fh)
    run = os.path.join(work, "run")
    args = ckpp("train", ctx["data"], "--emotion", ctx["emotion"], "--config", cfg_path, "--steps", s["train_steps"],
                "--batch-size", s["train_batch"], "--workers", s["train_workers"], "--device", ctx["device"].type,
                "--out", run, "--quiet")
    wall = run_cmd(args, ctx["check"].left(), os.path.join(work, "train.log"))
    lines = read_metrics(run)
    with open(os.path.join(run, "run.json")) as fh:
        info = json.load(fh)
    ctx["run"] = run
    res = {"command": "ckpp " + " ".join(args[3:]).replace(work, "$WORK"), "wall_s": round(wall, 1),
           "steps": lines[-1]["step"], "batch": s["train_batch"], "workers": s["train_workers"],
           "amp": info.get("amp"), "channels_last": info.get("channels_last"), "compile": info.get("compile"),
           "samples_per_s_windows": [rate(m["steps_per_s"] * s["train_batch"]) for m in lines],
           "samples_per_s_steady": steady_rate(lines, s["train_batch"]), "parameters": info.get("parameters"),
           "last_losses": {k: v for k, v in lines[-1].items() if k in ("rec", "g_total", "d_g", "d_l", "tmp", "lmk")},
           "checkpoint_written": any(f.startswith("ckpt-") for f in os.listdir(run)),
           "samples_png_written": os.path.isfile(os.path.join(run, "samples", "latest.png"))}
    ctx["train_sps"] = res["samples_per_s_steady"]
    return res


def time_variant(ctx, label: str, batch_n: int, steps: int, warmup: int) -> dict:
    """bm_train's build + synthetic batch + timed steps, plus first-step time (compile) and peak memory."""
    from models.config import preset

    device = ctx["device"]
    kw = VARIANTS[label]
    cfg = preset("paper").replace(batch_size=batch_n)
    reset_memory(device)
    fam = bm_train.build("ours", cfg, device, **kw)
    b = bm_train.synthetic_batch(fam, cfg, batch_n, device, kw.get("channels_last", False))
    t0 = time.perf_counter()
    fam.train_step(b, 0)
    sync(device)
    first = time.perf_counter() - t0
    if steps >= 3:
        sec = bm_train.time_steps(fam, b, steps, max(0, warmup - 1), device)
    else:                                  # smoke: bm_train's 3 timed blocks would triple the minutes
        t0 = time.perf_counter()
        for i in range(steps):
            fam.train_step(b, 1 + i)
        sync(device)
        sec = (time.perf_counter() - t0) / steps
    r = {"batch": batch_n, "first_step_s": round(first, 2), "ms_per_step": round(sec * 1000, 2),
         "samples_per_s": rate(batch_n / sec), **peak_memory(device)}
    del fam, b
    reset_memory(device)
    return r


def sec_step(ctx) -> dict:
    s, device = ctx["s"], ctx["device"]
    labels = list(VARIANTS)
    notes = []
    if device.type != "cuda" and not ctx["smoke_compile"]:
        labels.remove("bf16 + channels_last + compile")
        notes.append("compile skipped on CPU (inductor's CPU build of the paper model takes minutes on 2 cores; "
                     "pass --smoke-compile to try it)")
    out = {}
    for label in labels:
        try:
            out[label] = time_variant(ctx, label, s["step_batch"], s["step_steps"], s["step_warmup"])
        except Exception as exc:  # e.g. compile failing: record it, measure the others
            out[label] = {"status": "failed", "error": f"{type(exc).__name__}: {str(exc)[-1000:]}"}
        print(f"  {label:32s} {out[label]}", flush=True)
    base = out.get("eager fp32", {}).get("ms_per_step")
    for r in out.values():
        if base and "ms_per_step" in r:
            r["speedup_vs_eager_fp32"] = round(base / r["ms_per_step"], 2)
    best = max((r["samples_per_s"] for r in out.values() if "samples_per_s" in r), default=None)
    ctx["step_best_sps"] = best
    comp = out.get("bf16 + channels_last + compile", {})
    goals = {"samples_per_s_compiled": comp.get("samples_per_s"), "goal_samples_per_s": GOAL_SAMPLES_PER_S,
             "speedup_compiled": comp.get("speedup_vs_eager_fp32"), "goal_speedup": GOAL_SPEEDUP}
    if device.type == "cuda" and "samples_per_s" in comp:
        goals["met"] = comp["samples_per_s"] >= GOAL_SAMPLES_PER_S and comp["speedup_vs_eager_fp32"] >= GOAL_SPEEDUP
    else:
        goals["met"] = None
        notes.append("goals apply to one H100/H200 only")
    return {"what": "one train_step (D_g + D_l update, G update with the 3 decodes of R_t) on a synthetic batch "
                    "already on the device: the model alone", "variants": out, "best_samples_per_s": best,
            "goals": goals, "notes": notes}


def sec_memory(ctx) -> dict:
    s = ctx["s"]
    label = "bf16 + channels_last" if ctx["device"].type == "cuda" else "eager fp32"
    by_batch = {}
    for b in s["memory_batches"]:
        try:
            by_batch[str(b)] = time_variant(ctx, label, b, s["memory_steps"], 1)
        except torch.cuda.OutOfMemoryError as exc:
            by_batch[str(b)] = {"status": "out of memory", "error": str(exc)[:300]}
        print(f"  batch {b}: {by_batch[str(b)]}", flush=True)
    return {"variant": label, "by_batch": by_batch,
            **({} if ctx["device"].type == "cuda" else {"note": "CPU: peak RSS of the whole process, not GPU memory"})}


def sec_loader(ctx) -> dict:
    s = ctx["s"]
    torch.set_num_threads(1)   # as bm_loader: the workers are the parallelism
    try:
        files = {}
        for name, path in (("sample (ckpp prepare)", ctx["data"]), ("many clips (289², gzip)", ctx["fake"])):
            files[name] = bm_loader.bench_file(path, [ctx["emotion"]], 256, s["loader_batch"], s["loader_batches"],
                                               s["loader_workers"])
            print(f"  {name}: {files[name]}", flush=True)
    finally:
        torch.set_num_threads(ctx["threads"])
    w = max(s["loader_workers"])
    best = min(r[f"ours_w{w}_samples_per_s"] for r in files.values())   # the harder file decides
    step = ctx.get("step_best_sps")
    return {"workers": s["loader_workers"], "batch": s["loader_batch"], "files": files,
            f"loader_samples_per_s_w{w}": best, "step_best_samples_per_s": step,
            "input_bound": None if step is None else bool(best < step),
            "note": "loader measured alone (no training process competing for the CPU cores); samples/s counts "
                    "PAIR samples (2 frames + 1 mask each), converted to model batches on the CPU"}


def sec_generate(ctx) -> dict:
    import matplotlib

    from models.checkpoint import load_run
    from models.family import Runtime
    from models.generate import generate_video, load_photo

    s, device, work, emotion = ctx["s"], ctx["device"], ctx["work"], ctx["emotion"]
    photo = os.path.join(work, "grace_hopper.jpg")          # a face no training subject was made from
    shutil.copyfile(os.path.join(matplotlib.get_data_path(), "sample_data", "grace_hopper.jpg"), photo)
    video = os.path.join(work, "generated.mp4")
    cli = run_cmd(ckpp("generate", ctx["run"], photo, "--emotion", emotion, "--frames", 32, "-o", video,
                       "--device", device.type), ctx["check"].left(), os.path.join(work, "generate.log"))
    family, meta = load_run(ctx["run"], device=str(device))
    image = load_photo(photo)
    S = family.cfg.image_size
    first = bm_generate.face_crop(S).to(device)
    w = torch.ones(1, 1, device=device)
    reps = {"generate_video (dlib + crop + model)": s["gen_repeats"], "model: one batched pass, fp32": s["gen_repeats"]}
    cases = {"generate_video (dlib + crop + model)": lambda: generate_video(family, image, {emotion: 1.0}, 32),
             "model: one batched pass, fp32": lambda: family.generate(first, w, 32)}
    with torch.inference_mode():
        times = bm_generate.timed(cases, reps, device, warmup=s["gen_warmup"])
        family.attach(Runtime(device=device, amp_dtype=torch.bfloat16, channels_last=True), train=False)
        first_cl = first.contiguous(memory_format=torch.channels_last)
        times.update(bm_generate.timed({"model: one batched pass, bf16 + channels_last":
                                        lambda: family.generate(first_cl, w, 32)},
                                       {"model: one batched pass, bf16 + channels_last": s["gen_repeats"]}, device,
                                       warmup=s["gen_warmup"]))
    res = {k: round(sorted(v)[len(v) // 2] * 1000, 1) for k, v in times.items()}
    return {"frames": 32, "image_size": S, "checkpoint_step": meta["step"],
            "ckpp_generate_command_s": round(cli, 2),
            "median_ms": res, "repeats": s["gen_repeats"], "warmup_calls": s["gen_warmup"],
            "note": "the command's time includes Python start-up, imports, reading the checkpoint (with its "
                    f"optimiser state), dlib and writing the .mp4; median_ms are in-process, after "
                    f"{s['gen_warmup']} warm-up call(s) per case"}


def sec_ddp(ctx) -> dict:
    s, device, work = ctx["s"], ctx["device"], ctx["work"]
    n = torch.cuda.device_count() if device.type == "cuda" else 0
    if device.type == "cuda" and n < 2:
        return {"ran": False, "gpus": n, "why": f"only {n} GPU on this machine: torchrun --nproc-per-node 2 needs 2"}
    run = os.path.join(work, "run-ddp")
    args = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
            "-m", "ckpp_tools.cli", "train", ctx["data"], "--emotion", ctx["emotion"],
            "--config", os.path.join(work, "paper-check.json"), "--steps", str(s["ddp_steps"]),
            "--batch-size", str(s["ddp_batch"]), "--workers", str(s["ddp_workers"]), "--device", device.type,
            "--out", run, "--quiet"]
    env = {"OMP_NUM_THREADS": "1"} if device.type == "cpu" else {}
    wall = run_cmd(args, ctx["check"].left(), os.path.join(work, "ddp.log"), env=env)
    lines = read_metrics(run)
    sps = steady_rate(lines, s["ddp_batch"])
    single = ctx.get("train_sps")
    return {"ran": True, "processes": 2, "backend": "nccl" if device.type == "cuda" else "gloo (CPU smoke)",
            "gpus": n, "steps": lines[-1]["step"], "global_batch": s["ddp_batch"], "wall_s": round(wall, 1),
            "samples_per_s_steady": sps,
            "scaling_vs_one_process": None if not single or device.type != "cuda" else round(sps / single, 2),
            "checkpoint_written": any(f.startswith("ckpt-") for f in os.listdir(run))}


# ---- main ----------------------------------------------------------------------------------------

def environment(device) -> dict:
    env = {"host": platform.node(), "cpus": os.cpu_count(), "python": platform.python_version(),
           "torch": torch.__version__, "load_avg": os.getloadavg(),
           "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
    if device.type == "cuda":
        p = torch.cuda.get_device_properties(device)
        env.update(gpu=torch.cuda.get_device_name(device), gpus=torch.cuda.device_count(), cuda=torch.version.cuda,
                   cudnn=torch.backends.cudnn.version(), gpu_memory_gib=round(p.total_memory / 2 ** 30, 1))
    try:
        env["commit"] = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                                       text=True, timeout=5).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        env["commit"] = None
    return env


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cpu-smoke", action="store_true", help="run every section on CPU at paper size, batch 1, tiny steps")
    ap.add_argument("--smoke-compile", action="store_true", help="with --cpu-smoke: also torch.compile on CPU (slow)")
    ap.add_argument("--budget", type=float, default=None, help="seconds for the whole run [default: 290 CUDA, 1200 smoke]")
    ap.add_argument("--train-steps", type=int, default=None, help="steps of the `ckpp train` section")
    ap.add_argument("--work", default=None, help="scratch folder (kept); default: a temporary one, removed")
    ap.add_argument("--out", default=None, help="JSON path [default: benchmarks/results/gpu_check-<device>.json]")
    ap.add_argument("--note", action="append", default=[], help="a line for the JSON's notes (repeatable)")
    a = ap.parse_args(argv)

    if not a.cpu_smoke and not torch.cuda.is_available():
        sys.exit("gpu_check: this torch sees no CUDA GPU (torch %s, cuda %s). Run it on a CUDA machine, or pass "
                 "--cpu-smoke to check the script itself on CPU." % (torch.__version__, torch.version.cuda))
    device = torch.device("cpu" if a.cpu_smoke else "cuda")
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    s = settings(a.cpu_smoke)
    if a.train_steps:
        s["train_steps"] = a.train_steps
    name = "cpu-smoke" if a.cpu_smoke else slug(torch.cuda.get_device_name(device))
    out = a.out or os.path.join(HERE, "results", f"gpu_check-{name}.json")
    report = {"benchmark": "gpu_check", "config": "paper", "device": name,
              "label": ("CPU SMOKE TEST: the script run end to end on CPU at paper size with batch 1 and a few "
                        "steps. These are NOT GPU figures; GPU figures come from running it on a CUDA machine.")
              if a.cpu_smoke else "CUDA run of the paper config",
              "environment": environment(device), "settings": s, "notes": list(a.note), "sections": {}}
    check = Check(out, a.budget or ((2100 if a.smoke_compile else 1200) if a.cpu_smoke else 290), report)
    work = a.work or tempfile.mkdtemp(prefix="ckpp-gpu-check-")
    os.makedirs(work, exist_ok=True)
    ctx = {"s": s, "device": device, "work": work, "check": check, "smoke_compile": a.smoke_compile,
           "threads": torch.get_num_threads()}
    old = signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        # step and memory use synthetic batches: they run even where the data section cannot (e.g. no dlib)
        plan = [("data", sec_data, None), ("train", sec_train, "data"), ("step", sec_step, None),
                ("memory", sec_memory, None), ("loader", sec_loader, "data"), ("generate", sec_generate, "run"),
                ("ddp", sec_ddp, "data")]
        for name, fn, needs in plan:
            if needs and needs not in ctx:
                why = {"data": "no data (the data section failed)", "run": "no trained run (the train section failed)"}
                report["sections"][name] = {"status": "skipped", "why": why[needs]}
                check.write()
                continue
            check.section(name, fn, ctx, min_left=0 if name == "data" else 5.0)
    finally:
        signal.signal(signal.SIGTERM, old)
        report["finished"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        check.write()
        if a.work is None:
            shutil.rmtree(work, ignore_errors=True)
    bad = [k for k, v in report["sections"].items() if v.get("status") != "ok"]
    print(f"wrote {out} in {report['wall_s']:.0f} s" + (f"; not ok: {', '.join(bad)}" if bad else "; all sections ok"))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
