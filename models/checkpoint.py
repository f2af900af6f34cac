"""Checkpoints: atomic, self-describing, loadable with `torch.load(weights_only=True)` (DESIGN §8).

A checkpoint is a dict of plain data and tensors:
    format "ckpp-checkpoint", version 1, family (registry name), emotions [..], config (Config.to_dict()),
    modules {name: state_dict}, optimizers {name: state_dict}, scaler (state_dict or {}),
    rng {torch: uint8 tensor, cuda: [uint8 tensors], numpy: [...], python: [...]}, step, draws (samples
    this rank's loader has consumed), data {path, schema_version}, versions {ckpp, torch}, metrics (last line).

    family, meta = load_run("runs/ours-surprise")      # newest checkpoint of a run folder, or a .pt file
    video = family.generate(first, weights, 16)

Files in a run folder: ckpt-<step>.pt (the newest `keep` kept) and `latest` (a text file naming the newest).
"""
from __future__ import annotations

import glob
import io
import os
import random
import re

from ckpp_tools.errors import CkppError, UsageError

from .atomic import atomic_write_bytes  # noqa: F401  (also re-exported: ck.atomic_write_bytes)

CKPT_FORMAT = "ckpp-checkpoint"
CKPT_VERSION = 1
_CKPT_RE = re.compile(r"ckpt-(\d+)\.pt$")


def atomic_torch_save(obj, path) -> None:
    import torch

    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write_bytes(path, buf.getvalue())


# ---- RNG state as weights_only-safe data ---------------------------------------------------------

def rng_state() -> dict:
    import numpy as np
    import torch

    np_state = np.random.get_state()
    py_state = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": list(torch.cuda.get_rng_state_all()) if torch.cuda.is_available() else [],
        "numpy": [np_state[0], np_state[1].tolist(), int(np_state[2]), int(np_state[3]), float(np_state[4])],
        "python": [py_state[0], list(py_state[1]), py_state[2]],
    }


def set_rng_state(state: dict) -> None:
    import numpy as np
    import torch

    if not state:
        return
    torch.set_rng_state(state["torch"].cpu())
    if state.get("cuda") and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])
    n = state["numpy"]
    np.random.set_state((n[0], np.asarray(n[1], dtype=np.uint32), n[2], n[3], n[4]))
    p = state["python"]
    random.setstate((p[0], tuple(p[1]), p[2]))


# ---- save ----------------------------------------------------------------------------------------

def versions() -> dict:
    import torch

    from ckpp_tools import __version__

    return {"ckpp": str(__version__), "torch": str(torch.__version__)}


def checkpoint_dict(family, step: int, *, draws: int = 0, data: dict | None = None, scaler=None,
                    metrics: dict | None = None) -> dict:
    return {
        "format": CKPT_FORMAT,
        "version": CKPT_VERSION,
        "family": family.name,
        "emotions": list(family.emotions),
        "config": family.cfg.to_dict(),
        "modules": {k: m.state_dict() for k, m in family.modules().items()},
        "optimizers": {k: o.state_dict() for k, o in family.optimizers.items()},
        "scaler": scaler.state_dict() if scaler is not None else {},
        "rng": rng_state(),
        "step": int(step),
        "draws": int(draws),
        "data": dict(data or {}),
        "versions": versions(),
        "metrics": dict(metrics or {}),
    }


def save_checkpoint(run_dir, family, step: int, *, keep: int = 3, **kw) -> str:
    """Write run_dir/ckpt-<step>.pt atomically, point `latest` at it, delete all but the newest `keep`."""
    run_dir = os.fspath(run_dir)
    os.makedirs(run_dir, exist_ok=True)
    name = f"ckpt-{int(step):08d}.pt"
    path = os.path.join(run_dir, name)
    atomic_torch_save(checkpoint_dict(family, step, **kw), path)
    atomic_write_bytes(os.path.join(run_dir, "latest"), (name + "\n").encode())
    if keep and keep > 0:
        for old in list_checkpoints(run_dir)[:-keep]:
            try:
                os.remove(old)
            except OSError:
                pass
    return path


