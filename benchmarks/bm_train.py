"""Training-step throughput (samples/s) of every registered family, and generation latency for 10 frames.

    python benchmarks/bm_train.py                               # CPU: tiny config
    python benchmarks/bm_train.py --models ours --steps 30      # on a CUDA machine: paper config variants

A step is what the training loop runs per batch (ours: D_g + D_l update, G update with the three generator
outputs of R_t), on synthetic batches already on the device, so only the model is timed (the loader is
benchmarks/bm_loader.py). Families whose module is missing are skipped with a note.

- CPU, tiny config (64², batch 8): eager fp32. For ours also the naive R_t: V(a), V(a-Δa), V(a+Δa) as
  three full generator passes (encoders run 3×) instead of one encoder pass and a 3×-batched decode.
- CUDA, paper config (256², batch --batch): eager fp32, bf16 autocast + channels_last, and the same with
  torch.compile (--no-compile to skip), all in the same run.
- Generation latency: first frame + emotion -> 10 frames, batch 1 (ours: one batched pass; baselines: their
  recurrent roll-out), median of repeats.

Writes JSON (default benchmarks/results/bm_train.json) and prints ratios.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402
from torch import nn  # noqa: E402


def synthetic_batch(family, cfg, batch: int, device, channels_last: bool) -> dict:
    g = torch.Generator().manual_seed(0)
    S = cfg.image_size
    n = len(family.emotions)

    def img(*shape):
        x = (torch.rand(*shape, generator=g) * 2 - 1).to(device)
        return x.contiguous(memory_format=torch.channels_last) if channels_last and x.dim() == 4 else x

    emo = torch.randint(0, n, (batch,), generator=g).to(device)
    if family.clip_frames:
        K = family.clip_frames
        frames = img(batch, K, 3, S, S)
        first = frames[:, 0].contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
        return {"frames": frames, "input": first,
                "landmarks": torch.rand(batch, K, 68, 2, generator=g).to(device),
                "masks": (torch.rand(batch, K, 1, S, S, generator=g) > 0.8).float().to(device),
                "degrees": torch.linspace(0, 1, K).expand(batch, K).contiguous().to(device), "emotion": emo}
    return {"input": img(batch, 3, S, S), "target": img(batch, 3, S, S), "degree": torch.rand(batch, generator=g).to(device),
            "emotion": emo, "landmarks": torch.rand(batch, 68, 2, generator=g).to(device),
            "input_landmarks": torch.rand(batch, 68, 2, generator=g).to(device),
            "mask": (torch.rand(batch, 1, S, S, generator=g) > 0.8).float().to(device)}


class ThreePassG(nn.Module):
    """The naive R_t: each of the K degree vectors gets its own full generator pass (encoders included)."""

    def __init__(self, G):
        super().__init__()
        self.G = G

    def forward(self, image, a):
        if a.dim() == 2:
            return self.G(image, a)
        outs = [self.G(image, a[:, k]) for k in range(a.shape[1])]
        frames = torch.stack([o[0] for o in outs], 1)
        lmk = None if outs[0][1] is None else torch.stack([o[1] for o in outs], 1)
        return frames, lmk


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_steps(family, batch, steps: int, warmup: int, device) -> float:
    """Seconds per train_step (median of 3 timed blocks after warm-up)."""
    for i in range(warmup):
        family.train_step(batch, i)
    sync(device)
    blocks = []
    per = max(1, steps // 3)
    for _ in range(3):
        t0 = time.perf_counter()
        for i in range(per):
            out = family.train_step(batch, i)
        float(next(iter(out.values())))          # materialise (GPU sync through .item())
        sync(device)
        blocks.append((time.perf_counter() - t0) / per)
    return sorted(blocks)[1]


def time_generation(family, cfg, device, repeats: int = 5) -> float:
    family.train_mode(False)
    first = torch.rand(1, 3, cfg.image_size, cfg.image_size, device=device) * 2 - 1
    w = torch.zeros(1, len(family.emotions), device=device)
    w[0, 0] = 1
    family.generate(first, w, 10)
    sync(device)
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        family.generate(first, w, 10)
        sync(device)
        ts.append(time.perf_counter() - t0)
    family.train_mode(True)
    return sorted(ts)[len(ts) // 2]


def build(name, cfg, device, *, amp=None, channels_last=False, compile_=False, naive=False):
    from models.family import Runtime
    from models.registry import get_family

    torch.manual_seed(0)
    cls = get_family(name)
    emotions = ["surprise"] if not cls.multi_emotion else ["surprise", "happy"]
    family = cls(cfg, emotions)
    rt = Runtime(device=device, amp_dtype=amp, channels_last=channels_last, compile=compile_)
    family.attach(rt, train=True)
    if naive:
        family._wrapped["G"] = ThreePassG(family.G)
    return family


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="ours,convlstm,hp")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--config", default=None, help="tiny | paper | FILE.json  [default: tiny on CPU, paper on CUDA]")
    ap.add_argument("--batch", type=int, default=None, help="[default: the config's batch_size]")
    ap.add_argument("--steps", type=int, default=None, help="timed steps [default: 15 CPU, 30 CUDA]")
    ap.add_argument("--no-compile", action="store_true")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "bm_train.json"))
    a = ap.parse_args()
    from models.config import load_config
    from models.registry import FAMILIES, get_family

    if a.threads:
        torch.set_num_threads(a.threads)
    device = torch.device("cuda" if (a.device == "auto" and torch.cuda.is_available()) else
                          ("cpu" if a.device == "auto" else a.device))
    cuda = device.type == "cuda"
    cfg = load_config(a.config or ("paper" if cuda else "tiny"))
    batch_n = a.batch or cfg.batch_size
    cfg = cfg.replace(batch_size=batch_n)
    steps = a.steps or (30 if cuda else 15)
    warmup = 5 if cuda else 2
    variants = [("eager fp32", dict())]
    if cuda:
        torch.backends.cudnn.benchmark = True
        variants.append(("bf16 + channels_last", dict(amp=torch.bfloat16, channels_last=True)))
        if not a.no_compile:
            variants.append(("bf16 + channels_last + compile", dict(amp=torch.bfloat16, channels_last=True, compile_=True)))
    results, notes = [], []
    for name in [m.strip() for m in a.models.split(",") if m.strip()]:
        if name not in FAMILIES:
            notes.append(f"{name}: unknown family, skipped")
            continue
        try:
            get_family(name)
        except Exception as exc:  # a family being built elsewhere: note and go on
            notes.append(f"{name}: not available ({str(exc).splitlines()[0]}), skipped")
            continue
        runs = list(variants)
        if name == "ours" and not cuda:
            runs.append(("naive R_t (3 full G passes), eager fp32", dict(naive=True)))
        base = None
        for label, kw in runs:
            try:
                fam = build(name, cfg, device, **kw)
                b = synthetic_batch(fam, cfg, batch_n, device, kw.get("channels_last", False))
                sec = time_steps(fam, b, steps, warmup, device)
                gen = time_generation(fam, cfg, device) if not kw.get("naive") else None
            except Exception as exc:  # e.g. compile unavailable: record, keep going
                notes.append(f"{name} [{label}]: failed: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}")
                continue
            r = {"family": name, "variant": label, "device": str(device), "image_size": cfg.image_size,
                 "batch": batch_n, "ms_per_step": round(sec * 1000, 2), "samples_per_s": round(batch_n / sec, 1),
                 "gen10_ms": None if gen is None else round(gen * 1000, 2),
                 "native_frames": getattr(fam, "native_frames", None),
                 "parameters": sum(fam.num_parameters().values())}
            if base is None:
                base = r["samples_per_s"]
            r["speedup_vs_eager_fp32"] = round(r["samples_per_s"] / base, 2)
            results.append(r)
            print(f"{name:9s} {label:42s} {r['samples_per_s']:>9.1f} samples/s  {r['ms_per_step']:>8.1f} ms/step"
                  + (f"  gen 10 frames {r['gen10_ms']:.1f} ms" if gen is not None else "")
                  + f"  x{r['speedup_vs_eager_fp32']}", flush=True)
            del fam, b
            if cuda:
                torch.cuda.empty_cache()
    ours = {r["variant"]: r for r in results if r["family"] == "ours"}
    if "eager fp32" in ours and any(k.startswith("naive") for k in ours):
        naive = next(v for k, v in ours.items() if k.startswith("naive"))
        print(f"ours one-encoder-pass R_t vs naive 3 passes: {ours['eager fp32']['samples_per_s'] / naive['samples_per_s']:.2f}x")
    gens = {r["family"]: r["gen10_ms"] for r in results if r["variant"] == "eager fp32" and r["gen10_ms"]}
    if "ours" in gens:
        for k, v in gens.items():
            if k != "ours":
                print(f"generation of 10 frames: {k} {v:.1f} ms vs ours {gens['ours']:.1f} ms ({v / gens['ours']:.2f}x)")
    for n in notes:
        print("note:", n)
    out = {"host": platform.node(), "device": torch.cuda.get_device_name() if cuda else platform.processor() or "cpu",
           "cpus": os.cpu_count(), "load_avg": os.getloadavg(), "torch": torch.__version__, "threads": torch.get_num_threads(),
           "config": a.config or ("paper" if cuda else "tiny"), "results": results, "notes": notes}
    os.makedirs(os.path.dirname(a.out), exist_ok=True)
    with open(a.out, "w") as fh:
        json.dump(out, fh, indent=2)
    print("wrote", a.out)


if __name__ == "__main__":
    main()
