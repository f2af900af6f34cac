"""A joint model knowing happy and surprise, saved as a run folder in well under a second, for tests of the API
and the app that need several expressions, in well under a second (no face detection, no shipped joint model needed).

It is the shipped `ours-surprise` generator with a second residual encoder: "happy" is a copy of the surprise
encoder with fixed random noise on its weights, so it moves the face differently. A stand-in for plumbing tests
(sliders, mixes, the preview), not a happy model: the frames are faces, not grey noise as an untrained net makes.
"""
from __future__ import annotations

import os


def make_joint_run(run_dir, emotions=("happy", "surprise"), seed: int = 0, noise: float = 0.5) -> str:
    import torch

    from models.checkpoint import build_family, read_checkpoint, save_checkpoint
    from models.pretrained import pretrained_path

    ckpt = read_checkpoint(pretrained_path("ours-surprise"))
    src = build_family(ckpt)
    src.G.load_state_dict({k: v.float() for k, v in ckpt["modules"]["G"].items()})
    ckpt["emotions"] = list(emotions)
    fam = build_family(ckpt)
    state = src.G.state_dict()
    g = torch.Generator().manual_seed(seed)
    new = {}
    for k, v in fam.G.state_dict().items():
        if k.startswith("residual."):
            i, rest = k.split(".", 2)[1:]
            v = state[f"residual.0.{rest}"].clone()
            if emotions[int(i)] != "surprise" and v.is_floating_point() and v.dim() == 4:
                v = v + noise * v.std() * torch.randn(v.shape, generator=g)
            new[k] = v
        else:
            new[k] = state[k]
    fam.G.load_state_dict(new)
    save_checkpoint(os.fspath(run_dir), fam, 1)
    return os.fspath(run_dir)
