"""``python -m targets.jobs.drive WORKSPACE RUN_ID``: the detached driver of a sweep or
pipeline parent run. It submits the children, follows them, writes what happens to the
parent's ``driver.log`` and records the parent's end in the ledger."""

from __future__ import annotations

import importlib
import json
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from targets.agent import protocol
from targets.errors import TargetsError
from targets.jobs.parent import ParentLog
from targets.jobs.reader import load_job
from targets.runs import Run
from targets.workspace import Workspace

__all__ = ["drive", "main"]

_stop = {"requested": False}


def child_submitter(ws: Workspace, info: dict[str, Any]) -> Callable[..., Run]:
    """What submits the children: :func:`targets.jobs.submit.submit_command` (v2 job
    files), or the factory ``"module:function"`` named by ``run.json``'s ``submitter``
    (called ``factory(ws, info)``; the Azure ML v1 front ends use it to give each child
    its own ``RunConfiguration``). The factory takes the same keywords as
    ``submit_command``."""
    named = info.get("submitter")
    if not named:
        from targets.jobs.submit import submit_command

        return submit_command
    module, _, function = str(named).partition(":")
    factory = getattr(importlib.import_module(module), function)
    submit: Callable[..., Run] = factory(ws, info)
    return submit


def drive(ws: Workspace, run_id: str) -> int:
    folder = ws.run_dir(run_id)
    info: dict[str, Any] = json.loads((folder / "run.json").read_text())
    say = ParentLog(folder)
    parent = Run(ws, run_id)
    started = time.time()
    ws.ledger.update(run_id, status=protocol.RUNNING, started_at=started)

    def cancelled() -> bool:
        return _stop["requested"] or (folder / "cancel").exists()

    try:
        loaded = load_job(info["job"], overrides=tuple(info.get("overrides") or ()), workspace=ws)
        submit = child_submitter(ws, info)
        if info["kind"] == "sweep":
            from targets.jobs.sweep import drive_sweep

            message = drive_sweep(
                ws, loaded, parent, info.get("compute"), say, cancelled, submit=submit
            )
        else:
            from targets.jobs.pipeline import drive_pipeline

            message = drive_pipeline(
                ws, loaded, parent, info.get("compute"), say, cancelled, submit=submit
            )
        status = protocol.CANCELED if message == "canceled" else protocol.COMPLETED
    except TargetsError as exc:
        say(f"failed: {exc}")
        status, message = protocol.FAILED, str(exc).splitlines()[0]
    except Exception as exc:  # a bug: still end the parent cleanly, and say what happened
        say(f"failed: {type(exc).__name__}: {exc}")
        status, message = protocol.FAILED, f"{type(exc).__name__}: {exc}"
    ws.ledger.update(
        run_id,
        status=status,
        ended_at=time.time(),
        message=message,
        exit_code=0 if status == protocol.COMPLETED else 1,
        phases={"running": time.time() - started},
    )
    return 0


def main(argv: list[str]) -> int:
    from targets._caller import mark_command_line

    mark_command_line()  # started by the command line: its children use the shell's Python
    signal.signal(signal.SIGTERM, lambda *_: _stop.update(requested=True))
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    return drive(Workspace(Path(argv[0])), argv[1])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
