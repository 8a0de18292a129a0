"""Every `meshctl` command shown in the documentation runs, and exits as the page says.

For README.md and each docs/*.md, the shell code blocks (```sh, ```console) are scanned for
command lines: `meshctl ...`, `$ meshctl ...`, or `.venv/bin/meshctl ...` (the prefix is
dropped). Chains joined with `&&` are split; install steps (`pip`, `python3 -m venv`,
`.venv/bin/python`, ...) are skipped. Each command runs through click's CliRunner in a
private copy of the repository, one copy per page, so a later command of a page reads what
an earlier one wrote (a `--dlq-out` file, a trace), and nothing is written into the real
checkout. Absolute output paths (`--trace /tmp/t.jsonl`) are mapped into the copy, and
later uses of the same path follow. What the documented commands write (`orders.db`,
`orders.trace.jsonl`, ...) is left out of the copy: a reader who followed the docs in the
checkout leaves those behind, and a store left there would make `run --store` refuse to start.

In a block where commands carry a `$ ` prompt, the other lines are their output (which may
start with `meshctl run: ...`). A command must exit 0, unless its line (or the line right
after it) carries a comment `# exits N`.
"""
from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli import main

REPO = Path(__file__).resolve().parent.parent
PAGES = sorted([REPO / "README.md", *(REPO / "docs").glob("*.md")])
SHELL_FENCES = {"sh", "console", "shell", "bash"}
OUTPUT_OPTIONS = {"-o", "--output", "--trace", "--dlq-out"}
SKIP_WORDS = ("pip", "python3 -m venv", "python -m venv", ".venv/bin/python", "python -m pytest")
EXITS = re.compile(r"#\s*exits\s+(\d+)")
IGNORE = shutil.ignore_patterns(".git", ".venv", ".hypothesis", ".pytest_cache", ".benchmarks", "build",
                                "__pycache__", "*.egg-info", "node_modules")


@dataclass(frozen=True)
class Command:
    page: str
    line: int
    args: tuple[str, ...]
    expect: int
    stdout_to: str | None  # `> FILE`
    shown: tuple[str, ...] = ()  # the output the page shows after a `$ ` prompt line


def _blocks(text: str):
    """(first line number, lines) of every shell code block."""
    lines, i = text.splitlines(), 0
    while i < len(lines):
        fence = re.match(r"^\s*```\s*([\w-]*)", lines[i])
        if not fence:
            i += 1
            continue
        lang, start, body = fence.group(1).lower(), i + 2, []
        i += 1
        while i < len(lines) and not re.match(r"^\s*```\s*$", lines[i]):
            body.append(lines[i])
            i += 1
        i += 1
        if lang in SHELL_FENCES:
            yield start, body


def _segments(line: str) -> list[str]:
    """The meshctl commands of one shell line (`a && b`, a `$ ` prompt, a `.venv/bin/` prefix)."""
    text = line.strip()
    if text.startswith("$ "):
        text = text[2:]
    out = []
    for part in text.split("&&"):
        part = part.strip()
        if part.startswith(".venv/bin/meshctl"):
            part = part[len(".venv/bin/"):]
        if (part.startswith("meshctl ") or part == "meshctl") and not any(w in part for w in SKIP_WORDS):
            out.append(part)  # install steps and other shell commands (cd, cat, ...) are not run
    return out


def commands(page: Path) -> list[Command]:
    found = []
    name = page.relative_to(REPO).as_posix()
    for start, body in _blocks(page.read_text(encoding="utf-8")):
        prompted = any(line.lstrip().startswith("$ ") for line in body)  # then other lines are output
        for offset, raw in enumerate(body):
            segments = _segments(raw) if raw.lstrip().startswith("$ ") or not prompted else []
            if not segments:
                continue
            following = body[offset + 1].strip() if offset + 1 < len(body) else ""
            marker = EXITS.search(raw) or (EXITS.match(following) if following.startswith("#") else None)
            for segment in segments:
                words = shlex.split(segment, comments=True)[1:]
                if "|" in words:
                    words = words[:words.index("|")]
                stdout_to = None
                if ">" in words:
                    at = words.index(">")
                    stdout_to, words = words[at + 1], words[:at]
                found.append(Command(name, start + offset, tuple(words), int(marker.group(1)) if marker else 0,
                                     stdout_to, _shown(body, offset) if raw.lstrip().startswith("$ ") else ()))
    return found


def _shown(body: list[str], offset: int) -> tuple[str, ...]:
    """The lines after a prompt line, up to the next prompt."""
    out = []
    for line in body[offset + 1:]:
        if line.lstrip().startswith("$ "):
            break
        out.append(line)
    return tuple(out)


SUMMARY_ROW = re.compile(r"^ *[a-z][a-z ()-]*[a-z)] +\d+$")  # `runs compensated            10`


def check_summary_rows(shown: tuple[str, ...], printed: str) -> None:
    """The summary rows a page shows are printed, in that order; where the page shows no `…`
    between two rows (or after the last), none is printed there either."""
    actual = [line for line in printed.splitlines() if SUMMARY_ROW.match(line)]
    at = 0
    for line in shown:
        if line.strip() == "…":
            at = None  # rows may be left out here
            continue
        if not SUMMARY_ROW.match(line):
            continue
        assert line in actual[at or 0:], f"the page shows {line!r}; printed:\n" + "\n".join(actual)
        found = actual.index(line, at or 0)
        assert at is None or found == at, f"the page leaves out {actual[at:found]} before {line!r}"
        at = found + 1
    if shown and at is not None and at > 0:
        assert actual[at:] == [], f"the page leaves out {actual[at:]} at the end"


