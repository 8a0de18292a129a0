"""Every `meshctl` command shown in the documentation runs, exits and prints as the page says.

Pages: README.md, docs/*.md and the examples' workflows/*/README.md.

Commands. The shell code blocks (```sh, ```shell, ```bash, ```console) are scanned for
command lines: `meshctl ...`, `$ meshctl ...`, or `.venv/bin/meshctl ...` (the prefix is
dropped); in a ```console block only `$ ` lines are commands. Chains joined with `&&` are
split; install steps (`pip`, `python3 -m venv`, `.venv/bin/python`, ...) and other shell
commands are skipped. `> FILE` sends stdout to FILE, `< FILE` feeds FILE to stdin. Each
command runs through click's CliRunner in a private copy of the repository, one copy per
page, in page order, so a later command of a page reads what an earlier one wrote (a
`--dlq-out` file, a trace), and nothing is written into the real checkout. Absolute output
paths (`--trace /tmp/t.jsonl`) are mapped into the copy; later uses of the same path, and
the output, follow. What the documented commands write (`orders.db`, `orders.trace.jsonl`,
...) is left out of the copy: a reader who followed the docs in the checkout leaves those
behind, and a store left there would make `run --store` refuse to start. A command must
exit 0, unless its line carries a comment `# exits N` (in a ```sh block, the line right
after it may carry it instead).

Output. In a ```console block, the lines after a `$ meshctl ...` line, up to the next `$ `
line or the end of the block, are what the command prints: stdout and stderr interleaved
as a terminal shows them, colour off (NO_COLOR=1), 80 columns. They must match exactly,
except where the page marks an elision:

    ...        a line holding only `...` or `…` (indented or not) matches any number of lines,
               none included
    [...]      inside a line, matches any text within that line

Trailing spaces and trailing blank lines are ignored (Markdown editors drop them). Whatever
varies between runs (wall time, rates, temporary paths, versions) is elided in the page with
these markers; the comparison is never loosened for it. With `> FILE` only stderr is shown.
A ```sh block shows commands only: its output is not compared.

Markers, on the line right above a fence. `<!-- not-run: REASON -->`: the block cannot run
here (it needs Redis or a server, runs until stopped, or waits for a person); its commands
are neither run nor compared. `<!-- file: PATH -->` above a ```yaml (or other) block: the
block is written to PATH in the page's copy before the page's next command runs, so a mesh
shown in full on the page can be validated there. test_pages_are_well_formed rejects a
marker without its text or without a fence under it, a `$ meshctl` prompt outside a
```console block, output before the first prompt, and output under a line that cannot be
checked.
"""
from __future__ import annotations

import difflib
import os
import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli import main

REPO = Path(__file__).resolve().parent.parent
PAGES = sorted([REPO / "README.md", *(REPO / "docs").glob("*.md"), *(REPO / "workflows").glob("*/README.md")])
SHELL_FENCES = {"sh", "console", "shell", "bash"}
OUTPUT_OPTIONS = {"-o", "--output", "--trace", "--dlq-out", "--junit"}
SKIP_WORDS = ("pip", "python3 -m venv", "python -m venv", ".venv/bin/python", "python -m pytest")
EXITS = re.compile(r"#\s*exits\s+(\d+)")
MARKER = re.compile(r"^\s*<!--\s*(not-run|file):(.*?)-->\s*$")
FENCE = re.compile(r"^\s*```\s*([\w-]*)")
ELIDED_LINES, ELIDED_TEXT = {"...", "…"}, "[...]"
ENV = {"NO_COLOR": "1", "COLUMNS": "80", "FORCE_COLOR": None, "CLICOLOR_FORCE": None}
IGNORE = shutil.ignore_patterns(".git", ".venv", ".hypothesis", ".pytest_cache", ".benchmarks", "build",
                                "__pycache__", "*.egg-info", "node_modules")


@dataclass(frozen=True)
class Block:
    line: int  # of the first line inside the fence
    lang: str
    body: tuple[str, ...]
    marker: str | None  # `not-run` or `file`, from a `<!-- KIND: TEXT -->` line right above the fence
    text: str  # the marker's reason or file name


@dataclass(frozen=True)
class Command:
    page: str
    line: int
    args: tuple[str, ...]
    expect: int
    stdout_to: str | None  # `> FILE`
    stdin_from: str | None = None  # `< FILE`
    output: tuple[str, ...] | None = None  # what a ```console block shows; None: not compared
    files: tuple[tuple[str, str], ...] = ()  # (path, text) of the file blocks to write first


