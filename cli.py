"""The `meshctl` command line. Parses arguments, calls the engine, prints, sets the exit code.

Exit codes: 0 success; 1 invalid input (a mesh or file with errors); 2 usage error (bad flags,
missing path, unknown view or format); 70 internal error (a bug: please report it); 141 the
reader of stdout or stderr went away (`meshctl validate x | head -1`): meshctl stops at once and
prints nothing more, and 141 is what a shell reports for `cat` or `grep` stopped the same way
(128 + SIGPIPE), so `set -o pipefail` scripts treat meshctl like them.
The only module that imports click, prints, or exits.
"""
from __future__ import annotations

import contextlib
import importlib.metadata
import json
import logging
import os
import select
import sys
import time
from typing import TYPE_CHECKING

import click

# The engine is reached through its public API (`engine`) and its use cases (`engine.commands`)
# only. Start-up: `meshctl --help` and the options of every command need only click, the errors,
# the terminal output and the format names, all cheap. The use-case modules load networkx,
# jsonschema, jinja2 and the runtime (about a second), so each command imports the ones it
# uses when it runs, below.
from engine import FORMAT_NAMES, MeshError
from engine.commands.terminal import Sources, did_you_mean, printable, printable_lines
from engine.commands.terminal import render as render_diagnostic

if TYPE_CHECKING:
    from engine.commands.checks import CheckResult

EXIT_VIOLATED = 3  # `run`: the run broke an invariant of the mesh (docs/invariants.md)
EXIT_INTERNAL = 70
EXIT_CLOSED_PIPE = 141  # 128 + SIGPIPE, as a shell reports a program the signal stopped


class MeshGroup(click.Group):
    """Turns MeshError into its message and exit code, once, for every command; and a reader of
    the output that went away (`| head -1`) into a quiet exit 141."""

    def main(self, *args, **kwargs):
        try:
            return super().main(*args, **kwargs)
        except BrokenPipeError:  # while click printed a usage error
            _silence_output()
            sys.exit(EXIT_CLOSED_PIPE)

    def make_context(self, *args, **kwargs):
        try:
            return super().make_context(*args, **kwargs)
        except BrokenPipeError:  # while printing --help or --version
            _silence_output()
            raise click.exceptions.Exit(EXIT_CLOSED_PIPE) from None

    def invoke(self, ctx: click.Context):
        try:
            return self._invoke(ctx)
        except BrokenPipeError:  # our output's reader went away, maybe while reporting an error
            if not _reader_gone():
                raise
            _silence_output()
            ctx.exit(EXIT_CLOSED_PIPE)

    def _invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except MeshError as exc:
            for diagnostic in getattr(exc, "diagnostics", None) or []:
                click.echo(render_diagnostic(diagnostic, _style), err=True)
            if not getattr(exc, "diagnostics", None):
                click.echo(printable_lines(f"meshctl: {exc}"), err=True)
            ctx.exit(exc.exit_code)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except (KeyboardInterrupt, SystemExit, GeneratorExit):
            raise
        except BaseException as exc:  # last resort: a bug in meshctl, shown without a traceback
            # BaseException: a panic in a Rust extension (pyo3's PanicException) is not an Exception.
            if isinstance(exc, BrokenPipeError) and _reader_gone():
                raise  # not a bug: stdout or stderr was closed (a socket's broken pipe is one)
            if os.environ.get("MESHCTL_DEBUG"):
                raise
            click.echo(printable_lines(f"meshctl: internal error: {type(exc).__name__}: {exc} "
                                 "(set MESHCTL_DEBUG=1 for a traceback, and please report it)"), err=True)
            ctx.exit(EXIT_INTERNAL)


def _color(ctx: click.Context, param, value: str) -> str:
    """Set the colour of everything click prints: on, off, or None (on for a terminal only)."""
    if value == "always":
        ctx.color = True
    elif value == "never" or os.environ.get("NO_COLOR"):
        ctx.color = False
    elif any(os.environ.get(name, "0") not in ("", "0") for name in ("FORCE_COLOR", "CLICOLOR_FORCE")):
        ctx.color = True
    return value


STYLES = {
    "error": {"fg": "red", "bold": True}, "warning": {"fg": "yellow", "bold": True},
    "info": {"fg": "blue", "bold": True}, "note": {"fg": "cyan", "bold": True},
    "hint": {"fg": "green", "bold": True}, "location": {"bold": True}, "gutter": {"fg": "blue", "bold": True},
    "pass": {"fg": "green", "bold": True}, "fail": {"fg": "red", "bold": True},
    "seen": {"dim": True}, "diff": {"fg": "yellow"},
}


def _style(text: str, role: str) -> str:
    """Colour by role; click.echo drops the codes again unless colour is on for its stream."""
    return click.style(text, **STYLES[role]) if text and role in STYLES else text


def _reader_gone() -> bool:
    """Whether stdout or stderr is a pipe (or socket) whose reading end has been closed."""
    if not hasattr(select, "poll"):  # Windows: trust the exception
        return True
    for stream in (sys.stdout, sys.stderr):
        try:
            fd = stream.fileno()
        except (AttributeError, OSError, ValueError):  # not a real file (click's test runner)
            continue
        poller = select.poll()
        poller.register(fd, select.POLLOUT)
        if any(events & (select.POLLERR | select.POLLHUP) for _, events in poller.poll(0)):
            return True
    return False


