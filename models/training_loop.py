"""The one training loop every model family runs in (ours and the baselines): a function of the config.

    run_dir = train(cfg, "ours", ["surprise"], ["out.h5"], "runs/ours-surprise")

It owns: device choice, torchrun/DDP (rank-0 logging and checkpoints, per-rank data shards, map_location),
AMP (bf16 autocast; fp16 with a GradScaler), channels_last, torch.compile, the data loader, metrics.jsonl,
sample grids, atomic checkpoints and exact resume. The family owns the networks and one optimisation step
(models.family). The same command runs on one CPU process or under `torchrun --nproc_per_node=N`.

Run folder: config.json (resolved), run.json (model, emotions, data files, command, versions, runtime),
metrics.jsonl (one line per log_every steps: each loss term, steps/s, samples/s), samples/step-*.png
(input | generated a=0…1 | ground truth), ckpt-<step>.pt + latest.
"""
from __future__ import annotations

import datetime
import json
import math
import os
import signal
import sys
import time

import numpy as np
import torch

from ckpp_tools.errors import CkppError, UsageError

from . import checkpoint as ck
from .atomic import append_bytes
from .config import Config, from_dict
from .data import ClipDataset, make_loader, to_model_batch
from .family import ModelFamily, Runtime
from .registry import get_family


# ---- process setup -------------------------------------------------------------------------------

def resolve_device(requested: str = "auto") -> torch.device:
    if requested in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError("CUDA was requested but this torch sees no GPU", path="--device",
                         fix="use --device cpu (or auto), or install a CUDA build of torch on a GPU machine")
    if requested not in ("cpu",) and not requested.startswith("cuda"):
        raise UsageError(f"unknown device {requested!r}", path="--device", fix="use auto, cpu or cuda")
    return torch.device(requested)


def init_distributed(requested: str = "auto") -> tuple[torch.device, int, int, int]:
    """(device, rank, world_size, local_rank); starts the process group under torchrun (WORLD_SIZE>1):
    NCCL with one GPU per process, else gloo on CPU."""
    import torch.distributed as dist

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return resolve_device(requested), 0, 1, 0
    rank, local = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(requested)
    if device.type == "cuda":
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return device, rank, world, local


def make_runtime(cfg: Config, device: torch.device, world: int, rank: int, local: int) -> Runtime:
    amp = cfg.amp
    if amp == "auto":
        amp = "bf16" if device.type == "cuda" else "none"
    if amp == "fp16" and device.type != "cuda":
        raise UsageError("fp16 autocast needs CUDA", path="--amp", fix="use --amp bf16 or none on CPU")
    dtype = {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}[amp]
    scaler = torch.amp.GradScaler("cuda") if amp == "fp16" else None
    cl = cfg.channels_last == "on" or (cfg.channels_last == "auto" and device.type == "cuda")
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel as DDP

        def wrap(m):
            return DDP(m, device_ids=[device.index] if device.type == "cuda" else None)
    else:
        def wrap(m):
            return m
    return Runtime(device=device, amp_dtype=dtype, scaler=scaler, channels_last=cl, compile=cfg.compile,
                   world_size=world, rank=rank, wrap=wrap)


# ---- small helpers -------------------------------------------------------------------------------

