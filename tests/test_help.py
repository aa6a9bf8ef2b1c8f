"""Every command a user can type has --help text with an example (the newcomer's path)."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from bridge.cli import cli

COMMANDS = ["info", "dump", "emulate", "server", "demo", "sync", "run", "status", "tail", "doctor", "config"]


def test_help_lists_every_command() -> None:
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    for command in COMMANDS:
        assert f"  {command} " in result.output


@pytest.mark.parametrize("command", COMMANDS)
def test_help_of_each_command_has_an_example(command: str) -> None:
    result = CliRunner().invoke(cli, [command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Example" in result.output and f"bridge {command}" in result.output
