"""Jupyter notebooks: the code cells' text, and writing changes back into the JSON
without re-serialising it.

The notebook is decoded by the standard :mod:`json` scanner with one change: every string
value remembers where its literal sits in the file. A change to a code cell's line is
then an insertion inside that literal, so indentation, key order, escapes, the final
newline (or its absence) and every other cell stay byte for byte as they were.

IPython syntax (``%magic``, ``!shell``, ``name?``) is not Python: those lines are masked
as ``pass`` for the parser, with the same line count, and are never changed. A ``%%``
cell magic makes the whole cell foreign.
"""

from __future__ import annotations

import json
import json.scanner
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from targets.migrate._python import split_lines

__all__ = ["Cell", "NotebookError", "code_cells", "raw_offsets", "read_notebook"]


class NotebookError(ValueError):
    """The file is not a notebook this migration can read (with the reason)."""


class _Literal(str):
    """A decoded JSON string that knows the span of its literal (quotes included)."""

    start: int
    end: int


# The pure-Python scanner of the standard library calls ``context.parse_string`` for every
# string value (the C one does not); both names have been in :mod:`json` since Python 2.6
# but typeshed leaves them out.
_scanstring: Callable[[str, int, bool], tuple[str, int]] = json.decoder.scanstring  # type: ignore[attr-defined]
_py_make_scanner: Callable[[json.JSONDecoder], Any] = json.scanner.py_make_scanner  # type: ignore[attr-defined]


class _SpanDecoder(json.JSONDecoder):
    def __init__(self) -> None:
        super().__init__()

        def parse_string(text: str, index: int, strict: bool) -> tuple[str, int]:
            value, end = _scanstring(text, index, strict)
            literal = _Literal(value)
            literal.start, literal.end = index - 1, end
            return literal, end

        self.parse_string = parse_string
        self.scan_once = _py_make_scanner(self)


@dataclass(frozen=True, slots=True)
class Cell:
    """One code cell: its number (1-based, counting every cell), the pieces of its
    ``source`` (each a decoded literal with its span) and the text the parser sees
    (``None`` when it is a ``%%`` cell magic)."""

    number: int
    pieces: tuple[_Literal, ...]
    text: str
    parse_text: str | None


def read_notebook(text: str) -> Any:
    """The notebook decoded with spans; :class:`NotebookError` when it is not nbformat 4
    JSON or not a Python notebook."""
    try:
        notebook = _SpanDecoder().decode(text)
    except json.JSONDecodeError as exc:
        raise NotebookError(f"not valid JSON: {exc}") from exc
    if not isinstance(notebook, dict) or not isinstance(notebook.get("cells"), list):
        raise NotebookError("no 'cells' list (only nbformat 4 notebooks are read)")
    metadata = notebook.get("metadata")
    if isinstance(metadata, dict):
        for key, inner in (("kernelspec", "language"), ("language_info", "name")):
            language = (metadata.get(key) or {}).get(inner)
            if isinstance(language, str) and language.lower() != "python":
                raise NotebookError(f"a {language} notebook, not a Python one")
    return notebook


def code_cells(notebook: Any) -> list[Cell]:
    cells = []
    for number, cell in enumerate(notebook["cells"], start=1):
        if not isinstance(cell, dict) or cell.get("cell_type") != "code":
            continue
        source = cell.get("source")
        if isinstance(source, _Literal):
            pieces: tuple[_Literal, ...] = (source,)
        elif isinstance(source, list) and all(isinstance(p, _Literal) for p in source):
            pieces = tuple(source)
        else:
            continue
        text = "".join(pieces)
        cells.append(Cell(number, pieces, text, _mask(text)))
    return cells


def _mask(text: str) -> str | None:
    lines = split_lines(text)
    if lines and lines[0].lstrip().startswith("%%"):
        return None
    masked = []
    for line in lines:
        body = line.rstrip("\r\n")
        stripped = body.strip()
        if stripped.startswith(("%", "!", "?")) or (stripped.endswith("?") and stripped[:1] != "#"):
            indent = body[: len(body) - len(body.lstrip())]
            masked.append(indent + "pass" + line[len(body) :])
        else:
            masked.append(line)
    return "".join(masked)


def raw_offsets(raw: str, cell: Cell, insertions: Sequence[tuple[int, int]]) -> list[int]:
    """The offsets in the file ``raw`` of ``insertions`` (line, column) in the cell's
    text. An insertion always falls before a character of the source (the ``a`` of
    ``azureml``), so it lies inside one piece of ``source``."""
    starts = [0]
    for text in split_lines(cell.text):
        starts.append(starts[-1] + len(text))
    offsets = []
    for line, column in insertions:
        offset = starts[line - 1] + column
        base = 0
        for piece in cell.pieces:
            if base <= offset < base + len(piece):
                offsets.append(_raw_offset(raw, piece, offset - base))
                break
            base += len(piece)
    return offsets


def _raw_offset(raw: str, piece: _Literal, decoded: int) -> int:
    """The file offset of character ``decoded`` of the string ``piece`` (escapes in the
    literal take several characters for one)."""
    position = piece.start + 1
    count = 0
    while count < decoded:
        if raw[position] == "\\":
            if raw[position + 1] == "u":
                code = int(raw[position + 2 : position + 6], 16)
                position += 6
                if 0xD800 <= code < 0xDC00 and raw.startswith("\\u", position):
                    position += 6  # a surrogate pair decodes to one character
            else:
                position += 2
        else:
            position += 1
        count += 1
    return position