def _silence_output() -> None:
    """Point stdout and stderr at /dev/null, so that nothing still buffered, nor Python's flush
    at exit, writes to the closed pipe again (which prints 'Exception ignored ... BrokenPipeError')."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(AttributeError, OSError, ValueError):
            os.dup2(devnull, stream.fileno())
    os.close(devnull)


@click.group(cls=MeshGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="meshctl")
@click.option("--color", type=click.Choice(["auto", "always", "never"]), default="auto", show_default=True,
              callback=_color, is_eager=True, expose_value=False,
              help="Colour diagnostics and summaries: auto is on for a terminal, off if NO_COLOR is set.")
def main() -> None:
    """Declare an event mesh in YAML, then check it, see it and run it.

    \b
    Examples:
      meshctl validate workflows/orders
      meshctl render workflows/orders --format html -o orders.html
      meshctl run workflows/orders --events workflows/orders/events.jsonl
      meshctl test workflows/orders
      meshctl COMMAND --help
    """


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, allow_dash=True))
@click.option("--format", "fmt", type=click.Choice(["text", "short", "json", "sarif"]), default="text",
              show_default=True, help="Compiler-style lines with the source line and a caret; short: without "
                                      "them; json: one document for machines; sarif: SARIF 2.1.0 for code "
                                      "scanning.")
@click.option("--strict", is_flag=True, help="Warnings fail validation too.")
@click.option("-q", "--quiet", is_flag=True, help="Print errors only (no warnings, no summary).")
def validate(paths: tuple[str, ...], fmt: str, strict: bool, quiet: bool) -> None:
    """Check meshes without running anything.

    Each PATH is a mesh: a YAML file, or a directory of them. Every problem found is printed
    as file:line:col. Exit 0 when every mesh is valid, 1 when any has errors (or warnings,
    with --strict).

    \b
    Examples:
      meshctl validate workflows/orders
      meshctl validate --strict workflows/orders workflows/arena
      meshctl validate -q workflows/arena
      meshctl validate --format json workflows/arena
    """
    if paths.count("-") > 1:
        raise click.UsageError("standard input (-) can be read only once")
    sources = Sources() if fmt == "text" else None
    results = [_check(path, sources) for path in paths]
    if fmt == "json":
        click.echo(json.dumps(_json_report(results, strict), indent=2))
    elif fmt == "sarif":
        from engine.commands.sarif import sarif_log

        log = sarif_log([d for r in results for d in r.diagnostics], importlib.metadata.version("meshctl"))
        click.echo(json.dumps(log, indent=2))
    else:
        for result in results:
            _print_text(result, strict, quiet, sources)
    sys.exit(0 if all(r.valid(strict) for r in results) else 1)


def _check(path: str, sources: Sources | None = None) -> CheckResult:
    """Check the mesh at *path*, or the YAML on standard input for ``-`` (kept in *sources* for snippets)."""
    from engine.commands.checks import STDIN, STDIN_READ, check_mesh, check_mesh_text

    if path != "-":
        return check_mesh(path)
    raw = sys.stdin.buffer.read(STDIN_READ)
    if sources is not None:
        sources.add(STDIN, raw.decode("utf-8-sig", errors="replace"))
    return check_mesh_text(raw, STDIN, root=".")


def _valid_mesh(path: str) -> CheckResult:
    """The valid mesh at *path* (``-``: standard input), or LoadError with its errors."""
    from engine.commands.checks import require_valid, valid_or_raise

    return require_valid(path) if path != "-" else valid_or_raise(_check(path))


def _stdin_path(value: str | None, *others: str | None) -> str | None:
    """*value*, or the path of standard input for ``-``, which only one argument may claim."""
    if value != "-":
        return value
    if "-" in others:
        raise click.UsageError(
            "standard input (-) can be read only once: give the mesh or the events as a file"
        )
    try:
        os.fstat(0)
    except OSError:
        raise click.UsageError("- reads standard input, which is closed") from None
    return "/dev/stdin"


def _print_text(result: CheckResult, strict: bool, quiet: bool, sources: Sources | None) -> None:
    for diagnostic in result.diagnostics:
        if quiet and diagnostic.severity != "error":
            continue
        click.echo(render_diagnostic(diagnostic, _style, sources))
    if quiet:
        return
    valid = result.valid(strict)
    verdict = _style("valid", "pass") if valid else _style("invalid", "fail")
    click.echo(
        f"{printable(result.path)}: {verdict} ({_count(result.errors, 'error')}, "
        f"{_count(result.warnings, 'warning')})"
    )


def _count(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def _json_report(results: list[CheckResult], strict: bool) -> dict:
    return {
        "valid": all(r.valid(strict) for r in results),
        "strict": strict,
        "meshes": [
            {
                "path": r.path,
                "valid": r.valid(strict),
                "errors": r.errors,
                "warnings": r.warnings,
                "diagnostics": [d.as_dict() for d in r.diagnostics],
            }
            for r in results
        ],
    }


@main.command()
@click.argument("path", required=False, type=click.Path(exists=True, allow_dash=True))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(sorted(FORMAT_NAMES)),
    default="mermaid",
    show_default=True,
    help="Text diagrams (mermaid, dot) or drawn by meshctl itself (svg, a self-contained html page).",
)
@click.option(
    "--orchestration",
    "name",
    metavar="NAME",
    help="Draw this orchestration's step graph instead of the whole flow.",
)
@click.option(
    "--trace",
    "trace",
    type=click.Path(exists=True, dir_okay=False, allow_dash=True),
    help="Draw a run's trace (from `meshctl run --trace`) as a sequence diagram instead "
    "(mermaid, svg, html).",
)
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False, writable=True), help="Write to FILE instead of stdout."
)
def render(path: str | None, fmt: str, name: str | None, trace: str | None, output: str | None) -> None:
    """Draw a mesh's event flow, an orchestration, or a run's trace.

    By default the whole event flow of the mesh at PATH; with --orchestration, one
    orchestration's step graph; with --trace, a run's trace as a sequence diagram. Circular
    events are drawn in red, dead-letter queues as cylinders, retry policies on their
    consumers. The mesh must be valid (exit 1 with its errors otherwise).

    \b
    Examples:
      meshctl render workflows/orders
      meshctl render workflows/arena --format html -o arena.html
      meshctl render workflows/orders --orchestration fulfil-order --format svg -o fulfil-order.svg
      meshctl render --trace orders-trace.jsonl --format html -o orders-run.html
    """
    from engine.commands.diagrams import mesh_diagram, trace_diagram

    if trace:
        title = f"Run trace: {'standard input' if trace == '-' else trace}"
        _write(trace_diagram(_stdin_path(trace), fmt, title), output)
        return
    if path is None:
        raise click.UsageError("give the mesh PATH, or --trace FILE")
    _write(mesh_diagram(_valid_mesh(path), fmt, name), output)


def _run_options(f):
    """Options shared by `run` and `dlq replay`."""
    options = [
        click.option(
            "--seed",
            type=int,
            default=0,
            show_default=True,
            help="Seed of retry jitter: same input and seed, same run.",
        ),
        click.option(
            "--http",
            type=click.Choice(["simulate", "live"]),
            default="simulate",
            show_default=True,
            help="`simulate` records HTTP calls and answers 202; `live` really POSTs.",
        ),
        click.option(
            "--fault",
            "faults",
            multiple=True,
            metavar="CONSUMER[=TIMES][:ERROR]",
            help="Make a consumer's first TIMES attempts (or all) fail with ERROR. Repeatable.",
        ),
        click.option(
            "--max-hops",
            type=click.IntRange(1, 1000),
            default=16,
            show_default=True,
            help="An event this many hops or more from its input is dead-lettered as loop-detected.",
        ),
        click.option(
            "--trace",
            "trace_path",
            type=click.Path(dir_okay=False, writable=True),
            help="Write every delivery, retry, emit and dead letter as JSON Lines.",
        ),
        click.option(
            "--output",
            "output_path",
            type=click.Path(dir_okay=False, writable=True),
            help="Write every emitted event (CloudEvents JSON Lines).",
        ),
        click.option(
            "--format",
            "fmt",
            type=click.Choice(["text", "json"]),
            default="text",
            show_default=True,
            help="Summary as a table or as JSON.",
        ),
    ]
    for option in reversed(options):
        f = option(f)
    return f


@main.command()
@click.argument("path", type=click.Path(exists=True, allow_dash=True))
@click.option(
    "--events",
    "events",
    type=click.Path(exists=True, dir_okay=False, allow_dash=True),
    help="Input events: JSON Lines, or a YAML/JSON list; - reads JSON Lines from standard input. "
    "Required unless the mesh has schedules.",
)
@click.option(
    "--from",
    "start",
    metavar="TIME",
    help="Start the virtual clock at TIME (RFC 3339); default: the first input's time, or "
    "2026-01-01T00:00:00Z without input.",
)
@click.option(
    "--until",
    metavar="TIME|DURATION",
    help="Schedules fire their ticks before TIME (RFC 3339), or for DURATION (e.g. 1d) from the "
    "clock's start; default: up to the last input.",
)
@click.option(
    "--dlq-out",
    "dlq_path",
    type=click.Path(dir_okay=False, writable=True),
    help="Write the dead letters (JSON Lines) for `meshctl dlq`.",
)
@click.option(
    "--store",
    "store",
    metavar="URL",
    default="memory:",
    show_default=True,
    help="memory: or sqlite:PATH (durable: effects and input position commit together).",
)
@click.option("--resume", is_flag=True, help="Continue the interrupted run kept in --store.")
@click.option(
    "--checkpoint-every",
    type=click.IntRange(1),
    default=1000,
    show_default=True,
    help="Inputs between durable commits (with --store sqlite:PATH).",
)
@click.option(
    "--strict-input",
    is_flag=True,
    help="Exit 1 if an input record is refused (not an event, undeclared type, bad data); "
    "it is dead-lettered all the same.",
)
@click.option(
    "--replay-choices",
    "choices_path",
    metavar="FILE",
    type=click.Path(exists=True, dir_okay=False),
    help="Make the choices of FILE (a counterexample of `meshctl explore`) where a deployment could "
    "differ; its events unless --events is given. Exit 3 if an invariant breaks.",
)
@_run_options
def run(
    path,
    events,
    start,
    until,
    dlq_path,
    store,
    resume,
    checkpoint_every,
    strict_input,
    choices_path,
    seed,
    http,
    faults,
    max_hops,
    trace_path,
    output_path,
    fmt,
) -> None:
    """Run a mesh on a file of events, on a virtual clock.

    The mesh at PATH takes the events of --events FILE and runs to quiescence; a summary
    follows. Deterministic: the same mesh, input and --seed give the same trace, byte for
    byte. With --store sqlite:PATH a crash (even kill -9) loses nothing: run again with
    --resume. Input records the mesh refuses (not an event, an undeclared type, data against
    its schema) are dead-lettered, the first 10 shown on stderr with their file:line:col.
    The mesh's schedules fire their ticks on the same clock, from --from (or the first input)
    up to --until (or the last input); a mesh with schedules runs without --events too.
    Exit 0 when the run completes (dead letters included: see the summary), 1 if the mesh is
    invalid, or with --strict-input if an input record was refused, 3 if the run broke an
    invariant of the mesh (`kind: Check`, printed on stderr, file:line:col each).

    \b
    Examples:
      meshctl run workflows/orders --events workflows/orders/events.jsonl
      meshctl run workflows/arena --events workflows/arena/events.jsonl --trace arena-trace.jsonl --dlq-out \\
        arena-dlq.jsonl
      meshctl run workflows/arena --events workflows/arena/events.jsonl --fault \\
        service:score-service/score.recorded=2:TimeoutError
      meshctl run workflows/orders --events workflows/orders/events.jsonl --store sqlite:orders.db
      meshctl run workflows/orders --events workflows/orders/events.jsonl --store sqlite:orders.db --resume
      meshctl run workflows/orders --events workflows/orders/events.jsonl --strict-input
      meshctl run workflows/reports --from 2026-03-28T12:00:00Z --until 1d
    """
    from engine.commands.runs import RunOptions, faults_for, run_mesh

    started, read = time.perf_counter(), [0]
    events = _stdin_path(events, path)
    mesh = _valid_mesh(path).mesh
    if choices_path is not None:
        given = {"--store": store != "memory:", "--resume": resume, "--fault": faults, "--from": start,
                 "--until": until, "--strict-input": strict_input, "--output": output_path}
        _replay_choices(mesh, events, choices_path, seed, trace_path, dlq_path, fmt,
                        [name for name, value in given.items() if value])
        return
    bounds = _run_bounds(mesh, events, start, until)
    refused, violations = RefusedInput(), []
    options = RunOptions(
        seed,
        http,
        faults_for(mesh, faults),
        max_hops,
        trace_path,
        output_path,
        dlq_path,
        store,
        resume,
        checkpoint_every,
        log=lambda message: click.echo(f"meshctl run: {message}", err=True),
        refused=refused,
        strict_input=strict_input,
        violated=violations.append,
        **bounds,
    )
    with _progress(events, read) as progress:
        summary, dead = run_mesh(mesh, events, options, progress)
    refused.close()
    for violation in violations:
        click.echo(printable(str(violation)), err=True)
    if refused.count:
        click.echo(
            f"meshctl run: {_count(refused.count, 'input record')} refused, dead-lettered "
            "(schema-invalid or undeliverable)",
            err=True,
        )
    _print_summary(summary, fmt, dead)
    if fmt == "text":  # wall time on stderr: the summary on stdout stays the same from run to run
        _print_elapsed(time.perf_counter() - started, read[0])
    if strict_input and refused.count:
        sys.exit(1)
    if violations:
        sys.exit(EXIT_VIOLATED)


def _replay_choices(mesh, events, choices_path, seed, trace_path, dlq_path, fmt, conflicting) -> None:
    """`run --replay-choices`: one run through a counterexample's choices (docs/explore.md)."""
    import engine.commands.explore as exploring
    from engine.commands.runs import write_dead_letters

    if conflicting:
        raise click.UsageError(
            f"--replay-choices runs in memory on the virtual clock: drop {', '.join(conflicting)}"
        )
    outcome, _ = exploring.replay(mesh, events, choices_path, seed, trace_path)
    for line in exploring.replay_lines(outcome):
        click.echo(f"meshctl run: {line}", err=True)
    if dlq_path:
        write_dead_letters(dlq_path, outcome.dead)
    _print_summary(outcome.summary, fmt, outcome.dead)
    for line in exploring.violation_lines(outcome.violations):
        click.echo(line, err=True)
    if outcome.violations:
        sys.exit(EXIT_VIOLATED)


