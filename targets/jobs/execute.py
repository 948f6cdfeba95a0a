"""Running v2 jobs: each command (a command job, a sweep trial, a pipeline step) becomes
one :class:`~targets.runconfig.model.RunConfiguration` and is submitted like any run.
There is no second engine.

- ``code`` is the source directory, or an empty folder when there is none.
- Data inputs are shipped with the snapshot under ``_inputs/<name>`` (a file or a
  folder), read-only on the target (the run's files are hard links to read-only store
  objects). They can be a local path, an http(s) URL (downloaded once and cached by URL,
  revalidated with its ETag or Last-Modified), or ``azureml://datastores/NAME/paths/P``
  with a datastore registered in the workspace. ``${{inputs.x}}`` becomes that relative
  path. Literal inputs become their text.
- Named outputs are folders ``outputs/<name>`` (created before the command starts), so
  they come back with ``./outputs``; ``${{outputs.x}}`` is that path.
- ``environment``: the image runs the job when the target has usable Docker; otherwise
  the image is set aside with a warning and the conda file (if any) is prepared as a
  system-managed environment; with neither, the target's default Python runs it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from targets._files import temporary_beside
from targets.errors import ConfigError, UsageError
from targets.jobs.bindings import literal_text, references, render
from targets.jobs.model import InlineEnvironment, JobInput
from targets.jobs.reader import LoadedJob
from targets.runconfig.model import CondaSpec, RunConfiguration
from targets.snapshot import (
    Snapshot,
    limits_from_env,
    snapshot_file,
    symlinks_from_env,
    take_snapshot,
)
from targets.workspace import LOCAL, Workspace

__all__ = ["PreparedCommand", "compute_name", "prepare_command"]

INPUTS_DIR = "_inputs"
_ENV_REF = re.compile(r"^azureml:(?P<name>[^:@/]+)(?::(?P<version>[^:@/]+)|@(?P<label>[^:@/]+))?$")
_REGISTRY_ENV = re.compile(
    r"^azureml://registries/[^/]+/environments/(?P<name>[^/]+)"
    r"(?:/versions/(?P<version>[^/]+)|/labels/(?P<label>[^/]+))?$"
)


@dataclass
class PreparedCommand:
    """One command, ready for :func:`targets.runs.submit_run`."""

    config: RunConfiguration
    source_dir: Path
    extra: dict[str, Snapshot] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    outputs: dict[str, str] = field(default_factory=dict)
    """Named output -> its folder relative to the run's working directory."""
    entry: str | None = None
    """The job's own command on one line, for listings (without the folders made first)."""


def compute_name(compute: str | None, ws: Workspace | None = None) -> str:
    """The target a job's ``compute`` names: absent -> ``local``; with the workspace
    ``ws``, through its compute map (``targets compute map cpu-cluster=pool``, see
    :func:`targets.compute_map.resolve_compute`), which raises ConfigError (exit 2) for
    a name that is neither mapped nor attached; without it, ``azureml:cpu-cluster`` ->
    ``cpu-cluster``."""
    if ws is not None:
        from targets.compute_map import resolve_compute

        return resolve_compute(ws, compute)
    if not compute:
        return LOCAL
    return compute.removeprefix("azureml:")


