"""``targets migrate``: rewrite a v1 project's control scripts and notebooks to import
``targets.azureml`` instead of ``azureml``, and leave its training scripts alone.

A *control script* (or notebook) builds and submits runs: ``Workspace``,
``Experiment``, ``ScriptRunConfig``, ``ComputeTarget``... Its ``from azureml.X import``
lines become ``from targets.azureml.X import``, ``import azureml.X`` becomes ``import
targets.azureml.X``, and ``azureml.X.Y`` attribute uses follow the import that bound
``azureml``.

A *training script* runs inside a run, where the run library that the agent ships
provides ``azureml.core.Run`` (``targets`` itself is not installed on targets): it must
not change. A ``.py`` file is a training script when

1. the project names it as the script of a run: ``ScriptRunConfig(script=...)``,
   ``PythonScriptStep(script_name=...)``, ``Estimator(entry_script=...)``,
   ``ParallelRunConfig(entry_script=...)``, ``DatabricksStep(python_script_name=...)`` in
   any file or notebook of the project, or ``script:`` in a ``.runconfig`` file;
2. or it calls ``Run.get_context()`` (or the older ``Run.get_submitted_run()``);
3. or the only azureml name it uses is ``Run`` (``azureml.core.Run``,
   ``azureml.core.run``).

Notebooks are control code. ``--include GLOB`` forces a file to be migrated,
``--exclude GLOB`` leaves it alone; in the file itself, a ``# targets-migrate: control``
or ``# targets-migrate: skip`` comment line does the same (the command line wins).

Names are checked against the installed ``targets.azureml`` at run time (see
:mod:`targets.migrate._provided`): an import from a module targets does not have is left
unchanged, with a note; a name the module lacks is noted, and the import rewritten.
"""

from __future__ import annotations

import ast
import io
import posixpath
import re
import tokenize
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from targets.errors import UsageError
from targets.migrate._diff import unified_diff
from targets.migrate._environment import missing_in_active_environment
from targets.migrate._notebook import Cell, NotebookError, code_cells, raw_offsets, read_notebook
from targets.migrate._python import PREFIX, Analysis, analyse, split_lines
from targets.migrate._report import Change, FileReport, MigrationReport, Note, Role
from targets.migrate._walk import changed_since, walk, write_atomic

__all__ = ["Change", "FileReport", "MigrationReport", "Note", "migrate"]

_PRAGMA = re.compile(r"^[ \t]*#[ \t]*targets-migrate:[ \t]*(skip|control)\b", re.MULTILINE)


@dataclass(slots=True)
class _File:
    path: Path
    rel: str
    kind: Literal["python", "notebook"]
    raw: bytes
    text: str = ""
    encoding: str = "utf-8"
    error: str = ""
    analysis: Analysis | None = None
    cells: list[Cell] = field(default_factory=list)
    notes: list[Note] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _Globs:
    option: str
    patterns: tuple[tuple[str, Any], ...]

    @classmethod
    def parse(cls, option: str, patterns: Sequence[str]) -> _Globs:
        import pathspec

        compiled = []
        for pattern in patterns:
            try:
                compiled.append((pattern, pathspec.PathSpec.from_lines("gitwildmatch", [pattern])))
            except (ValueError, TypeError) as exc:
                raise UsageError(
                    f"{option} {pattern!r} is not a valid pattern: {exc}",
                    hint="use gitignore-style patterns relative to PATH, e.g. 'pipelines/*.py'",
                ) from exc
        return cls(option, tuple(compiled))

    def match(self, rel: str) -> str:
        for pattern, spec in self.patterns:
            if spec.match_file(rel):
                return f"{self.option} {pattern}"
        return ""


