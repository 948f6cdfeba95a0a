"""Rewrite the ``azureml`` imports of Python source to ``targets.azureml``, keeping
everything else byte for byte.

The source is parsed with :mod:`ast` (the running Python's own grammar) to find the
imports and the attribute chains rooted at a plainly imported ``azureml``; each change is
the insertion of ``targets.`` before ``azureml`` at a position the parser reports, so
comments, quotes, spacing and line endings never move.

Design choice: the standard library instead of libcst. Every change this migration makes
is an insertion at a position the parser already gives, so a concrete syntax tree would
add a compiled dependency to every install and gain nothing; and :mod:`ast` accepts exactly
the syntax of the Python that runs the script, never an older grammar.

A notebook is several chunks (its code cells) sharing one namespace: an ``import
azureml.core`` in one cell decides how ``azureml.core.X`` is rewritten in another, so
:func:`analyse` takes all chunks at once.
"""

from __future__ import annotations

import ast
import re
import tokenize
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from targets.migrate._provided import has_name, hint_for, module_exists

__all__ = ["PREFIX", "Analysis", "Finding", "LineChange", "ScriptRef", "analyse", "split_lines"]

PREFIX = "targets."

# Calls that name the script a run executes, and where their positional arguments go.
_POSITIONAL: dict[str, tuple[str, ...]] = {
    "ScriptRunConfig": ("source_directory", "script"),
    "PythonScriptStep": ("script_name",),
    "Estimator": ("source_directory",),
    "PyTorch": ("source_directory",),
    "TensorFlow": ("source_directory",),
    "SKLearn": ("source_directory",),
    "Chainer": ("source_directory",),
}
_SCRIPT_KEYWORDS = ("script", "script_name", "entry_script", "python_script_name")
_CONTEXT_CALLS = frozenset({"get_context", "get_submitted_run"})
# The only azureml names a training script needs: the run it is in.
_RUN_NAMES = ("azureml.core.Run", "azureml.core.run")

_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+\Z")


def split_lines(text: str) -> list[str]:
    """``text`` as the parser counts lines (``\\n``, ``\\r\\n``, ``\\r``), ends kept."""
    return _LINE.findall(text)


@dataclass(frozen=True, slots=True)
class Finding:
    """Something the user should know about one line: a name targets does not provide,
    an import left unchanged, a cell that does not parse."""

    chunk: int
    line: int
    message: str


@dataclass(frozen=True, slots=True)
class LineChange:
    chunk: int
    line: int
    before: str
    after: str


@dataclass(frozen=True, slots=True)
class ScriptRef:
    """A script a run executes, named in this code (``ScriptRunConfig(script=...)``).
    ``source_directories`` are the literal values found for its source directory
    (empty when it is not given or not a literal)."""

    script: str
    source_directories: tuple[str, ...]
    chunk: int
    line: int


@dataclass(slots=True)
class Analysis:
    """What :func:`analyse` found. ``texts`` holds each chunk rewritten (``None`` for a
    chunk that was not parsed), ``insertions`` where :data:`PREFIX` went in each chunk
    (1-based line, character column)."""

    texts: list[str | None]
    insertions: dict[int, list[tuple[int, int]]] = field(default_factory=dict)
    changes: list[LineChange] = field(default_factory=list)
    notes: list[Finding] = field(default_factory=list)
    unparsable: dict[int, str] = field(default_factory=dict)
    uses: set[str] = field(default_factory=set)
    gets_context: bool = False
    scripts: list[ScriptRef] = field(default_factory=list)

    @property
    def only_run(self) -> bool:
        """Whether every azureml name used is the run a script is in (``Run``)."""
        return bool(self.uses) and all(
            any(use == r or use.startswith(r + ".") for r in _RUN_NAMES) for use in self.uses
        )


@dataclass(slots=True)
class _Chunk:
    index: int
    lines: list[str]
    tree: ast.Module
    insertions: set[tuple[int, int]] = field(default_factory=set)  # (line, char column)