def _run_bounds(mesh, events: str | None, start: str | None, until: str | None) -> dict:
    """`run --from/--until` as RunOptions fields; a run needs input, or schedules and --until."""
    from engine.commands.runs import time_or_span

    if events is None and not mesh.schedules:
        raise click.UsageError("Missing option '--events': the mesh has no schedules to run without input")
    if events is None and until is None:
        raise click.UsageError(
            "a run of schedules without --events needs --until TIME|DURATION: their ticks never end"
        )
    out = {}
    try:
        if start is not None:
            out["start"] = time_or_span(start, span=False)[0]
        if until is not None:
            out["until"], out["span"] = time_or_span(until)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="'--from' / '--until'") from None
    return out


class RefusedInput:
    """Tells the input records refused at entry, for `run` (which dead-letters them) and
    `publish` (which then sends nothing) alike: the first SHOWN on stderr, each with its
    file:line:col, what is wrong and a did-you-mean where one helps; then how many more."""

    SHOWN = 10

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, diagnostic) -> None:
        self.count += 1
        if self.count <= self.SHOWN:
            click.echo(render_diagnostic(diagnostic, _style), err=True)

    def close(self) -> None:
        if self.count > self.SHOWN:
            click.echo(f"... and {self.count - self.SHOWN:,} more ({self.count:,} in all)", err=True)


@contextlib.contextmanager
def _progress(events: str, read: list[int]):
    """Counts the inputs read into read[0]; with a progress bar on stderr for long inputs read
    from a terminal session."""
    size = os.path.getsize(events) if events is not None else 0
    if size < 5_000_000 or not sys.stderr.isatty():

        def count(items):
            for read[0], item in enumerate(items, start=1):
                yield item

        yield count
        return
    with click.progressbar(length=size, label="events", file=sys.stderr) as bar:

        def track(items):
            for read[0], item in enumerate(items, start=1):
                bar.update(len(json.dumps(item, default=str)) + 1 if isinstance(item, dict) else 1)
                yield item

        yield track


def _explore_progress():
    """A line on stderr, rewritten as the search goes, when stderr is a terminal (else None)."""
    if not sys.stderr.isatty():
        return None

    def show(report) -> None:
        click.echo(f"\rexplored {report.runs:,} runs, {len(report.per_level) - 1} deviations deep, "
                   f"{report.elapsed:,.0f} s", err=True, nl=False)
    return show


def _print_elapsed(seconds: float, read: int) -> None:
    rate = f"{read / seconds:,.0f} events/s" if read and seconds > 0 else "no input read"
    click.echo(f"{'elapsed':<22}{seconds:>8.2f} s ({_count(read, 'input')} read: {rate})", err=True)


SUMMARY_ROWS = [
    ("events in", "events_in"),
    ("matched", "matched"),
    ("delivered (attempts)", "delivered"),
    ("filtered", "filtered"),
    ("emitted", "emitted"),
    ("retries", "retries"),
    ("duplicates skipped", "duplicates"),
    ("unconsumed", "unconsumed"),
    ("dead-lettered", "dead_lettered"),
    ("runs started", "runs_started"),
    ("runs completed", "runs_completed"),
    ("runs failed", "runs_failed"),
    ("runs compensated", "runs_compensated"),
    ("runs cancelled", "runs_cancelled"),
    ("runs timed out", "runs_timed_out"),
    ("windows emitted", "windows_emitted"),
    ("late events", "late_events"),
    ("rate limited", "rate_limited"),
    ("sequence gaps", "sequence_gaps"),
    ("runs redriven", "runs_redriven"),
    ("schedule ticks", "ticks"),
]
_ONLY_IF_ANY = {"ticks"}  # a row shown only when not 0: most meshes have no schedule
# after the dead letters by reason: lines only some summaries have
SUMMARY_TAIL = [
    ("held (circuit open)", "held"),
    ("released", "released"),
    ("replayed", "replayed"),
    ("still dead", "still_dead"),
    ("selected", "selected"),
    ("queued", "queued"),
]


def _print_summary(summary: dict, fmt: str, dead: list) -> None:
    if fmt == "json":
        click.echo(json.dumps(summary, indent=2))
        return
    for label, key in SUMMARY_ROWS:
        if key in summary and (summary[key] or key not in _ONLY_IF_ANY):
            click.echo(f"{label:<22}{summary[key]:>8}")
    for reason, n in summary.get("dead_lettered_by_reason", {}).items():
        click.echo(f"  {reason:<20}{n:>8}")
    for label, key in SUMMARY_TAIL:
        if key in summary:
            click.echo(f"{label:<22}{summary[key]:>8}")
    _print_failed_runs(summary)
    if "invariants" in summary:
        checked = summary["invariants"]
        if checked.get("not_judged"):
            click.echo(f"invariants: {checked['not_judged']} not checked (the run was too long: see above)")
        else:
            click.echo(f"invariants: {checked['checked']} checked, {checked['violated']} violated")


def _print_failed_runs(summary: dict) -> None:
    """The ids of the first runs that failed (or were compensated), and how many more did."""
    shown = summary.get("failed_runs") or []
    if not shown:
        return
    click.echo("failed runs:")
    for run in shown:
        click.echo(printable(f"  {run['id']}  {run['status']}"))
    ended = ("runs_failed", "runs_compensated", "runs_cancelled", "runs_timed_out")
    more = sum(summary.get(key, 0) for key in ended) - len(shown)
    if more > 0:
        click.echo(f"  and {more:,} more")


@main.group()
def dlq() -> None:
    """Inspect, redrive and purge dead letters.

    They are read from a file written by `run --dlq-out` (--dlq FILE), or from a durable
    store (--store sqlite:PATH of `run --store`, or a worker deployment's redis://...).

    \b
    Examples:
      meshctl dlq list --dlq arena-dlq.jsonl
      meshctl dlq list --store sqlite:orders.db --reason retries-exhausted
      meshctl dlq replay workflows/arena --dlq arena-dlq.jsonl --reason retries-exhausted
      meshctl dlq purge --dlq arena-dlq.jsonl --reason late-event --dry-run
    """


def _dlq_source(f):
    f = click.option(
        "--store",
        "store",
        metavar="URL",
        help="A durable store: sqlite:PATH written by `run --store`, or a worker deployment's redis://...",
    )(f)
    f = click.option(
        "--dlq",
        "dlq_path",
        type=click.Path(exists=True, dir_okay=False),
        help="A dead-letter file written by `run --dlq-out`.",
    )(f)
    return f


def _reason(ctx, param, value):
    from engine.commands.runs import REASONS

    if value is None or value in REASONS:
        return value
    raise click.BadParameter(
        f"{value!r} is not a dead-letter reason; "
        + (did_you_mean(value, REASONS) or f"reasons: {', '.join(REASONS)}")
    )


def _dlq_filters(f):
    f = click.option(
        "--reason",
        callback=_reason,
        metavar="REASON",
        help="Only records with this reason (e.g. retries-exhausted; all: docs/run.md#dead-letters).",
    )(f)
    f = click.option("--consumer", help="Only records of this consumer.")(f)
    f = click.option("--id", "ids", multiple=True, help="Only these record ids. Repeatable.")(f)
    return f


