"""The `ckpp` command group.

Every verb lives in its own module and is imported only when run (or when `--help` lists it), so
`ckpp --help` and `ckpp prepare` never import torch. Verbs that train or run models import torch
inside their function body.
"""
from __future__ import annotations

import importlib

import click

from . import __version__

#: verb -> "module:attribute" of its click.Command; order is the order `ckpp --help` lists them in
COMMANDS: dict[str, str] = {
    "sample": "ckpp_tools.commands.sample:sample",
    "prepare": "ckpp_tools.commands.prepare:prepare",
    "inspect": "ckpp_tools.commands.inspect:inspect",
    "merge": "ckpp_tools.commands.merge:merge",
    "train": "models.commands.train:train",
    "generate": "models.commands.generate:generate",
    "sheet": "models.commands.sheet:sheet",
    "benchmark": "models.commands.benchmark:benchmark",
    "app": "models.commands.app:app",
    "demo": "ckpp_tools.commands.demo:demo",
}


class LazyGroup(click.Group):
    """A click group whose subcommands are imported on first use."""

    def list_commands(self, ctx):
        return [name for name in COMMANDS if self._load(name) is not None]

    def get_command(self, ctx, name):
        return self._load(name)

    @staticmethod
    def _load(name):
        target = COMMANDS.get(name)
        if target is None:
            return None
        module_name, attr = target.split(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            # a verb whose module is not built yet is simply not offered
            if exc.name and module_name.startswith(exc.name):
                return None
            raise
        return getattr(module, attr)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="ckpp")
def main():
    """ckpp: CK+/CK++ facial-expression videos -> clean HDF5 clips -> controllable image-to-video models.

    \b
    Typical session:
      ckpp sample raw/                         # or bring CK+ / your own recordings
      ckpp prepare raw/ out.h5                 # trim, check, landmark, crop, mask -> HDF5
      ckpp train --emotion surprise            # the paper's generator (or --model convlstm|hp)
      ckpp generate runs/ours-surprise photo.jpg --emotion surprise -o out.gif
      ckpp sheet pretrained photo.jpg -o sheet.png   # every expression x degree as one picture
      ckpp benchmark --baselines convlstm,hp   # Fig. 3 curves and more, as a report
      ckpp app                                 # sliders over a photo in the browser (pip install -e ".[app]")
    Or all of it on sample data: ckpp demo
    """
    from .lifecycle import adopt_parent_from_env

    adopt_parent_from_env()  # started by `ckpp demo` & co: die with it (docs/reliability.md)


if __name__ == "__main__":  # pragma: no cover
    main()