# ---- find / read -----------------------------------------------------------------------------------

def checkpoint_step(path) -> int | None:
    """The step a ckpt-<step>.pt file name says (None for other names)."""
    m = _CKPT_RE.search(os.path.basename(os.fspath(path)))
    return int(m.group(1)) if m else None


def list_checkpoints(run_dir) -> list[str]:
    """ckpt-*.pt files of a run folder, oldest step first."""
    found = [(checkpoint_step(p), p) for p in glob.glob(os.path.join(os.fspath(run_dir), "ckpt-*.pt"))]
    return [p for step, p in sorted(f for f in found if f[0] is not None)]


def find_checkpoint(path) -> str:
    """A .pt file as is; a run folder -> the checkpoint `latest` names (else the highest step);
    `pretrained` / `pretrained:NAME` -> weights shipped inside the package (models/pretrained/)."""
    path = os.fspath(path)
    if os.path.isfile(path):
        return path
    if not os.path.exists(path) and (path == "pretrained" or path.startswith("pretrained:")):
        from .pretrained import pretrained_path

        return pretrained_path(path.partition(":")[2] or None)
    if os.path.isdir(path):
        latest = os.path.join(path, "latest")
        if os.path.isfile(latest):
            with open(latest) as fh:
                cand = os.path.join(path, fh.read().strip())
            if os.path.isfile(cand):
                return cand
        ckpts = list_checkpoints(path)
        if ckpts:
            return ckpts[-1]
        raise CkppError("run folder holds no checkpoint (ckpt-*.pt)", path=path,
                        fix="train first (`ckpp train ... --out " + path + "`) or pass a .pt file")
    raise CkppError("no such checkpoint file or run folder", path=path,
                    fix="pass a run folder (runs/<model>-<emotion>) or one of its ckpt-*.pt files")


_GET_ONE = ("a ckpp checkpoint is a ckpt-*.pt that `ckpp train --out RUN` writes (plain tensors and numbers "
            "only): pass such a file or its run folder, or train one")


def _load_error(path: str, exc: Exception) -> CkppError:
    """The CkppError for a file torch.load(weights_only=True) refused. Torch's own text is never shown: for a
    file holding Python objects it advises weights_only=False, which would run whatever code the file holds."""
    import pickle

    text = str(exc)
    low = text.lower()
    if isinstance(exc, pickle.UnpicklingError) and "global" in low and ("unsupported" in low or "not an allowed" in low
                                                                        or "blocked" in low):
        return CkppError("refused: the file holds more than plain data (Python objects whose loading could run "
                         "code), so it was not loaded; ckpp checkpoints never hold such objects", path=path,
                         fix=_GET_ONE + "; do not load an untrusted file any other way")
    try:
        with open(path, "rb") as fh:
            head = fh.read(4)
        size = os.path.getsize(path)
    except OSError as err:
        return CkppError(f"cannot read checkpoint ({err.strerror or err})", path=path, fix="check the file's permissions")
    if size == 0:
        return CkppError("not a ckpp checkpoint (empty file, 0 bytes)", path=path, fix=_GET_ONE)
    if head == b"PK\x03\x04":  # torch.save's zip container, damaged (truncated, bit-flipped)
        return CkppError(f"damaged checkpoint: a torch file that does not load ({type(exc).__name__})", path=path,
                         fix="use another ckpt-*.pt of the run (a killed writer never leaves a torn file, so this "
                             "one was damaged after it was written), or train again")
    if head[:1] == b"\x80":  # a bare pickle stream: never unpickled beyond what plain data allows
        return CkppError("not a ckpp checkpoint (a bare Python pickle, not a torch.save zip; it was not loaded, "
                         "since a pickle can run code)", path=path, fix=_GET_ONE)
    return CkppError("not a ckpp checkpoint (not a file torch.save wrote)", path=path, fix=_GET_ONE)