@dataclass
class Page:
    commands: list[Command] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    compared: int = 0  # console blocks whose output is checked
    skipped: list[tuple[int, str]] = field(default_factory=list)  # (line of the marker, reason)


def _blocks(lines: list[str], problems: list[str], name: str):
    """Every fenced code block, with the marker right above it."""
    i = 0
    while i < len(lines):
        fence = FENCE.match(lines[i])
        if not fence:
            if MARKER.match(lines[i]) and not (i + 1 < len(lines) and FENCE.match(lines[i + 1])):
                problems.append(
                    f"{name}:{i + 1}: a {MARKER.match(lines[i]).group(1)} marker must be right above "
                    "a code fence"
                )
            i += 1
            continue
        marker = MARKER.match(lines[i - 1]) if i else None
        lang, start, body = fence.group(1).lower(), i + 2, []
        indent = len(lines[i]) - len(lines[i].lstrip())  # a block inside a list item
        i += 1
        while i < len(lines) and not re.match(r"^\s*```\s*$", lines[i]):
            body.append(lines[i][min(indent, len(lines[i]) - len(lines[i].lstrip())):])
            i += 1
        i += 1
        kind, text = (marker.group(1), marker.group(2).strip()) if marker else (None, "")
        if marker and not text:
            problems.append(f"{name}:{start - 2}: the {kind} marker needs a text: <!-- not-run: REASON -->, "
                            "<!-- file: PATH -->")
        yield Block(start, lang, tuple(body), kind, text)


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


def _command(name: str, line: int, segment: str, expect: int, output: tuple[str, ...] | None) -> Command:
    words = shlex.split(segment, comments=True)[1:]
    if "|" in words:
        words = words[:words.index("|")]
    redirects: dict[str, str] = {}
    for sign in (">", "<"):
        if sign in words:
            at = words.index(sign)
            redirects[sign] = words[at + 1]
            words = words[:at] + words[at + 2:]
    return Command(name, line, tuple(words), expect, redirects.get(">"), redirects.get("<"), output)


def _shell_block(name: str, block: Block, page: Page) -> None:
    """```sh and friends: every meshctl line is a command, nothing is compared."""
    for offset, raw in enumerate(block.body):
        following = block.body[offset + 1].strip() if offset + 1 < len(block.body) else ""
        marker = EXITS.search(raw) or (EXITS.match(following) if following.startswith("#") else None)
        for segment in _segments(raw):
            page.commands.append(_command(name, block.line + offset, segment,
                                          int(marker.group(1)) if marker else 0, None))


def _console_block(name: str, block: Block, page: Page) -> None:
    """```console: `$ ` lines are commands, the lines under each one are its output."""
    shown: list[tuple[int, str, list[str]]] = []
    for offset, raw in enumerate(block.body):
        if raw.startswith("$ ") or raw.rstrip() == "$":
            shown.append((block.line + offset, raw, []))
        elif shown:
            shown[-1][2].append(raw)
        elif raw.strip():
            page.problems.append(
                f"{name}:{block.line + offset}: output before the first `$ ` prompt of the block"
            )
    for line, prompt, output in shown:
        segments, has_output = _segments(prompt), any(text.strip() for text in output)
        if has_output and not segments:
            page.problems.append(
                f"{name}:{line}: `{prompt}` is not a meshctl command, so its output cannot be "
                "checked: write `meshctl ... < FILE` for stdin, or mark the block not-run"
            )
            continue
        if has_output and len(segments) > 1:
            page.problems.append(f"{name}:{line}: `{prompt}` chains commands: give each its own `$ ` line "
                                 "to show its output")
            continue
        if has_output and "|" in shlex.split(segments[0], comments=True):
            page.problems.append(
                f"{name}:{line}: the output of a pipe is not checked: drop the pipe or the output"
            )
            continue
        marker = EXITS.search(prompt)
        for segment in segments:
            page.commands.append(_command(name, line, segment, int(marker.group(1)) if marker else 0,
                                          tuple(output)))


def parse(path: Path) -> Page:
    return parse_text(path.read_text(encoding="utf-8"), path.relative_to(REPO).as_posix())


