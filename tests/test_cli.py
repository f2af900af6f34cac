"""The `ckpp` group itself: version, help listing, fast start without torch."""
import subprocess
import sys

from click.testing import CliRunner

from ckpp_tools import __version__
from ckpp_tools.cli import COMMANDS, main


def test_version():
    res = CliRunner().invoke(main, ["--version"])
    assert res.exit_code == 0
    assert __version__ in res.output


def test_help_lists_every_built_verb():
    res = CliRunner().invoke(main, ["--help"])
    assert res.exit_code == 0
    built = main.list_commands(None)
    assert built, "no verb is built"
    for verb in built:
        assert verb in res.output
    assert set(built) <= set(COMMANDS)


def test_help_does_not_import_torch():
    code = "import sys; from ckpp_tools.cli import main, COMMANDS; main.list_commands(None); " \
           "[main.get_command(None, c) for c in COMMANDS]; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_unknown_verb_is_a_clear_error():
    res = CliRunner().invoke(main, ["frobnicate"])
    assert res.exit_code != 0
    assert "No such command" in res.output


def test_docs_cli_md_matches_help():
    """docs/cli.md is generated from --help; regenerate it with `python -m ckpp_tools.cli_docs > docs/cli.md`."""
    from pathlib import Path

    from ckpp_tools.cli_docs import render_markdown

    doc = Path(__file__).resolve().parents[1] / "docs" / "cli.md"
    assert doc.read_text() == render_markdown(), "docs/cli.md is stale: python -m ckpp_tools.cli_docs > docs/cli.md"