def _sigterm_to_interrupt():
    """Turn SIGTERM into KeyboardInterrupt (main thread only); returns the previous handler or None."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        return None

    def handler(signum, frame):
        raise KeyboardInterrupt

    return signal.signal(signal.SIGTERM, handler)


def _write_json(path, obj) -> None:
    ck.atomic_write_bytes(path, (json.dumps(obj, indent=2, default=str) + "\n").encode())


def _write_png(path, image: np.ndarray) -> None:
    import imageio.v3 as iio

    ck.atomic_write_bytes(path, iio.imwrite("<bytes>", image, extension=".png"))


def _truncate_metrics(path: str, step: int) -> None:
    """Drop metrics lines past the checkpoint we resume from (a killed run logged beyond it)."""
    if not os.path.isfile(path):
        return
    keep = []
    with open(path) as fh:
        for line in fh:
            try:
                if json.loads(line)["step"] <= step:
                    keep.append(line if line.endswith("\n") else line + "\n")
            except (ValueError, KeyError):
                continue
    ck.atomic_write_bytes(path, "".join(keep).encode())


def data_info(paths: list[str]) -> list[dict]:
    import h5py

    out = []
    for p in paths:
        with h5py.File(p, "r") as f:
            out.append({"path": os.path.abspath(p), "schema_version": int(f.attrs.get("schema_version", -1)),
                        "image_size": int(f.attrs.get("image_size", 0)), "created": str(f.attrs.get("created", ""))})
    return out


def sample_batch(cfg: Config, family: ModelFamily, paths, emotions, device, channels_last) -> dict | None:
    """A fixed, un-augmented batch (val clips, else train) with the peak as target, for the sample grids."""
    for split in ("val", "train"):
        ds = ClipDataset(paths, emotions, split, image_size=cfg.image_size, crop_fraction=cfg.crop_fraction,
                         clip_frames=family.clip_frames, augment=False, target="peak", seed=cfg.seed, require_all=False,
                         crop_from=cfg.crop_from)
        if len(ds):
            # one clip per emotion first, so a multi-emotion grid shows each
            order = sorted(range(len(ds)), key=lambda i: (ds.clips[i][2], i))
            picks, seen = [], set()
            for i in order:
                if ds.clips[i][2] not in seen:
                    picks.append(i)
                    seen.add(ds.clips[i][2])
            picks += [i for i in range(len(ds)) if i not in picks]
            raw = torch.utils.data.default_collate([ds[i] for i in picks[:4]])
            return to_model_batch(raw, device, channels_last)
    return None


# ---- the loop ------------------------------------------------------------------------------------

def train(cfg: Config, model: str, emotions: list[str], data: list[str], out_dir: str, **kw) -> dict:
    """`_train` holding OUT_DIR.lock (rank 0): two runs writing one run folder (e.g. the same `--resume` typed
    twice) would interleave metrics and overwrite each other's checkpoints; the second one stops with the
    holder's pid instead. CKPP_NO_LOCK=1 skips it (filesystems without locks)."""
    if int(os.environ.get("RANK", "0")) != 0:
        return _train(cfg, model, emotions, data, out_dir, **kw)
    from ckpp_tools.locking import OutputLock

    from ckpp_tools.disk_space import explained, writing

    with writing(out_dir):
        os.makedirs(os.path.dirname(os.path.abspath(out_dir)) or ".", exist_ok=True)
    with OutputLock(os.path.abspath(out_dir), what="ckpp train"), explained(note=lambda: _kept(out_dir)):
        return _train(cfg, model, emotions, data, out_dir, **kw)


def _kept(out_dir: str) -> str:
    """What a run stopped by a full disk leaves for --resume (its newest complete checkpoint)."""
    ckpts = ck.list_checkpoints(out_dir) if os.path.isdir(out_dir) else []
    if not ckpts:
        return "no checkpoint was written yet: --resume starts the run over"
    return f"kept {os.path.basename(ckpts[-1])}, the newest complete checkpoint: --resume continues from it"