def _select(ids, reason, consumer, records=()):
    """The filter of the options; a --consumer or --id that no record has is noted on stderr (a
    consumer may have no dead letter, so it is no error), with a did-you-mean when one is close."""
    for given, known, what in [
        (consumer, {r.consumer for r in records}, "consumer"),
        *((i, {r.id for r in records}, "id") for i in ids),
    ]:
        if given is not None and given not in known:
            hint = did_you_mean(given, sorted(known))
            note = f"meshctl dlq: note: no dead letter has {what} {given!r}" + (f"; {hint}" if hint else "")
            click.echo(printable(note), err=True)
    return lambda r: (
        (not ids or r.id in ids)
        and (reason is None or r.reason == reason)
        and (consumer is None or r.consumer == consumer)
    )


@dlq.command("list")
@_dlq_source
@_dlq_filters
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
def dlq_list(dlq_path, store, ids, reason, consumer, fmt) -> None:
    """List dead letters, one line each.

    Each line: id, reason, consumer, event type and id, attempts, error; then their number.
    Filters select records (all given must hold).

    \b
    Examples:
      meshctl dlq list --dlq arena-dlq.jsonl
      meshctl dlq list --dlq arena-dlq.jsonl --reason late-event
      meshctl dlq list --store sqlite:orders.db --format json
    """
    from engine.commands.runs import DeadLetters

    records = DeadLetters(dlq_path, store).records()
    records = list(filter(_select(ids, reason, consumer, records), records))
    if fmt == "json":
        click.echo(json.dumps([r.as_dict() for r in records], indent=2, default=str))
        return
    for r in records:
        click.echo(_record_line(r))
    click.echo(f"{len(records)} dead letter{'s' if len(records) != 1 else ''}")


def _record_line(r) -> str:
    event = r.event if isinstance(r.event, dict) else {}
    return printable(
        f"{r.id}  {r.reason:<18} {r.consumer}  {event.get('type', '?')} {event.get('id', '?')}  "
        f"attempts={r.attempts}  {r.error_type}: {r.error}"
    )


@dlq.command("show")
@_dlq_source
@click.argument("record_id")
def dlq_show(dlq_path, store, record_id) -> None:
    """Show one dead letter as a problem document.

    The whole record, RFC 7807 style (type, title, detail, instance, then every field),
    event included.

    \b
    Examples:
      meshctl dlq show --dlq arena-dlq.jsonl 2dca1f20d7b0ab2a
      meshctl dlq show --store sqlite:orders.db 2dca1f20d7b0ab2a
    """
    from engine.commands.runs import DeadLetters

    records = DeadLetters(dlq_path, store).records()
    for record in records:
        if record.id == record_id:
            click.echo(json.dumps(record.problem(), indent=2, default=str))
            return
    hint = did_you_mean(record_id, [r.id for r in records])
    raise click.BadParameter(
        f"no dead letter {record_id!r} in {dlq_path or store}" + (f"; {hint}" if hint else ""),
        param_hint="RECORD_ID",
    )


def _parsed_by(name: str):
    """A click callback: the option's value read by ``engine.commands.runs.<name>`` (imported
    when used: start-up stays light); None stays None, a ValueError is a bad parameter."""
    def parse(ctx, param, value):
        if value is None:
            return None
        import engine.commands.runs as runs

        try:
            return getattr(runs, name)(value)
        except ValueError as exc:
            raise click.BadParameter(str(exc)) from None
    return parse


_rate = _parsed_by("parse_rate")


def _rate_option(f):
    return click.option(
        "--rate",
        callback=_rate,
        metavar="N/s|N/m|N/h",
        help="Replay at most N events per second, minute or hour, spaced evenly (in the run's clock "
        "time; a deployment's workers take them at that rate), so a consumer's circuit breaker or "
        "rate limit sees them spread out. Default: all at once.",
    )(f)


@dlq.command("replay")
@click.argument("path", type=click.Path(exists=True))
@_dlq_source
@_dlq_filters
@_rate_option
@_run_options
def dlq_replay(
    path, dlq_path, store, ids, reason, consumer, rate, seed, http, faults, max_hops, trace_path, output_path,
    fmt,
) -> None:
    """Deliver dead letters again through a mesh.

    The selected records are delivered through the mesh at PATH. Records that succeed leave
    the file or store; records that fail again stay (updated).

    \b
    Examples:
      meshctl dlq replay workflows/arena --dlq arena-dlq.jsonl
      meshctl dlq replay workflows/arena --dlq arena-dlq.jsonl --reason retries-exhausted --trace \\
        replay-trace.jsonl
      meshctl dlq replay workflows/orders --store sqlite:orders.db --consumer \\
        service:notifications/order.failed
      meshctl dlq replay workflows/billing --dlq billing-dlq.jsonl --rate 2/s
    """
    from engine.commands.checks import require_valid
    from engine.commands.runs import DeadLetters, RunOptions, faults_for, replay_dead_letters

    mesh = require_valid(path).mesh
    options = RunOptions(seed, http, faults_for(mesh, faults), max_hops, trace_path, output_path, rate=rate)
    source = DeadLetters(dlq_path, store, mesh.retention)
    summary, _ = replay_dead_letters(mesh, source, _select(ids, reason, consumer, source.records()), options)
    _print_summary(summary, fmt, [])


@dlq.command("purge")
@_dlq_source
@_dlq_filters
@click.option(
    "--all", "everything", is_flag=True, help="Purge every record (required when no filter is given)."
)
@click.option("--dry-run", is_flag=True, help="List the records that would be purged, and purge nothing.")
def dlq_purge(dlq_path, store, ids, reason, consumer, everything, dry_run) -> None:
    """Delete dead letters.

    Without a filter, --all is required. --dry-run lists what would be deleted and deletes
    nothing.

    \b
    Examples:
      meshctl dlq purge --dlq arena-dlq.jsonl --reason late-event --dry-run
      meshctl dlq purge --dlq arena-dlq.jsonl --reason late-event
      meshctl dlq purge --store sqlite:orders.db --all
    """
    if not (ids or reason or consumer or everything):
        raise click.UsageError("give --id, --reason or --consumer, or --all to purge everything")
    from engine.commands.runs import DeadLetters

    source = DeadLetters(dlq_path, store)
    records = source.records()
    chosen = list(filter(_select(ids, reason, consumer, records), records))
    if dry_run:
        for r in chosen:
            click.echo(_record_line(r))
        click.echo(
            f"would purge {len(chosen)}, keep {len(records) - len(chosen)} (dry run: nothing was removed)"
        )
        return
    purged = source.remove([r.id for r in chosen])
    source.save()
    click.echo(f"purged {purged}, kept {len(records) - purged}")


@main.command()
@click.argument("path", type=click.Path(exists=True))
@click.option("--events", "events", type=click.Path(exists=True, dir_okay=False),
              help="Input events (JSON Lines, or a YAML/JSON list): every run takes the same ones. "
              "Required unless the mesh has schedules.")
@click.option("--from", "start", metavar="TIME", help="Start the virtual clock at TIME, as `run --from`.")
@click.option("--until", metavar="TIME|DURATION",
              help="Schedules fire their ticks before TIME (or for DURATION), as `run --until`.")
@click.option("--depth", type=click.IntRange(0, 8), default=2, show_default=True,
              help="Choices per run that differ from `meshctl run`'s, at most.")
@click.option("--max-runs", type=click.IntRange(1), default=20_000, show_default=True,
              help="Runs to try at most.")
@click.option("--time", "budget", metavar="DURATION", default="60s", show_default=True,
              help="Time to spend at most (e.g. 30s, 5m).")
@click.option("--seed", type=int, default=0, show_default=True,
              help="The mesh's seed (retry jitter); also orders a level too large for the budget.")
@click.option("--counterexample", "out", metavar="FILE",
              help="Where the counterexample trace goes  [default: MESH.counterexample.jsonl]")
@click.option("--write-test", "test_path", metavar="FILE.test.yaml",
              help="Also write the counterexample as a `meshctl test` file (a regression test).")
def explore(path, events, start, until, depth, max_runs, budget, seed, out, test_path) -> None:
    """Run a mesh every way a deployment could; check its invariants.

    The mesh at PATH runs many times on the events of --events FILE. Each run settles
    differently the points where a deployment could differ from `meshctl run`: the order of
    deliveries due together, an attempt failing (where its retry policy retries), a crash
    between an attempt's effects and its acknowledgement, a duplicate delivery, an input
    arriving late. Runs are tried by the number of such choices (up to
    --depth), skipping states already explored; every run is checked against the mesh's
    `kind: Check` invariants. The first violation is minimised (fewest choices, then fewest
    inputs) and written as a trace that `render --trace` draws and `run --replay-choices`
    replays. Exit 0 when no invariant broke within the bounds, 3 when one did, 1 if the mesh is
    invalid, 2 on a usage error (a mesh without invariants). See docs/explore.md.

    \b
    Examples:
      meshctl explore workflows/buggy-checkout --events workflows/buggy-checkout/events.jsonl
      meshctl explore workflows/checkout --events workflows/checkout/events.jsonl --depth 3 --time 2m
      meshctl explore workflows/buggy-checkout --events workflows/buggy-checkout/events.jsonl \\
        --counterexample ce.jsonl --write-test workflows/buggy-checkout/regression.test.yaml
    """
    import engine.commands.explore as exploring

    mesh = _valid_mesh(path).mesh
    clock = _run_bounds(mesh, events, start, until)
    bounds = exploring.Bounds(depth, max_runs, exploring.parse_budget(budget), seed)
    progress = _explore_progress()
    result = exploring.explore(mesh, path, events, bounds, out=out or exploring.default_out(path),
                               test_path=test_path, clock=clock, progress=progress)
    if progress is not None:
        click.echo("\r\033[K", err=True, nl=False)  # the progress line goes: the report follows
    for line in exploring.report_lines(path, result):
        click.echo(line)
    if result.minimal is not None:
        sys.exit(EXIT_VIOLATED)


