"""The parallel-run engine shared by Azure ML v1's ``ParallelRunStep`` and v2's
``type: parallel`` pipeline steps (one engine, two front ends).

:mod:`targets.parallel.driver` is a standard-library program (Python 3.8 or newer) that
is shipped into the run's snapshot and runs on the target: it cuts the input into
mini-batches and calls the entry script's ``init()`` / ``run(mini_batch)`` in worker
processes. The front ends only build its command line.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["DRIVER_NAME", "driver_path", "driver_text"]

DRIVER_NAME = "_targets_parallel_run.py"
"""The name the driver has in a v1 step's snapshot."""


def driver_path() -> Path:
    """The driver's file in the installed package."""
    return Path(__file__).parent / "driver.py"


def driver_text() -> str:
    """The driver's source text."""
    return driver_path().read_text()
