"""Model families by name, imported lazily (a baseline being built elsewhere must not break `ours`)."""
from __future__ import annotations

import importlib
import importlib.util

from ckpp_tools.errors import UsageError

#: name -> "module:Class" of a models.family.ModelFamily subclass
FAMILIES: dict[str, str] = {
    "ours": "models.ours:OursFamily",
    "convlstm": "models.baselines.convlstm:ConvLSTMFamily",
    "hp": "models.baselines.hierarchical:HPFamily",
}


def get_family(name: str):
    """The ModelFamily subclass registered as `name`; unknown or not-installed -> UsageError."""
    target = FAMILIES.get(name)
    if target is None:
        raise UsageError(f"unknown model {name!r}", path="--model", fix="use one of: " + ", ".join(FAMILIES))
    module_name, attr = target.split(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            raise UsageError(f"model {name!r} is not available in this installation ({module_name} is missing)",
                             path="--model", fix="use one of the built models: " + ", ".join(available()))
        raise
    cls = getattr(module, attr, None)
    if cls is None:
        raise UsageError(f"model {name!r}: {module_name} defines no {attr}", path="--model",
                         fix="use one of the built models: " + ", ".join(available()))
    return cls


def available() -> list[str]:
    """Names whose module imports (for help texts and benchmarks that skip missing families)."""
    out = []
    for name, target in FAMILIES.items():
        try:
            if importlib.util.find_spec(target.split(":")[0]) is not None:
                out.append(name)
        except ModuleNotFoundError:
            pass
    return out

