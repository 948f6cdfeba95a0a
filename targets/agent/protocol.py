"""The agent protocol: the one definition of what the client and the agent exchange.

Stdlib only, Python >= 3.8 (shipped to targets with the agent). Imported on both sides:
the client (``targets.compute``), the agent and its supervisor, the cluster reconciler,
the Databricks driver and plugins, so mypy checks the boundary.

What lives here:

- the run statuses (the strings of ``status.json`` and of :class:`targets.compute.RunStatus`);
- the object-key rule of the content-addressed store (a digest, ``.x`` for executables);
- the shapes of what crosses the wire (TypedDicts).
"""

from __future__ import annotations

QUEUED = "Queued"
PREPARING = "Preparing"
RUNNING = "Running"
FINALIZING = "Finalizing"
COMPLETED = "Completed"
FAILED = "Failed"
CANCELED = "Canceled"

STATUSES = (QUEUED, PREPARING, RUNNING, FINALIZING, COMPLETED, FAILED, CANCELED)
"""Every run status, in the order a run goes through them."""
TERMINAL = (COMPLETED, FAILED, CANCELED)
"""The statuses a run ends in."""

_EXECUTABLE = ".x"
DIGEST_LENGTH = 64
"""A sha256 in hex."""


def object_key(digest: str, executable: bool) -> str:
    """The store key of a file: its sha256, with ``.x`` when it is executable (a file's
    mode is part of its identity)."""
    return digest + (_EXECUTABLE if executable else "")


def mode_key(digest: str, mode: int) -> str:
    """:func:`object_key` for a file of permission bits ``mode``."""
    return object_key(digest, bool(mode & 0o111))


def parse_object_key(key: str) -> tuple[str, bool]:
    """``(digest, executable)`` of a key; ValueError when it is not a key."""
    digest, executable = key[:DIGEST_LENGTH], key[DIGEST_LENGTH:] == _EXECUTABLE
    if len(digest) != DIGEST_LENGTH or key[DIGEST_LENGTH:] not in ("", _EXECUTABLE):
        raise ValueError("bad object key %r" % (key,))
    try:
        int(digest, 16)
    except ValueError:
        raise ValueError("bad object key %r" % (key,)) from None
    return digest, executable