def _file_marker(name: str, block, page: Page, files: list) -> None:
    """A block marked as the content of a file: collect it into *files*, or say what is wrong."""
    if Path(block.text).is_absolute() or ".." in Path(block.text).parts:
        page.problems.append(
            f"{name}:{block.line - 2}: the file marker names {block.text}: give a path "
            "relative to the repository, inside it"
        )
    elif block.lang in SHELL_FENCES:
        page.problems.append(
            f"{name}:{block.line - 2}: a file marker on a ```{block.lang} block: it is "
            "for the content of a file (```yaml, ```json)"
        )
    else:
        files.append((block.text, "".join(f"{line}\n" for line in block.body)))


def _file_marker(name: str, block, page: Page, files: list) -> None:
    """A block marked as the content of a file: collect it into *files*, or say what is wrong."""
    if Path(block.text).is_absolute() or ".." in Path(block.text).parts:
        page.problems.append(
            f"{name}:{block.line - 2}: the file marker names {block.text}: give a path "
            "relative to the repository, inside it"
        )
    elif block.lang in SHELL_FENCES:
        page.problems.append(
            f"{name}:{block.line - 2}: a file marker on a ```{block.lang} block: it is "
            "for the content of a file (```yaml, ```json)"
        )
    else:
        files.append((block.text, "".join(f"{line}\n" for line in block.body)))


def parse_text(text: str, name: str) -> Page:
    """The commands of one page, what they must print, and what is wrong with the page itself."""
    page, files = Page(), []
    for block in _blocks(text.splitlines(), page.problems, name):
        if block.lang != "console" and any(text.startswith("$ meshctl") for text in block.body):
            page.problems.append(
                f"{name}:{block.line}: a `$ meshctl` prompt in a ```{block.lang} block: make it "
                "```console, so its output is checked (or mark it not-run)"
            )
        before = len(page.commands)
        if block.marker == "file":
            _file_marker(name, block, page, files)
        elif block.marker == "not-run":
            if block.lang in SHELL_FENCES:
                page.skipped.append((block.line - 2, block.text))
            else:
                page.problems.append(f"{name}:{block.line - 2}: a not-run marker on a ```{block.lang} block, "
                                     "which is never run")
        elif block.lang == "console":
            page.compared += 1
            _console_block(name, block, page)
        elif block.lang in SHELL_FENCES:
            _shell_block(name, block, page)
        if files and len(page.commands) > before:
            page.commands[before] = replace(page.commands[before], files=tuple(files))
            files = []
    if files:
        page.problems.append(
            f"{name}: no command after the file block of {files[0][0]}: it would never be used"
        )
    return page


def commands(path: Path) -> list[Command]:
    return parse(path).commands


PARSED = {path.relative_to(REPO).as_posix(): parse(path) for path in PAGES}
ALL = [c for page in PARSED.values() for c in page.commands]

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
        return set(IGNORE(directory, names)) | {
            n for n in names if os.path.normpath(os.path.join(here, n)) in leave_out
        }

    shutil.copytree(source, target, ignore=ignore)


def output_matches(expected: tuple[str, ...] | list[str], printed: str) -> bool:
    """`printed` is what `expected` shows, given its `...` and `[...]` elisions."""
    parts = []
    for line in _trimmed(expected):
        if line.strip() in ELIDED_LINES:
            parts.append(r"(?:[^\n]*\n)*?")
        else:
            parts.append("[^\n]*".join(re.escape(piece) for piece in line.split(ELIDED_TEXT)) + "\n")
    return (
        re.fullmatch("".join(parts), "".join(f"{line}\n" for line in _trimmed(printed.splitlines())))
        is not None
    )


def _trimmed(lines) -> list[str]:
    out = [line.rstrip() for line in lines]
    while out and not out[-1]:
        out.pop()
    return out


def test_the_documentation_shows_commands():
    assert len(ALL) > 20, "the command extraction found almost nothing: is the parser broken?"


def test_the_documentation_shows_output():
    compared = sum(page.compared for page in PARSED.values())
    shown = sum(1 for c in ALL if c.output)
    assert compared > 15 and shown > 15, "almost no console output is compared: is the parser broken?"


