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


def compute_name(compute: str | None) -> str:
    """``azureml:cpu-cluster`` -> ``cpu-cluster``; absent -> the workspace default."""
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
    path = str(value.path)
    if path.startswith(("http://", "https://")):
        return _download(ws, path)
    if path.startswith("azureml://datastores/"):
        from targets.assets import resolve_datastore_uri

        return resolve_datastore_uri(ws, path)
    if path.startswith("azureml:") or "://" in path:
        raise ConfigError(
            f"input {name!r}: {path!r} cannot be read here; targets reads local paths, "
            "http(s) URLs and azureml://datastores/NAME/paths/... URIs",
            key_path=f"inputs.{name}.path",
            hint="download the data and point the input at a local path or a datastore "
            "(targets datastores add NAME --path DIR)",
        )
    return loaded.local_path(path)


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
    """(image, conda file or inline spec, warnings) for an environment value."""
    warnings: list[str] = []
    image: str | None = None
    conda: Path | CondaSpec | None = None
    if isinstance(env, str):
        found = _ENV_REF.match(env) or _REGISTRY_ENV.match(env)
        if not found:
            raise ConfigError(
                f"environment {env!r} is not a reference targets understands",
                key_path="environment",
            )
        from targets.assets import get_environment

        version = found.group("version") or found.group("label")
        registered = get_environment(ws, found.group("name"), version)
        image, conda = registered.image, registered.conda_file
    elif isinstance(env, InlineEnvironment):
        image = env.image
        if isinstance(env.conda_file, str):
            conda = loaded.local_path(env.conda_file)
        elif isinstance(env.conda_file, dict):
            conda = CondaSpec.model_validate(env.conda_file)
    if image and docker_ok is not None:
        warnings.append(
            f"the environment's image {image!r} is set aside: {docker_ok}; "
            + (
                "its conda_file is prepared instead"
                if conda
                else "the job runs in the target's default Python"
            )
        )
        image = None
    return image, conda, warnings


def _output_kind(
    outputs: Mapping[str, Any] | None, name: str, output_types: Mapping[str, Any] | None
) -> tuple[str, str | None]:
    """(type, declared path) of a named output; a pipeline step's output bound to
    ``${{parent.outputs.x}}`` takes the pipeline output's (``output_types``)."""
    declared = (output_types or {}).get(name) or (outputs or {}).get(name)
    kind = getattr(declared, "type", None) or "uri_folder"
    return str(kind), getattr(declared, "path", None)


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
    values, extra, missing = _inputs(ws, loaded, inputs or {}, given_inputs or {})
    # Every named output lives under ./outputs (an Azure ML output `path` names cloud
    # storage; here it comes back with ./outputs, where later steps find it): a folder
    # `outputs/<name>`, or for a uri_file output the file `outputs/<name>/<file name>`.
    output_dirs = {name: f"outputs/{name}" for name in outputs or {}}
    for name, folder in output_dirs.items():
        kind, path = _output_kind(outputs, name, output_types)
        if kind == "uri_file":
            file_name = Path(path).name if path and "${{" not in Path(path).name else name
            values[f"outputs.{name}"] = f"{folder}/{file_name}"
        else:
            values[f"outputs.{name}"] = folder
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
    resources = getattr(body, "resources", None)
    if resources is not None:
        if resources.instance_count:
            config.node_count = resources.instance_count
        if resources.shm_size:
            config.environment.docker.shm_size = resources.shm_size
    _distribution(config, getattr(body, "distribution", None))
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


def _distribution(config: RunConfiguration, distribution: Any) -> None:
    """Map a v2 ``distribution`` (with ``resources.instance_count`` already in
    ``config.node_count``) onto the runconfig's v1 fields, as Azure ML does:
    ``process_count_per_instance`` processes on each of the instances."""
    from targets.distributed import distribution_of
    from targets.jobs.model import (
        MpiDistribution,
        PyTorchDistribution,
        RayDistribution,
        TensorFlowDistribution,
    )

    nodes = config.node_count
    if distribution is None:
        if nodes > 1:
            raise UsageError(
                f"instance_count {nodes} without a distribution: nothing would start the "
                "processes on the other nodes",
                hint="add distribution: {type: pytorch|mpi|tensorflow}, or set "
                "resources.instance_count: 1",
            )
        return
    if isinstance(distribution, MpiDistribution):
        config.communicator = "OpenMpi"
        config.mpi.process_count_per_node = distribution.process_count_per_instance or 1
    elif isinstance(distribution, PyTorchDistribution):
        per_node = distribution.process_count_per_instance or 1
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


def precheck(ws: Workspace, loaded: LoadedJob, compute: str | None) -> None:
    """Refuse a job before anything starts: an unknown target, an unregistered
    environment, an unregistered datastore, a local input that does not exist."""
    from targets.jobs.model import CommandJob, PipelineJob, SweepJob

    job = loaded.job
    bodies: list[tuple[Any, Mapping[str, Any], str | None]] = []
    if isinstance(job, CommandJob):
        bodies.append((job, job.inputs, job.compute))
    elif isinstance(job, SweepJob):
        bodies.append((job.trial, job.inputs, job.compute))
    elif isinstance(job, PipelineJob):
        for name, node in job.jobs.items():
            bodies.append((node, node.inputs, job.node_compute(name)))
    for body, inputs, target in bodies:
        ws.target_record(compute or compute_name(target))
        if isinstance(body.environment, str):
            _environment(ws, loaded, body.environment, docker_ok=None)
        for name, value in inputs.items():
            if isinstance(value, JobInput) and value.path and "${{" not in value.path:
                path = _input_path(ws, loaded, name, value)
                if not path.exists():
                    raise ConfigError(
                        f"input {name!r}: {path} does not exist", key_path=f"inputs.{name}.path"
                    )