def _train(cfg: Config, model: str, emotions: list[str], data: list[str], out_dir: str, *, resume: bool = False,
           device: str = "auto", overrides: dict | None = None, command: str | None = None,
           progress: bool = True, init: str | None = None) -> dict:
    """Train `model` on `data` for `emotions` into `out_dir`; returns {"run_dir", "step", "metrics"}.

    resume=True continues from out_dir's newest checkpoint with ITS config (plus `overrides`, e.g. a new
    max_steps) and the same data stream, so an interrupted run ends where an uninterrupted one would.
    init: a run folder, checkpoint or `pretrained[:NAME]` whose weights start this run (fine-tuning; the
    optimiser starts fresh; discriminators missing from it start from their init). Ignored on resume."""
    device_, rank, world, local = init_distributed(device)
    is_main = rank == 0
    out_dir = os.path.abspath(out_dir)
    data = [os.path.abspath(p) for p in data]
    ckpt = None
    if resume:
        try:
            ckpt = ck.read_checkpoint(out_dir, map_location=device_)
        except CkppError:
            if os.path.isdir(out_dir) and ck.list_checkpoints(out_dir):
                raise
            ckpt = None    # nothing to resume yet: a fresh start (so `--resume` is safe to always pass)
        if ckpt is not None:
            if ckpt["family"] != model or list(ckpt["emotions"]) != list(emotions):
                raise UsageError(f"--resume: the run in {out_dir} is {ckpt['family']} on {', '.join(ckpt['emotions'])}, "
                                 f"not {model} on {', '.join(emotions)}", path=out_dir,
                                 fix="resume with the run's own --model/--emotion, or use another --out")
            cfg = from_dict(ckpt["config"]).replace(**(overrides or {}))
    family_cls = get_family(model)
    if not family_cls.multi_emotion and len(emotions) > 1:
        raise UsageError(f"model {model!r} is trained per expression (as in the paper), got {len(emotions)} emotions",
                         path="--emotion", fix=f"train one {model} run per emotion")
    if cfg.batch_size % world:
        raise UsageError(f"batch_size {cfg.batch_size} is not divisible by {world} processes", path="--batch-size",
                         fix=f"use a multiple of {world}")
    per_rank = cfg.batch_size // world

    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)
    family = family_cls(cfg, list(emotions))
    ds = ClipDataset(data, list(emotions), "train", image_size=cfg.image_size, crop_fraction=cfg.crop_fraction,
                     clip_frames=family.clip_frames, flip=cfg.flip, seed=cfg.seed, color_jitter=cfg.color_jitter,
                     gray_prob=cfg.gray_prob, scale_jitter=cfg.scale_jitter, peak_bias=cfg.peak_bias,
                     crop_from=cfg.crop_from)
    # checked here (names only trained expressions) so a bad one fails before the run folder is written
    draw_order = ds.epoch_order(cfg.emotion_repeats) if cfg.emotion_repeats else None
    max_steps = cfg.max_steps
    if cfg.epochs:
        max_steps = math.ceil(cfg.epochs * len(ds) / cfg.batch_size)

    init_info = None
    if ckpt is not None:
        ck.restore(family, ckpt, optimizers=False, rng=False)
    elif init:
        start_from = ck.read_checkpoint(init, map_location="cpu")
        if init == "pretrained" and list(start_from["emotions"]) != list(emotions) and len(emotions) == 1:
            # `pretrained` names the joint model; a one-expression run starts from that expression's own weights
            from .pretrained import available

            if f"{model}-{emotions[0]}" in available():
                init = f"pretrained:{model}-{emotions[0]}"
                start_from = ck.read_checkpoint(init, map_location="cpu")
        if start_from["family"] != model or list(start_from["emotions"]) != list(emotions):
            raise UsageError(f"--init: {init} is {start_from['family']} on {', '.join(start_from['emotions'])}, "
                             f"not {model} on {', '.join(emotions)}", path=start_from["path"],
                             fix="start from weights of the same model and emotions, or drop --init")
        init_info = {"path": start_from["path"], "step": int(start_from.get("step", 0)),
                     "modules": sorted(start_from["modules"])}
        src_output = (start_from.get("config") or {}).get("output", "pixels")
        if model == "ours" and src_output != cfg.output:
            # pixel weights into a warp generator (or back): all but the decoder's last layer
            init_info["skipped"] = ck.restore_across_outputs(family, start_from)
            init_info["from_output"] = src_output
            if is_main:
                print(f"--init: {src_output} weights into an output={cfg.output} generator; not loaded (fresh "
                      f"init): {', '.join(init_info['skipped'])}", file=sys.stderr, flush=True)
        else:
            ck.restore(family, start_from, optimizers=False, rng=False, optional=("D", "D_g", "D_l"))
            src_residual = (start_from.get("config") or {}).get("residual", "colour")
            if model == "ours" and cfg.output == "warp" and src_residual != cfg.residual:
                # a blended colour means nothing as a change (or back): those channels start again from zero
                init_info["reset"] = ck.reset_residual(family)
                init_info["from_residual"] = src_residual
                if is_main:
                    print(f"--init: residual={src_residual} weights into a residual={cfg.residual} generator; "
                          f"its residual channels start from zero: {init_info['reset']}", file=sys.stderr, flush=True)
    runtime = make_runtime(cfg, device_, world, rank, local)
    family.attach(runtime, train=True)
    start = 0
    if ckpt is not None:
        ck.restore(family, ckpt, optimizers=True, scaler=runtime.scaler, rng=True)
        start = int(ckpt["step"])

    metrics_path = os.path.join(out_dir, "metrics.jsonl")
    info = data_info(data)
    if is_main:
        os.makedirs(os.path.join(out_dir, "samples"), exist_ok=True)
        if ckpt is not None:
            _truncate_metrics(metrics_path, start)
        _write_json(os.path.join(out_dir, "config.json"), {**cfg.to_dict(), "max_steps": max_steps})
        _write_json(os.path.join(out_dir, "run.json"), {
            "model": model, "emotions": list(emotions), "data": info, "command": command or " ".join(sys.argv),
            "versions": ck.versions(), "device": str(device_), "world_size": world,
            "amp": str(runtime.amp_dtype).replace("torch.", "") if runtime.amp_dtype else "none",
            "channels_last": runtime.channels_last, "compile": runtime.compile, "per_rank_batch": per_rank,
            "train_clips": len(ds), "clips_per_emotion": dict(ds.counts), "max_steps": max_steps,
            "resumed_from_step": start if ckpt is not None else None,
            "init": init_info,
            "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "parameters": family.num_parameters(),
        })
    grid_batch = sample_batch(cfg, family, data, emotions, device_, runtime.channels_last) if is_main else None

    loader = make_loader(ds, per_rank, cfg.num_workers, seed=cfg.seed, rank=rank, world_size=world,
                         start_draw=start * per_rank, pin_memory=device_.type == "cuda", order=draw_order)
    data_meta = {"path": info[0]["path"] if len(info) == 1 else [i["path"] for i in info],
                 "schema_version": info[0]["schema_version"]}

    def save(step, last):
        if is_main:
            ck.save_checkpoint(out_dir, family, step, keep=cfg.keep_checkpoints, draws=step * per_rank,
                               data=data_meta, scaler=runtime.scaler, metrics=last)

    def save_samples(step):
        if is_main and grid_batch is not None:
            img = family.sample_images(grid_batch)
            _write_png(os.path.join(out_dir, "samples", f"step-{step:08d}.png"), img)
            _write_png(os.path.join(out_dir, "samples", "latest.png"), img)

    from tqdm.auto import tqdm

    bar = tqdm(total=max_steps, initial=start, disable=not (is_main and progress), dynamic_ncols=True,
               desc=f"train {model} {'+'.join(emotions)}", unit="step")
    sums: dict[str, torch.Tensor] = {}
    n_acc, t_win, last = 0, time.perf_counter(), {}
    step = start
    it = iter(loader)
    old_term = _sigterm_to_interrupt()      # cluster pre-emption (SIGTERM) saves a checkpoint like Ctrl-C
    try:
        while step < max_steps:
            raw = next(it)
            batch = to_model_batch(raw, device_, runtime.channels_last)
            if cfg.lr_decay != "none":
                lr = cfg.lr_at(step, max_steps)
                for opt in family.optimizers.values():
                    for group in opt.param_groups:
                        group["lr"] = lr
            out = family.train_step(batch, step)
            if runtime.scaler is not None:
                runtime.scaler.update()
            step += 1
            for k, v in out.items():
                v = v.detach().float() if torch.is_tensor(v) else torch.tensor(float(v))
                sums[k] = sums.get(k, 0) + v
            n_acc += 1
            bar.update(1)
            if step % cfg.log_every == 0 or step == max_steps:
                keys = sorted(sums)
                vec = torch.stack([sums[k].to(device_) for k in keys]) / n_acc
                if world > 1:
                    import torch.distributed as dist

                    dist.all_reduce(vec)
                    vec /= world
                vals = vec.cpu().tolist()
                dt = time.perf_counter() - t_win
                last = {"step": step, "epoch": round(step * cfg.batch_size / max(len(ds), 1), 3),
                        **{k: round(v, 6) for k, v in zip(keys, vals)},
                        "steps_per_s": round(n_acc / dt, 3), "samples_per_s": round(n_acc * cfg.batch_size / dt, 1)}
                if cfg.lr_decay != "none":
                    last["lr"] = cfg.lr_at(step - 1, max_steps)
                if is_main:
                    append_bytes(metrics_path, (json.dumps(last) + "\n").encode())   # a whole line or none
                    bar.set_postfix({k: f"{last[k]:.3g}" for k in ("g_total", "rec", "d_g") if k in last})
                sums, n_acc, t_win = {}, 0, time.perf_counter()
            if step % cfg.sample_every == 0 or step == max_steps:
                save_samples(step)
            if step % cfg.ckpt_every == 0 or step == max_steps:
                save(step, last)
    except KeyboardInterrupt:
        save(step, last)
        bar.close()
        raise CkppError(f"interrupted at step {step}; checkpoint saved", path=out_dir,
                        fix="continue with the same command plus --resume")
    finally:
        bar.close()
        del it
        if old_term is not None:
            signal.signal(signal.SIGTERM, old_term)
    if start == max_steps and is_main and not ck.list_checkpoints(out_dir):
        save(step, last)
    if world > 1:
        import torch.distributed as dist

        dist.barrier()
        dist.destroy_process_group()
    return {"run_dir": out_dir, "step": step, "metrics": last}
