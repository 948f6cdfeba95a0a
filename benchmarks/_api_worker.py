"""Times the Python API in-process: ``Experiment(ws, 'bench').submit(...)`` and
``wait_for_completion()``, excluding interpreter start-up and (after the first run)
imports.

Run by ``run.py`` as a child process with the sandbox's environment (isolated HOME and
TARGETS_HOME), so the API sees the same configuration as the CLI cases::

    python _api_worker.py WORKSPACE SCRIPT REPS RESULT.json

Writes ``{"import_s": float, "modes": {mode: {"submit": [...], "wait": [...]}}}`` to
RESULT.json; the runs' own output goes to this process's stdout.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

MODES = ("wait_for_completion()", "wait_for_completion(show_output=True)")


def main(argv: list[str]) -> None:
    workspace, script, reps, result_path = Path(argv[0]), argv[1], int(argv[2]), Path(argv[3])

    t0 = time.perf_counter()
    from targets import Experiment, RunConfiguration, ScriptRunConfig, Workspace

    import_s = time.perf_counter() - t0

    ws = Workspace(workspace)
    experiment = Experiment(ws, "bench")

    def once(mode: str) -> tuple[float, float]:
        config = ScriptRunConfig(
            source_directory=workspace, script=script, run_config=RunConfiguration()
        )
        t_start = time.perf_counter()
        run = experiment.submit(config)
        t_submitted = time.perf_counter()
        run.wait_for_completion(show_output=mode == MODES[1])
        t_done = time.perf_counter()
        run.close()
        return t_submitted - t_start, t_done - t_submitted

    t0 = time.perf_counter()
    once(MODES[0])  # first run: imports of the submit path, caches
    first_s = time.perf_counter() - t0
    once(MODES[1])
    modes: dict[str, dict[str, list[float]]] = {m: {"submit": [], "wait": []} for m in MODES}
    for _ in range(reps):
        for mode in MODES:
            submit_s, wait_s = once(mode)
            modes[mode]["submit"].append(submit_s)
            modes[mode]["wait"].append(wait_s)
    ws.close()
    result: dict[str, Any] = {"import_s": import_s, "first_run_s": first_s, "modes": modes}
    result_path.write_text(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1:])
