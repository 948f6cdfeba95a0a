"""Command line of the agent: ``serve [ROOT]`` or ``supervise ROOT RUN_ID``."""

from __future__ import annotations

import os
import sys


def main(argv: list[str]) -> int:
    # What the agent and the supervisor create (runs, logs, environments, and what the
    # script writes) is private to this user, whatever the login's umask.
    os.umask(0o077)
    if argv and argv[0] == "serve":
        from .server import main as serve_main

        return serve_main(argv)
    if argv and argv[0] == "supervise":
        from .supervisor import main as supervise_main

        return supervise_main(argv)
    sys.stderr.write("usage: agent serve [ROOT] | agent supervise ROOT RUN_ID\n")
    return 2