def _download(ws: Workspace, url: str) -> Path:
    """The file at ``url``, downloaded once into the workspace cache and revalidated."""
    key = hashlib.sha256(url.encode()).hexdigest()[:24]
    folder = ws.cache_dir / "downloads" / key
    name = Path(urllib.request.url2pathname(url.split("?")[0].rstrip("/"))).name or "data"
    target = folder / name
    meta_file = folder / "meta.json"
    meta = json.loads(meta_file.read_text()) if meta_file.exists() else {}
    request = urllib.request.Request(url)
    if target.exists():
        if meta.get("etag"):
            request.add_header("If-None-Match", meta["etag"])
        if meta.get("last_modified"):
            request.add_header("If-Modified-Since", meta["last_modified"])
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            folder.mkdir(parents=True, exist_ok=True)
            fd, tmp = temporary_beside(target)  # unique: two runs may fetch one URL
            try:
                with os.fdopen(fd, "wb") as out:
                    while chunk := response.read(1 << 20):
                        out.write(chunk)
                tmp.replace(target)
            except BaseException:
                tmp.unlink(missing_ok=True)
                raise
            meta_file.write_text(
                json.dumps(
                    {
                        "url": url,
                        "etag": response.headers.get("ETag"),
                        "last_modified": response.headers.get("Last-Modified"),
                    }
                )
            )
    except urllib.error.HTTPError as exc:
        if exc.code == 304 and target.exists():
            return target  # not modified: the cached copy is current
        raise ConfigError(f"could not download {url}: HTTP {exc.code} {exc.reason}") from exc
    except (urllib.error.URLError, OSError) as exc:
        if target.exists():
            return target  # offline: use what we have
        reason = getattr(exc, "reason", exc)
        raise ConfigError(f"could not download {url}: {reason}") from exc
    return target


def _input_path(ws: Workspace, loaded: LoadedJob, name: str, value: JobInput) -> Path:
    """The local file or folder holding input ``name`` (downloading or fetching it; see
    :mod:`targets.data.inputs`). A ``direct`` cloud input is only checked to be readable:
    the job gets its URI, and the job's folder stands for it here."""
    from targets.data.inputs import local_copy

    key_path = f"inputs.{name}.path"
    direct = _direct_uri(ws, name, value)
    if direct is not None:
        from targets.data.fetch import remote_kind
        from targets.data.uris import parse_uri

        remote = parse_uri(direct)
        if remote is not None:
            remote_kind(remote)
        return loaded.base_dir
    return local_copy(
        ws,
        str(value.path),
        kind=value.type,
        key_path=key_path,
        local=loaded.local_path,
        http=lambda url: _download(ws, url),
    )


def _direct_uri(ws: Workspace, name: str, value: JobInput) -> str | None:
    """The URI a ``mode: direct`` input passes to the job (a data asset's own path), or
    None when the input is copied (any other mode, or a local path). A datastore URI
    (``azureml://datastores/...``) is never passed as given: only Azure ML resolves it, so
    it is read through its registered datastore as in the other modes."""
    if value.mode != "direct" or value.path is None:
        return None
    if str(value.path).startswith("azureml://datastores/"):
        return None
    from targets.data.inputs import resolve_asset

    path, _ = resolve_asset(ws, str(value.path), value.type, f"inputs.{name}.path")
    return path if "://" in path else None


def _inputs(
    ws: Workspace,
    loaded: LoadedJob,
    inputs: Mapping[str, Any],
    given: Mapping[str, Any],
) -> tuple[dict[str, str], dict[str, Snapshot], set[str]]:
    """Values for ``${{inputs.x}}``, snapshots of data inputs, and unsupplied inputs."""
    values: dict[str, str] = {}
    extra: dict[str, Snapshot] = {}
    missing: set[str] = set()
    for name, raw in {**inputs, **given}.items():
        value = raw
        if isinstance(value, Path):  # a pipeline step's input: another step's output
            value = JobInput(type="uri_folder" if value.is_dir() else "uri_file", path=str(value))
        if value is None:
            missing.add(f"inputs.{name}")
            continue
        if not isinstance(value, JobInput):
            values[f"inputs.{name}"] = literal_text(value)
            continue
        if value.path is None:
            literal = value.value if value.value is not None else value.default
            if literal is None:
                missing.add(f"inputs.{name}")
            else:
                values[f"inputs.{name}"] = literal_text(literal)
            continue
        direct = _direct_uri(ws, name, value)
        if direct is not None:  # the job reads it itself, with its own credentials
            values[f"inputs.{name}"] = direct
            continue
        path = _input_path(ws, loaded, name, value)
        if not path.exists():
            raise ConfigError(
                f"input {name!r}: {path} does not exist", key_path=f"inputs.{name}.path"
            )
        prefix = f"{INPUTS_DIR}/{name}"
        if path.is_dir():
            extra[prefix] = take_snapshot(
                path,
                limits=limits_from_env(),
                cache_path=ws.cache_dir / "snapshot-hashes.db",
                symlinks=symlinks_from_env(),
            )
            values[f"inputs.{name}"] = prefix
        else:
            extra[prefix] = snapshot_file(path)
            values[f"inputs.{name}"] = f"{prefix}/{path.name}"
    return values, extra, missing