def read_checkpoint(path, map_location="cpu") -> dict:
    """torch.load(weights_only=True) of a ckpp checkpoint; anything else -> CkppError."""
    import torch

    path = find_checkpoint(path)
    import warnings

    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols of foreign files: the error says it
            warnings.simplefilter("ignore")
            ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises many kinds for truncated / foreign files
        raise _load_error(path, exc) from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CKPT_FORMAT:
        raise CkppError("not a ckpp checkpoint (a torch file without ckpp's format tag)", path=path, fix=_GET_ONE)
    if int(ckpt.get("version", -1)) > CKPT_VERSION:
        raise CkppError(f"checkpoint version {ckpt.get('version')} is newer than this ckpp reads ({CKPT_VERSION})",
                        path=path, fix="upgrade ckpp")
    ckpt["path"] = path
    return ckpt


def load_module_state(module, state: dict, name: str, where: str = "") -> None:
    """load_state_dict with a readable report of missing / unexpected / shape-mismatched keys."""
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    mismatched = [f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
                  for k in own if k in state and hasattr(state[k], "shape") and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or mismatched:
        def part(title, items):
            return f"\n  {title} ({len(items)}): " + ", ".join(items[:8]) + (" ..." if len(items) > 8 else "") if items else ""
        raise CkppError(f"weights of {name!r} do not fit the model built from the checkpoint's config"
                        + part("missing", missing) + part("unexpected", unexpected) + part("shape mismatch", mismatched),
                        path=where or None,
                        fix="load the checkpoint with the ckpp version and config that wrote it")
    module.load_state_dict(state)


def restore(family, ckpt: dict, *, optimizers: bool = True, scaler=None, rng: bool = True,
            optional: tuple[str, ...] = ()) -> None:
    """Put a checkpoint's weights (and optionally optimiser / scaler / RNG state) into a built family.
    Call before family.attach() for weights; optimisers after (they exist only once attached).
    Modules named in `optional` may be absent from the checkpoint (they keep their fresh init): shipped
    pretrained weights hold the generator only."""
    where = ckpt.get("path", "")
    mods = family.modules()
    for name, module in mods.items():
        if name not in ckpt["modules"] and name in optional:
            continue
        if name not in ckpt["modules"]:
            raise CkppError(f"checkpoint has no weights for {name!r} (it has {sorted(ckpt['modules'])})", path=where,
                            fix="a config switch (e.g. use_local_d) differs from the run that wrote it")
        load_module_state(module, ckpt["modules"][name], name, where)
    if optimizers:
        for name, opt in family.optimizers.items():
            if name in ckpt.get("optimizers", {}):
                opt.load_state_dict(ckpt["optimizers"][name])
    if scaler is not None and ckpt.get("scaler"):
        scaler.load_state_dict(ckpt["scaler"])
    if rng:
        set_rng_state(ckpt.get("rng") or {})


def restore_across_outputs(family, ckpt: dict, optional: tuple[str, ...] = ("D", "D_g", "D_l")) -> list[str]:
    """Start a generator of one output kind from weights of the other (`--init` of pixel weights into an
    output="warp" run, models/motion_output.py): every tensor is loaded except the decoder's last layer, whose
    channel count differs (3 colours vs flow + mask + residual) and which keeps its fresh (zero, identity) init.
    Returns the skipped keys ("G.<key>"). Anything else that does not fit is the usual CkppError."""
    where = ckpt.get("path", "")
    mods = family.modules()
    G = mods["G"]
    last = f"ups.{len(G.ups) - 1}.conv."
    own, state = G.state_dict(), dict(ckpt["modules"]["G"])
    skipped = [k for k in own if k.startswith(last)]
    for k in skipped:
        state.pop(k, None)
        state[k] = own[k]
    load_module_state(G, state, "G", where)
    for name, module in mods.items():
        if name == "G" or (name not in ckpt["modules"] and name in optional):
            continue
        if name not in ckpt["modules"]:
            raise CkppError(f"checkpoint has no weights for {name!r} (it has {sorted(ckpt['modules'])})", path=where,
                            fix="a config switch (e.g. use_local_d) differs from the run that wrote it")
        load_module_state(module, ckpt["modules"][name], name, where)
    return ["G." + k for k in skipped]


def reset_residual(family) -> str:
    """Zero the residual channels (3:6) of a warp generator's last layer: `--init` across residual modes
    (Config.residual colour <-> delta, models/motion_output.py), where the old channels' meaning is lost.
    Flow and mask are kept, so the run starts moving the face as the weights did. Returns what was reset."""
    import torch

    conv = family.modules()["G"].ups[-1].conv
    with torch.no_grad():
        conv.weight[:, 3:6].zero_()
        conv.bias[3:6].zero_()
    return f"G.ups.{len(family.modules()['G'].ups) - 1}.conv residual channels 3:6"


def average_checkpoints(paths, dest) -> dict:
    """Average the module weights of checkpoints of one run (stochastic weight averaging over its last
    checkpoints) into `dest`, a checkpoint like the last one (its step, config, optimiser state) with every
    floating-point tensor the mean of all. Why: at a constant rate the joint model's held-out expressions swing
    from checkpoint to checkpoint (surprise judged 25, 19, 12, 22, 14 of 40 at steps 1,000…3,000 of
    train_pretrained_joint's stage 4); their average reads 24 (docs/recipe.md). Keys or shapes that differ
    between the checkpoints are an error naming both files. Returns {"averaged": [paths], "step": last step}."""
    import torch

    paths = [os.fspath(p) for p in paths]
    if not paths:
        raise UsageError("no checkpoints to average", path="checkpoints", fix="name at least one")
    cks = [read_checkpoint(p) for p in paths]
    last = cks[-1]
    modules = {}
    for name, sd in last["modules"].items():
        out = {}
        for k, v in sd.items():
            for p, c in zip(paths, cks):
                w = c["modules"].get(name, {}).get(k)
                if w is None or tuple(w.shape) != tuple(v.shape):
                    raise CkppError(f"cannot average: {name}.{k} is {'missing' if w is None else tuple(w.shape)} "
                                    f"in {p} but {tuple(v.shape)} in {paths[-1]}", path=p,
                                    fix="average checkpoints of one run")
            out[k] = (torch.stack([c["modules"][name][k].float() for c in cks]).mean(0).to(v.dtype)
                      if v.is_floating_point() else v)
        modules[name] = out
    atomic_torch_save({**last, "modules": modules}, dest)
    return {"averaged": paths, "step": int(last["step"])}


def build_family(ckpt: dict):
    from .config import from_dict
    from .registry import get_family

    cfg = from_dict(ckpt["config"])
    return get_family(ckpt["family"])(cfg, list(ckpt["emotions"]))


def load_run(path_or_ckpt, device="cpu"):
    """(family, meta) ready for generation: weights loaded, modules on `device`, eval mode.

    meta: path (the .pt), run_dir, family, emotions, step, config (dict), data {path, schema_version},
    versions, metrics (last logged)."""
    import torch

    from .family import Runtime

    ckpt = read_checkpoint(path_or_ckpt, map_location="cpu")
    family = build_family(ckpt)
    # generation needs the generator only: discriminators may be missing (shipped pretrained weights)
    restore(family, ckpt, optimizers=False, rng=False, optional=("D", "D_g", "D_l"))
    family.attach(Runtime(device=torch.device(device)), train=False)
    meta = {k: ckpt.get(k) for k in ("path", "family", "emotions", "step", "config", "data", "versions", "metrics")}
    meta["run_dir"] = os.path.dirname(os.path.abspath(ckpt["path"]))
    return family, meta
