"""``azureml.pipeline.steps.parallel_run_config``: :class:`ParallelRunConfig`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from targets.errors import UsageError
from targets.runconfig.model import EnvironmentSection

__all__ = ["ParallelRunConfig"]

OUTPUT_ACTIONS = ("append_row", "summary_only")


class ParallelRunConfig:
    """How a :class:`~targets.azureml.pipeline.steps.ParallelRunStep` runs: the entry
    script (``init()``, ``run(mini_batch)``) in ``source_directory``, its environment,
    the target, ``process_count_per_node`` workers (default: the machine's CPU count),
    ``mini_batch_size`` files per call (default 10), ``error_threshold`` failed files
    tolerated (-1: any), ``run_max_try`` tries of a mini-batch, ``output_action``
    (``append_row`` writes what ``run`` returns to ``append_row_file_name``, default
    ``parallel_run_step.txt``; ``summary_only`` writes nothing).

    Refused: ``node_count`` above 1 (the workers run on one machine), a ``mini_batch_size``
    in bytes such as ``"1MB"`` (that is for tabular datasets, which need the Azure ML
    service), and ``partition_keys``. ``run_invocation_timeout`` (seconds) bounds each
    ``run(mini_batch)`` call: a call that outlives it is a failed try. ``logging_level``
    and ``allowed_failed_*`` are accepted and not used."""

    def __init__(
        self,
        environment: EnvironmentSection | None,
        entry_script: str,
        error_threshold: int,
        output_action: str,
        compute_target: Any,
        node_count: int,
        process_count_per_node: int | None = None,
        mini_batch_size: int | str | None = None,
        source_directory: str | Path | None = None,
        description: str | None = None,
        logging_level: str = "INFO",
        run_invocation_timeout: int = 60,
        run_max_try: int = 3,
        append_row_file_name: str | None = None,
        allowed_failed_count: int | None = None,
        allowed_failed_percent: float | None = None,
        partition_keys: Sequence[str] | None = None,
        environment_variables: Mapping[str, str] | None = None,
    ) -> None:
        if environment is not None and not isinstance(environment, EnvironmentSection):
            raise UsageError(
                f"environment must be an Environment, got {type(environment).__name__}"
            )
        if not isinstance(entry_script, str) or not entry_script.endswith(".py"):
            raise UsageError(f"entry_script must name a .py file, got {entry_script!r}")
        if output_action not in OUTPUT_ACTIONS:
            raise UsageError(
                f"output_action {output_action!r} is not one of {', '.join(OUTPUT_ACTIONS)}"
            )
        if not isinstance(error_threshold, int) or error_threshold < -1:
            raise UsageError(f"error_threshold must be -1 or more, got {error_threshold!r}")
        if node_count != 1:
            raise UsageError(
                f"node_count {node_count} is not supported: a ParallelRunStep runs its "
                "workers on one machine",
                hint="set node_count=1 and raise process_count_per_node",
            )
        if process_count_per_node is not None and process_count_per_node < 1:
            raise UsageError(
                f"process_count_per_node must be 1 or more, got {process_count_per_node}"
            )
        if partition_keys:
            raise UsageError("partition_keys (tabular datasets) are not supported")
        self.environment = environment
        self.entry_script = entry_script
        self.error_threshold = error_threshold
        self.output_action = output_action
        self.compute_target = compute_target
        self.node_count = node_count
        self.process_count_per_node = process_count_per_node
        self.mini_batch_size = _files_per_batch(mini_batch_size)
        self.source_directory = str(source_directory) if source_directory is not None else "."
        self.description = description
        self.run_max_try = max(int(run_max_try), 1)
        if not isinstance(run_invocation_timeout, int) or run_invocation_timeout < 1:
            raise UsageError(
                f"run_invocation_timeout must be 1 second or more, got {run_invocation_timeout!r}"
            )
        self.run_invocation_timeout = run_invocation_timeout
        self.append_row_file_name = append_row_file_name or "parallel_run_step.txt"
        if "/" in self.append_row_file_name or self.append_row_file_name in (".", ".."):
            raise UsageError(
                f"append_row_file_name must be a file name, got {append_row_file_name!r}"
            )
        self.environment_variables = dict(environment_variables or {})


def _files_per_batch(value: int | str | None) -> int:
    if value is None:
        return 10
    text = str(value).strip()
    if not text.isdigit() or int(text) < 1:
        raise UsageError(
            f"mini_batch_size {value!r} is not supported: give a number of files",
            hint='sizes in bytes ("1MB") are for tabular datasets, which need the Azure ML '
            "service; a ParallelRunStep here reads the files of a folder",
        )
    return int(text)
