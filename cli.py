"""The `meshctl` command line. Parses arguments, calls the engine, prints, sets the exit code.

Exit codes: 0 success; 1 invalid input (a mesh or file with errors); 2 usage error (bad flags,
missing path, unknown view or format); 70 internal error (a bug: please report it).
The only module that imports click, prints, or exits.
"""
from __future__ import annotations

import json
import os
import sys

import click

from engine.analysis import cycle_edges
from engine.check import CheckResult, check_mesh, require_valid
from engine.errors import MeshError
from engine.render import RENDERERS, flow_view, orchestration_view, render as render_view
from engine.schema import schema_text

EXIT_INTERNAL = 70


class MeshGroup(click.Group):
    """Turns MeshError into its message and exit code, once, for every command."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except MeshError as exc:
            for diagnostic in getattr(exc, "diagnostics", None) or []:
                click.echo(diagnostic.format(), err=True)
            if not getattr(exc, "diagnostics", None):
                click.echo(f"meshctl: {exc}", err=True)
            ctx.exit(exc.exit_code)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except Exception as exc:  # last resort: a bug in meshctl, shown without a traceback
            if os.environ.get("MESHCTL_DEBUG"):
                raise
            click.echo(f"meshctl: internal error: {type(exc).__name__}: {exc} "
                       "(set MESHCTL_DEBUG=1 for a traceback, and please report it)", err=True)
            ctx.exit(EXIT_INTERNAL)


@click.group(cls=MeshGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="meshctl")
def main() -> None:
    """Declare an event mesh in YAML, then check it, see it and run it."""


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="Compiler-style lines, or one JSON document for machines.")
@click.option("--strict", is_flag=True, help="Warnings fail validation too.")
@click.option("-q", "--quiet", is_flag=True, help="Print errors only (no warnings, no summary).")
def validate(paths: tuple[str, ...], fmt: str, strict: bool, quiet: bool) -> None:
    """Check each mesh (a YAML file or a directory) without running anything.

    Exit 0 when every mesh is valid, 1 when any has errors (or warnings, with --strict).
    """
    results = [check_mesh(path) for path in paths]
    if fmt == "json":
        click.echo(json.dumps(_json_report(results, strict), indent=2))
    else:
        for result in results:
            _print_text(result, strict, quiet)
    sys.exit(0 if all(r.valid(strict) for r in results) else 1)


def _print_text(result: CheckResult, strict: bool, quiet: bool) -> None:
    for diagnostic in result.diagnostics:
        if quiet and diagnostic.severity != "error":
            continue
        click.echo(diagnostic.format())
    if quiet:
        return
    verdict = "valid" if result.valid(strict) else "invalid"
    click.echo(f"{result.path}: {verdict} ({_count(result.errors, 'error')}, {_count(result.warnings, 'warning')})")


def _count(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def _json_report(results: list[CheckResult], strict: bool) -> dict:
    return {
        "valid": all(r.valid(strict) for r in results),
        "strict": strict,
        "meshes": [
            {"path": r.path, "valid": r.valid(strict), "errors": r.errors, "warnings": r.warnings,
             "diagnostics": [d.as_dict() for d in r.diagnostics]}
            for r in results
        ],
    }


@main.command()
@click.argument("path", type=click.Path(exists=True))
@click.option("--format", "fmt", type=click.Choice(sorted(RENDERERS)), default="mermaid", show_default=True,
              help="Text diagrams (mermaid, dot) or drawn by meshctl itself (svg, a self-contained html page).")
@click.option("--orchestration", "name", metavar="NAME", help="Draw this orchestration's step graph instead of the whole flow.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True), help="Write to FILE instead of stdout.")
def render(path: str, fmt: str, name: str | None, output: str | None) -> None:
    """Draw the mesh at PATH: the whole event flow (default) or one orchestration.

    Circular events are drawn in red, dead-letter queues as cylinders, retry policies on
    their consumers. The mesh must be valid (exit 1 with its errors otherwise).
    """
    checked = require_valid(path)
    if name:
        view = orchestration_view(checked.mesh, name, diagnostics=checked.diagnostics)
    else:
        view = flow_view(checked.mesh, checked.graph, cycles=cycle_edges(checked.graph), diagnostics=checked.diagnostics)
    _write(render_view(view, fmt), output)


@main.command()
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True), help="Write to FILE instead of stdout.")
def schema(output: str | None) -> None:
    """Print the JSON Schema of meshctl YAML (for editors: yaml-language-server)."""
    _write(schema_text(), output)


def _write(text: str, output: str | None) -> None:
    if output is None:
        click.echo(text, nl=not text.endswith("\n"))
        return
    try:
        with open(output, "w", encoding="utf-8") as fh:
            fh.write(text)
    except OSError as exc:
        raise click.FileError(output, hint=exc.strerror or str(exc))


if __name__ == "__main__":  # pragma: no cover
    main()