@main.command("test")
@click.argument("path", type=click.Path(exists=True))
@click.option("-k", "select", metavar="SUBSTRING", help="Only run tests whose name contains SUBSTRING.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json", "junit"]),
    default="text",
    show_default=True,
    help="PASS/FAIL lines with explanations, one JSON document for machines, or JUnit XML.",
)
@click.option(
    "--junit",
    "junit_path",
    type=click.Path(dir_okay=False, writable=True),
    metavar="FILE",
    help="Also write the results as JUnit XML to FILE (for CI), whatever --format prints.",
)
def test_command(path: str, select: str | None, fmt: str, junit_path: str | None) -> None:
    """Run the YAML test cases of a mesh.

    PATH is a directory (every *.test.yaml under it) or one test file. Each test runs the
    mesh of its file's directory on given events, on the virtual clock, and checks what was
    emitted, dead-lettered and decided (docs/testing.md). Exit 0 when all pass, 1 when one
    fails, a test file is invalid or no test ran.

    \b
    Examples:
      meshctl test workflows
      meshctl test workflows/orders/fulfil-order.test.yaml
      meshctl test workflows -k compensat
      meshctl test workflows --format json
      meshctl test workflows --junit test-results.xml
    """
    from engine.commands.meshtest import run_tests

    report = run_tests(path, select)
    if junit_path is not None or fmt == "junit":
        from engine.commands.junit import junit_xml

        xml = junit_xml(report)
        if junit_path is not None:
            _write(xml, junit_path)
    if fmt == "junit":
        click.echo(xml, nl=False)
    elif fmt == "json":
        click.echo(json.dumps(report.as_dict(), indent=2, default=str))
    else:
        for line in report.text_lines(_style):
            click.echo(line)
    sys.exit(report.exit_code)


_time = _parsed_by("time_bound")


