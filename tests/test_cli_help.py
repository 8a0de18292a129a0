"""Every command's --help: a first sentence that the command lists show whole, and examples
that name real options (each is parsed by the command it shows)."""
from __future__ import annotations

import re
import shlex

import click
import pytest

from cli import main


def _commands(group: click.Group = main, path: tuple[str, ...] = ()):
    yield path, group
    for name, command in sorted(group.commands.items()):
        if isinstance(command, click.Group):
            yield from _commands(command, (*path, name))
        else:
            yield (*path, name), command


COMMANDS = list(_commands())


def _examples(text: str) -> list[list[str]]:
    """The examples of the Examples block, each as its commands: `a && b` is two, and `> FILE` or
    `| ...` are not arguments."""
    block = text.split("Examples:\n", 1)[1].split("\n\n", 1)[0]
    lines = re.sub(r" \\\n\s*", " ", block).splitlines()  # a long example goes on after a backslash
    return [
        [re.split(r" [>|] ", part)[0].strip() for part in line.split("&&")] for line in lines if line.strip()
    ]


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=[" ".join(p) or "meshctl" for p, _ in COMMANDS])
def test_help_starts_with_a_whole_sentence_and_shows_examples(runner, path, command):
    short = command.get_short_help_str(limit=66)  # as `meshctl --help` lists it, 80 columns wide
    assert not short.endswith("...") and short.endswith("."), short
    result = runner.invoke(main, [*path, "--help"], terminal_width=80)
    assert result.exit_code == 0
    examples = _examples(result.output)
    assert examples, f"meshctl {' '.join(path)} --help shows no example"
    for line in examples:
        assert tuple(shlex.split(line[0])[1:1 + len(path)]) == path, line  # an example of this command first
        for example in line:
            words = shlex.split(example)
            assert words[0] == "meshctl", example
            if words[1:] == ["COMMAND", "--help"]:
                continue
            # unknown options fail; --help stops before running
            parsed = runner.invoke(main, [*words[1:], "--help"])
            assert parsed.exit_code == 0, f"{example}\n{parsed.output}"


def test_group_listings_show_every_first_sentence_whole(runner):
    for path, command in COMMANDS:
        if isinstance(command, click.Group):
            listing = runner.invoke(main, [*path, "--help"], terminal_width=80).output.split(
                "Commands:\n", 1
            )[1]
            assert "..." not in listing, listing
