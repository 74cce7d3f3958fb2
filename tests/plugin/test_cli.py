"""Every command's help works: ``python -m resclaims ... --help`` and the plugin's group in ``pytest --help``.

argparse %-formats help texts, so a bare ``%`` in one (``mean:100%``) crashes
``--help`` of that command only; the subcommands are found from the parser, so a
new one is covered without changing this file.
"""

import argparse
import subprocess
import sys

import pytest

from resclaims.__main__ import build_parser, main


def commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """``path`` and every subcommand below it, nested ones included (``("baseline", "update")``)."""
    found = [path]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found += commands(sub, (*path, name))
    return found


COMMANDS = commands(build_parser())


def test_the_parser_has_nested_subcommands():
    assert ("baseline", "update") in COMMANDS and ("compare",) in COMMANDS


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "resclaims")
def test_help_of_every_command(command, capsys):
    with pytest.raises(SystemExit) as stop:
        main([*command, "--help"])
    assert stop.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: {' '.join(('resclaims', *command))}") and "-h, --help" in out


def test_module_entry_point_help():
    result = subprocess.run([sys.executable, "-m", "resclaims", "compare", "--help"], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0 and "--slowdown" in result.stdout and "mean:100%" in result.stdout, result.stderr


def test_pytest_help_shows_the_resclaims_group(pytester):
    result = pytester.runpytest("-p", "resclaims.plugin", "-p", "no:cacheprovider", "--help")
    assert result.ret == pytest.ExitCode.OK, result.stderr.str()
    result.stdout.fnmatch_lines(["resclaims: claims about residual networks:", "*--baseline=PATH*",
                                 "*--slowdown=EXPR*", "*(default: mean:100%)"])
    # the run cache is wherever RESCLAIMS_CACHE says, not always data/runs/
    assert "from the run cache, $RESCLAIMS_CACHE/runs/, else data/runs/" in " ".join(result.stdout.str().split())
