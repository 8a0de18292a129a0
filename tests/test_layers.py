"""The engine's layers point one way (ARCHITECTURE.md): a module imports only from its own
layer or lower ones, no engine modules import each other in a cycle, no engine import hides
inside a function or under TYPE_CHECKING to dodge one, and each third-party library is
imported only where its boundary says."""
from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import networkx as nx
import pytest

ENGINE = Path(__file__).resolve().parent.parent / "engine"

# lowest first; the package's own __init__ (the library API) sits on top of them all
LAYERS = ("core", "language", "analysis", "storage", "runtime", "explore", "cluster", "render", "commands")

# third-party package -> the modules (or layer folders, ending in "/") that may import it
BOUNDARIES = {
    "yaml": ("language/source",),
    "jsonschema": ("language/schema",),
    "referencing": ("language/schema",),
    "networkx": ("analysis/", "render/layout", "render/view"),
    "jinja2": ("language/templates", "language/sandbox", "language/conditions", "render/base"),
    "redis": ("storage/",),
    "uvicorn": ("cluster/server",),
    "prometheus_client": ("cluster/metrics",),
    "opentelemetry": ("cluster/otel",),
    "click": (),
}


@dataclass(frozen=True)
class Import:
    source: str      # importing module, dotted
    target: str      # imported module or package, dotted
    line: int
    hidden: str      # "" at module level, else "function" or "TYPE_CHECKING"


def module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, root: Path) -> list[Import]:
    """Every import statement of one file, resolved to absolute module names."""
    name = module_name(path, root)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: list[Import] = []

    def visit(node: ast.AST, hidden: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import):
                found.extend(Import(name, alias.name, child.lineno, hidden) for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    up = package.split(".")[: len(package.split(".")) - child.level + 1]
                    base = ".".join(up + ([child.module] if child.module else []))
                found.extend(
                    Import(name, f"{base}.{alias.name}", child.lineno, hidden) for alias in child.names
                )
            elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                visit(child, hidden or "function")
            elif isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                visit(child, hidden or "TYPE_CHECKING")
            else:
                visit(child, hidden)

    visit(ast.parse(path.read_text(encoding="utf-8")), "")
    return found


def engine_modules(root: Path) -> dict[str, Path]:
    return {module_name(path, root): path for path in sorted(root.rglob("*.py"))}


def owner(imported: str, modules: dict[str, Path]) -> str | None:
    """The engine module an import names (``engine.x.y.Name`` -> ``engine.x.y``), or None."""
    while imported and imported not in modules:
        imported = imported.rpartition(".")[0]
    return imported or None


def layer(module: str) -> int:
    parts = module.split(".")
    return LAYERS.index(parts[1]) if len(parts) > 1 and parts[1] in LAYERS else len(LAYERS)


def problems(root: Path) -> list[str]:
    """What breaks the layering of the package at ``root``, one line per problem."""
    modules = engine_modules(root)
    graph = nx.DiGraph()
    found = []
    for name, path in modules.items():
        where = f"{path.relative_to(root.parent)}"
        for imp in imports_of(path, root):
            target = owner(imp.target, modules) if imp.target.startswith(root.name) else None
            if target is None:
                found.extend(_third_party(imp, name, where, root.name))
                continue
            if target == name:
                continue
            graph.add_edge(name, target)
            if imp.hidden:
                found.append(f"{where}:{imp.line}: imports {target} inside a {imp.hidden} block")
            if layer(target) > layer(name):
                found.append(
                    f"{where}:{imp.line}: {name} ({_layer_name(name)}) imports {target} "
                    f"({_layer_name(target)}), a higher layer"
                )
    for tangle in nx.strongly_connected_components(graph):
        if len(tangle) > 1:  # one cycle through them, to start from
            cycle = [edge[0] for edge in nx.find_cycle(graph.subgraph(tangle))]
            found.append("import cycle: " + " -> ".join(cycle + cycle[:1]))
    return found


def _third_party(imp: Import, name: str, where: str, package: str) -> list[str]:
    top = imp.target.split(".")[0]
    allowed = BOUNDARIES.get(top)
    if allowed is None:
        return []
    relative = name.removeprefix(package + ".").replace(".", "/")
    if any(relative.startswith(a) if a.endswith("/") else relative == a for a in allowed):
        return []
    return [f"{where}:{imp.line}: imports {top}, which only {', '.join(allowed) or 'cli.py'} may import"]


def _layer_name(module: str) -> str:
    n = layer(module)
    return LAYERS[n] if n < len(LAYERS) else "the package API"


def test_the_engine_layers_point_one_way():
    assert problems(ENGINE) == []


def test_every_folder_of_the_engine_is_a_known_layer():
    folders = {p.name for p in ENGINE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert folders == set(LAYERS)


# The checker itself, on a made-up package: it must see each kind of problem.


def write(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / "engine" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    for folder in [root / "engine", *(root / "engine").rglob("*")]:
        if folder.is_dir() and not (folder / "__init__.py").exists():
            (folder / "__init__.py").write_text("")
    return root / "engine"


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        (
            {"core/a.py": "from ..runtime import b\n", "runtime/b.py": ""},
            "engine.core.a (core) imports engine.runtime.b (runtime), a higher layer",
        ),
        ({"runtime/a.py": "from . import b\n", "runtime/b.py": "from .a import x\n"}, "import cycle: "),
        (
            {"runtime/a.py": "def f():\n    from ..core import b\n", "core/b.py": ""},
            "imports engine.core.b inside a function block",
        ),
        (
            {
                "runtime/a.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from . import b\n",
                "runtime/b.py": "",
            },
            "imports engine.runtime.b inside a TYPE_CHECKING block",
        ),
        ({"core/a.py": "import networkx\n"}, "imports networkx, which only analysis/"),
        ({"render/a.py": "import click\n"}, "imports click, which only cli.py may import"),
    ],
)
def test_the_checker_sees_each_kind_of_problem(tmp_path, files, expected):
    found = problems(write(tmp_path, files))
    assert any(expected in line for line in found), found


def test_the_checker_accepts_downward_imports(tmp_path):
    root = write(
        tmp_path,
        {
            "core/a.py": "",
            "runtime/b.py": "from ..core import a\nfrom ..core.a import x\n",
            "commands/c.py": "from ..runtime.b import y\nimport json\n",
        },
    )
    assert problems(root) == []
