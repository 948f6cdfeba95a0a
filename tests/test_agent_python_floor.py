"""The agent (``targets/agent/``, shipped as a zipapp) runs on Python 3.8: the floor users
are promised (docs/vm.md, docs/quickstart.md), checked on every `make test`.

No Python 3.8 interpreter can be installed from the sources this project may use
(Debian bookworm ships 3.11 only; Debian never shipped 3.8; the prebuilt interpreters of
uv, pyenv and the npm ``portable-python`` packages are downloads from GitHub). So the
floor is checked in two parts (docs/testing.md):

- statically, against Python 3.8: the grammar (``ast.parse(feature_version=(3, 8))``),
  the standard library and builtins used (``vermin``, from PyPI), and the expressions
  evaluated at run time (``list[int]`` outside an annotation, ``X | None``), which
  neither of the first two sees;
- by running the agent zipapp on the oldest Python this machine has, isolated from every
  site-packages (``-I -S``), so it also proves the agent needs nothing but the stdlib.

The run library (``targets/agent/runlib``, the ``azureml`` package runs import) runs in the
run's own Python, which real v1 conda files pin to 3.6: it is checked the same ways against
Python 3.6 (no ``from __future__ import annotations``, so its annotations are evaluated and
checked too), and imported by a real 3.6 interpreter (tests/test_runlib_py36.py runs it).
"""

from __future__ import annotations

import ast
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from targets.compute._agent import agent_bundle
from tests.oldest_python import FLOOR, RUNLIB_FLOOR, oldest_python, python_of
from tests.sshd import skip_or_fail

REPO = Path(__file__).resolve().parents[1]
AGENT = REPO / "targets" / "agent"
RUNLIB = AGENT / "runlib"

# Local-only helpers that are not part of the shipped bundle (see agent_bundle()).
NOT_SHIPPED = {"docker_sdk.py"}


def shipped_sources() -> list[Path]:
    files = sorted(p for p in AGENT.glob("*.py") if p.name not in NOT_SHIPPED)
    # The run library (the `azureml` package runs import) runs in the user's Python too.
    files += sorted(AGENT.glob("runlib/**/*.py"))
    assert files, f"no agent sources in {AGENT}"
    return files


def runlib_sources() -> list[Path]:
    files = sorted(RUNLIB.rglob("*.py"))
    assert files, f"no run library in {RUNLIB}"
    return files


def test_every_agent_file_parses_with_the_python_3_8_grammar() -> None:
    errors = []
    for path in shipped_sources():
        try:
            ast.parse(path.read_text(), str(path), feature_version=FLOOR)
        except SyntaxError as exc:
            errors.append(f"{path.relative_to(REPO)}:{exc.lineno}: {exc.msg}")
    assert not errors, "syntax newer than Python 3.8:\n" + "\n".join(errors)


