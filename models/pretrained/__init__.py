"""Pretrained weights shipped inside the package: `ours-joint` (all seven expressions, one residual encoder
each: the paper's joint setting, so expressions mix and take degrees; the weights `ckpp demo` fine-tunes) and
`ours-surprise` (surprise alone).

    ckpp generate pretrained photo.jpg --emotion happy -o out.gif                          # no training needed
    ckpp generate pretrained photo.jpg --emotion anger=0.5 --emotion surprise=0.5 -o mix.gif
    ckpp train data.h5 --emotion surprise --config demo --init pretrained:ours-surprise

Each NAME.pt is a ckpp checkpoint holding the generator and both discriminators (D_g, D_l, so `--init` fine-tunes
the whole GAN) in half precision and no optimiser state, to stay small (3.3 MB); NAME.json beside it is its recipe: data, config, steps, measured results, and the
command that reproduces it (`python benchmarks/train_pretrained.py`). See docs/recipe.md.
ours-surprise: motion output (config output=warp, models/motion_output.py), started from ours-surprise-pixels (the
paper's pixel decoder, the weights shipped before issue 22; `pretrained:ours-surprise-pixels`).
"""
from __future__ import annotations

import os

from ckpp_tools.errors import CkppError

HERE = os.path.dirname(os.path.abspath(__file__))
#: the weights `pretrained` alone names: the joint model where it is installed, else the first shipped weights
JOINT = "ours-joint"
FALLBACK = "ours-surprise"


def default_name() -> str:
    return JOINT if os.path.isfile(os.path.join(HERE, JOINT + ".pt")) else FALLBACK


DEFAULT = default_name()


def available() -> list[str]:
    return sorted(f[:-3] for f in os.listdir(HERE) if f.endswith(".pt"))


def pretrained_path(name: str | None = None) -> str:
    """Path of the shipped checkpoint NAME (default: ours-joint, else ours-surprise); unknown -> CkppError
    listing them."""
    name = name or default_name()
    path = os.path.join(HERE, name + ".pt")
    if not os.path.isfile(path):
        have = available()
        raise CkppError(f"no pretrained weights named {name!r}", path=path,
                        fix=("use one of: " + ", ".join("pretrained:" + n for n in have)) if have else
                        "this installation ships no pretrained weights; train one with `ckpp train` "
                        "(or `python benchmarks/train_pretrained.py`)")
    return path
