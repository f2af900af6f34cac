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
    # the same contexts the real CLI builds (context_settings, -h), at a fixed width so output is stable
    ctx = main.make_context("ckpp", ["--help"], resilient_parsing=True, terminal_width=100, max_content_width=100)
    verbs = main.list_commands(ctx)
    for verb in verbs:
        cmd = main.get_command(ctx, verb)
        parts.append(f"| [`ckpp {verb}`](#ckpp-{verb}) | {cmd.get_short_help_str(limit=120)} |")
    parts.append("")
    for verb in verbs:
        cmd = main.get_command(ctx, verb)
        sub = cmd.make_context(verb, ["--help"], parent=ctx, resilient_parsing=True)
        parts += [f"## ckpp {verb}", "", "```text", cmd.get_help(sub).rstrip(), "```", ""]
    return "\n".join(parts)


if __name__ == "__main__":  # pragma: no cover
    print(render_markdown(), end="")
