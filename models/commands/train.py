"""`ckpp train`: train the paper's model (or a baseline) on prepared data. torch is imported inside."""
from __future__ import annotations

import os
import re
import sys

import click

from ckpp_tools.disk_space import translate


def default_out(model: str, emotions: list[str], resume: bool, root: str = "runs") -> str:
    """runs/<model>-<emotions>, or the next free -N; with --resume the newest existing one."""
    base = os.path.join(root, f"{model}-{'+'.join(emotions)}")
    existing = [base] if os.path.isdir(base) else []
    if os.path.isdir(root):
        pat = re.compile(re.escape(os.path.basename(base)) + r"-(\d+)$")
        nums = sorted(int(m.group(1)) for d in os.listdir(root) if (m := pat.match(d)))
        existing += [f"{base}-{n}" for n in nums]
    if resume:
        return existing[-1] if existing else base
    if not existing or not os.listdir(base if os.path.isdir(base) else root):
        return base
    last = existing[-1]
    n = int(last.rsplit("-", 1)[1]) + 1 if last != base else 2
    return f"{base}-{n}"


@click.command(context_settings={"show_default": True})
@click.argument("data", nargs=-1, type=click.Path(dir_okay=False))
@click.option("--emotion", "emotions", multiple=True, required=True,
              help="Expression to learn; repeat for a joint model (ours), e.g. --emotion happy --emotion anger.")
@click.option("--model", default="ours", type=click.Choice(["ours", "convlstm", "hp"]), help="Model family.")
@click.option("--config", "config_spec", default=None,
              help="tiny | paper | FILE.json  [default: tiny on CPU, paper on CUDA]")
@click.option("--out", default=None, help="Run folder  [default: runs/<model>-<emotions>[-N]]")
@click.option("--resume", is_flag=True, help="Continue the run in --out (default: the newest matching run) from its last checkpoint.")
@click.option("--steps", type=int, default=None, help="Optimiser steps (overrides the config).")
@click.option("--epochs", type=float, default=None, help="Passes over the training clips (overrides --steps).")
@click.option("--device", default="auto", help="auto | cpu | cuda")
@click.option("--amp", default=None, type=click.Choice(["auto", "none", "bf16", "fp16"]),
              help="Autocast  [default: bf16 on CUDA, none on CPU]")
@click.option("--compile", "compile_", is_flag=True, default=None, help="torch.compile the networks.")
@click.option("--batch-size", type=int, default=None, help="Global batch (split over torchrun processes).")
@click.option("--workers", type=int, default=None, help="DataLoader worker processes.")
@click.option("--seed", type=int, default=None, help="Random seed.")
@click.option("--init", "init", default=None, metavar="RUN|pretrained",
              help="Start from these weights (a run folder, a ckpt-*.pt, or `pretrained` shipped with ckpp); "
                   "the config must build the same networks.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@translate(resume="--resume", out="out")
def train(data, emotions, model, config_spec, out, resume, steps, epochs, device, amp, compile_, batch_size, workers,
          seed, init, quiet):
    """Train a model on prepared clips (DATA: the .h5 of `ckpp prepare`).

    \b
    DATA defaults to $CKPP_DATA, else the one ckpp .h5 in the current folder.
    Multi-GPU: torchrun --nproc_per_node=8 -m ckpp_tools.cli train DATA.h5 --emotion happy
    Examples:
      ckpp train --emotion surprise
      ckpp train out.h5 --emotion happy --emotion anger --config paper --epochs 2100
      ckpp train --emotion happy --model convlstm
    """
    from ckpp_tools import emotions as emo

    from ..config import load_config
    from ..data import discover_data
    from ..training_loop import resolve_device, train as run

    wanted = []
    for e in emotions:
        c = emo.require(e, "--emotion")
        if c not in wanted:
            wanted.append(c)
    paths = discover_data(list(data) or None)
    dev = resolve_device(device)
    cfg = load_config(config_spec or ("paper" if dev.type == "cuda" else "tiny"))
    overrides = {"max_steps": steps, "epochs": epochs, "batch_size": batch_size, "num_workers": workers,
                 "amp": amp, "compile": compile_, "seed": seed}
    if steps is not None and epochs is None:
        overrides["epochs"] = 0          # --steps wins over an epochs count from the config
    cfg = cfg.replace(**overrides)
    overrides = {k: v for k, v in overrides.items() if v is not None}
    from ..training_loop import init_distributed

    _, rank, world, _ = init_distributed(device)     # no-op without torchrun
    if out is None:
        out = default_out(model, wanted, resume)
        if world > 1:                                 # every rank must use rank 0's choice of runs/...-N
            import torch.distributed as dist

            box = [out]
            dist.broadcast_object_list(box, src=0)
            out = box[0]
    if os.path.isdir(out) and os.listdir(out) and not resume and rank == 0:
        from ckpp_tools.errors import UsageError

        from ..checkpoint import list_checkpoints
        if list_checkpoints(out):
            raise UsageError("run folder already holds a run", path=out,
                             fix="add --resume to continue it, or choose another --out")
    result = run(cfg, model, wanted, paths, out, resume=resume, device=str(dev), overrides=overrides,
                 command="ckpp " + " ".join(sys.argv[1:]), progress=not quiet, init=init)
    if rank == 0:
        m = result["metrics"]
        if init and not resume:
            from ..checkpoint import find_checkpoint

            click.echo(f"started from the weights in {find_checkpoint(init)}")
        click.echo(f"run folder: {result['run_dir']}  (step {result['step']}"
                   + (f", L_r {m['rec']:.4f}" if "rec" in m else "") + ")")
        click.echo(f"next: ckpp generate {out} PHOTO.jpg --emotion {wanted[0]} -o {wanted[0]}.mp4")