def vermin(
    *args: str, floor: tuple[int, int] = FLOOR, eval_annotations: bool = False
) -> subprocess.CompletedProcess[str]:
    """``vermin`` against Python ``floor`` (3.8), as the checks below run it."""
    found = shutil.which("vermin", path=str(Path(sys.executable).parent))
    if found is None:
        skip_or_fail("vermin is not installed: `pip install -e '.[test]'` installs it")
        raise AssertionError("unreachable")
    return subprocess.run(
        [
            found,
            "--target={}.{}-".format(*floor),
            "--violations",
            "--no-tips",
            "--no-parse-comments",
            # The agent's files all start with `from __future__ import annotations`:
            # annotations are never evaluated, so `list[str]` there is fine on 3.8 (the
            # runtime-expression test below covers the rest). The run library's are
            # evaluated (it runs on 3.6, which lacks that import): checked too.
            "--eval-annotations" if eval_annotations else "--no-eval-annotations",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_vermin_finds_nothing_the_agent_uses_that_python_3_8_lacks() -> None:
    """Standard library modules, functions, methods and keyword arguments by version."""
    result = vermin(*map(str, shipped_sources()))
    assert result.returncode == 0, f"vermin: not Python 3.8 compatible:\n{result.stdout}"
    assert "Minimum required versions: 3." in result.stdout, result.stdout


def test_vermin_as_run_here_rejects_stdlib_newer_than_3_8(tmp_path: Path) -> None:
    newer = tmp_path / "newer.py"
    newer.write_text(
        "from __future__ import annotations\n"
        "import functools, zoneinfo\n"
        "@functools.cache\n"
        "def f(name: str) -> str:\n"
        "    return 'x' + name.removeprefix('x') + 'xy'.removeprefix('x')\n"
    )
    result = vermin(str(newer))
    assert result.returncode != 0, result.stdout
    for needed in ("zoneinfo", "functools.cache", "str.removeprefix"):
        assert needed in result.stdout


# Names whose subscription (`list[int]`) is a 3.9 feature, and which make `|` between
# types (`int | None`) a 3.10 feature, when evaluated at run time.
_BUILTIN_GENERICS = {"list", "dict", "tuple", "set", "frozenset", "type"}
_ABC_GENERICS = {
    "Callable",
    "Iterable",
    "Iterator",
    "Generator",
    "Mapping",
    "MutableMapping",
    "Sequence",
    "MutableSequence",
    "Set",
    "AbstractSet",
}
_TYPE_NAMES = _BUILTIN_GENERICS | {"int", "str", "bytes", "float", "bool", "None"}


def _is_type_expr(node: ast.expr) -> bool:
    if isinstance(node, ast.Constant) and node.value is None:
        return True
    if isinstance(node, ast.Name) and node.id in _TYPE_NAMES:
        return True
    return isinstance(node, ast.Subscript)


def runtime_typing_problems(source: str, filename: str) -> list[str]:
    """Type expressions a Python 3.8 interpreter evaluates and cannot: ``list[int]``
    (3.9) and ``int | None`` (3.10) outside annotations, and inside them too when the
    file lacks ``from __future__ import annotations``."""
    tree = ast.parse(source, filename)
    postponed = any(
        isinstance(n, ast.ImportFrom)
        and n.module == "__future__"
        and any(a.name == "annotations" for a in n.names)
        for n in tree.body
    )
    skip: set[int] = set()
    for node in ast.walk(tree):  # `if TYPE_CHECKING:` blocks never run
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for statement in node.body:
                skip.update(id(n) for n in ast.walk(statement))
    # `from typing import Mapping, Set`: typing's generics subscript on every version.
    from_typing = {
        alias.asname or alias.name
        for n in ast.walk(tree)
        if isinstance(n, ast.ImportFrom) and n.module == "typing"
        for alias in n.names
    }
    in_annotation: set[int] = set()
    for node in ast.walk(tree):
        annotations: list[ast.expr | None] = []
        if isinstance(node, ast.AnnAssign | ast.arg):
            annotations.append(node.annotation)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            annotations.append(node.returns)
        for annotation in annotations:
            if annotation is not None:
                in_annotation.update(id(n) for n in ast.walk(annotation))
    if postponed:
        skip |= in_annotation
    problems = []
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if (
            id(node) in in_annotation
            and isinstance(node, ast.BinOp)
            and isinstance(node.op, ast.BitOr)
        ):
            # An evaluated annotation: `X | Y` is a union whatever X and Y are named.
            problems.append(f"{filename}:{node.lineno}: X | Y of types needs Python 3.10")
            continue
        if isinstance(node, ast.Subscript):
            value = node.value
            name = value.id if isinstance(value, ast.Name) else None
            if isinstance(value, ast.Attribute) and isinstance(value.value, ast.Name):
                name = value.attr if value.value.id in ("abc", "collections") else None
            if name in _BUILTIN_GENERICS or (name in _ABC_GENERICS and name not in from_typing):
                problems.append(f"{filename}:{node.lineno}: {name}[...] needs Python 3.9")
        elif (
            isinstance(node, ast.BinOp)
            and isinstance(node.op, ast.BitOr)
            and _is_type_expr(node.left)
            and _is_type_expr(node.right)
        ):
            problems.append(f"{filename}:{node.lineno}: X | Y of types needs Python 3.10")
    return problems


def test_no_type_expression_evaluated_at_run_time_needs_more_than_3_8() -> None:
    problems = []
    for path in shipped_sources():
        problems += runtime_typing_problems(path.read_text(), str(path.relative_to(REPO)))
    assert not problems, "\n".join(problems)


def test_the_runtime_expression_check_finds_what_3_8_cannot_evaluate() -> None:
    """The checker itself, on code that Python 3.8 rejects at run time."""
    source = (
        "from __future__ import annotations\n"
        "from collections.abc import Callable\n"
        "Rows = list[tuple[str, int]]\n"
        "Maybe = int | None\n"
        "Handler = Callable[[str], None]\n"
        "def f(x: list[int] | None) -> dict[str, int]: ...\n"
        "y: dict[str, int] = {}\n"
        "flags = 1 | 2\n"
        "if TYPE_CHECKING:\n"
        "    Hidden = dict[str, int]\n"
    )
    problems = runtime_typing_problems(source, "m.py")
    assert sorted(p.split(":")[1] for p in problems) == ["3", "3", "4", "5"], problems
    no_future = "def f(x: list[int]) -> None: ...\n"
    assert runtime_typing_problems(no_future, "n.py") == ["n.py:1: list[...] needs Python 3.9"]
    # Without the future import an annotation's `|` is evaluated, whatever the names.
    union = "class Store: ...\ndef f(s: Store | None) -> 'Store': ...\n"
    assert runtime_typing_problems(union, "u.py") == ["u.py:2: X | Y of types needs Python 3.10"]
    typed = "from typing import Mapping, Set\ndef f(m: Mapping[str, int]) -> Set[str]: ...\n"
    assert runtime_typing_problems(typed, "t.py") == []


def test_the_agent_zipapp_runs_on_the_oldest_python_here_with_only_the_stdlib(
    tmp_path: Path,
) -> None:
    found = oldest_python()
    if found is None:
        skip_or_fail("no Python 3.8 or newer outside the test venv")
        return
    python, version = found
    _, data = agent_bundle()
    bundle = tmp_path / "agent.pyz"
    bundle.write_bytes(data)
    # Every shipped module imports with no site-packages at all (-I -S).
    # The run library imports from the bundle's runlib/ folder, as runs see it.
    modules = []
    for path in shipped_sources():
        rel = path.relative_to(AGENT)
        if rel.parts[0] == "runlib":
            parts = list(rel.with_suffix("").parts[1:])
        else:
            parts = ["targets_agent", *rel.with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        if parts[-1] != "__main__":
            modules.append(".".join(parts))
    runlib = f"{bundle}/targets_agent/runlib"
    code = (
        "import importlib, sys\n"
        f"sys.path[:0] = [{str(bundle)!r}, {runlib!r}]\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "print(sys.version_info[:2])\n"
    )
    imported = subprocess.run(
        [python, "-I", "-S", "-c", code], capture_output=True, text=True, timeout=120
    )
    assert imported.returncode == 0, imported.stderr
    assert imported.stdout.strip() == str(version)
    # And it serves: its first frame is the hello with this interpreter's version.
    served = subprocess.run(
        [python, "-I", "-S", str(bundle), "serve", str(tmp_path / "root")],
        input=b"",
        capture_output=True,
        timeout=120,
    )
    assert served.returncode == 0, served.stderr.decode()
    (length,) = struct.unpack(">I", served.stdout[:4])
    hello = served.stdout[4 : 4 + length].decode()
    assert '"ok": true' in hello
    assert f'"python_version": "{version[0]}.{version[1]}.' in hello


@pytest.mark.parametrize(
    "source",
    [
        "match x:\n    case 1:\n        pass\n",  # 3.10
        "try:\n    pass\nexcept* ValueError:\n    pass\n",  # 3.11
    ],
)
def test_the_grammar_check_rejects_newer_syntax(source: str) -> None:
    ast.parse(source)
    with pytest.raises(SyntaxError):
        ast.parse(source, feature_version=FLOOR)


# -- the run library: Python 3.6 -----------------------------------------------------------


def _postpones_annotations(tree: ast.Module) -> bool:
    return any(
        isinstance(n, ast.ImportFrom)
        and n.module == "__future__"
        and any(a.name == "annotations" for a in n.names)
        for n in tree.body
    )


def test_the_run_library_parses_and_evaluates_on_python_3_6() -> None:
    """The 3.6 grammar (no walrus, no ``f"{x=}"``, no positional-only parameters), no
    ``from __future__ import annotations`` (3.7: a SyntaxError on 3.6), and no annotation
    or type expression that 3.6 cannot evaluate (``list[int]``, ``X | None``)."""
    errors = []
    for path in runlib_sources():
        name = str(path.relative_to(REPO))
        source = path.read_text()
        try:
            tree = ast.parse(source, name, feature_version=RUNLIB_FLOOR)
        except SyntaxError as exc:
            errors.append(f"{name}:{exc.lineno}: {exc.msg}")
            continue
        if _postpones_annotations(tree):
            errors.append(f"{name}: `from __future__ import annotations` needs Python 3.7")
        errors += runtime_typing_problems(source, name)
    assert not errors, "the run library must run on Python 3.6:\n" + "\n".join(errors)


def test_vermin_finds_nothing_the_run_library_uses_that_python_3_6_lacks() -> None:
    result = vermin(*map(str, runlib_sources()), floor=RUNLIB_FLOOR, eval_annotations=True)
    assert result.returncode == 0, f"vermin: not Python 3.6 compatible:\n{result.stdout}"
    assert "Minimum required versions: 3." in result.stdout, result.stdout


def test_vermin_as_run_on_the_run_library_rejects_what_python_3_6_lacks(tmp_path: Path) -> None:
    newer = tmp_path / "newer.py"
    newer.write_text(
        "from __future__ import annotations\n"
        "import contextlib, dataclasses\n"
        "@dataclasses.dataclass\n"
        "class A:\n"
        "    x: int = 0\n"
        "def f(a: list[int]) -> None:\n"
        "    with contextlib.nullcontext():\n"
        "        pass\n"
    )
    result = vermin(str(newer), floor=RUNLIB_FLOOR, eval_annotations=True)
    assert result.returncode != 0, result.stdout
    for needed in (
        "__future__.annotations",
        "dataclasses",
        "contextlib.nullcontext",
        "builtin generic type annotation",
    ):
        assert needed in result.stdout, result.stdout


def test_the_run_library_imports_on_python_3_6_with_only_the_stdlib(tmp_path: Path) -> None:
    """Every module of the run library, from the agent zipapp's runlib/ folder as runs
    see it, on a real Python 3.6 with no site-packages (``-I -S``)."""
    python = python_of(RUNLIB_FLOOR[1])
    if python is None:
        skip_or_fail("no Python 3.6 on this machine (pyenv's 3.6.* is looked for)")
        return
    _, data = agent_bundle()
    bundle = tmp_path / "agent.pyz"
    bundle.write_bytes(data)
    modules = []
    for path in runlib_sources():
        parts = list(path.relative_to(RUNLIB).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules.append(".".join(parts))
    code = (
        "import importlib, sys\n"
        f"sys.path[:0] = [{str(bundle) + '/targets_agent/runlib'!r}]\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "from azureml.core import Run\n"
        "run = Run.get_context()\n"
        "run.log('loss', 0.5)\n"
        "print(sys.version_info[:2], run.id.split('_')[0], run.get_metrics())\n"
    )
    done = subprocess.run(
        [python, "-I", "-S", "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "PYTHONDONTWRITEBYTECODE": "1"},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "(3, 6) OfflineRun {'loss': 0.5}", done.stdout
