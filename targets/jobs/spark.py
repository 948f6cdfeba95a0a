"""``type: spark`` jobs and pipeline steps: one
:class:`~targets.runconfig.model.RunConfiguration` with ``framework: pyspark``, submitted
like any run on a Spark kind (the local target with ``spark-submit``, ``hdinsight`` head
nodes, Databricks). There is no second engine: the agent's supervisor builds the
spark-submit command line (``targets/agent/spark.py``) as for a v1 pyspark run.

What each key of the job becomes:

- ``code`` is the run's source directory; ``entry.file`` its ``script``; ``args`` (with
  ``${{inputs.x}}``/``${{outputs.y}}`` rendered, then split like a shell line) its
  ``arguments``.
- ``conf`` is ``spark.configuration`` (each key a ``--conf key=value``), values as written.
- ``py_files``, ``jars``, ``files``, ``archives`` become the Spark properties that
  spark-submit reads for ``--py-files``, ``--jars``, ``--files`` and ``--archives``
  (``spark.submit.pyFiles``, ``spark.jars``, ``spark.files``, ``spark.archives``), as
  Azure ML v1's ``spark.configuration`` does: paths relative to ``code`` (the run's working
  directory), URIs passed to Spark as given. Values the job already sets in ``conf`` for
  these keys come first.
- ``entry.class_name``: a JVM main class from ``jars``. spark-submit takes the main class
  from the primary jar's manifest when no ``--class`` is given, so the primary resource is
  a jar of ``jars`` whose manifest names that class, else a launcher jar made here holding
  only a manifest (``Main-Class``), shipped with the run under ``_spark/``.
- Inputs and outputs are bound as for a command job (:func:`targets.jobs.execute._inputs`):
  data under ``_inputs/<name>``, outputs under ``outputs/<name>`` (created by Spark when
  it writes them; nothing is created before the job starts). ``mode: direct`` passes the
  path as given: a local path is shipped and bound like any input, a URI reaches the job
  unchanged.
- ``environment`` is the conda environment of the driver and the executors; an image is
  set aside with a warning (spark-submit does not run in a container), a build context is
  refused.
- ``resources`` (``instance_type``, ``runtime_version``) have no meaning on a target that
  has its own Spark: a warning names them.

Design choice: the Spark properties, not new runconfig fields, carry the file lists:
spark-submit honours them exactly as its command-line options, every target that runs
spark-submit already passes ``spark.configuration`` through, and a v1 runconfig can say
the same thing.
"""

from __future__ import annotations

import hashlib
import os
import shlex
import zipfile
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from targets._files import temporary_beside
from targets.compute.base import Capability, ComputeTarget
from targets.errors import ConfigError, UsageError
from targets.jobs.bindings import render
from targets.jobs.execute import (
    INPUTS_DIR,
    PreparedCommand,
    _environment,
    _inputs,
    _output_values,
)
from targets.jobs.model import InlineEnvironment, SparkJob, SparkNode
from targets.jobs.reader import LoadedJob
from targets.runconfig.model import CondaSpec, RunConfiguration
from targets.snapshot import snapshot_file
from targets.workspace import Workspace

__all__ = ["FILE_PROPERTIES", "check_spark_targets", "prepare_spark", "spark_kinds"]

FILE_PROPERTIES = {
    "py_files": "spark.submit.pyFiles",
    "jars": "spark.jars",
    "files": "spark.files",
    "archives": "spark.archives",
}
"""Job key -> the Spark property spark-submit reads for the same option."""

LAUNCHER_DIR = "_spark"
DATASTORE_PREFIX = "azureml://datastores/"
NO_CONTAINER = "spark-submit runs the job outside containers"


def spark_kinds() -> list[str]:
    """The installed target kinds that declare Spark (for messages; a kind that fails to
    load is left out, never fatal)."""
    from targets.registry import available_kinds, load_kind

    found: list[str] = []
    for info in available_kinds():
        try:
            if Capability.SPARK in load_kind(info.name).capabilities:
                found.append(info.name)
        except Exception:  # a broken plugin must not hide the message
            continue
    return sorted(found)


def _spark_bodies(loaded: LoadedJob) -> list[tuple[str, SparkJob | SparkNode, str | None]]:
    """(where, spark body, the compute it names) for the job or each spark step."""
    from targets.jobs.model import PipelineJob

    job = loaded.job
    if isinstance(job, SparkJob):
        return [("the job", job, job.compute)]
    if isinstance(job, PipelineJob):
        return [
            (f"step {name!r}", node, job.node_compute(name))
            for name, node in job.jobs.items()
            if isinstance(node, SparkNode)
        ]
    return []