def test_what_the_docs_leave_in_the_checkout_is_not_copied(tmp_path):
    """Following docs/durability.md in the checkout leaves orders.db; its run then refused to start."""
    source = tmp_path / "src"
    (source / "workflows").mkdir(parents=True)
    for name in ("orders.db", "orders.db-wal", "orders.trace.jsonl", "orders-run.html",
                 "workflows/mesh.yaml"):
        (source / name).write_text("x", encoding="utf-8")
    assert {"orders.db", "orders.db-wal", "orders.trace.jsonl", "orders-run.html"} <= WRITTEN
    copy_repository(source, tmp_path / "copy", WRITTEN)
    assert sorted(p.relative_to(tmp_path / "copy").as_posix() for p in (tmp_path / "copy").rglob("*")) == [
        "workflows", "workflows/mesh.yaml"]


def test_git_ignores_what_the_docs_write():
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    names = sorted(WRITTEN)
    checked = subprocess.run(["git", "check-ignore", "--no-index", *names], cwd=REPO, capture_output=True,
                             text=True)
    assert sorted(checked.stdout.split()) == names


def test_pages_are_well_formed():
    assert [problem for page in PARSED.values() for problem in page.problems] == []


@pytest.mark.parametrize(("expected", "printed", "matches"), [
    (["a", "b"], "a\nb\n", True),
    (["a", "b"], "a\nc\n", False),
    (["a"], "a\nb\n", False),                     # exact: an extra line fails
    (["a", "b"], "a\n", False),                   # and so does a missing one
    (["a", "...", "d"], "a\nb\nc\nd\n", True),
    (["a", "...", "d"], "a\nd\n", True),          # `...` may stand for no line
    (["a", "  ...", "d"], "a\nb\nd\n", True),     # indented like the output around it
    (["a", "...", "d"], "a\nb\nc\n", False),
    (["a", "…", "d"], "a\nb\nc\nd\n", True),
    (["a", "…x", "d"], "a\n…x\nd\n", True),
    (["a", "…x", "d"], "a\nbx\nd\n", False),
    (["...", "z"], "x\ny\nz\n", True),
    (["took [...] s"], "took 0.42 s\n", True),
    (["took [...] s"], "took 0.42 ms\n", False),
    (["took [...] s"], "took 1\n s\n", False),    # `[...]` stays within its line
    (["[...]: error[x]: [...]"], "f.yaml:1:2: error[x]: bad\n", True),
    (["a...b"], "a-b\n", False),                  # only a whole `...` line elides
    (["a  ", "b", "", ""], "a\nb   \n\n", True),  # trailing spaces and blank lines
    (["a", "", "b"], "a\nb\n", False),            # an inner blank line counts
    ([], "", True),
    ([], "something\n", False),
])
def test_output_comparison(expected, printed, matches):
    assert output_matches(expected, printed) is matches


PAGE = """\
```console
$ meshctl validate mesh  # exits 1
mesh: invalid
$ meshctl explain x
```
- an item:

  ```console
  $ meshctl validate - < in.yaml
  <stdin>: valid
  ```

<!-- not-run: needs Redis -->
```console
$ meshctl status mesh --store redis://h
queue  backlog
```

<!-- file: m/a.yaml -->
```yaml
a: 1
```

```sh
meshctl run mesh --events e.jsonl > out.txt
# exits 2
```
"""


def test_the_parser_reads_prompts_output_and_markers():
    page = parse_text(PAGE, "p.md")
    assert page.problems == [] and page.compared == 2 and page.skipped == [(13, "needs Redis")]
    assert [(c.line, c.args, c.expect, c.output) for c in page.commands] == [
        (2, ("validate", "mesh"), 1, ("mesh: invalid",)),
        (4, ("explain", "x"), 0, ()),
        (9, ("validate", "-"), 0, ("<stdin>: valid",)),
        (25, ("run", "mesh", "--events", "e.jsonl"), 2, None)]
    assert (page.commands[2].stdin_from, page.commands[3].stdout_to) == ("in.yaml", "out.txt")
    assert [c.files for c in page.commands] == [(), (), (), (("m/a.yaml", "a: 1\n"),)]


