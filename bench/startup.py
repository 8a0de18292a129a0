"""Start-up: what a user waits for before ``meshctl`` does anything, and what a low layer loads.

``meshctl --help`` runs in a child process (the installed console script, else ``python -m
cli``), best of 7 wall times, against the interpreter's own start-up (``python -c pass``,
the limit: nothing can start faster); the target is under 0.4 s (issue 16). A second row
times ``import engine.storage`` in a child and checks that none of networkx, jinja2 and
jsonschema were loaded by it: the libraries only analysis, templates and schemas need.
"""
from __future__ import annotations

import shutil
import subprocess
import sys

from .common import REPO, Row, best_of, fmt_time, log

HEAVY = ("networkx", "jinja2", "jsonschema")
TARGET_SECONDS = 0.4


def _wall(command: list[str], repeat: int) -> tuple[float, subprocess.CompletedProcess]:
    """The best of *repeat* wall times of *command* (the least disturbed by a shared machine)."""
    return best_of(lambda: subprocess.run(command, cwd=REPO, capture_output=True, text=True), repeat)


def _meshctl() -> list[str]:
    script = shutil.which("meshctl", path=str(REPO / ".venv" / "bin")) or shutil.which("meshctl")
    return [script] if script else [sys.executable, "-m", "cli"]


def rows(quick: bool = False) -> list[Row]:
    repeat = 3 if quick else 7
    log("startup: meshctl --help, python -c pass, import engine.storage")
    interpreter, _ = _wall([sys.executable, "-c", "pass"], repeat)
    helped, result = _wall([*_meshctl(), "--help"], repeat)
    probe = f"import sys, engine.storage; print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    imported, loaded = _wall([sys.executable, "-c", probe], repeat)
    heavy = loaded.stdout.strip()
    return [
        Row("startup", "meshctl --help", fmt_time(helped), f"python -c pass {fmt_time(interpreter)}",
            None, "", f"< {TARGET_SECONDS} s", helped < TARGET_SECONDS and result.returncode == 0,
            f"exit {result.returncode}"),
        Row("startup", "import engine.storage", fmt_time(imported), f"python -c pass {fmt_time(interpreter)}",
            None, "", "loads no networkx, jinja2, jsonschema", not heavy and loaded.returncode == 0,
            f"loaded {heavy}" if heavy else "none of them loaded"),
    ]