def migrate(
    path: str | Path,
    *,
    write: bool = False,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
) -> MigrationReport:
    """Migrate the control scripts and notebooks under ``path`` (a folder or one file).

    With ``write=False`` (the default) nothing is written: the report holds the diff of
    every change. With ``write=True`` each changed file is replaced atomically, keeping
    its permission bits. Idempotent: a migrated file has nothing left to change.
    Raises :class:`UsageError` (nothing read or written) when ``path`` does not exist or
    a pattern is invalid; problems with single files are in the report instead.
    """
    given = Path(path)
    if not given.exists():
        raise UsageError(f"{path}: no such file or folder", hint="give the project folder")
    root = given.resolve()
    if root.is_file() and root.suffix not in (".py", ".ipynb"):
        raise UsageError(
            f"{path}: not a .py file, a notebook or a folder",
            hint="give the project folder, a .py file or an .ipynb notebook",
        )
    includes = _Globs.parse("--include", include)
    excludes = _Globs.parse("--exclude", exclude)
    base = root if root.is_dir() else root.parent

    files: list[_File] = []
    runconfig_scripts: list[tuple[str, str]] = []
    for found in walk(root):
        rel = found.relative_to(base).as_posix()
        try:
            raw = found.read_bytes()
        except OSError:
            continue
        if found.suffix == ".runconfig":
            script = _runconfig_script(raw)
            if script:
                runconfig_scripts.append((script, rel))
        elif b"azureml" in raw:
            files.append(_load(found, rel, raw))

    named = _named_scripts(files, runconfig_scripts)
    reports = []
    for item in files:
        role, reason = _role(item, named, includes, excludes)
        reports.append(_finish(item, role, reason, write=write))
    migrated = any(r.status in ("changed", "unchanged") and r.role == "control" for r in reports)
    note = missing_in_active_environment() if migrated else None
    return MigrationReport(str(root), write, tuple(reports), note)


def _load(path: Path, rel: str, raw: bytes) -> _File:
    kind: Literal["python", "notebook"] = "notebook" if path.suffix == ".ipynb" else "python"
    item = _File(path, rel, kind, raw)
    try:
        if kind == "python":
            item.encoding, _ = tokenize.detect_encoding(io.BytesIO(raw).readline)
        item.text = raw.decode(item.encoding)
    except (SyntaxError, LookupError, UnicodeDecodeError) as exc:
        item.error = f"cannot be decoded ({exc}); left unchanged"
        return item
    if kind == "python":
        item.analysis = analyse([item.text])
        if item.analysis.unparsable:
            item.error = f"does not parse ({item.analysis.unparsable[0]}); left unchanged"
        return item
    try:
        item.cells = code_cells(read_notebook(item.text))
    except NotebookError as exc:
        item.error = f"{exc}; left unchanged"
        return item
    item.analysis = analyse([cell.parse_text for cell in item.cells])
    for index, cell in enumerate(item.cells):
        if "azureml" not in cell.text:
            continue
        if cell.parse_text is None:
            item.notes.append(Note(1, "a %% cell magic: not Python, left unchanged", cell.number))
        elif index in item.analysis.unparsable:
            why = item.analysis.unparsable[index]
            item.notes.append(
                Note(
                    1, f"does not parse as Python ({why}); this cell is left unchanged", cell.number
                )
            )
    return item


def _runconfig_script(raw: bytes) -> str:
    import yaml

    try:
        data = yaml.safe_load(raw)
    except yaml.YAMLError:
        return ""
    script = data.get("script") if isinstance(data, dict) else None
    return script if isinstance(script, str) and script.endswith(".py") else ""


def _named_scripts(files: list[_File], runconfig_scripts: list[tuple[str, str]]) -> dict[str, str]:
    """The ``.py`` files the project names as the script of a run -> where it does."""
    python = {item.rel for item in files if item.kind == "python"}
    refs: list[tuple[str, tuple[str, ...], str, str]] = [
        (script, (), posixpath.dirname(rel), rel) for script, rel in runconfig_scripts
    ]
    for item in files:
        if item.analysis is None:
            continue
        for ref in item.analysis.scripts:
            if item.kind == "notebook":
                where = f"{item.rel} (cell {item.cells[ref.chunk].number})"
            else:
                where = f"{item.rel}:{ref.line}"
            refs.append((ref.script, ref.source_directories, posixpath.dirname(item.rel), where))
    named: dict[str, str] = {}
    for script, folders, here, where in refs:
        matched = {
            candidate
            for folder in folders or (".",)
            if (candidate := posixpath.normpath(posixpath.join(here, folder, script))) in python
        }
        if not matched:
            # A source directory that is not a literal, or a script copied there at run
            # time: a file below the referring one whose path ends with the script's.
            tail = posixpath.normpath(script.replace("\\", "/")).lstrip("/")
            under = f"{here}/" if here else ""
            matched = {
                p for p in python if p.startswith(under) and (p == tail or p.endswith("/" + tail))
            }
        for candidate in matched:
            named.setdefault(candidate, where)
    return named