def check_spark_targets(ws: Workspace, loaded: LoadedJob, compute: str | None) -> None:
    """Refuse (UsageError, exit 2) a spark job or step whose target cannot run Spark,
    naming the kinds that can, and what a Spark target cannot express; before anything is
    written or queued. Constructs targets without connecting to them."""
    from targets.jobs.execute import compute_name

    for where, body, named in _spark_bodies(loaded):
        name = compute or compute_name(named, ws)
        target = ws.get_target(name)
        if Capability.SPARK not in target.capabilities:
            raise UsageError(
                f"{where} is a spark job, and target {name!r} ({target.kind}) does not run "
                f"Spark; the kinds that do: {', '.join(spark_kinds())}",
                hint="attach a Spark head node (targets attach NAME --type hdinsight ...) or "
                "Databricks, or run it on the local target with pyspark installed "
                "(--set compute=local, or targets compute map NAME=local)",
            )
        _check_expressible(body, target, where)
        _check_inputs(ws, body)


def _runs_spark_submit(target: ComputeTarget) -> bool:
    """True when the target's agent builds the spark-submit command line (so Spark
    properties reach spark-submit); False for kinds that run the entry file inside a Spark
    application of their own (Databricks)."""
    from targets.compute import AgentTarget

    return isinstance(target, AgentTarget)


def _check_expressible(body: SparkJob | SparkNode, target: ComputeTarget, where: str) -> None:
    if _runs_spark_submit(target):
        return
    if body.entry.class_name is not None:
        raise UsageError(
            f"{where} runs the JVM class {body.entry.class_name!r}; target {target.name!r} "
            f"({target.kind}) runs Python entry files only",
            hint="run it on a target that runs spark-submit (local, hdinsight)",
        )
    lists = [key for key in FILE_PROPERTIES if getattr(body, key)]
    if lists:
        raise UsageError(
            f"{where} ships {', '.join(lists)} with spark-submit; target {target.name!r} "
            f"({target.kind}) runs the entry file on its own cluster, which takes those as "
            "cluster libraries",
            hint="install them on the cluster (or put Python modules in code), or run the "
            "job on a target that runs spark-submit (local, hdinsight)",
        )


def _check_inputs(ws: Workspace, body: SparkJob | SparkNode) -> None:
    """A datastore input whose datastore is not registered: ConfigError (exit 2)."""
    from targets.assets import resolve_datastore_uri

    for name, value in body.inputs.items():
        path = str(getattr(value, "path", None) or "")
        if path.startswith(DATASTORE_PREFIX) and "${{" not in path:
            try:
                resolve_datastore_uri(ws, path)
            except ConfigError as exc:
                raise ConfigError(
                    exc.message, key_path=f"inputs.{name}.path", hint=exc.hint
                ) from exc


def _relative(value: str, key: str) -> str:
    """A path of the job (relative to ``code``) as the run sees it; a URI as given."""
    if value.startswith("azureml:"):
        raise ConfigError(
            f"{value!r}: azureml: references are resolved by Azure ML only",
            key_path=key,
            hint="put the file in the job's code folder and name it relative to code",
        )
    if "://" in value or value.startswith("local:"):
        return value
    path = PurePosixPath(value.replace("\\", "/"))
    if path.is_absolute() or ".." in path.parts:
        raise ConfigError(
            f"{value!r} is outside the job's code folder: the run has code only",
            key_path=key,
            hint="put the file in the code folder and name it relative to code",
        )
    return str(path)


def _manifest_main_class(jar: Path) -> str | None:
    try:
        with zipfile.ZipFile(jar) as archive:
            text = archive.read("META-INF/MANIFEST.MF").decode("utf-8", "replace")
    except (OSError, KeyError, zipfile.BadZipFile):
        return None
    # Manifest lines wrap at 72 bytes with a leading space on continuation lines.
    joined = text.replace("\r\n", "\n").replace("\n ", "")
    for line in joined.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() == "main-class":
            return value.strip()
    return None


def _launcher(ws: Workspace, class_name: str) -> Path:
    """A jar holding only a manifest whose ``Main-Class`` is ``class_name`` (cached by
    the class name)."""
    key = hashlib.sha256(class_name.encode()).hexdigest()[:16]
    jar = ws.cache_dir / "spark" / f"main-{key}.jar"
    if not jar.exists():
        ws.ensure()  # the workspace is made whole, never a bare .targets/ folder
        jar.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = temporary_beside(jar)  # unique: two steps may make the same launcher
        try:
            with os.fdopen(fd, "wb") as out, zipfile.ZipFile(out, "w") as archive:
                archive.writestr(
                    "META-INF/MANIFEST.MF",
                    f"Manifest-Version: 1.0\r\nMain-Class: {class_name}\r\n"
                    "Created-By: targets (Azure ML spark job entry.class_name)\r\n\r\n",
                )
            tmp.replace(jar)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    return jar


