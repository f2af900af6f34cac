"""Render the `ckpp` CLI reference (docs/cli.md) from the commands' own --help, so the docs cannot drift:
tests/test_cli.py checks docs/cli.md against this rendering. Regenerate with `python -m ckpp_tools.cli_docs > docs/cli.md`."""
from __future__ import annotations

import click

from .cli import COMMANDS, main


def render_markdown() -> str:
    parts = [
        "# ckpp command-line reference",
        "",
        "Generated from each command's `--help` by `python -m ckpp_tools.cli_docs > docs/cli.md`;",
        "a test fails when this page and the commands disagree.",
        "",
        "| verb | what it does |",
        "| --- | --- |",
    ]
    ctx = click.Context(main, info_name="ckpp")
    verbs = main.list_commands(ctx)
    for verb in verbs:
        cmd = main.get_command(ctx, verb)
        parts.append(f"| [`ckpp {verb}`](#ckpp-{verb}) | {cmd.get_short_help_str(limit=120)} |")
    parts.append("")
    for verb in verbs:
        cmd = main.get_command(ctx, verb)
        sub = click.Context(cmd, info_name=verb, parent=ctx, max_content_width=100, terminal_width=100)
        parts += [f"## ckpp {verb}", "", "```text", cmd.get_help(sub).rstrip(), "```", ""]
    return "\n".join(parts)


if __name__ == "__main__":  # pragma: no cover
    print(render_markdown(), end="")
