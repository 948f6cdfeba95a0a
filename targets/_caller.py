"""Who is calling: the command line, or a program that imports ``targets`` as a library.

It decides one default: the Python of a user-managed local run (see
:mod:`targets.compute._python`). On the command line that is the Python the user's shell
would start; in a library call it is the interpreter running the caller. This module
imports nothing, so the command line can say who it is at no cost.
"""

from __future__ import annotations

__all__ = ["is_command_line", "mark_command_line"]

_command_line = False


def mark_command_line() -> None:
    """Called by the ``targets`` command and the drivers it starts (idempotent)."""
    global _command_line
    _command_line = True


def is_command_line() -> bool:
    return _command_line
