"""``.dockerignore`` as Docker reads it: which files of a build context are left out.

The rules are those of Docker's own reader (moby's ``patternmatcher`` and
``dockerignore`` packages):

- one pattern a line; a line starting with ``#`` is a comment; blank lines are skipped;
  surrounding spaces are trimmed;
- ``!`` before a pattern makes it an exception (the file is kept);
- a pattern is a cleaned, slash-separated path relative to the context (a leading ``/``
  is dropped); ``*`` matches within one path segment, ``?`` one character of it,
  ``[...]`` a character class, ``**`` any number of segments (also none), ``\\`` escapes
  the next character;
- a pattern that matches a folder matches everything under it;
- the last pattern that matches decides.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass
from pathlib import Path

__all__ = ["IgnoreRules", "read_dockerignore"]


@dataclass(frozen=True, slots=True)
class _Pattern:
    text: str
    regex: re.Pattern[str]
    exception: bool


@dataclass(frozen=True, slots=True)
class IgnoreRules:
    """The patterns of one ``.dockerignore`` (empty: nothing is left out)."""

    patterns: tuple[_Pattern, ...] = ()

    @property
    def has_exceptions(self) -> bool:
        """Whether a ``!`` pattern may keep files under a folder that is left out."""
        return any(p.exception for p in self.patterns)

    def excluded(self, path: str) -> bool:
        """Is ``path`` (slash-separated, relative to the context) left out?"""
        parents = path.split("/")[:-1]
        matched = False
        for pattern in self.patterns:
            hit = pattern.regex.match(path) is not None
            if not hit:
                hit = any(
                    pattern.regex.match("/".join(parents[: i + 1])) is not None
                    for i in range(len(parents))
                )
            if hit:
                matched = not pattern.exception
        return matched


def read_dockerignore(folder: Path) -> IgnoreRules:
    """The rules of ``folder/.dockerignore`` (none when there is no such file)."""
    path = folder / ".dockerignore"
    if not path.is_file():
        return IgnoreRules()
    return parse(path.read_text(encoding="utf-8-sig", errors="replace"))


def parse(text: str) -> IgnoreRules:
    patterns: list[_Pattern] = []
    for raw in text.splitlines():
        if raw.startswith("#"):
            continue
        line = raw.strip()
        if not line:
            continue
        exception = line.startswith("!")
        if exception:
            line = line[1:].strip()
        if not line:
            continue
        cleaned = posixpath.normpath(line)
        if len(cleaned) > 1 and cleaned.startswith("/"):
            cleaned = cleaned.lstrip("/") or "."
        patterns.append(_Pattern(cleaned, _compile(cleaned), exception))
    return IgnoreRules(tuple(patterns))


def _compile(pattern: str) -> re.Pattern[str]:
    """The regular expression of one pattern, as moby's patternmatcher builds it."""
    out = ["^"]
    i, n = 0, len(pattern)
    in_class = False
    while i < n:
        ch = pattern[i]
        if in_class:
            if ch == "]":
                in_class = False
            out.append("\\\\" if ch == "\\" else ch)
        elif ch == "*":
            if i + 1 < n and pattern[i + 1] == "*":
                i += 1
                if i + 1 < n and pattern[i + 1] == "/":
                    i += 1
                out.append(".*" if i + 1 >= n else "(.*/)?")
            else:
                out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif ch == "[":
            in_class = True
            out.append("[")
            if i + 1 < n and pattern[i + 1] in "!^":
                out.append("^")
                i += 1
        elif ch == "\\":
            i += 1
            if i < n:
                out.append(re.escape(pattern[i]))
        else:
            out.append(re.escape(ch))
        i += 1
    if in_class:  # an unclosed class matches itself, as a literal
        return re.compile("^" + re.escape(pattern) + "$")
    out.append("$")
    try:
        return re.compile("".join(out), re.DOTALL)
    except re.error:
        return re.compile("^" + re.escape(pattern) + "$")