def _environment(
    ws: Workspace, loaded: LoadedJob, env: Any, docker_ok: str | None
) -> tuple[str | None, Path | CondaSpec | None, list[str]]:
    """(image, conda file or inline spec, warnings) for an environment value (see
    :mod:`targets.jobs.job_environment`). A ``build:`` context gives no image here: it is
    built by :func:`_use_build_context`; where the target cannot build it, the job is
    refused (UsageError) naming the context. An image set aside (no usable Docker, or
    ``--no-docker``: ``docker_ok`` says why) leaves the job an isolated, empty environment
    when it has no conda file: never the Python ``targets`` runs in, nor the user's."""
    from targets.jobs import job_environment as je

    warnings: list[str] = []
    image: str | None = None
    conda: Path | CondaSpec | None = None
    python: str | None = None
    env = je.registered_build(ws, env)  # a registered build context: as an inline one
    if isinstance(env, str):
        resolved = je.resolve_reference(ws, env)
        image, conda, python = resolved.image, resolved.conda, resolved.python
        warnings.extend(resolved.warnings)
    elif isinstance(env, InlineEnvironment):
        if env.build is not None:
            je.check_build_context(loaded, env, docker_ok)  # raises: never run without it
        image = env.image
        if isinstance(env.conda_file, str):
            conda = loaded.local_path(env.conda_file)
        elif isinstance(env.conda_file, dict):
            conda = CondaSpec.model_validate(env.conda_file)
    if image and docker_ok is not None:
        warnings.append(
            ("[no-docker] " if docker_ok == je.NO_DOCKER_REASON else "")
            + f"the environment's image {image!r} is set aside: {docker_ok}; "
            + (
                "its conda_file is prepared instead"
                if conda
                else "the job runs in an isolated, empty environment of its own "
                "(give a conda_file to install its packages)"
            )
        )
        if conda is None:
            conda = je.isolated_environment()
        image = None
    elif image:
        image, notes = je.mapped_image(image, python)
        warnings.extend(notes)
    return image, conda, warnings


def _use_build_context(
    ws: Workspace, loaded: LoadedJob, config: RunConfiguration, env: Any, docker_ok: str | None
) -> None:
    """Make ``config`` run in the image built from ``env.build`` (an InlineEnvironment
    with a build context) by the target's Docker engine; nothing for other environments.
    The context folder is sent to the engine and built now, before anything is queued
    (:func:`targets.jobs.job_environment.use_build_context`). Asks the target whether its
    engine is usable when the caller did not (one round trip). Raises UsageError (exit 2)
    naming the build context, or its base image, when it cannot be built. A registered
    environment with a build context is built from its stored copy the same way."""
    from targets.jobs import job_environment as je

    env = je.registered_build(ws, env)
    if not isinstance(env, InlineEnvironment) or env.build is None:
        return

    target = ws.get_target(config.target) if config.target else None
    if docker_ok is None and je.no_docker_requested(config.environment_variables):
        docker_ok = je.NO_DOCKER_REASON
    if docker_ok is None and target is not None:
        from targets.jobs.submit import docker_problem

        docker_ok = docker_problem(target)
    je.use_build_context(loaded, env, config, docker_ok, target)


