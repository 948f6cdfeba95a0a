"""The run configuration modules form no import cycle, and each loads on its own.

``targets/runconfig/io.py`` once parsed YAML, translated pydantic errors, detected formats,
located files and loaded/saved/converted, and imported the Azure ML v1 and conda readers
that imported it back (and the model imported it for ``RunConfiguration.load``). Each
job now has a module; this test keeps it that way.

The graph counts every ``import`` statement, at module level or inside a function (a
deferred import is still a dependency), except those under ``if TYPE_CHECKING:``.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "targets"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _all_modules() -> dict[str, Path]:
    return {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST, package: str) -> list[tuple[str, list[str]]]:
    """(module named, names imported from it) of every import outside TYPE_CHECKING."""
    found: list[tuple[str, list[str]]] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for branch in node.orelse:
                visit(branch)
            return
        if isinstance(node, ast.Import):
            found.extend((alias.name, []) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.append((base, [alias.name for alias in node.names]))
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def import_graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    """Module -> the modules of ``modules`` it imports (``from pkg import sub`` counts as
    importing ``pkg.sub`` when that is a module, else ``pkg``)."""
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        edges: set[str] = set()
        for module, names in _imports(ast.parse(path.read_text()), package):
            for sub in [f"{module}.{n}" for n in names] or [module]:
                if sub in modules:
                    edges.add(sub)
                elif module in modules:
                    edges.add(module)
        edges.discard(name)
        graph[name] = edges
    return graph


def find_cycle(graph: dict[str, set[str]], within: set[str]) -> list[str] | None:
    """One import cycle that passes through a module of ``within``, or None."""
    for start in sorted(within):
        stack: list[tuple[str, list[str]]] = [(start, [start])]
        seen: set[str] = set()
        while stack:
            node, path = stack.pop()
            for nxt in sorted(graph.get(node, ())):
                if nxt == start:
                    return [*path, start]
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append((nxt, [*path, nxt]))
    return None


def _scope(modules: dict[str, Path]) -> set[str]:
    return {n for n in modules if n.startswith("targets.runconfig") or n == "targets.jobs.reader"}


def test_the_runconfig_modules_and_the_job_reader_form_no_import_cycle() -> None:
    modules = _all_modules()
    scope = _scope(modules)
    graph = import_graph({n: modules[n] for n in scope})
    cycle = find_cycle(graph, scope)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_no_import_cycle_through_the_rest_of_targets_reaches_back() -> None:
    """A cycle may also leave the package: io -> schema -> workspace -> io was one. Modules
    outside import the YAML reader from ``yaml_lines`` (not ``io``), so none closes a loop."""
    modules = _all_modules()
    cycle = find_cycle(import_graph(modules), _scope(modules))
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_graph_sees_the_imports_it_checks() -> None:
    """The checker itself: it finds the edges that exist, and a cycle when there is one."""
    modules = _all_modules()
    graph = import_graph({n: modules[n] for n in _scope(modules)})
    assert "targets.runconfig.yaml_lines" in graph["targets.jobs.reader"]
    assert "targets.runconfig.model" in graph["targets.runconfig.io"]
    # The package installs RunConfiguration.load/save: a deferred import, still an edge.
    assert "targets.runconfig.io" in graph["targets.runconfig"]
    looped = {**graph, "targets.runconfig.model": {"targets.runconfig.io"}}
    assert find_cycle(looped, {"targets.runconfig.model"}) is not None


@pytest.mark.parametrize(
    "module",
    sorted(n for n in _scope(_all_modules()) if n != "targets.runconfig"),
)
def test_each_module_imports_alone_in_a_fresh_interpreter(module: str) -> None:
    result = subprocess.run(
        [sys.executable, "-c", f"import {module}"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr


def test_runconfiguration_load_and_save_work_from_the_model_module_alone(
    tmp_path: Path,
) -> None:
    """The SDK-style methods still work when only the model module is imported."""
    code = (
        "import sys\n"
        "from targets.runconfig.model import RunConfiguration\n"
        "rc = RunConfiguration(script='train.py', node_count=2)\n"
        "rc.save(sys.argv[1])\n"
        "assert RunConfiguration.load(sys.argv[1]) == rc\n"
    )
    target = tmp_path / "project" / "train.yml"
    result = subprocess.run(
        [sys.executable, "-c", code, str(target)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "node_count: 2" in target.read_text()