def _pattern(ctx, param, value):
    if value is None:
        return None
    from engine.commands.runs import archive_pattern

    try:
        return archive_pattern(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc


@main.command()
@click.argument("path", type=click.Path(exists=True))
@click.option(
    "--store",
    "store",
    metavar="URL",
    required=True,
    help="The durable store of an earlier run (sqlite:PATH).",
)
@click.option("--since", callback=_time, help="Only events whose time is at or after this (RFC 3339).")
@click.option("--until", callback=_time, help="Only events whose time is at or before this (RFC 3339).")
@click.option(
    "--match",
    "pattern",
    callback=_pattern,
    metavar="JSON",
    help="Only events matching this EventBridge pattern.",
)
@click.option(
    "--to", "to", metavar="CONSUMER", help="Deliver only to this consumer (its own pattern still applies)."
)
@_rate_option
@_run_options
def replay(
    path, store, since, until, pattern, to, rate, seed, http, faults, max_hops, trace_path, output_path, fmt
) -> None:
    """Re-inject archived events of a durable run through a mesh.

    The inputs and emitted events kept in --store go through the mesh at PATH again. Each
    replayed event gets a new id derived from the original (kept as `replayof`), so
    replaying the same selection twice has no effect the second time.

    \b
    Examples:
      meshctl replay workflows/orders --store sqlite:orders.db --since 2024-06-11T09:14:00Z --until \\
        2024-06-11T09:16:00Z
      meshctl replay workflows/orders --store sqlite:orders.db --match '{"type": ["order.placed"]}'
      meshctl replay workflows/orders --store sqlite:orders.db --to service:notifications/order.failed
      meshctl replay workflows/orders --store sqlite:orders.db --rate 10/s
    """
    from engine.commands.checks import require_valid
    from engine.commands.runs import ArchiveQuery, RunOptions, faults_for, replay_archive

    mesh = require_valid(path).mesh
    options = RunOptions(seed, http, faults_for(mesh, faults), max_hops, trace_path, output_path, rate=rate)
    summary = replay_archive(mesh, store, ArchiveQuery(since, until, pattern, to), options)
    if "aged_out" in summary and fmt != "json":
        click.echo(
            f"note: events before {summary['aged_out']} have aged out of the archive "
            "(`retention.archive` of the Mesh document): they were not replayed",
            err=True,
        )
    _print_summary(summary, fmt, [])


@main.group()
def runs() -> None:
    """Inspect, redrive, signal and cancel orchestration runs.

    \b
    Examples:
      meshctl runs list --store sqlite:orders.db --status compensated
      meshctl runs show --store sqlite:orders.db fulfil-order:chk-00003
      meshctl runs redrive workflows/orders --store sqlite:orders.db fulfil-order:chk-00003
      meshctl runs signal collect-payment:co-3 approve --by alice --store sqlite:pay.db --mesh \
        workflows/payments
      meshctl runs cancel collect-payment:co-3 --compensate --store redis://localhost:6379/0
    """


@runs.command("list")
@click.option(
    "--store",
    "store",
    metavar="URL",
    required=True,
    help="A durable store (sqlite:PATH, or redis://... of a worker deployment).",
)
@click.option(
    "--status",
    type=click.Choice(
        ["running", "waiting", "completed", "failed", "compensated", "cancelled", "timed_out"]),
    help="Only runs with this status (`waiting`: running, with only wait steps open).",
)
@click.option("--orchestration", help="Only runs of this orchestration.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
def runs_list(store, status, orchestration, fmt) -> None:
    """List the runs of a store, one line each.

    Each line: id, status, failed step, the parent run of a child run (started by a `run:`
    step) and error; then their number.

    \b
    Examples:
      meshctl runs list --store sqlite:orders.db
      meshctl runs list --store sqlite:orders.db --status failed --orchestration fulfil-order
      meshctl runs list --store redis://localhost:6379/0 --format json
    """
    from engine.commands.runs import list_runs, shown_status

    every = [{**r, "status": shown_status(r)} for r in list_runs(store)]
    known = sorted({r["orchestration"] for r in every})
    if orchestration is not None and orchestration not in known:
        hint = did_you_mean(orchestration, known)
        note = f"meshctl runs: note: no run of orchestration {orchestration!r}" + (
            f"; {hint}" if hint else ""
        )
        click.echo(printable(note), err=True)
    found = [
        r
        for r in every
        if (status is None or r["status"] == status)
        and (orchestration is None or r["orchestration"] == orchestration)
    ]
    if fmt == "json":
        click.echo(json.dumps(found, indent=2, default=str))
        return
    for r in found:
        parent = f"  (child of {r['parent']['run']}, step {r['parent']['step']})" if r.get("parent") else ""
        line = f"{r['id']}  {r['status']:<12} {r.get('failed_step') or '-'}{parent}  {r.get('error') or ''}"
        click.echo(printable(line.rstrip()))
    click.echo(f"{len(found)} run{'s' if len(found) != 1 else ''}")


@runs.command("show")
@click.option(
    "--store",
    "store",
    metavar="URL",
    required=True,
    help="A durable store (sqlite:PATH, or redis://... of a worker deployment).",
)
@click.argument("run_id")
def runs_show(store, run_id) -> None:
    """Show one run's whole state as JSON.

    Steps with status and output, variables, error. RUN_ID is ORCHESTRATION:ID@SOURCE (as
    `runs list` prints it), or ORCHESTRATION:ID when only one source has an event of that id.

    \b
    Examples:
      meshctl runs show --store sqlite:orders.db fulfil-order:chk-00003@/shop/checkout
      meshctl runs show --store sqlite:orders.db fulfil-order:chk-00003
    """
    from engine.commands.runs import find_run, shown_status

    run = find_run(store, run_id)
    click.echo(json.dumps({**run, "status": shown_status(run)}, indent=2, default=str))


@runs.command("redrive")
@click.argument("path", type=click.Path(exists=True))
@click.option(
    "--store",
    "store",
    metavar="URL",
    required=True,
    help="A durable store (sqlite:PATH, or redis://... of a worker deployment).",
)
@click.argument("run_id")
@_run_options
def runs_redrive(path, store, run_id, seed, http, faults, max_hops, trace_path, output_path, fmt) -> None:
    """Run a failed run again from its failed step.

    A failed or compensated run starts again at its failed step; done steps are not re-run.
    RUN_ID is ORCHESTRATION:ID@SOURCE (as `runs list` prints it), or ORCHESTRATION:ID when
    only one source has an event of that id.

    \b
    Examples:
      meshctl runs redrive workflows/orders --store sqlite:orders.db fulfil-order:chk-00003
      meshctl runs redrive workflows/orders --store sqlite:orders.db fulfil-order:chk-00003 --format json
    """
    from engine.commands.checks import require_valid
    from engine.commands.runs import RunOptions, faults_for, redrive_run

    mesh = require_valid(path).mesh
    options = RunOptions(seed, http, faults_for(mesh, faults), max_hops, trace_path, output_path)
    run, summary = redrive_run(mesh, store, run_id, options)
    if fmt == "json":
        click.echo(json.dumps({"run": run, "summary": summary}, indent=2, default=str))
        return
    click.echo(
        printable(f"{run['id']}: {run['status']}" + (f" ({run['error']})" if run.get("error") else ""))
    )
    _print_summary(summary, "text", [])


def _run_control(f):
    """Options of `runs signal` and `runs cancel`."""
    for option in reversed([
        click.option("--store", "store", metavar="URL", required=True,
                     help="A durable store (sqlite:PATH of `meshctl run --store`, or redis://... of a worker "
                     "deployment)."),
        click.option("--mesh", "mesh_path", type=click.Path(exists=True), metavar="PATH",
                     help="The mesh, for a `meshctl run --store` store: the run goes on here (a deployment's "
                     "workers need none)."),
        click.option("--by", metavar="NAME", help="Who does it: kept in the run (an approval's approver)."),
        click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
                     show_default=True),
    ]):
        f = option(f)
    return f


def _print_controlled(run: dict, summary: dict, fmt: str) -> None:
    from engine.commands.runs import shown_status

    run = {**run, "status": shown_status(run)}
    if fmt == "json":
        click.echo(json.dumps({"run": run, "summary": summary}, indent=2, default=str))
        return
    error = f" ({run['error']})" if run.get("error") else ""
    click.echo(printable(f"{run['id']}: {run['status']}{error}"))
    if "queued" in summary:
        click.echo("queued for the workers of the deployment")
    else:
        _print_summary(summary, "text", [])


@runs.command("signal")
@click.argument("run_id")
@click.argument("name")
@click.option("--data", "data", metavar="JSON",
              help="The signal's data (JSON): the `data` of the step's output.")
@_run_control
def runs_signal(run_id, name, data, store, mesh_path, by, fmt) -> None:
    """Give signal NAME to a run that waits for it.

    The waiting step (`wait: {signal: NAME}`) ends with the output {signal, by, at, data},
    and the run goes on. In a deployment the signal is queued for the worker holding the run.
    Exit 2 if there is no such run, 3 if it is not waiting for that signal (or, for an
    approval, --by is not an approver).

    \b
    Examples:
      meshctl runs signal collect-payment:co-3 approve --by alice --store sqlite:pay.db --mesh \
        workflows/payments
      meshctl runs signal collect-payment:co-3 approve --by bob --data '{"note": "ok"}' --store redis://localhost:6379/0
    """
    from engine.commands.checks import require_valid
    from engine.commands.runs import RunOptions, signal_run

    try:
        value = json.loads(data) if data is not None else None
    except ValueError as exc:
        raise click.BadParameter(f"not JSON: {exc}", param_hint="--data") from None
    mesh = require_valid(mesh_path).mesh if mesh_path else None
    run, summary = signal_run(mesh, store, run_id, name, value, by, RunOptions())
    _print_controlled(run, summary, fmt)


@runs.command("cancel")
@click.argument("run_id")
@click.option("--compensate", is_flag=True, help="Compensate the run's completed steps, newest first.")
@_run_control
def runs_cancel(run_id, compensate, store, mesh_path, by, fmt) -> None:
    """Cancel a running or waiting run.

    No step starts any more, steps in flight finish, waits end; with --compensate the
    completed steps are compensated in reverse order; `on_failure` runs and the run ends
    `cancelled`. Exit 2 if there is no such run, 3 if it has ended already.

    \b
    Examples:
      meshctl runs cancel collect-payment:co-3 --compensate --store sqlite:pay.db --mesh workflows/payments
      meshctl runs cancel collect-payment:co-2 --by ops --store redis://localhost:6379/0
    """
    from engine.commands.checks import require_valid
    from engine.commands.runs import RunOptions, cancel_run

    mesh = require_valid(mesh_path).mesh if mesh_path else None
    run, summary = cancel_run(mesh, store, run_id, compensate, by, RunOptions())
    _print_controlled(run, summary, fmt)


_STATE_STORE = click.option(
    "--store",
    "store",
    metavar="URL",
    required=True,
    help="A durable store (sqlite:PATH, or redis://... of a worker deployment).",
)


@main.group()
def state() -> None:
    """Inspect and delete the keyed state of handlers.

    State is what Python handlers keep in `context.state` under a service's or an
    orchestration's `state: {key: ...}`. OWNER is service:NAME, orchestration:NAME, or the
    bare NAME when only one owner has it.

    \b
    Examples:
      meshctl state list --store sqlite:mm.db
      meshctl state show --store sqlite:mm.db matchmaker eu/ranked
      meshctl state delete --store sqlite:mm.db matchmaker eu/ranked
    """


@state.command("list")
@_STATE_STORE
@click.option("--owner", metavar="OWNER", help="Only the keys of this service or orchestration.")
@click.option("--prefix", default="", help="Only keys that start with this text.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
def state_list(store, owner, prefix, fmt) -> None:
    """List the state keys of a store, one line each.

    Each line: owner, key, size of the value in bytes, last write, expiry; then their number.
    A key whose `ttl` has run out (at the stored run's clock) is marked expired: it reads as
    empty, and is removed from the store by a later state write.

    \b
    Examples:
      meshctl state list --store sqlite:mm.db
      meshctl state list --store sqlite:mm.db --owner matchmaker --prefix eu/
      meshctl state list --store redis://localhost:6379/0 --format json
    """
    from engine.commands.keyedstate import list_state

    found = list_state(store, owner, prefix)
    if fmt == "json":
        click.echo(json.dumps(found, indent=2, ensure_ascii=False))
        return
    for e in found:
        expiry = "expired" if e["expired"] else (f"expires {e['expires']}" if e["expires"] else "")
        line = f"{e['owner']}  {e['key']}  {e['bytes']} B  updated {e['updated']}  {expiry}"
        click.echo(printable(line.rstrip()))
    click.echo(f"{len(found)} key{'s' if len(found) != 1 else ''}")


@state.command("show")
@_STATE_STORE
@click.argument("owner")
@click.argument("key")
def state_show(store, owner, key) -> None:
    """Show one key's value and when it was written, as JSON.

    \b
    Examples:
      meshctl state show --store sqlite:mm.db matchmaker eu/ranked
      meshctl state show --store sqlite:mm.db service:matchmaker eu/ranked
    """
    from engine.commands.keyedstate import show_state

    click.echo(json.dumps(show_state(store, owner, key), indent=2, ensure_ascii=False))


@state.command("delete")
@_STATE_STORE
@click.argument("owner")
@click.argument("key")
def state_delete(store, owner, key) -> None:
    """Delete one key of a service's or an orchestration's state.

    Its owner's next event on that key starts from an empty state. The delete is committed
    at once; in a deployment, a worker that read the key before does its work again on the
    empty state.

    \b
    Examples:
      meshctl state delete --store sqlite:mm.db matchmaker eu/ranked
    """
    from engine.commands.keyedstate import delete_state

    delete_state(store, owner, key)
    click.echo(printable(f"deleted {owner} {key}"))


log = logging.getLogger("meshctl")


def _log_options(f):
    """--log-format and --log-level of the long-running commands (docs/observability.md)."""
    f = click.option(
        "--log-level",
        type=click.Choice(["debug", "info", "warning", "error"]),
        default="info",
        show_default=True,
        help="Operational messages from this level up, on stderr.",
    )(f)
    return click.option(
        "--log-format",
        type=click.Choice(["text", "json"]),
        default="text",
        show_default=True,
        help="Operational messages as text lines or as JSON Lines (one object a line).",
    )(f)


def _configure_logs(command: str, log_format: str, log_level: str) -> None:
    from engine.commands.logs import configure

    configure(command, log_format, log_level)


@main.command()
@click.argument("path", required=False, type=click.Path(exists=True))
@click.option(
    "--store",
    "store_url",
    metavar="URL",
    required=True,
    help="The Redis store the workers share: redis://HOST:PORT/DB[?prefix=NAME].",
)
@click.option(
    "--name", help="This worker's name in the consumer group (default: HOST-PID-RANDOM; must be unique)."
)
@click.option(
    "--exit-when-idle",
    is_flag=True,
    help="Drain: stop once every queue is empty, after closing the open stream windows.",
)
@click.option(
    "--reclaim-after",
    type=click.FloatRange(0.1),
    default=30.0,
    show_default=True,
    metavar="SECONDS",
    help="Look this often (every SECONDS/4) for entries a failed unit left in hand in the partitions held.",
)
@click.option(
    "--lease",
    type=click.FloatRange(0.5),
    default=10.0,
    show_default=True,
    metavar="SECONDS",
    help="How long a partition stays with a worker that stopped renewing its lease (longer than a unit).",
)
@click.option(
    "--batch", type=click.IntRange(1, 1000), default=20, show_default=True, help="Entries read at a time."
)
@click.option(
    "--max-deliveries",
    type=click.IntRange(2, 100),
    default=5,
    show_default=True,
    help="Hand-outs of one entry before it is dead-lettered as poison (it keeps killing its workers).",
)
@click.option(
    "--journal-trace", is_flag=True, help="Keep trace records in the store (costs a write per record)."
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of retry jitter.")
@click.option(
    "--http",
    type=click.Choice(["simulate", "live"]),
    default="live",
    show_default=True,
    help="`live` really POSTs to http targets; `simulate` records the calls and answers 202.",
)
@click.option(
    "--fault",
    "faults",
    multiple=True,
    metavar="CONSUMER[=TIMES][:ERROR]",
    help="Make a consumer's first TIMES attempts (or all) fail with ERROR. Repeatable.",
)
@click.option(
    "--max-hops",
    type=click.IntRange(1, 1000),
    default=16,
    show_default=True,
    help="An event this many hops or more from its input is dead-lettered as loop-detected.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="The summary printed at exit: a table or JSON.",
)
@click.option(
    "--metrics-port",
    type=click.IntRange(0, 65535),
    metavar="PORT",
    help="Serve Prometheus metrics at http://127.0.0.1:PORT/metrics (0: a free port, logged).",
)
@_log_options
def worker(
    path,
    store_url,
    name,
    exit_when_idle,
    reclaim_after,
    lease,
    batch,
    max_deliveries,
    journal_trace,
    seed,
    http,
    faults,
    max_hops,
    fmt,
    metrics_port,
    log_format,
    log_level,
) -> None:
    """Work on a mesh from a Redis store until stopped.

    The mesh at PATH runs on the real clock; without PATH, the versions of the mesh deployed
    in --store with `meshctl deploy` (new input on the current one, each run on the version it
    started on; see docs/versions.md). Start any number, on any hosts: they share the
    work, each holding a share of the deployment's partitions. SIGTERM or Ctrl-C finishes
    the unit in hand, hands the partitions over and stops (exit 0); a killed worker's
    partitions are taken over by the others after --lease. Prints what this worker did when
    it stops.

    \b
    Examples:
      meshctl worker workflows/arena --store redis://localhost:6379/0
      meshctl worker workflows/arena --store 'redis://localhost:6379/0?prefix=arena' --name w1
      meshctl worker workflows/arena --store redis://localhost:6379/0 --exit-when-idle
      meshctl worker workflows/arena --store redis://localhost:6379/0 --metrics-port 9464 --log-format json
      meshctl worker --store redis://localhost:6379/0
    """
    from engine.commands.checks import require_valid
    from engine.commands.deploy import Deployed, Worker, WorkerOptions, broker_store
    from engine.commands.runs import faults_for

    _configure_logs("worker", log_format, log_level)
    deployed = None
    if path is None:
        store = broker_store(store_url, "worker")
        deployed = Deployed(store)
        mesh = deployed.meshes[deployed.current]
    else:
        mesh = require_valid(path).mesh
        store = broker_store(store_url, "worker", mesh)
        if store.mesh_versions():
            store.close()
            raise click.UsageError("this deployment runs the meshes deployed with `meshctl deploy`: "
                                   "start the worker without PATH")
    warning = store.durability_warning()
    if warning:
        log.warning(warning)
    options = WorkerOptions(
        name,
        seed,
        http,
        faults_for(mesh, faults),
        max_hops,
        batch,
        reclaim_after,
        lease,
        max_deliveries,
        exit_when_idle,
        journal_trace,
        metrics_port=metrics_port,
    )
    runner = Worker(None if deployed is not None else mesh, store, options, deployed)
    log.info("working on %s", store_url, extra={"worker": runner.name, "store": store_url})
    summary = runner.run()
    log.info("stopped", extra={"worker": runner.name})
    _print_summary(summary, fmt, [])


@main.command()
@click.argument("path", required=False, type=click.Path(exists=True))
@click.option(
    "--store", "store_url", metavar="URL", required=True, help="The Redis store of a worker deployment."
)
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
def status(path, store_url, fmt) -> None:
    """Show the backlog, workers and memory of a deployment.

    Backlog of every queue, each partition's backlog and holder, dead letters per queue,
    live workers, what the deployment holds in Redis per class of key (keys and bytes, an
    estimate from a sample) and the counters of the deployment of the mesh at PATH in --store
    (without PATH, of the meshes deployed there with `meshctl deploy`), and each deployed mesh
    version: current or draining, its work in the queues and its runs in flight.

    \b
    Examples:
      meshctl status workflows/arena --store redis://localhost:6379/0
      meshctl status workflows/arena --store redis://localhost:6379/0 --format json
      meshctl status --store redis://localhost:6379/0
    """
    from engine.commands.checks import require_valid
    from engine.commands.deploy import broker_store, deployment_status

    mesh = require_valid(path).mesh if path is not None else None
    report = deployment_status(broker_store(store_url, "status", mesh), mesh)
    if fmt == "json":
        click.echo(json.dumps(report, indent=2))
        return
    click.echo(f"{'queue':<28}{'backlog':>9}{'waiting':>9}{'in hand':>9}")
    for lane, q in report["queues"].items():
        click.echo(f"{lane:<28}{q['backlog']:>9}{q['waiting']:>9}{q['in_hand']:>9}")
    click.echo(f"{'delayed (retries, timers)':<28}{report['delayed']:>9}")
    for partition, info in report["partitions"].items():
        holder = info["holder"] or "nobody"
        marks = "".join(f", {label} {info[key]}" for key, label in (("progress", "inputs up to"),
                                                                  ("pending_from", "pending from"))
                        if info.get(key))
        click.echo(f"{'partition ' + partition:<28}{info['backlog']:>9}  held by {holder}{marks}")
    for queue, n in sorted(report["dead_letters"].items()):
        click.echo(f"dead letters in {queue:<12}{n:>9}")
    for name, info in report["workers"].items():
        click.echo(f"worker {name}: last seen {info['seen']}")
    if not report["workers"]:
        click.echo("no live workers")
    for v in report["versions"]:
        click.echo(f"mesh version {v['version']} ({v['state']}): {_count(v['runs_in_flight'], 'run')} "
                   f"in flight, {_count(v['work'], 'task')} queued")
    _print_memory(report["memory"])
    _print_summary(report["summary"], "text", [])


def _print_memory(memory: dict) -> None:
    """What a deployment holds, per class of key; counts extrapolated and bytes sampled."""
    if "unavailable" in memory:
        click.echo(printable(f"memory: unavailable ({memory['unavailable']})"))
        return
    how = "sampled" if memory["exact_counts"] else "counts extrapolated, sampled"
    click.echo(f"{'memory (estimate: ' + how + ')':<36}{'keys':>10}{'bytes':>14}")
    for name, held in memory["classes"].items():
        click.echo(f"  {name:<34}{held['keys']:>10,}{held['bytes']:>14,}")
    click.echo(f"  {'in all':<34}{memory['keys']:>10,}{memory['bytes']:>14,}")


@main.command()
@click.argument("path", type=click.Path(exists=True))
@click.option(
    "--store",
    "store_url",
    metavar="URL",
    required=True,
    help="The Redis store of the deployment: redis://HOST:PORT/DB[?prefix=NAME].",
)
def deploy(path, store_url) -> None:
    """Deploy a new version of a mesh to a Redis store.

    The mesh at PATH (valid) and the Python modules of its directory are kept in --store
    under a version id (a hash of the files) and become the current version: workers started
    without PATH take new input on it, while the runs and deliveries that started on an earlier
    version finish there. A version that is no longer current is retired once nothing of it is
    left in the queues. Deploying the current version again changes nothing. See
    docs/versions.md.

    \b
    Examples:
      meshctl deploy workflows/versions --store redis://localhost:6379/0
      meshctl deploy workflows/versions --store 'redis://localhost:6379/0?prefix=parcels'
    """
    from engine.commands.checks import require_valid
    from engine.commands.deploy import broker_store, versions_status
    from engine.commands.deploy import deploy as deploy_version

    mesh = require_valid(path).mesh
    store = broker_store(store_url, "deploy", mesh)
    try:
        version, again = deploy_version(store, path)
        listed = versions_status(store)
    finally:
        store.close()
    if again:
        click.echo(f"version {version} is the current version already: nothing changed")
        return
    click.echo(f"deployed version {version} of {printable(path)} to {store_url}")
    for v in listed[:-1]:
        click.echo(f"version {v['version']} drains: {_count(v['runs_in_flight'], 'run')} in flight, "
                   f"{_count(v['work'], 'task')} queued")


@main.command()
@click.argument("path", type=click.Path(exists=True))
@click.option(
    "--store",
    "store_url",
    metavar="URL",
    required=True,
    help="The Redis store the workers share: redis://HOST:PORT/DB[?prefix=NAME].",
)
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on. Beyond loopback a token is required (or --insecure).",
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8080,
    show_default=True,
    help="0: any free port (the address is printed).",
)
@click.option(
    "--token",
    envvar="MESHCTL_TOKEN",
    help="Clients must send Authorization: Bearer TOKEN [env MESHCTL_TOKEN].",
)
@click.option(
    "--insecure",
    is_flag=True,
    help="Listen beyond loopback without a token: anyone who can connect may publish.",
)
@click.option(
    "--principal",
    "principals",
    multiple=True,
    metavar="NAME=TOKEN",
    help="A named token: its requests are NAME's (the `by` of the signals it sends). Repeatable.",
)
@click.option(
    "--max-body",
    type=click.IntRange(1),
    default=1024 * 1024,
    show_default=True,
    metavar="BYTES",
    help="Larger request bodies are refused (413) before they are read.",
)
@click.option(
    "--max-backlog",
    type=click.IntRange(0),
    default=100_000,
    show_default=True,
    metavar="N",
    help="Refuse events (503, Retry-After) while N entries wait for the workers: backpressure (0: never).",
)
@click.option(
    "--max-batch",
    type=click.IntRange(1),
    default=1000,
    show_default=True,
    help="Larger batches are refused (413).",
)
@click.option(
    "--threads",
    type=click.IntRange(1, 256),
    default=4,
    show_default=True,
    help="Requests parsed, checked and queued at once (refusals need no thread).",
)
@_log_options
def serve(path, store_url, host, port, token, insecure, principals, max_body, max_batch, max_backlog,
          threads, log_format, log_level) -> None:
    """Take CloudEvents over HTTP into a deployment's Redis store.

    Events for the mesh at PATH are queued in --store for the workers. POST /events takes
    binary, structured and batched CloudEvents; each is checked against the mesh (nothing of
    a bad request is queued) and answered 202 once the store holds it; past --max-backlog a
    request is refused (503) before its body is read. POST /runs/RUN/signals/NAME signals a
    waiting run (docs/waits.md). GET /healthz says whether the store answers; GET /metrics
    gives Prometheus metrics. SIGTERM or Ctrl-C stops (exit 0) after
    the requests in hand. See docs/ingress.md and docs/observability.md.

    \b
    Examples:
      meshctl serve workflows/arena --store redis://localhost:6379/0
      meshctl serve workflows/arena --store redis://localhost:6379/0 --host 0.0.0.0 --token s3cret
      meshctl serve workflows/arena --store redis://localhost:6379/0 --port 0
    """
    from engine.commands.checks import require_valid
    from engine.commands.deploy import IngressServer, broker_store, ingress, require_token

    _configure_logs("serve", log_format, log_level)
    named = _principals(principals)
    require_token(host, token or (next(iter(named)) if named else None), insecure)
    server = IngressServer(host, port)
    mesh = require_valid(path).mesh
    store = broker_store(store_url, "serve", mesh)
    app = None
    try:
        warning = store.durability_warning()
        if warning:
            log.warning(warning)
        app = ingress(
            mesh,
            store,
            metrics=True,
            token=token,
            principals=named,
            max_body=max_body,
            max_batch=max_batch,
            max_backlog=max_backlog or None,
            threads=threads,
        )
        server.start(app)
        log.info("listening on %s", server.url, extra={"url": server.url})
        server.serve()
    finally:
        server.close()
        if app is not None:
            app.close()
        store.close()
    log.info("stopped")


def _principals(given: tuple[str, ...]) -> dict[str, str]:
    """``--principal NAME=TOKEN`` options as {token: name}."""
    out: dict[str, str] = {}
    for text in given:
        name, sep, token = text.partition("=")
        if not sep or not name.strip() or not token:
            raise click.BadParameter(f"{text!r}: expected NAME=TOKEN", param_hint="--principal")
        out[token] = name.strip()
    return out


@main.command()
@click.argument("path", type=click.Path(exists=True, allow_dash=True))
@click.argument("events", type=click.Path(exists=True, dir_okay=False, allow_dash=True))
@click.option("--url", metavar="URL", help="A running ingress (`meshctl serve`): http://HOST:PORT.")
@click.option("--token", envvar="MESHCTL_TOKEN", help="The ingress's token [env MESHCTL_TOKEN].")
@click.option(
    "--store",
    "store_url",
    metavar="URL",
    help="Or straight into a Redis store: redis://HOST:PORT/DB[?prefix=NAME].",
)
@click.option(
    "--batch", type=click.IntRange(1, 10_000), default=500, show_default=True, help="Events per request."
)
@click.option(
    "--timeout",
    type=click.FloatRange(0.1),
    default=30.0,
    show_default=True,
    metavar="SECONDS",
    help="Wait this long for each answer of the ingress.",
)
def publish(path, events, url, token, store_url, batch, timeout) -> None:
    """Send a file of events into a deployment.

    The events of EVENTS (JSON Lines, or a YAML/JSON list) go to the deployment of the mesh
    at PATH, through a running ingress (--url) or straight into its Redis store (--store).
    Every event is checked against the mesh first, as the ingress checks it; one bad record
    and nothing is sent (exit 1; the first 10 problems are shown with their file:line:col,
    as `run` shows the records it dead-letters, then how many more). Events without an id get one from
    their content, so publishing the same file twice queues the same ids (the workers' dedup
    skips the repeats).

    \b
    Examples:
      meshctl publish workflows/arena workflows/arena/events.jsonl --url http://127.0.0.1:8080 --token s3cret
      meshctl publish workflows/arena workflows/arena/events.jsonl --store redis://localhost:6379/0
    """
    from engine.commands.deploy import Sender, broker_store, check_events, to_store

    if (url is None) == (store_url is None):
        raise click.UsageError(
            "give exactly one of --url (a running `meshctl serve`) and --store redis://..."
        )
    refused = RefusedInput()
    try:
        mesh = _valid_mesh(path).mesh
        checked = check_events(_stdin_path(events, path), mesh, refused)
    finally:
        refused.close()
    if url is not None:
        accepted = Sender(url, token, timeout).send(checked, batch)
        click.echo(f"published {_count(accepted, 'event')} to {url}")
        return
    store = broker_store(store_url, "publish", mesh)
    try:
        queued = to_store(store, checked, batch)
    finally:
        store.close()
    click.echo(f"published {_count(queued, 'event')} to {store_url}")


def _complete_code(ctx, param, incomplete: str) -> list[str]:
    from engine.commands.explanations import explanations

    return [code for code in explanations() if code.startswith(incomplete)]


@main.command()
@click.argument("code", required=False, shell_complete=_complete_code)
@click.option("--list", "listing", is_flag=True, help="List every code with its severity and meaning.")
def explain(code: str | None, listing: bool) -> None:
    """Explain a diagnostic code: what it means and how to fix it.

    CODE as printed in brackets (event-cycle), or with its severity (error[event-cycle]):
    what it means, an example that triggers it, how to fix it.

    \b
    Examples:
      meshctl explain event-cycle
      meshctl explain --list
    """
    from engine.commands.explanations import explain as explanation
    from engine.commands.explanations import explanations

    if listing:
        for entry in explanations().values():
            click.echo(f"{entry.code:<26}{entry.severity:<9}{entry.summary}")
        return
    if code is None:
        raise click.UsageError("give a diagnostic CODE (as in `error[CODE]`), or --list")
    click.echo(explanation(code).text())


@main.command()
@click.argument("directory", default=".", type=click.Path(file_okay=False))
@click.option("--name", help="The mesh's name (default: from the directory's name).")
@click.option("--force", is_flag=True, help="Overwrite files of the same names.")
def init(directory: str, name: str | None, force: bool) -> None:
    """Start a new mesh in a directory.

    In DIRECTORY (default: here): event types, services, a test and sample events. It passes
    `meshctl validate`, `meshctl test` and `meshctl run --events` as written. Existing files
    are not overwritten (exit 1) unless --force.

    \b
    Examples:
      meshctl init hello && meshctl test hello
      meshctl init hello --name greetings --force
    """
    from engine.commands.scaffold import default_name, scaffold

    written = scaffold(directory, name or default_name(directory), force)
    for path in written:
        click.echo(f"created {printable(path)}")
    shown = printable(directory)
    events = printable(os.path.join(directory, "events.jsonl"))
    click.echo(
        f"next: meshctl validate {shown} && meshctl test {shown} && meshctl run {shown} --events {events}"
    )


@main.command()
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
def completion(shell: str) -> None:
    """Print the shell completion script for SHELL.

    It completes commands, options, files and diagnostic codes. Install it once, as below (for
    zsh, with fpath+=(~/.zfunc) before compinit), or load it in the shell's startup file:
    eval "$(meshctl completion bash)".

    \b
    Examples:
      meshctl completion bash > ~/.local/share/bash-completion/completions/meshctl
      meshctl completion zsh > ~/.zfunc/_meshctl
      meshctl completion fish > ~/.config/fish/completions/meshctl.fish
    """
    from click.shell_completion import get_completion_class

    complete = get_completion_class(shell)(main, {}, "meshctl", "_MESHCTL_COMPLETE")
    click.echo(complete.source())


@main.command()
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False, writable=True), help="Write to FILE instead of stdout."
)
def schema(output: str | None) -> None:
    """Print the JSON Schema of meshctl YAML.

    For editors: point yaml-language-server (or any JSON Schema aware editor) at it.

    \b
    Examples:
      meshctl schema
      meshctl schema -o meshctl.schema.json
    """
    from engine.commands.checks import schema_text

    _write(schema_text(), output)


def _write(text: str, output: str | None) -> None:
    if output is None:
        click.echo(text, nl=not text.endswith("\n"))
        return
    try:
        with open(output, "w", encoding="utf-8") as fh:
            fh.write(text)
    except OSError as exc:
        raise click.FileError(output, hint=exc.strerror or str(exc)) from exc


if __name__ == "__main__":  # pragma: no cover
    main()
