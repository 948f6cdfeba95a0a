"""Command line of the agent: ``serve [ROOT]`` or ``supervise ROOT RUN_ID``."""

from __future__ import annotations

import sys


def main(argv: list[str]) -> int:
    if argv and argv[0] == "serve":
        from .server import main as serve_main

        return serve_main(argv)
    if argv and argv[0] == "supervise":
        from .supervisor import main as supervise_main

        return supervise_main(argv)
    sys.stderr.write("usage: agent serve [ROOT] | agent supervise ROOT RUN_ID\n")
    return 2