def _output_kind(
    outputs: Mapping[str, Any] | None, name: str, output_types: Mapping[str, Any] | None
) -> tuple[str, str | None]:
    """(type, declared path) of a named output; a pipeline step's output bound to
    ``${{parent.outputs.x}}`` takes the pipeline output's (``output_types``)."""
    declared = (output_types or {}).get(name) or (outputs or {}).get(name)
    kind = getattr(declared, "type", None) or "uri_folder"
    return str(kind), getattr(declared, "path", None)


def _output_values(
    values: dict[str, Any],
    outputs: Mapping[str, Any] | None,
    output_types: Mapping[str, Any] | None,
) -> dict[str, str]:
    """Bind ``${{outputs.NAME}}`` in ``values``; returns each named output's folder.

    Every named output lives under ./outputs (an Azure ML output `path` names cloud
    storage; here it comes back with ./outputs, where later steps find it): a folder
    `outputs/<name>`, or for a uri_file output the file `outputs/<name>/<file name>`."""
    output_dirs = {name: f"outputs/{name}" for name in outputs or {}}
    for name, folder in output_dirs.items():
        kind, path = _output_kind(outputs, name, output_types)
        if kind == "uri_file":
            file_name = Path(path).name if path and "${{" not in Path(path).name else name
            values[f"outputs.{name}"] = f"{folder}/{file_name}"
        else:
            values[f"outputs.{name}"] = folder
    return output_dirs


