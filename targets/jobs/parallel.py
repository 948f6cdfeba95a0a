"""``type: parallel`` pipeline steps: one command that runs the parallel driver
(:mod:`targets.parallel.driver`, the engine of v1's ``ParallelRunStep`` too) over
mini-batches of ``input_data``, submitted like any step (:func:`prepare_parallel` is
called by :func:`targets.jobs.execute.prepare_command`).

- ``input_data: ${{inputs.x}}``: a ``uri_folder`` (or ``uri_file``) input is cut into
  mini-batches of ``mini_batch_size`` files; an ``mltable`` input into mini-batches of
  about ``mini_batch_size`` bytes of rows (``"10kb"``), or one per value of
  ``partition_keys``. The MLTable file is read here (its ``paths`` and its
  ``read_delimited`` / ``read_parquet`` / ``read_json_lines`` transformation); the rows
  are read on the target with pandas, which the step's environment must have.
- ``resources.instance_count`` x ``max_concurrency_per_instance`` worker processes, on
  one machine: on a one-machine target the instances are processes there (with a
  warning); on a cluster the step runs on one node (with a warning).
- ``error_threshold`` (failed files or rows) and ``mini_batch_error_threshold`` (failed
  mini-batches), -1 for any number; ``retry_settings.max_retries`` more tries of a
  failed mini-batch, ``retry_settings.timeout`` seconds per ``run()`` call.
- ``task.append_row_to: ${{outputs.y}}``: the rows ``run`` returns go to that file (a
  ``uri_file`` output) or to ``parallel_run_step.txt`` in that folder; without it
  nothing is collected (Azure ML's ``summary_only``).
- Each worker's stdout and stderr: ``logs/user/stdout/processNNN.stdout.txt`` and
  ``logs/user/stderr/processNNN.stderr.txt`` in the step's run.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from targets.errors import ConfigError, UsageError
from targets.jobs.model import MINI_BATCH_SIZE, JobInput, ParallelNode, PipelineJob
from targets.jobs.parallel_bindings import single_binding
from targets.workspace import Workspace

if TYPE_CHECKING:
    from targets.jobs.execute import PreparedCommand
    from targets.jobs.reader import LoadedJob

__all__ = ["DRIVER_DIR", "precheck_parallel", "prepare_parallel"]

DRIVER_DIR = "_targets_parallel"
"""Where the driver is in the step's snapshot (``_targets_parallel/driver.py``)."""
APPEND_ROW_FILE = "parallel_run_step.txt"
_READERS = {
    "read_delimited": "delimited",
    "read_parquet": "parquet",
    "read_json_lines": "json_lines",
}


@dataclass(frozen=True, slots=True)
class _DriverCommand:
    """The command body :func:`targets.jobs.execute.prepare_command` turns into a run."""

    command: str
    environment: Any
    environment_variables: dict[str, str] = field(default_factory=dict)
    resources: Any = None
    distribution: Any = None
    limits: Any = None


def _data_name(node: ParallelNode) -> str:
    name = single_binding(node.input_data, "inputs")
    if name is None:  # the reader checked it
        raise UsageError(f"input_data {node.input_data!r} is not ${{{{inputs.<name>}}}}")
    return name


def _is_table(node: ParallelNode, value: Any) -> bool:
    declared = node.inputs.get(_data_name(node))
    kinds = {getattr(declared, "type", None), getattr(value, "type", None)}
    return "mltable" in kinds


def _check_size(node: ParallelNode, table: bool, where: str) -> None:
    match = MINI_BATCH_SIZE.match(node.mini_batch_size)
    if match is not None and match.group(2) and not table:
        raise UsageError(
            f"{where}: mini_batch_size {node.mini_batch_size!r} is a size, which applies to "
            f"an mltable input; input_data {_data_name(node)!r} is a folder of files",
            hint=f'give a number of files per mini-batch (mini_batch_size: "{match.group(1)}")',
        )