@pytest.mark.parametrize(("text", "problem"), [
    ("```text\n$ meshctl validate x\nx: valid\n```\n", "p.md:2: a `$ meshctl` prompt in a ```text block"),
    ("```console\nx: valid\n$ meshctl validate x\n```\n", "p.md:2: output before the first `$ ` prompt"),
    ("```console\n$ cat x | meshctl validate -\nx: valid\n```\n",
     "p.md:2: `$ cat x | meshctl validate -` is not"),
    ("```console\n$ meshctl init a && meshctl test a\nok\n```\n",
     "p.md:2: `$ meshctl init a && meshctl test a`"),
    ("```console\n$ meshctl explain x | head -1\nx\n```\n", "p.md:2: the output of a pipe is not checked"),
    ("<!-- not-run: -->\n```console\n$ meshctl x\n```\n", "p.md:1: the not-run marker needs a text"),
    ("<!-- file: /tmp/m.yaml -->\n```yaml\na: 1\n```\n$ meshctl x\n", "p.md:1: the file marker names /tmp"),
    ("<!-- file: m.yaml -->\n```sh\nmeshctl x\n```\n", "p.md:1: a file marker on a ```sh block"),
    ("<!-- file: m.yaml -->\n```yaml\na: 1\n```\n", "p.md: no command after the file block of m.yaml"),
    ("<!-- not-run: server -->\n\n```console\n$ meshctl x\n```\n",
     "p.md:1: a not-run marker must be right above"),
    ("<!-- not-run: server -->\n```yaml\na: 1\n```\n", "p.md:1: a not-run marker on a ```yaml block"),
])
def test_the_parser_rejects_pages_it_cannot_check(text, problem):
    problems = parse_text(text, "p.md").problems
    assert len(problems) == 1 and problems[0].startswith(problem), problems


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


def _into_copy(word: str, root: Path, mapped: dict[str, str]) -> str:
    """An absolute output path, moved into the copy (the same path each time)."""
    if word.startswith("/") and word not in mapped.values():
        mapped.setdefault(word, str(root / "_out" / Path(word).name))
        (root / "_out").mkdir(exist_ok=True)
    return mapped.get(word, word)


def _rewrite(args: tuple[str, ...], root: Path, mapped: dict[str, str]) -> list[str]:
    """Absolute output paths into the copy; later mentions of the same path follow them."""
    out, words = [], list(args)
    for i, word in enumerate(words):
        out.append(
            _into_copy(word, root, mapped) if i and words[i - 1] in OUTPUT_OPTIONS else mapped.get(word, word)
        )
    return out


def _difference(expected: tuple[str, ...], printed: str) -> str:
    diff = difflib.unified_diff(_trimmed(expected), _trimmed(printed.splitlines()), "the page", "meshctl",
                                lineterm="", n=2)
    return "\n".join(list(diff)[2:])


@pytest.mark.parametrize("command", ALL, ids=[f"{c.page}:{c.line}:{' '.join(c.args)[:60]}" for c in ALL])
def test_documented_command(command: Command, copies, monkeypatch):
    root, mapped = copies(command.page)
    monkeypatch.chdir(root)
    for path, text in command.files:
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text, encoding="utf-8")
    args = _rewrite(command.args, root, mapped)
    stdin = (
        Path(mapped.get(command.stdin_from, command.stdin_from)).read_bytes() if command.stdin_from else None
    )
    result = CliRunner().invoke(main, args, input=stdin, env=ENV, prog_name="meshctl")
    shown = result.output
    if command.stdout_to:
        Path(_into_copy(command.stdout_to, root, mapped)).write_text(result.stdout, encoding="utf-8")
        shown = result.stderr
    where = f"{command.page}:{command.line}: `meshctl {' '.join(command.args)}`"
    assert result.exit_code == command.expect, (
        f"{where} exited {result.exit_code}, expected {command.expect}\n{shown}\n{result.exception!r}")
    if command.output is None:
        return
    for original, moved in mapped.items():
        shown = shown.replace(moved, original)
    assert output_matches(command.output, shown), (
        f"{where} printed something else than the page shows (-page +meshctl); mark what varies between runs "
        f"with a `...` line or `[...]` within a line:\n{_difference(command.output, shown)}")


def quoted_records(page: Path) -> list[tuple[int, str]]:
    """(line number, text) of the trace records a page quotes: lines of its ```json blocks that start
    with {"seq"."""
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
    written = {
        line for trace in traces if trace.exists() for line in trace.read_text(encoding="utf-8").splitlines()
    }
    missing = [f"{page.name}:{number}: {text[:100]}" for number,
               text in quoted_records(page) if text not in written]
    assert not missing, "quoted trace records no command of the page writes:\n" + "\n".join(missing)