def analyse(chunks: Sequence[str | None]) -> Analysis:
    """Find and apply the rewrite of every chunk (``None``: not Python, left alone).

    Never raises for bad source: a chunk that does not parse is in ``unparsable`` with
    the parser's message, and left unchanged.
    """
    result = Analysis(texts=[None] * len(chunks))
    parsed: list[_Chunk] = []
    for index, text in enumerate(chunks):
        if text is None:
            continue
        try:
            tree = ast.parse(text)
        except (SyntaxError, ValueError) as exc:
            line = getattr(exc, "lineno", None)
            msg = getattr(exc, "msg", str(exc))
            result.unparsable[index] = f"line {line}: {msg}" if line else str(msg)
            continue
        parsed.append(_Chunk(index, split_lines(text), tree))

    plain: dict[str, bool] = {}  # `import azureml.x` (binds `azureml`) -> rewritten?
    for chunk in parsed:
        for node in ast.walk(chunk.tree):
            if isinstance(node, ast.ImportFrom):
                _from_import(chunk, node, result)
            elif isinstance(node, ast.Import):
                _import(chunk, node, result, plain)
    if plain:
        for chunk in parsed:
            _chains(chunk, plain, result)
    for chunk in parsed:
        _runs(chunk, result)
        if chunk.insertions and (plain and any(plain.values())):
            _targets_bound(chunk, result)

    for chunk in parsed:
        lines = list(chunk.lines)
        result.insertions[chunk.index] = sorted(chunk.insertions)
        for line, column in sorted(chunk.insertions, reverse=True):
            text = lines[line - 1]
            lines[line - 1] = text[:column] + PREFIX + text[column:]
        for number, (old, new) in enumerate(zip(chunk.lines, lines, strict=True), start=1):
            if old != new:
                result.changes.append(
                    LineChange(chunk.index, number, old.rstrip("\r\n"), new.rstrip("\r\n"))
                )
        result.texts[chunk.index] = "".join(lines)
    result.changes.sort(key=lambda c: (c.chunk, c.line))
    result.notes.sort(key=lambda n: (n.chunk, n.line))
    return result


def _is_azureml(module: str | None) -> bool:
    return module is not None and (module == "azureml" or module.startswith("azureml."))


def _char_column(line: str, byte_column: int) -> int:
    """ast columns count UTF-8 bytes; the text is characters."""
    return len(line.encode("utf-8")[:byte_column].decode("utf-8", errors="replace"))


def _note(result: Analysis, chunk: _Chunk, line: int, message: str) -> None:
    result.notes.append(Finding(chunk.index, line, message))


def _missing(dotted: str, module: str, name: str) -> str:
    hint = hint_for(dotted)
    text = f"{dotted}: targets.{module} has no {name!r}; this line fails until it is removed"
    return f"{text} ({hint})" if hint else text


def _unprovided_module(module: str) -> str:
    hint = hint_for(module)
    text = (
        f"{module}: targets does not provide this module; the import is left unchanged "
        "and needs the Azure ML SDK"
    )
    return f"{text} ({hint})" if hint else text


def _from_import(chunk: _Chunk, node: ast.ImportFrom, result: Analysis) -> None:
    if node.level:
        return
    if node.module and node.module.startswith(PREFIX) and _is_azureml(node.module[len(PREFIX) :]):
        # Migrated already: keep saying which names are missing, so a second run still
        # shows what is left to do.
        module = node.module[len(PREFIX) :]
        for alias in node.names:
            if alias.name != "*" and module_exists(module) and not has_name(module, alias.name):
                dotted = f"{module}.{alias.name}"
                _note(result, chunk, alias.lineno, _missing(dotted, module, alias.name))
        return
    if not _is_azureml(node.module):
        return
    module = node.module or ""
    for alias in node.names:
        if alias.name != "*":
            result.uses.add(f"{module}.{alias.name}")
    if not module_exists(module):
        _note(result, chunk, node.lineno, _unprovided_module(module))
        return
    for alias in node.names:
        if alias.name != "*" and not has_name(module, alias.name):
            _note(
                result,
                chunk,
                alias.lineno,
                _missing(f"{module}.{alias.name}", module, alias.name),
            )
    chunk.insertions.add(_module_position(chunk, node))


def _module_position(chunk: _Chunk, node: ast.ImportFrom) -> tuple[int, int]:
    """Where the module name of ``from azureml... import`` starts (it may follow a
    backslash continuation)."""
    first = chunk.lines[node.lineno - 1]
    column = _char_column(first, node.col_offset)
    segment = [first[column:], *chunk.lines[node.lineno : node.end_lineno or node.lineno]]
    lines: Iterator[str] = iter(segment)
    seen_from = False
    try:
        for token in tokenize.generate_tokens(lambda: next(lines, "")):
            if token.type == tokenize.NAME and token.string == "from":
                seen_from = True
            elif seen_from and token.type == tokenize.NAME:
                row, col = token.start
                return node.lineno + row - 1, col + (column if row == 1 else 0)
    except (tokenize.TokenError, SyntaxError):
        pass
    raise AssertionError(f"no module name after 'from' at line {node.lineno}")  # unreachable


def _import(chunk: _Chunk, node: ast.Import, result: Analysis, plain: dict[str, bool]) -> None:
    for alias in node.names:
        if not _is_azureml(alias.name):
            continue
        provided = module_exists(alias.name)
        if alias.asname is None:
            plain[alias.name] = plain.get(alias.name, False) or provided
        else:
            result.uses.add(alias.name)
        if not provided:
            _note(result, chunk, alias.lineno, _unprovided_module(alias.name))
            continue
        line = chunk.lines[alias.lineno - 1]
        chunk.insertions.add((alias.lineno, _char_column(line, alias.col_offset)))