def table_spec(folder: Path, where: str) -> tuple[dict[str, Any], list[str]]:
    """What the driver needs of the MLTable in ``folder``: ``{paths, reader, options}``,
    and warnings for transformations it does not apply. Raises ConfigError (exit 2)."""
    table = folder / "MLTable"
    if not table.is_file():
        raise ConfigError(
            f"{where}: input_data {folder} has no MLTable file",
            hint="a tabular input_data is a folder holding a file named MLTable",
        )
    try:
        spec = yaml.safe_load(table.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{where}: cannot read {table}: {exc}") from exc
    paths = spec.get("paths") if isinstance(spec, dict) else None
    if not isinstance(paths, list) or not paths:
        raise ConfigError(f"{where}: {table} has no 'paths' list")
    for entry in paths:
        if not isinstance(entry, dict) or not {"file", "folder", "pattern"} & set(entry):
            raise ConfigError(f"{where}: {table}: a path entry needs file, folder or pattern")
        if any("://" in str(v) for v in entry.values()):
            raise ConfigError(
                f"{where}: {table} names {entry}, which is not beside the MLTable file",
                hint="give the data as a local mltable folder or through a data asset",
            )
    reader, options, warnings = "", {}, []
    for item in spec.get("transformations") or []:
        key, value = next(iter(item.items())) if isinstance(item, dict) else (item, {})
        if key in _READERS and not reader:
            reader, options = _READERS[key], dict(value or {})
        else:
            warnings.append(f"{where}: the MLTable transformation {key!r} is not applied")
    if not reader:
        raise ConfigError(
            f"{where}: {table} has no read_delimited, read_parquet or read_json_lines "
            "transformation: its rows cannot be read",
        )
    return {"paths": paths, "reader": reader, "options": options}, warnings


def _table_folder(ws: Workspace, loaded: LoadedJob, name: str, value: Any) -> Path | None:
    """The local MLTable folder of the data input, or None when it is bound to a step
    that has not run yet."""
    if isinstance(value, Path):
        return value
    if isinstance(value, JobInput) and value.path and "${{" not in value.path:
        from targets.jobs.execute import _input_path

        return _input_path(ws, loaded, name, value)
    return None


def precheck_parallel(ws: Workspace, loaded: LoadedJob, name: str) -> None:
    """Refuse a parallel step before anything is queued: ``task.code`` that is not a
    local folder, a ``mini_batch_size`` in bytes for a folder of files, an unreadable
    MLTable. Raises UsageError/ConfigError (exit 2)."""
    job = loaded.job
    assert isinstance(job, PipelineJob)
    node = job.jobs[name]
    assert isinstance(node, ParallelNode)
    where = f"step {name!r}"
    if loaded.code_dir(name) is None:
        raise UsageError(
            f"{where}: task.code {node.task.code!r} is not a local folder: the entry script "
            f"{node.task.entry_script!r} must be found here",
            hint="set task.code to the folder holding the entry script",
        )
    data = _data_name(node)
    value = node.inputs.get(data)
    table = _is_table(node, value)
    _check_size(node, table, where)
    if node.partition_keys and not table:
        raise UsageError(
            f"{where}: partition_keys {node.partition_keys} apply to an mltable input_data",
            hint="declare the input as type: mltable, or remove partition_keys",
        )
    if (
        isinstance(value, JobInput)
        and value.mode == "direct"
        and value.path
        and "${{" not in value.path
    ):
        from targets.jobs.execute import _direct_uri

        if _direct_uri(ws, data, value) is not None:
            raise UsageError(
                f"{where}: input_data {data!r} has mode: direct, so the step would get a URI "
                "it cannot cut into mini-batches",
                hint="use mode: download (or ro_mount)",
            )
    if table:
        folder = _table_folder(ws, loaded, data, value)
        if folder is not None:
            table_spec(folder, where)


def prepare_parallel(
    ws: Workspace,
    loaded: LoadedJob,
    body: ParallelNode,
    *,
    target_name: str,
    docker_ok: str | None,
    node: str | None = None,
    inputs: Mapping[str, Any] | None = None,
    outputs: Mapping[str, Any] | None = None,
    given_inputs: Mapping[str, Any] | None = None,
    extra_values: Mapping[str, str] | None = None,
    run_name: str = "",
    output_types: Mapping[str, Any] | None = None,
) -> PreparedCommand:
    """The parallel step ``body`` (pipeline node ``node``) as one prepared command that
    runs the driver; the same keywords as :func:`targets.jobs.execute.prepare_command`.
    Raises UsageError/ConfigError (exit 2) for what :func:`precheck_parallel` refuses."""
    from targets.compute_map import runs_on_one_machine
    from targets.jobs.execute import prepare_command
    from targets.parallel import driver_path
    from targets.snapshot import snapshot_file

    where = f"step {node!r}" if node else "the parallel step"
    data = _data_name(body)
    value = {**(inputs or {}), **(given_inputs or {})}.get(data)
    table = _is_table(body, value)
    _check_size(body, table, where)
    warnings: list[str] = []
    spec: dict[str, Any] | None = None
    if table:
        folder = _table_folder(ws, loaded, data, value)
        if folder is None:
            raise ConfigError(f"{where}: input_data {data!r} has no value")
        spec, notes = table_spec(folder, where)
        warnings.extend(notes)
    instances = (body.resources.instance_count if body.resources else None) or 1
    per = body.max_concurrency_per_instance
    workers = instances * per
    if instances > 1:
        if runs_on_one_machine(ws, target_name):
            why = f"the target {target_name!r} runs on one machine"
        else:
            why = f"a parallel step runs on one node of {target_name!r}"
        warnings.append(
            f"{where}: resources.instance_count {instances} x max_concurrency_per_instance "
            f"{per}: {why}, so its {workers} worker processes run there"
        )
    retry = body.retry_settings
    task = body.task
    parts = [
        "python", f"{DRIVER_DIR}/driver.py",
        "--entry_script", shlex.quote(task.entry_script),
        "--input", body.input_data,
        "--mini_batch_size", shlex.quote(body.mini_batch_size),
        "--process_count_per_node", str(workers),
        "--instances", str(instances),
        "--error_threshold", str(body.error_threshold),
        "--mini_batch_error_threshold", str(body.mini_batch_error_threshold),
        "--run_max_try", str((retry.max_retries if retry else 2) + 1),
        "--timeout", str(retry.timeout if retry else 60),
        "--logs", "logs/user",
        "--logging_level", body.logging_level,
    ]  # fmt: skip
    if task.append_row_to:
        out = single_binding(task.append_row_to, "outputs") or ""
        declared = (output_types or {}).get(out) or body.outputs.get(out)
        kind = getattr(declared, "type", None) or "uri_folder"
        target = task.append_row_to
        if kind != "uri_file":
            target = f"{target}/{APPEND_ROW_FILE}"
        parts += ["--output_action", "append_row", "--append_row_to", target]
    else:
        parts += ["--output_action", "summary_only"]
    if spec is not None:
        parts += ["--table", shlex.quote(json.dumps(spec, sort_keys=True))]
    if body.partition_keys:
        parts += ["--partition_keys", shlex.quote(",".join(body.partition_keys))]
    command = " ".join(parts) + " -- " + " ".join((task.program_arguments or "").split())
    resources = (
        body.resources.model_copy(update={"instance_count": None}) if body.resources else None
    )
    prepared = prepare_command(
        ws,
        loaded,
        _DriverCommand(
            command=command.rstrip(),
            environment=task.environment,
            environment_variables=dict(body.environment_variables),
            resources=resources,
        ),
        target_name=target_name,
        docker_ok=docker_ok,
        node=node,
        inputs=inputs,
        outputs=outputs,
        given_inputs=given_inputs,
        extra_values=extra_values,
        run_name=run_name,
        output_types=output_types,
    )
    code = prepared.source_dir
    if not (code / task.entry_script).is_file():
        raise UsageError(
            f"{where}: the entry script {task.entry_script!r} does not exist in {code}",
            hint="task.entry_script is relative to task.code",
        )
    prepared.extra[DRIVER_DIR] = snapshot_file(driver_path())
    prepared.warnings.extend(warnings)
    prepared.entry = f"parallel {task.entry_script} over inputs.{data} ({workers} worker processes)"
    return prepared
