"""A unified diff of a rewrite.

The migration only inserts text inside lines, so the old and new files have the same
lines, pairwise. Comparing them pair by pair is exact, where :mod:`difflib` would treat
lines that repeat often (a notebook's ``"\\n",``) as junk and show them as changed.
"""

from __future__ import annotations

__all__ = ["unified_diff"]

_NO_NEWLINE = "\\ No newline at end of file\n"


def unified_diff(old: str, new: str, name: str, context: int = 3) -> str:
    """``git diff``-style text (``a/NAME``, ``b/NAME``); ``""`` when nothing changed."""
    before = old.splitlines(keepends=True)
    after = new.splitlines(keepends=True)
    if len(before) != len(after):  # not a rewrite this module makes; show it whole
        return _hunk(before, after, 0, len(before), len(after), name)
    changed = [i for i, (a, b) in enumerate(zip(before, after, strict=True)) if a != b]
    if not changed:
        return ""
    out = [f"--- a/{name}\n", f"+++ b/{name}\n"]
    groups: list[list[int]] = [[changed[0]]]
    for index in changed[1:]:
        if index - groups[-1][-1] > 2 * context:
            groups.append([index])
        else:
            groups[-1].append(index)
    for group in groups:
        start = max(0, group[0] - context)
        end = min(len(before), group[-1] + context + 1)
        out.append(f"@@ -{start + 1},{end - start} +{start + 1},{end - start} @@\n")
        index = start
        while index < end:
            if before[index] == after[index]:
                out.append(_line(" ", before[index]))
                index += 1
                continue
            run_end = index
            while run_end < end and before[run_end] != after[run_end]:
                run_end += 1
            out.extend(_line("-", line) for line in before[index:run_end])
            out.extend(_line("+", line) for line in after[index:run_end])
            index = run_end
    return "".join(out)


def _hunk(
    before: list[str], after: list[str], start: int, old_n: int, new_n: int, name: str
) -> str:
    lines = [
        f"--- a/{name}\n",
        f"+++ b/{name}\n",
        f"@@ -{start + 1},{old_n} +{start + 1},{new_n} @@\n",
    ]
    lines.extend(_line("-", line) for line in before)
    lines.extend(_line("+", line) for line in after)
    return "".join(lines)


def _line(mark: str, line: str) -> str:
    if line.endswith(("\n", "\r")):
        return mark + line
    return mark + line + "\n" + _NO_NEWLINE