def _chains(chunk: _Chunk, plain: dict[str, bool], result: Analysis) -> None:
    """``azureml.core.Workspace`` where ``import azureml.core`` bound ``azureml``."""
    parents: dict[ast.AST, ast.AST] = {}
    for parent in ast.walk(chunk.tree):
        for child in ast.iter_child_nodes(parent):
            parents[child] = parent
    everything = all(plain.values())
    for node in ast.walk(chunk.tree):
        if not (isinstance(node, ast.Name) and node.id == "azureml"):
            continue
        if not isinstance(node.ctx, ast.Load):
            continue
        parts = ["azureml"]
        current: ast.AST = node
        up = parents.get(current)
        while isinstance(up, ast.Attribute) and up.value is current:
            parts.append(up.attr)
            current = up
            up = parents.get(current)
        dotted = ".".join(parts)
        result.uses.add(dotted)
        if not _rewrite_chain(parts, plain, everything):
            continue
        line = chunk.lines[node.lineno - 1]
        chunk.insertions.add((node.lineno, _char_column(line, node.col_offset)))
        _check_chain(chunk, node.lineno, parts, result)


def _rewrite_chain(parts: list[str], plain: dict[str, bool], everything: bool) -> bool:
    """A chain follows the import that made its module reachable; with several imports,
    some left unchanged, the longest one that prefixes it decides."""
    if everything:
        return True
    for end in range(len(parts), 0, -1):
        decided = plain.get(".".join(parts[:end]))
        if decided is not None:
            return decided
    return any(plain.values()) and module_exists(".".join(parts[:2]))


def _check_chain(chunk: _Chunk, line: int, parts: list[str], result: Analysis) -> None:
    module = "azureml"
    for index in range(1, len(parts)):
        candidate = f"{module}.{parts[index]}"
        if module_exists(candidate):
            module = candidate
            continue
        if not has_name(module, parts[index]):
            dotted = ".".join(parts[: index + 1])
            _note(result, chunk, line, _missing(dotted, module, parts[index]))
        return


def _targets_bound(chunk: _Chunk, result: Analysis) -> None:
    """``import targets.azureml.core`` binds ``targets``: say where the code binds it too."""
    for node in ast.walk(chunk.tree):
        bound = (
            (
                isinstance(node, ast.Name)
                and node.id == "targets"
                and not isinstance(node.ctx, ast.Load)
            )
            or (isinstance(node, ast.arg) and node.arg == "targets")
            or (
                isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
                and node.name == "targets"
            )
        )
        if bound:
            line = getattr(node, "lineno", 1)
            _note(
                result,
                chunk,
                line,
                "the name 'targets' is bound here too, and `import targets.azureml...` binds "
                "it; rename this one or import with `as`",
            )


def _runs(chunk: _Chunk, result: Analysis) -> None:
    constants = _string_constants(chunk.tree)
    for node in ast.walk(chunk.tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if isinstance(func, ast.Attribute) and func.attr in _CONTEXT_CALLS:
            owner = func.value
            owner_name = owner.id if isinstance(owner, ast.Name) else getattr(owner, "attr", "")
            if owner_name == "Run":
                result.gets_context = True
        name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
        given: dict[str, ast.expr] = {
            keyword.arg: keyword.value for keyword in node.keywords if keyword.arg
        }
        for position, arg in zip(_POSITIONAL.get(name, ()), node.args, strict=False):
            given.setdefault(position, arg)
        for keyword in _SCRIPT_KEYWORDS:
            if keyword not in given:
                continue
            for script in _strings(given[keyword], constants):
                if script.endswith(".py"):
                    folder = given.get("source_directory")
                    folders = _strings(folder, constants) if folder is not None else []
                    result.scripts.append(
                        ScriptRef(script, tuple(folders), chunk.index, node.lineno)
                    )


def _string_constants(tree: ast.Module) -> dict[str, list[str]]:
    """``name = "literal"`` assignments at any level (a name assigned several literals
    keeps them all)."""
    found: dict[str, list[str]] = {}
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Assign)
            and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str)
        ):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    found.setdefault(target.id, []).append(node.value.value)
    return found


def _strings(node: ast.expr, constants: dict[str, list[str]]) -> list[str]:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.Name):
        return list(constants.get(node.id, []))
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "join"
        and node.args
    ):
        pieces = [_strings(arg, constants) for arg in node.args]
        if all(len(p) == 1 for p in pieces):
            return ["/".join(p[0] for p in pieces)]
    return []