ALL = [c for page in PAGES for c in commands(page)]
STORE_FILES = ("", "-wal", "-shm", "-journal")  # a SQLite store and the files beside it


def written(commands: list[Command]) -> set[str]:
    """The relative paths the commands write: outputs, stores, `> FILE`."""
    out = set()
    for c in commands:
        for before, word in zip(c.args, c.args[1:]):
            if before in OUTPUT_OPTIONS and not word.startswith("/"):
                out.add(word)
            elif before == "--store" and word.startswith("sqlite:") and not word.startswith("sqlite:/"):
                out.update(word[len("sqlite:"):] + end for end in STORE_FILES)
        if c.stdout_to:
            out.add(c.stdout_to)
    return {os.path.normpath(p) for p in out}


WRITTEN = written(ALL)


def copy_repository(source: Path, target: Path, leave_out: set[str]) -> None:
    """*source* copied to *target*, without build and cache directories, nor the *leave_out* paths."""
    def ignore(directory: str, names: list[str]) -> set[str]:
        here = os.path.relpath(directory, source)
        return set(IGNORE(directory, names)) | {n for n in names if os.path.normpath(os.path.join(here, n)) in leave_out}
    shutil.copytree(source, target, ignore=ignore)


def test_the_documentation_shows_commands():
    assert len(ALL) > 20, "the command extraction found almost nothing: is the parser broken?"


def test_what_the_docs_leave_in_the_checkout_is_not_copied(tmp_path):
    """Following docs/durability.md in the checkout leaves orders.db; its run then refused to start."""
    source = tmp_path / "src"
    (source / "workflows").mkdir(parents=True)
    for name in ("orders.db", "orders.db-wal", "orders.trace.jsonl", "orders-run.html", "workflows/mesh.yaml"):
        (source / name).write_text("x", encoding="utf-8")
    assert {"orders.db", "orders.db-wal", "orders.trace.jsonl", "orders-run.html"} <= WRITTEN
    copy_repository(source, tmp_path / "copy", WRITTEN)
    assert sorted(p.relative_to(tmp_path / "copy").as_posix() for p in (tmp_path / "copy").rglob("*")) == [
        "workflows", "workflows/mesh.yaml"]


def test_git_ignores_what_the_docs_write():
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    names = sorted(WRITTEN)
    checked = subprocess.run(["git", "check-ignore", "--no-index", *names], cwd=REPO, capture_output=True, text=True)
    assert sorted(checked.stdout.split()) == names


@pytest.fixture(scope="module")
def copies(tmp_path_factory):
    """One private copy of the repository per page, made on first use."""
    made: dict[str, tuple[Path, dict[str, str]]] = {}

    def copy(page: str) -> tuple[Path, dict[str, str]]:
        if page not in made:
            root = tmp_path_factory.mktemp(re.sub(r"\W", "_", page)) / "repo"
            copy_repository(REPO, root, WRITTEN)
            made[page] = (root, {})
        return made[page]
    return copy


def _rewrite(args: tuple[str, ...], root: Path, mapped: dict[str, str]) -> list[str]:
    """Absolute output paths into the copy; later mentions of the same path follow them."""
    out, words = [], list(args)
    for i, word in enumerate(words):
        if i and words[i - 1] in OUTPUT_OPTIONS and word.startswith("/"):
            mapped.setdefault(word, str(root / "_out" / Path(word).name))
            (root / "_out").mkdir(exist_ok=True)
        out.append(mapped.get(word, word))
    return out


@pytest.mark.parametrize("command", ALL, ids=[f"{c.page}:{c.line}:{' '.join(c.args)[:60]}" for c in ALL])
def test_documented_command(command: Command, copies, monkeypatch):
    root, mapped = copies(command.page)
    monkeypatch.chdir(root)
    args = _rewrite(command.args, root, mapped)
    result = CliRunner().invoke(main, args)
    if command.stdout_to:
        Path(command.stdout_to).write_text(result.output, encoding="utf-8")
    assert result.exit_code == command.expect, (
        f"{command.page}:{command.line}: `meshctl {' '.join(command.args)}` exited {result.exit_code}, "
        f"expected {command.expect}\n{result.output}\n{result.exception!r}")
    check_summary_rows(command.shown, result.stdout)


def quoted_records(page: Path) -> list[tuple[int, str]]:
    """(line number, text) of the trace records a page quotes: lines of its ```json blocks that start with {"seq"."""
    found, fence = [], None
    for number, line in enumerate(page.read_text(encoding="utf-8").splitlines(), start=1):
        if line.startswith("```"):
            fence = line[3:].strip() if fence is None else None
        elif fence == "json" and line.startswith('{"seq"'):
            found.append((number, line))
    return found


QUOTING = [page for page in PAGES if quoted_records(page)]


@pytest.mark.parametrize("page", QUOTING, ids=[p.name for p in QUOTING])
def test_quoted_trace_records_are_those_the_commands_write(page, tmp_path, monkeypatch):
    """A trace record a page quotes is a record of a trace its commands write, seq and all."""
    root = tmp_path / "repo"
    copy_repository(REPO, root, WRITTEN)
    monkeypatch.chdir(root)
    mapped: dict[str, str] = {}
    traces = []
    for command in commands(page):
        args = _rewrite(command.args, root, mapped)
        CliRunner().invoke(main, args)
        traces += [Path(word) for before, word in zip(args, args[1:]) if before == "--trace"]
    written = {line for trace in traces if trace.exists() for line in trace.read_text(encoding="utf-8").splitlines()}
    missing = [f"{page.name}:{number}: {text[:100]}" for number, text in quoted_records(page) if text not in written]
    assert not missing, "quoted trace records no command of the page writes:\n" + "\n".join(missing)