def _files_conf(body: SparkJob | SparkNode) -> tuple[dict[str, str], list[str]]:
    """The file-list Spark properties, and the local jars (relative to code)."""
    conf: dict[str, str] = {}
    local_jars: list[str] = []
    for key, prop in FILE_PROPERTIES.items():
        values = [_relative(v, f"{key}") for v in getattr(body, key)]
        if key == "jars":
            local_jars = [v for v in values if "://" not in v and not v.startswith("local:")]
        if not values:
            continue
        given = body.conf.get(prop)
        conf[prop] = ",".join([*([given] if given else []), *values])
    return conf, local_jars


def prepare_spark(
    ws: Workspace,
    loaded: LoadedJob,
    body: SparkJob | SparkNode,
    *,
    target_name: str,
    node: str | None = None,
    inputs: Mapping[str, Any] | None = None,
    outputs: Mapping[str, Any] | None = None,
    given_inputs: Mapping[str, Any] | None = None,
    run_name: str = "",
    output_types: Mapping[str, Any] | None = None,
) -> PreparedCommand:
    """Translate a spark job or step into a ``framework: pyspark`` RunConfiguration (see
    the module docstring). Blocking file I/O only (input snapshots, a launcher jar in the
    workspace cache); nothing is sent. Raises ConfigError/UsageError (exit 2) for what the
    target cannot run."""
    target = ws.get_target(target_name)
    where = f"step {node!r}" if node else "the job"
    if Capability.SPARK not in target.capabilities:
        check_spark_targets(ws, loaded, target_name)  # raises, naming the kinds
    _check_expressible(body, target, where)
    code = loaded.code_dir(node)
    if code is None:
        raise ConfigError(
            "a spark job needs code: a local folder holding its entry file"
            + ("" if body.code is None else f" ({body.code!r} is not a local folder)"),
            key_path="code",
        )
    if code.is_file():
        raise UsageError(f"code {code} is a file; give the folder holding it")

    values, extra, missing = _inputs(ws, loaded, inputs or {}, given_inputs or {})
    output_dirs = _output_values(values, outputs, output_types)
    values["name"] = run_name
    rendered = ""
    if body.args:
        # Paths stay one argument each (a file name may hold a space); literals are
        # inserted as written, so `${{inputs.flags}}` may give several arguments.
        quoted = {
            key: shlex.quote(value)
            if key.startswith("outputs.") or value.startswith(f"{INPUTS_DIR}/") or "://" in value
            else value
            for key, value in values.items()
        }
        rendered = render(body.args, quoted, optional_missing=missing, keys=("args",))
    try:
        arguments = shlex.split(rendered)
    except ValueError as exc:
        raise ConfigError(f"args cannot be split into arguments: {exc}", key_path="args") from exc

    warnings: list[str] = []
    configuration = dict(body.conf)
    files_conf, local_jars = _files_conf(body)
    configuration.update(files_conf)
    if body.entry.file is not None:
        script = _relative(body.entry.file, "entry.file")
        shown = script
    else:
        class_name = str(body.entry.class_name).strip()
        shown = f"--class {class_name}"
        script = next((j for j in local_jars if _manifest_main_class(code / j) == class_name), "")
        if not script:
            launcher = _launcher(ws, class_name)
            extra[LAUNCHER_DIR] = snapshot_file(launcher)
            script = f"{LAUNCHER_DIR}/{launcher.name}"
    if body.conf and not _runs_spark_submit(target):
        warnings.append(
            f"conf ({', '.join(sorted(body.conf))}) not applied: target {target_name!r} "
            f"({target.kind}) runs the entry file in its cluster's Spark application, "
            "configured on the cluster"
        )
    config = RunConfiguration(script=script, arguments=arguments, target=target_name)
    config.framework = "pyspark"
    config.spark.configuration = configuration
    if body.environment is not None:
        env_warnings = _spark_environment(ws, loaded, config, body.environment)
        warnings.extend(env_warnings)
    return PreparedCommand(
        config=config,
        source_dir=code,
        extra=extra,
        warnings=warnings,
        outputs=output_dirs,
        entry=" ".join(["spark-submit", shown, *([rendered] if rendered else [])]),
    )


def _spark_environment(
    ws: Workspace, loaded: LoadedJob, config: RunConfiguration, env: Any
) -> list[str]:
    """The driver's and executors' environment: a conda file or inline spec, prepared
    as a system-managed environment; an image set aside (spark-submit runs outside
    containers), a build context refused (UsageError) by :func:`_environment`."""
    if isinstance(env, InlineEnvironment) and env.build is not None:
        raise UsageError(
            f"the environment's build context {env.build.path!r} makes an image; {NO_CONTAINER}",
            hint="give the spark job a conda_file (environment: {image: ..., conda_file: ...})",
        )
    image, conda, warnings = _environment(ws, loaded, env, NO_CONTAINER)
    del image  # always None: set aside with a warning
    python = config.environment.python
    if isinstance(conda, Path):
        if not conda.is_file():
            raise ConfigError(f"the conda file {conda} does not exist", key_path="environment")
        python.conda_dependencies_file = str(conda)
    elif isinstance(conda, CondaSpec):
        python.conda_dependencies = conda
    return warnings
