"""The README's command table and the CLI's parser say the same: every command and flag the table shows
exists in the parser (and a `--flag a|b` lists the flag's choices), and every command of the parser is in the
table. The table is read as a user reads it: `vendlab produce / validate / job ...` is three commands,
`vendlab stack up ...` / `status` / `down` three sub-commands of `stack`, and a bare `--flag` in a row's
description is a flag of that row's command."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from vendlab.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def table_rows(text: str) -> list[tuple[str, str]]:
    """(command cell, description cell) of each row of the table under '## Commands'."""
    section = text.split("\n## Commands", 1)[1]
    rows = []
    for line in section.splitlines():
        if rows and not line.startswith("|"):
            break
        if not line.startswith("|") or set(line) <= set("|-: "):
            continue
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]
        if cells[0] != "command":
            rows.append((cells[0].replace("\\|", "|"), cells[1].replace("\\|", "|")))
    return rows


def spans(cell: str) -> list[str]:
    return re.findall(r"`([^`]+)`", cell)


def resolve(words: list[str]) -> tuple[list[list[str]], list[str]]:
    """A `vendlab ...` span -> (the command paths it names, the rest of its words)."""
    parser, paths, i = build_parser(), [[]], 1
    while i < len(words):
        names = subcommands(parser)
        if words[i] not in names:
            break
        alternatives = [words[i]]
        while i + 2 < len(words) and words[i + 1] == "/" and words[i + 2] in names:
            alternatives.append(words[i + 2])
            i += 2
        paths = [p + [a] for p in paths for a in alternatives]
        parser = names[alternatives[0]]
        i += 1
    return paths, words[i:]


def parser_of(path: list[str]) -> argparse.ArgumentParser:
    parser = build_parser()
    for name in path:
        parser = subcommands(parser)[name]
    return parser


def check_flags(path: list[str], words: list[str], where: str) -> None:
    parser = parser_of(path)
    options = parser._option_string_actions
    for n, word in enumerate(words):
        flag = word.strip("[]")
        if not flag.startswith("--"):
            continue
        assert flag in options, (
            f"README {where}: `vendlab {' '.join(path)}` has no flag {flag} "
            f"(it has {', '.join(sorted(o for o in options if o.startswith('--')))})"
        )
        value = words[n + 1].strip("[]") if n + 1 < len(words) else ""
        choices = options[flag].choices
        if "|" in value and choices is not None:
            assert set(value.split("|")) <= set(choices), (
                f"README {where}: {flag} {value} but the parser allows {sorted(choices)}"
            )


def documented() -> list[tuple[list[str], list[str], str]]:
    """(command path, words, where) for each command the table names."""
    out = []
    for command, description in table_rows((ROOT / "README.md").read_text()):
        where = command.split("`")[1][:40] + "..."
        first = None
        for k, span in enumerate(spans(command)):
            words = span.split()
            if words[0] == "vendlab":
                paths, rest = resolve(words)
                first = first or paths[0]
                out += [(p, rest, where) for p in paths]
            else:  # `status` after `vendlab stack up ...`: a sibling of the last sub-command
                assert k > 0 and first, f"README {where}: {span!r} is not a vendlab command"
                out.append((first[:-1] + [words[0]], words[1:], where))
        for span in spans(description):
            words = span.split()
            if words[0] == "vendlab":
                paths, rest = resolve(words)
                out += [(p, rest, where) for p in paths]
            elif words[0].startswith("--"):
                out.append((first, words, where))
    return out


def test_the_readme_has_a_command_table():
    assert len(table_rows((ROOT / "README.md").read_text())) >= 5


@pytest.mark.parametrize(
    "path, words, where", [pytest.param(p, w, at, id=" ".join(p + w)) for p, w, at in documented()]
)
def test_every_command_and_flag_of_the_table_is_in_the_parser(path, words, where):
    assert path, f"README {where}: names no command of the parser ({', '.join(subcommands(build_parser()))})"
    check_flags(path, words, where)


def test_every_command_of_the_parser_is_in_the_table():
    named = {tuple(p) for p, _, _ in documented()}
    missing = []
    for name, parser in subcommands(build_parser()).items():
        if (name,) not in named and not any(p[:1] == (name,) for p in named):
            missing.append(name)
        missing += [f"{name} {sub}" for sub in subcommands(parser) if (name, sub) not in named]
    assert not missing, f"commands of the parser missing from the README's command table: {missing}"


def test_a_command_or_flag_the_parser_does_not_have_is_caught():
    assert resolve(["vendlab", "frobnicate", "--x"]) == ([[]], ["frobnicate", "--x"])
    with pytest.raises(AssertionError, match="no flag --frobnicate"):
        check_flags(["run"], ["--frobnicate"], "test")
    with pytest.raises(AssertionError, match="allows"):
        check_flags(["run"], ["--arch", "kappa|omega"], "test")
