"""What an import pulls in: the low layers and the CLI's start-up do not load the heavy libraries.

Each import runs in a fresh interpreter (this test process has loaded everything already), and
the check is on ``sys.modules``, not on time.
"""
from __future__ import annotations

import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import engine.core

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("networkx", "jinja2", "jsonschema")
CORE = [f"engine.core.{m.name}" for m in pkgutil.iter_modules(engine.core.__path__)]


def loaded_after(statement: str) -> list[str]:
    """The heavy libraries present in sys.modules after *statement*, in a fresh interpreter."""
    found = f"sorted(m for m in {HEAVY!r} if m in sys.modules)"
    probe = f"import json, sys\n{statement}\nprint(json.dumps({found}))"
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


@pytest.mark.parametrize("module", ["engine", "engine.render", "engine.storage", *CORE])
def test_low_layers_load_no_heavy_library(module):
    assert loaded_after(f"import {module}") == []


def test_cli_starts_without_heavy_libraries():
    """`meshctl --help` imports cli and builds every command's options: nothing heavy needed."""
    statement = ("import cli\n"
                 "from click.testing import CliRunner\n"
                 "assert CliRunner().invoke(cli.main, ['--help']).exit_code == 0")
    assert loaded_after(statement) == []


def test_the_probe_sees_a_heavy_import():
    """The check can fail: importing the analysis layer does load networkx."""
    assert "networkx" in loaded_after("import engine.analysis.graph")


def test_public_names_resolve():
    """Every name of the library API imports (engine imports most on first use)."""
    import engine

    assert all(getattr(engine, name) is not None for name in engine.__all__)
    assert set(engine.__all__) <= set(dir(engine))