def prepare_command(
    ws: Workspace,
    loaded: LoadedJob,
    body: Any,
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
    """Translate one command body (job, trial or step) into a RunConfiguration.

    ``docker_ok`` is None when the target can run containers, else why it cannot.
    ``given_inputs`` override the body's inputs (a pipeline step's bound inputs);
    ``extra_values`` are more ``${{...}}`` values (a sweep's ``search_space.x``).
    """
    from targets.jobs.model import ParallelNode, SparkJob, SparkNode

    if isinstance(body, SparkJob | SparkNode):  # framework pyspark (targets.jobs.spark)
        from targets.jobs.spark import prepare_spark

        return prepare_spark(
            ws,
            loaded,
            body,
            target_name=target_name,
            node=node,
            inputs=inputs,
            outputs=outputs,
            given_inputs=given_inputs,
            run_name=run_name,
            output_types=output_types,
        )
    if isinstance(body, ParallelNode):  # the parallel driver's command (targets.jobs.parallel)
        from targets.jobs.parallel import prepare_parallel

        return prepare_parallel(
            ws,
            loaded,
            body,
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
    values, extra, missing = _inputs(ws, loaded, inputs or {}, given_inputs or {})
    output_dirs = _output_values(values, outputs, output_types)
    values["name"] = run_name
    values.update(extra_values or {})
    command = render(body.command, values, optional_missing=missing, keys=("command",))
    entry = "; ".join(line.strip() for line in command.splitlines() if line.strip())
    # As on Azure ML, ./outputs (and every named output's folder) exists when it starts.
    made = " ".join(shlex.quote(p) for p in ["outputs", *output_dirs.values()])
    command = f"mkdir -p {made}\n{command}"

    image, conda, warnings = _environment(ws, loaded, body.environment, docker_ok)
    config = RunConfiguration(command=command, target=target_name)
    env_vars = {}
    for key, value in (body.environment_variables or {}).items():
        refs = references(str(value))
        env_vars[key] = render(str(value), values, optional_missing=missing) if refs else value
    config.environment_variables = env_vars
    python = config.environment.python
    if isinstance(conda, Path):
        if not conda.is_file():
            raise ConfigError(f"the conda file {conda} does not exist", key_path="environment")
        python.conda_dependencies_file = str(conda)
    elif isinstance(conda, CondaSpec):
        python.conda_dependencies = conda
    if image:
        config.environment.docker.enabled = True
        config.environment.docker.base_image = image
    _use_build_context(ws, loaded, config, body.environment, docker_ok)
    resources = getattr(body, "resources", None)
    if resources is not None:
        if resources.instance_count:
            config.node_count = resources.instance_count
        if resources.shm_size:
            config.environment.docker.shm_size = resources.shm_size
    from targets.compute_map import runs_on_one_machine

    warnings.extend(
        _distribution(
            config,
            getattr(body, "distribution", None),
            one_machine=runs_on_one_machine(ws, target_name),
        )
    )
    limits = getattr(body, "limits", None)
    if limits is not None and getattr(limits, "timeout", None):
        config.max_run_duration_seconds = limits.timeout
    code = loaded.code_dir(node)
    if code is None:
        ws.ensure()  # the workspace is made whole, never a bare .targets/ folder
        code = ws.dir / "empty-source"
        code.mkdir(parents=True, exist_ok=True)
    elif code.is_file():
        raise UsageError(f"code {code} is a file; give the folder holding it")
    return PreparedCommand(
        config=config,
        source_dir=code,
        extra=extra,
        warnings=warnings,
        outputs=output_dirs,
        entry=entry,
    )


def _distribution(
    config: RunConfiguration, distribution: Any, *, one_machine: bool = False
) -> list[str]:
    """Map a v2 ``distribution`` (with ``resources.instance_count`` already in
    ``config.node_count``) onto the runconfig's v1 fields, as Azure ML does:
    ``process_count_per_instance`` processes on each of the instances. Returns warnings.

    ``one_machine``: the target runs on one machine (it lacks ``Capability.MULTI_NODE``).
    Then a multi-instance request runs on that machine, with a warning, where the
    framework allows it: ``pytorch`` and ``mpi`` start instance_count x
    process_count_per_instance processes there (the same world size); with no
    distribution the command runs once (Azure ML would run it once per instance). A
    ``tensorflow`` parameter-server layout needs one machine per task and is refused
    (UsageError, exit 2) naming a cluster as the fix."""
    from targets.distributed import distribution_of
    from targets.jobs.model import (
        MpiDistribution,
        PyTorchDistribution,
        RayDistribution,
        TensorFlowDistribution,
    )

    warnings: list[str] = []
    nodes = config.node_count
    where = f"the target {config.target!r} runs on one machine"
    if distribution is None:
        if nodes > 1 and one_machine:
            config.node_count = 1
            warnings.append(
                f"resources.instance_count {nodes}: {where}, so the command runs once "
                f"(Azure ML runs it on each of the {nodes} instances)"
            )
        elif nodes > 1:
            raise UsageError(
                f"instance_count {nodes} without a distribution: nothing would start the "
                "processes on the other nodes",
                hint="add distribution: {type: pytorch|mpi|tensorflow}, or set "
                "resources.instance_count: 1",
            )
        return warnings
    if isinstance(distribution, MpiDistribution | PyTorchDistribution) and one_machine:
        per_node = distribution.process_count_per_instance or 1
        if nodes > 1:
            warnings.append(
                f"resources.instance_count {nodes} x process_count_per_instance {per_node}: "
                f"{where}, so its {nodes * per_node} processes run there "
                f"(the same world size, {nodes * per_node})"
            )
            per_node, nodes = per_node * nodes, 1
            config.node_count = 1
    else:
        per_node = getattr(distribution, "process_count_per_instance", None) or 1
    if isinstance(distribution, MpiDistribution):
        config.communicator = "OpenMpi"
        config.mpi.process_count_per_node = per_node
    elif isinstance(distribution, PyTorchDistribution):
        config.pytorch.process_count = per_node * nodes
        config.pytorch.node_count = nodes
    elif isinstance(distribution, TensorFlowDistribution):
        workers = distribution.worker_count
        ps = distribution.parameter_server_count or 0
        if workers is None:
            workers = max(nodes - ps, 1)
        if workers + ps != nodes and nodes != 1:
            raise UsageError(
                f"distribution: worker_count {workers} + parameter_server_count {ps} differs "
                f"from resources.instance_count {nodes}",
                hint=f"set resources.instance_count: {workers + ps}",
            )
        if one_machine and workers + ps > 1:
            raise UsageError(
                f"distribution type tensorflow with {workers} workers and {ps} parameter "
                f"servers needs {workers + ps} machines, one per task, but {where}",
                hint="submit it to a cluster (targets create NAME --type cluster ..., then "
                "targets compute map NAME=CLUSTER), or set worker_count: 1 and "
                "parameter_server_count: 0",
            )
        config.communicator = "ParameterServer"
        config.tensorflow.worker_count = workers
        config.tensorflow.parameter_server_count = ps
        config.node_count = workers + ps
    elif isinstance(distribution, RayDistribution):
        raise UsageError(
            "distribution type ray is not supported",
            hint="use distribution type pytorch, mpi or tensorflow",
        )
    distribution_of(config)  # contradictions are refused now, before anything is written
    return warnings


def _check_instances(ws: Workspace, body: Any, target: str) -> None:
    """Refuse now (UsageError) what :func:`_distribution` would refuse at submission: a
    layout that needs more machines than the target has (a ``tensorflow`` parameter-server
    job on a one-machine target)."""
    resources = getattr(body, "resources", None)
    distribution = getattr(body, "distribution", None)
    if distribution is None:
        return
    from targets.compute_map import runs_on_one_machine

    probe = RunConfiguration(target=target)
    if resources is not None and getattr(resources, "instance_count", None):
        probe.node_count = resources.instance_count
    _distribution(probe, distribution, one_machine=runs_on_one_machine(ws, target))


def precheck(ws: Workspace, loaded: LoadedJob, compute: str | None) -> None:
    """Refuse a job before anything starts: an unknown target, an unregistered
    environment, an unregistered datastore, a local input that does not exist."""
    from targets.jobs.job_environment import registered_build
    from targets.jobs.model import (
        CommandJob,
        ParallelNode,
        PipelineJob,
        SparkJob,
        SweepJob,
        SweepNode,
    )
    from targets.jobs.spark import check_spark_targets
    from targets.jobs.submit import docker_reason

    job = loaded.job
    check_spark_targets(ws, loaded, compute)  # spark jobs and steps need a Spark target
    bodies: list[tuple[Any, Mapping[str, Any], str | None]] = []
    if isinstance(job, CommandJob | SparkJob):
        bodies.append((job, job.inputs, job.compute))
    elif isinstance(job, SweepJob):
        bodies.append((job.trial, job.inputs, job.compute))
    elif isinstance(job, PipelineJob):
        for name, node in job.jobs.items():
            if isinstance(node, SweepNode):  # its trials run the trial's command
                from targets.jobs.sweep_step import check_sweep_step

                check_sweep_step(loaded, name)
                bodies.append((node.trial, node.inputs, job.node_compute(name)))
                continue
            if isinstance(node, ParallelNode):  # its task runs the entry script
                from targets.jobs.parallel import precheck_parallel

                precheck_parallel(ws, loaded, name)
                bodies.append((node.task, node.inputs, job.node_compute(name)))
                continue
            bodies.append((node, node.inputs, job.node_compute(name)))
    for body, inputs, target in bodies:
        name = compute or compute_name(target, ws)
        ws.target_record(name)
        _check_instances(ws, body, name)
        environment = registered_build(ws, body.environment)
        if isinstance(environment, str):
            _environment(ws, loaded, body.environment, docker_ok=None)
        elif getattr(environment, "build", None) is not None:
            # Asked now, as submission would: a context the target cannot build is
            # refused by `job validate` too, not only when the job is created.
            _environment(
                ws, loaded, body.environment, docker_ok=docker_reason(ws.get_target(name), body)
            )
        for name, value in inputs.items():
            if isinstance(value, JobInput) and value.path and "${{" not in value.path:
                path = _input_path(ws, loaded, name, value)
                if not path.exists():
                    raise ConfigError(
                        f"input {name!r}: {path} does not exist", key_path=f"inputs.{name}.path"
                    )