def _role(
    item: _File, named: dict[str, str], includes: _Globs, excludes: _Globs
) -> tuple[Role, str]:
    if why := excludes.match(item.rel):
        return "excluded", why
    if why := includes.match(item.rel):
        return "control", why
    texts = [item.text] if item.kind == "python" else [cell.text for cell in item.cells]
    pragmas = {m.group(1) for text in texts for m in _PRAGMA.finditer(text)}
    if "skip" in pragmas:
        return "excluded", "# targets-migrate: skip"
    if "control" in pragmas:
        return "control", "# targets-migrate: control"
    if item.kind == "notebook" or item.analysis is None:
        return "control", ""
    if item.rel in named:
        return "training", f"named as the script of a run in {named[item.rel]}"
    if item.analysis.gets_context:
        return "training", "calls Run.get_context()"
    if item.analysis.only_run:
        return "training", "uses no azureml name but Run"
    return "control", ""


def _finish(item: _File, role: Role, reason: str, *, write: bool) -> FileReport:
    report = FileReport(item.rel, item.kind, role, "skipped", reason, notes=tuple(item.notes))
    if role != "control":
        return report
    if item.error or item.analysis is None:
        return _replace(report, status="error", reason=item.error)
    analysis = item.analysis
    notes = [*item.notes, *(_located(item, n.chunk, n.line, n.message) for n in analysis.notes)]
    notes.sort(key=lambda n: (n.cell or 0, n.line))
    changes = tuple(
        Change(c.line, c.before, c.after, item.cells[c.chunk].number if item.cells else None)
        for c in analysis.changes
    )
    try:
        new_text = _new_python(item) if item.kind == "python" else _new_notebook(item)
    except _Inconsistent as exc:
        return _replace(report, status="error", reason=str(exc), notes=tuple(notes))
    if new_text == item.text:
        return _replace(report, status="unchanged", notes=tuple(notes))
    diff = unified_diff(item.text, new_text, item.rel)
    report = _replace(report, status="changed", changes=changes, notes=tuple(notes), diff=diff)
    if not write:
        return report
    if changed_since(item.path, item.raw):
        return _replace(report, status="error", reason="changed while being migrated; run again")
    try:
        write_atomic(item.path, new_text.encode(item.encoding))
    except OSError as exc:
        return _replace(report, status="error", reason=f"not written: {exc}")
    return _replace(report, written=True)


def _replace(report: FileReport, **changes: Any) -> FileReport:
    import dataclasses

    return dataclasses.replace(report, **changes)


def _located(item: _File, chunk: int, line: int, message: str) -> Note:
    return Note(line, message, item.cells[chunk].number if item.kind == "notebook" else None)


class _Inconsistent(Exception):
    """The rewritten text does not read back as intended (a bug, reported per file)."""


def _new_python(item: _File) -> str:
    assert item.analysis is not None
    new = item.analysis.texts[0]
    if new is None:
        raise _Inconsistent("internal error: no rewritten text; left unchanged")
    try:
        ast.parse(new)
    except SyntaxError as exc:
        raise _Inconsistent(f"internal error: the rewrite does not parse ({exc})") from exc
    return new


def _new_notebook(item: _File) -> str:
    assert item.analysis is not None
    offsets: list[int] = []
    expected: dict[int, str] = {}
    for index, cell in enumerate(item.cells):
        insertions = item.analysis.insertions.get(index, [])
        if not insertions:
            continue
        offsets.extend(raw_offsets(item.text, cell, insertions))
        lines = split_lines(cell.text)
        for line, column in sorted(insertions, reverse=True):
            lines[line - 1] = lines[line - 1][:column] + PREFIX + lines[line - 1][column:]
        expected[cell.number] = "".join(lines)
    new = item.text
    for offset in sorted(set(offsets), reverse=True):
        new = new[:offset] + PREFIX + new[offset:]
    # Read the result back: the cells must hold exactly the rewritten code.
    import json

    cells = json.loads(new)["cells"]
    for number, text in expected.items():
        source = cells[number - 1]["source"]
        if ("".join(source) if isinstance(source, list) else source) != text:
            raise _Inconsistent(f"internal error: cell {number} did not come out as intended")
    return new
