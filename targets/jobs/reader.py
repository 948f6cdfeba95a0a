"""Reading Azure ML CLI v2 job YAML files into the models of :mod:`targets.jobs.model`.

:func:`load_job` does, in the SDK's order:

1. parse the YAML, recording the line of every key (:mod:`targets.runconfig.yaml_lines`);
2. apply ``--set`` overrides (:mod:`targets.jobs.overrides`), before anything else looks
   at the data, so overrides are validated like the file;
3. pick the job type from ``type`` (absent: ``command``; exact lower-case match, as in
   the SDK, so ``type: Command`` is an error naming the supported types);
4. replace ``file:<path>`` references to nested mappings with that file's content
   (relative to the file that holds the reference; errors inside point into it);
5. drop ``$schema`` and the read-only keys (``id``, ``status``, ``creation_context``,
   ``log_files``, ``parameters``); rewrite the legacy ``{inputs.x}`` form, with a warning;
6. validate with the pydantic models (unknown keys are errors with the nearest valid key);
7. check names, ``${{...}}`` bindings (and the pipeline graph), and that local ``code``,
   ``conda_file`` and ``build.path`` exist.

Nothing is executed or downloaded; input ``path`` values are not checked (as in the SDK).
Every problem is a ConfigError (exit code 2) with the file, line and key path.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from targets.errors import ConfigError, TargetsError
from targets.jobs import bindings
from targets.jobs.model import (
    JOB_TYPES,
    NAME_PATTERN,
    NODE_TYPES,
    PIPELINE_INPUT_PATTERN,
    CommandJob,
    CommandNode,
    InlineEnvironment,
    Job,
    ParallelNode,
    PipelineJob,
    SparkJob,
    SparkNode,
    SweepJob,
    SweepNode,
    Trial,
)
from targets.jobs.overrides import apply_overrides, parse_override
from targets.runconfig.files import checked_path, read_text
from targets.runconfig.problems import (
    Problem,
    describe_value,
    dotted,
    raise_problems,
    validation_problems,
)
from targets.runconfig.yaml_lines import KeyPath, YamlDocument, parse_yaml
from targets.workspace import Workspace

__all__ = ["LoadedJob", "load_job"]


READ_ONLY_KEYS = ("id", "status", "creation_context", "log_files", "parameters")
"""Keys the service writes; the SDK drops them silently on load."""

SDK_ONLY_TYPES = ("automl", "import", "finetuning", "distillation")
"""Job types the SDK knows and targets does not run."""

SDK_ONLY_NODE_TYPES = ("pipeline", "automl", "import", "data_transfer")

FILE_PREFIX = "file:"

PREVIEW_SCHEMA_HOST = "azuremlsdk2.blob.core.windows.net"
"""Where the 2021 private-preview schemas lived; files naming it use a syntax the
released CLI and SDK never read (``code: {local_path: …}``, ``type: sweep_job``)."""

# Keys whose value is a mapping, so a `file:` string there is a reference to load.
_NESTED_KEYS = frozenset(
    {
        "environment",
        "distribution",
        "resources",
        "limits",
        "objective",
        "early_termination",
        "sampling_algorithm",
        "settings",
        "trial",
        "queue_settings",
        "identity",
        "services",
        "search_space",
    }
)

_REMOTE = re.compile(r"^(azureml:|https?://|git\+|wasbs?://|abfss?://|adl://)", re.IGNORECASE)
# `azureml:<name>` with no version is read as a local path by the SDK (and fails).
_VERSIONED_ASSET = re.compile(r"^azureml:(//|/subscriptions/|[^:@/]+(:[^:@/]+|@[^:@/]+))")


@dataclass(frozen=True, slots=True)
class LoadedJob:
    """A job as read from a file.

    ``base_dir`` is the file's folder: ``code:``, local input paths, ``conda_file`` and
    ``build.path`` are relative to it (see :meth:`local_path`). ``warnings`` has one line
    per key that was accepted but will not be honoured, or was rewritten.
    """

    job: Job
    path: Path
    base_dir: Path
    warnings: tuple[str, ...] = ()

    def local_path(self, value: str) -> Path:
        """``value`` (a path written in the job) resolved against :attr:`base_dir`."""
        given = Path(value).expanduser()
        return given if given.is_absolute() else (self.base_dir / given).resolve()

    def code_dir(self, node: str | None = None) -> Path | None:
        """The local ``code`` of the job, of a sweep's trial, or of pipeline node ``node``;
        None when the job has no code or it is remote (``azureml:...``, a URL)."""
        job = self.job
        code: str | None
        if node is not None:
            if not isinstance(job, PipelineJob):
                raise ValueError("node is only meaningful for a pipeline job")
            step = job.jobs[node]
            code = step.trial.code if isinstance(step, SweepNode) else step.code
        elif isinstance(job, SweepJob):
            code = job.trial.code
        elif isinstance(job, CommandJob | SparkJob):
            code = job.code
        else:
            code = None
        if code is None or _is_remote(code):
            return None
        return self.local_path(code)


@dataclass(slots=True)
class _Context:
    """What load_job knows while reading: for locating errors and collecting warnings."""

    doc: YamlDocument
    # data key path prefix -> (document it came from, key path of that prefix there)
    sources: dict[KeyPath, tuple[YamlDocument, KeyPath]] = field(default_factory=dict)
    overridden: dict[KeyPath, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def locate(self, key_path: KeyPath) -> tuple[Path, KeyPath, int | None]:
        for end in range(len(key_path), -1, -1):
            if key_path[:end] in self.overridden:
                return self.doc.path, key_path, None
        for end in range(len(key_path), 0, -1):
            source = self.sources.get(key_path[:end])
            if source is not None:
                doc, prefix = source
                inner = (*prefix, *key_path[end:])
                return doc.path, inner, doc.line_of(inner)
        return self.doc.path, key_path, self.doc.line_of(key_path)

    def error(self, message: str, key_path: KeyPath, *, hint: str | None = None) -> ConfigError:
        file, shown, line = self.locate(key_path)
        return ConfigError(
            message + self.note(key_path),
            path=str(file),
            line=line,
            key_path=dotted(shown) or None,
            hint=hint,
        )

    def note(self, key_path: KeyPath) -> str:
        """`` (set by --set ...)`` when an override produced the value at ``key_path``."""
        for prefix, text in self.overridden.items():
            if key_path[: len(prefix)] == prefix:
                return f" (set by --set {text})"
        return ""

    def warn(self, message: str, key_path: KeyPath) -> None:
        file, shown, line = self.locate(key_path)
        where = str(file) + (f":{line}" if line else "")
        self.warnings.append(f"{where}: {dotted(shown)}: {message}")


def load_job(
    path: str | Path, *, overrides: Sequence[str] = (), workspace: Workspace | None = None
) -> LoadedJob:
    """Read a v2 job YAML (command, sweep or pipeline) into a typed model.

    ``overrides`` are ``key.path=value`` strings (``--set``), applied before validation.
    Steps and trials that use components are expanded into inline ones
    (:mod:`targets.jobs.components.expand`); ``workspace`` is where ``azureml:NAME:V``
    components are registered (default: the workspace found from the current folder,
    looked up only when a job names one). Blocking file I/O; nothing is run, fetched or
    written. Raises ConfigError (exit code 2) naming the file, line and key path of the
    problem.
    """
    file = checked_path(path, "job file").absolute()
    if file.is_dir():
        raise ConfigError("expected a job YAML file, found a directory", path=str(file))
    doc = parse_yaml(read_text(file, "job"), file)
    context = _Context(doc)
    if not isinstance(doc.data, dict):
        got = "an empty file" if doc.data is None else describe_value(doc.data)
        raise ConfigError(f"expected a mapping of job keys, got {got}", path=str(file))
    raise_problems(
        [
            Problem(f"duplicate key {str(kp[-1])!r}", file, line, dotted(kp))
            for kp, line in doc.duplicates
        ],
        file,
    )
    for text in overrides:
        parts, _ = parse_override(text)
        context.overridden[parts] = text
    try:
        return _load(file, doc, context, apply_overrides(doc.data, overrides), workspace)
    except ConfigError as exc:
        schema = str(doc.data.get("$schema", ""))
        if PREVIEW_SCHEMA_HOST in schema and exc.hint is None:
            exc.hint = (
                "this file uses the 2021 preview syntax of Azure ML v2 ($schema on "
                f"{PREVIEW_SCHEMA_HOST}), which the released CLI and SDK do not read "
                "either: rewrite it in the released syntax (code: ./src, compute: "
                "azureml:NAME, type: sweep)"
            )
        raise


def _load(
    file: Path, doc: YamlDocument, context: _Context, data: Any, workspace: Workspace | None
) -> LoadedJob:
    job_type = _job_type(data, context)
    data = _resolve_file_refs(data, (), file.parent, context, frozenset({file.resolve()}))
    _drop_read_only(data)
    _expand_components(data, job_type, file, context, workspace)
    model: type[CommandJob | SweepJob | PipelineJob | SparkJob]
    if job_type == "command":
        model = CommandJob
        _prepare_command(data, (), context)
    elif job_type == "spark":
        model = SparkJob
        _prepare_spark(data, (), context)
    elif job_type == "sweep":
        model = SweepJob
        _prepare_sweep(data, (), context)
    else:
        model = PipelineJob
        _prepare_pipeline(data, context)
    try:
        job = model.model_validate(data)
    except ValidationError as exc:
        raise_problems(_problems(exc, model, data, context), file)
        raise  # unreachable: there is at least one problem
    base_dir = file.parent
    _check(job, base_dir, context)
    return LoadedJob(job, file, base_dir, tuple(context.warnings))


# ------------------------------------------------------------------ type -------------


def _job_type(data: dict[str, Any], context: _Context) -> str:
    raw = data.get("type", "command")
    if raw is None:
        return "command"
    supported = ", ".join(JOB_TYPES)
    if not isinstance(raw, str):
        raise context.error(
            f"expected a job type ({supported}), got {describe_value(raw)}", ("type",)
        )
    if raw in JOB_TYPES:
        return raw
    if raw in SDK_ONLY_TYPES:
        raise context.error(
            f"{raw} jobs are not supported: targets runs {supported} jobs",
            ("type",),
            hint=f"{raw} jobs run on Azure ML itself (az ml job create)",
        )
    if raw.strip().lower() in JOB_TYPES:
        raise context.error(
            f"unsupported job type {raw!r}: job types are lower-case ({supported})",
            ("type",),
            hint=f"write type: {raw.strip().lower()}",
        )
    raise context.error(f"unsupported job type {raw!r}: targets runs {supported} jobs", ("type",))


# ------------------------------------------------------------------ components -------


def _expand_components(
    data: dict[str, Any],
    job_type: str,
    file: Path,
    context: _Context,
    workspace: Workspace | None,
) -> None:
    """Steps and trials that use components become inline ones (see
    :mod:`targets.jobs.components.expand`)."""
    from targets.jobs.components.expand import Resolver, expand_pipeline, expand_sweep

    found: list[Workspace | None] = [workspace] if workspace is not None else []

    def find_workspace() -> Workspace | None:
        if not found:
            try:
                found.append(Workspace.find())
            except TargetsError:
                found.append(None)
        return found[0]

    resolver = Resolver(
        error=context.error,
        locate=context.locate,
        sources=context.sources,
        workspace=find_workspace,
        job_file=file,
    )
    if job_type == "pipeline":
        expand_pipeline(data, file.parent, resolver)
    elif job_type == "sweep":
        expand_sweep(data, (), file.parent, resolver)


# ------------------------------------------------------------------ file: refs -------


def _resolve_file_refs(
    body: dict[str, Any],
    key_path: KeyPath,
    folder: Path,
    context: _Context,
    active: frozenset[Path],
) -> dict[str, Any]:
    """A copy of a job (or node, or trial) body where ``file:`` strings at mapping-valued
    keys are replaced by the content of the file they name (relative to ``folder``);
    pipeline nodes, search-space entries and the sweep trial are followed. ``active``:
    the files being read on this branch (a file that includes itself is an error)."""
    out = dict(body)
    for key, value in body.items():
        sub: KeyPath = (*key_path, key)
        here, seen = folder, active
        if key in _NESTED_KEYS or (key == "jobs" and not key_path):
            value, here, seen = _maybe_load(value, sub, folder, context, active)
        if key == "trial" and isinstance(value, dict):
            value = _resolve_file_refs(value, sub, here, context, seen)
        elif key in ("jobs", "search_space") and isinstance(value, dict):
            entries = {}
            for name, entry in value.items():
                entry_path: KeyPath = (*sub, name)
                entry, entry_folder, entry_seen = _maybe_load(
                    entry, entry_path, here, context, seen
                )
                if key == "jobs" and isinstance(entry, dict):
                    entry = _resolve_file_refs(entry, entry_path, entry_folder, context, entry_seen)
                entries[name] = entry
            value = entries
        out[key] = value
    return out


def _maybe_load(
    value: Any, key_path: KeyPath, folder: Path, context: _Context, active: frozenset[Path]
) -> tuple[Any, Path, frozenset[Path]]:
    """``value`` itself, or the mapping in the file a ``file:`` string names, with the
    folder its own references are relative to and the updated ``active`` set."""
    if not (isinstance(value, str) and value.startswith(FILE_PREFIX)):
        return value, folder, active
    target = (folder / value[len(FILE_PREFIX) :].strip()).expanduser().resolve()
    if target in active:
        raise context.error(f"{value!r} refers back to a file that includes it", key_path)
    if not target.is_file():
        raise context.error(
            f"{value!r} not found (resolved to {target}; file: paths are relative to the "
            "file that holds them)",
            key_path,
        )
    doc = parse_yaml(read_text(target, "referenced"), target)
    if not isinstance(doc.data, dict):
        raise ConfigError(
            f"a file: reference must hold a mapping, got {describe_value(doc.data)}",
            path=str(target),
        )
    # A referenced file is often a standalone asset file (an environment YAML) that
    # names its own schema; $schema is ignored there as at the top of a job.
    doc.data.pop("$schema", None)
    context.sources[key_path] = (doc, ())
    _rebase(doc.data, str(key_path[-1]), key_path, target.parent, context.doc.path.parent)
    return doc.data, target.parent, active | {target}


def _rebase(data: dict[str, Any], key: str, key_path: KeyPath, source: Path, base: Path) -> None:
    """Make the local paths of a referenced file relative to the job file's folder.

    As in the SDK, paths in a ``file:`` file are relative to that file; the models keep
    one base folder (:attr:`LoadedJob.base_dir`), so they are rewritten here."""
    if source == base:
        return

    def moved(value: Any) -> Any:
        if not isinstance(value, str) or _is_remote(value) or "${{" in value:
            return value
        given = Path(value).expanduser()
        if given.is_absolute() or "://" in value:
            return value
        return os.path.relpath(source / given, base)

    def environment(env: Any) -> None:
        if isinstance(env, dict):
            if isinstance(env.get("conda_file"), str):
                env["conda_file"] = moved(env["conda_file"])
            build = env.get("build")
            if isinstance(build, dict) and "path" in build:
                build["path"] = moved(build["path"])

    if key == "environment":
        environment(data)
        return
    is_node = len(key_path) == 2 and key_path[0] == "jobs"
    if key != "trial" and not is_node:
        return
    if "code" in data:
        data["code"] = moved(data["code"])
    for key in ("component", "trial"):
        reference = data.get(key)
        if isinstance(reference, str) and reference.startswith(FILE_PREFIX):
            data[key] = FILE_PREFIX + str(moved(reference[len(FILE_PREFIX) :].strip()))
        elif isinstance(reference, str):
            data[key] = moved(reference)
    environment(data.get("environment"))
    inputs = data.get("inputs")
    if isinstance(inputs, dict):
        for item in inputs.values():
            if isinstance(item, dict) and "path" in item:
                item["path"] = moved(item["path"])
    trial = data.get("trial")
    if isinstance(trial, dict):
        _rebase(trial, "trial", (*key_path, "trial"), source, base)


# ------------------------------------------------------------------ preparation ------


def _drop_read_only(data: dict[str, Any]) -> None:
    data.pop("$schema", None)
    for key in READ_ONLY_KEYS:
        data.pop(key, None)


def _upgrade(data: dict[str, Any], key: str, key_path: KeyPath, context: _Context) -> None:
    value = data.get(key)
    if not isinstance(value, str):
        return
    new, legacy = bindings.upgrade_legacy(value)
    if legacy:
        data[key] = new
        forms = ", ".join(dict.fromkeys(legacy))
        context.warn(
            f"use of {{}} for parameters is deprecated ({forms}); read as ${{{{...}}}}",
            (*key_path, key),
        )


def _prepare_command(data: dict[str, Any], key_path: KeyPath, context: _Context) -> None:
    _upgrade(data, "command", key_path, context)
    variables = data.get("environment_variables")
    if isinstance(variables, dict):
        for name in list(variables):
            _upgrade(variables, name, (*key_path, "environment_variables"), context)
    environment = data.get("environment")
    if isinstance(environment, dict):
        for misplaced in ("channels", "dependencies"):
            if misplaced in environment:
                raise context.error(
                    f"{misplaced!r} does not belong in an environment; it goes in the "
                    "conda file named by conda_file",
                    (*key_path, "environment", misplaced),
                )


def _prepare_sweep(data: dict[str, Any], key_path: KeyPath, context: _Context) -> None:
    trial = data.get("trial")
    if isinstance(trial, dict):
        trial.pop("$schema", None)
        _prepare_command(trial, (*key_path, "trial"), context)


def _prepare_pipeline(data: dict[str, Any], context: _Context) -> None:
    jobs = data.get("jobs")
    if not isinstance(jobs, dict):
        return
    for name, node in jobs.items():
        where: KeyPath = ("jobs", name)
        if not isinstance(node, dict):
            continue
        node.pop("$schema", None)
        for key in READ_ONLY_KEYS:
            node.pop(key, None)
        node_type = node.get("type", "command")
        if node_type not in NODE_TYPES:
            supported = ", ".join(NODE_TYPES)
            if isinstance(node_type, str) and node_type.strip().lower() in NODE_TYPES:
                message = f"unsupported node type {node_type!r}: node types are lower-case"
            elif node_type == "pipeline":
                message = (
                    "a pipeline step needs component: (a pipeline component file or reference)"
                )
            elif node_type in SDK_ONLY_NODE_TYPES:
                message = f"{node_type} steps are not supported: targets runs {supported} steps"
            else:
                message = f"unsupported node type {node_type!r}: targets runs {supported} steps"
            raise context.error(message, (*where, "type"))
        given = node.get("name")
        if given is not None and given != name:
            context.warn(f"a node's name is its key under jobs: ({name!r}); 'name' ignored", where)
        node["name"] = name
        if node_type == "sweep":
            _prepare_sweep(node, where, context)
        elif node_type == "spark":
            _prepare_spark(node, where, context)
        else:
            _prepare_command(node, where, context)


# ------------------------------------------------------------------ checks -----------


def _check(job: Job, base_dir: Path, context: _Context) -> None:
    try:
        if isinstance(job, CommandJob):
            _check_names(job.inputs, job.outputs, (), context, pipeline=False)
            _check_command_body(job, (), base_dir, context, search_space=None)
            _check_env_bindings(job.environment_variables, job.inputs, (), context)
            _warn_ignored(job, (), context)
        elif isinstance(job, SparkJob):
            _check_spark(job, (), base_dir, context)
        elif isinstance(job, SweepJob):
            _check_sweep(job, (), base_dir, context)
        else:
            _check_names(job.inputs, job.outputs, (), context, pipeline=True)
            for name, node in job.jobs.items():
                where: KeyPath = ("jobs", name)
                if isinstance(node, SweepNode):
                    _check_sweep(node, where, base_dir, context)
                elif isinstance(node, SparkNode):
                    _check_spark(node, where, base_dir, context)
                elif isinstance(node, ParallelNode):
                    _check_parallel(node, where, base_dir, context)
                else:
                    _check_names(node.inputs, node.outputs, where, context, pipeline=False)
                    _check_command_body(node, where, base_dir, context, search_space=None)
                    _check_env_bindings(node.environment_variables, node.inputs, where, context)
                    _warn_ignored(node, where, context)
            bindings.check_pipeline(job)
            for key in ("on_init", "on_finalize"):
                if job.settings.model_extra and key in job.settings.model_extra:
                    context.warn("not supported by targets; ignored", ("settings", key))
    except bindings.BindingError as exc:
        raise context.error(exc.reason, exc.keys, hint=exc.hint) from exc


def _check_sweep(
    job: SweepJob | SweepNode, where: KeyPath, base_dir: Path, context: _Context
) -> None:
    _check_names(job.inputs, job.outputs, where, context, pipeline=False)
    for name in job.search_space:
        if not NAME_PATTERN.fullmatch(name):
            raise context.error(
                f"search_space name {name!r} must be letters, digits and underscores",
                (*where, "search_space", name),
            )
    _check_command_body(
        job.trial, (*where, "trial"), base_dir, context, search_space=job.search_space, job=job
    )
    _check_env_bindings(
        job.trial.environment_variables,
        job.inputs,
        (*where, "trial"),
        context,
        search_space=job.search_space,
    )
    for key in ("services", "identity", "queue_settings"):
        if getattr(job, key) is not None:
            context.warn("accepted but not used by targets", (*where, key))
    if job.trial.queue_settings is not None:
        context.warn("accepted but not used by targets", (*where, "trial", "queue_settings"))


def _check_names(
    inputs: dict[str, Any],
    outputs: dict[str, Any],
    where: KeyPath,
    context: _Context,
    *,
    pipeline: bool,
) -> None:
    pattern = PIPELINE_INPUT_PATTERN if pipeline else NAME_PATTERN
    for name in inputs:
        if not pattern.fullmatch(name):
            raise context.error(
                f"input name {name!r} must be letters, digits and underscores"
                + (" (dots separate parameter groups)" if pipeline else ""),
                (*where, "inputs", name),
            )
    for name in outputs:
        if not NAME_PATTERN.fullmatch(name):
            raise context.error(
                f"output name {name!r} must be letters, digits and underscores",
                (*where, "outputs", name),
            )


def _check_command_body(
    body: CommandJob | CommandNode | Trial,
    where: KeyPath,
    base_dir: Path,
    context: _Context,
    *,
    search_space: dict[str, Any] | None,
    job: SweepJob | SweepNode | None = None,
) -> None:
    owner = job if job is not None else body
    inputs = getattr(owner, "inputs", {})
    outputs = getattr(owner, "outputs", {})
    bindings.check_command(
        body.command,
        inputs=inputs,
        outputs=outputs,
        search_space=search_space,
        keys=(*where, "command"),
    )
    if body.code is not None:
        _check_local(body.code, (*where, "code"), base_dir, context, what="code path")
    environment = body.environment
    if isinstance(environment, InlineEnvironment):
        for key in ("name", "version"):
            if getattr(environment, key) is not None:
                context.warn(
                    "ignored: an inline environment is anonymous (named by its content)",
                    (*where, "environment", key),
                )
        if isinstance(environment.conda_file, str):
            _check_local(
                environment.conda_file,
                (*where, "environment", "conda_file"),
                base_dir,
                context,
                what="conda file",
                want_file=True,
            )
        if environment.build is not None and not _is_remote(environment.build.path):
            _check_local(
                environment.build.path,
                (*where, "environment", "build", "path"),
                base_dir,
                context,
                what="build context",
            )


def _check_env_bindings(
    variables: dict[str, str],
    inputs: dict[str, Any],
    where: KeyPath,
    context: _Context,
    search_space: dict[str, Any] | None = None,
) -> None:
    for name, value in variables.items():
        keys: KeyPath = (*where, "environment_variables", name)
        if not name or "=" in name:
            # `NAME=VALUE` is how the OS passes a variable: a name cannot hold `=`.
            raise bindings.BindingError(
                f"environment variable name {name[:60]!r} is empty or contains '='",
                keys,
                hint="put the '=' in the value instead (NAME: 'a=b')",
            )
        for ref in bindings.references(value, keys):
            if ref.scope == "search_space" and search_space is not None:
                if ref.name not in search_space:
                    raise bindings.BindingError(f"{ref.text} names no search_space entry", keys)
                continue
            if ref.scope != "inputs":
                raise bindings.BindingError(
                    f"{ref.text} cannot be used in an environment variable; "
                    "use ${{inputs.<name>}}",
                    keys,
                )
            if ref.name not in inputs:
                raise bindings.BindingError(f"{ref.text} names no input of this job", keys)


def _warn_ignored(body: CommandJob | CommandNode, where: KeyPath, context: _Context) -> None:
    for key in ("services", "identity", "queue_settings"):
        if getattr(body, key) is not None:
            context.warn("accepted but not used by targets", (*where, key))


def _is_remote(value: str) -> bool:
    if value.startswith("azureml:") and not value.startswith("azureml://"):
        return bool(_VERSIONED_ASSET.match(value))
    return bool(_REMOTE.match(value))


def _check_local(
    value: str,
    key_path: KeyPath,
    base_dir: Path,
    context: _Context,
    *,
    what: str,
    want_file: bool = False,
) -> None:
    if _is_remote(value):
        return
    given = Path(value).expanduser()
    resolved = given if given.is_absolute() else (base_dir / given).resolve()
    if not resolved.exists():
        hint = None
        if value.startswith("azureml:"):
            hint = "an asset reference needs a version or label: azureml:<name>:<version>"
        raise context.error(
            f"{what} {value!r} not found (resolved to {resolved}; relative paths are "
            "relative to the job file's folder)",
            key_path,
            hint=hint,
        )
    if want_file and not resolved.is_file():
        raise context.error(f"{what} {value!r} is not a file ({resolved})", key_path)


# ------------------------------------------------------------------ spark ------------


def _prepare_spark(data: dict[str, Any], key_path: KeyPath, context: _Context) -> None:
    """A spark job or step: ``args`` in the legacy ``{inputs.x}`` form is upgraded."""
    _upgrade(data, "args", key_path, context)


def _check_spark(
    job: SparkJob | SparkNode, where: KeyPath, base_dir: Path, context: _Context
) -> None:
    """Names, ``args`` bindings, and the local files a spark job names: ``code``, the
    entry file, ``py_files``, ``jars``, ``files`` and ``archives`` (relative to
    ``code``; URIs are Spark's to fetch). Warns for what targets does not use."""
    _check_names(job.inputs, job.outputs, where, context, pipeline=False)
    if job.args is not None:
        bindings.check_command(
            job.args, inputs=job.inputs, outputs=job.outputs, keys=(*where, "args")
        )
    if job.code is None:
        raise context.error(
            "a spark job needs code: the local folder holding its entry file", where or ("type",)
        )
    _check_local(job.code, (*where, "code"), base_dir, context, what="code path")
    code = None if _is_remote(job.code) else job.code
    folder = base_dir if code is None else (base_dir / Path(code).expanduser()).resolve()
    listed: list[tuple[KeyPath, str, str]] = []
    if job.entry.file is not None:
        listed.append(((*where, "entry", "file"), "entry file", job.entry.file))
    for key in ("py_files", "jars", "files", "archives"):
        for index, value in enumerate(getattr(job, key)):
            listed.append(((*where, key, index), f"{key} entry", value))
    for key_path, what, value in listed:
        local = value.split("#", 1)[0] if key_path[-2:-1] == ("archives",) else value
        if code is None or "://" in local or local.startswith(("local:", "azureml:")):
            continue
        found = (folder / Path(local).expanduser()).resolve()
        if not found.is_file():
            raise context.error(
                f"{what} {value!r} not found (resolved to {found}; paths are relative to "
                f"code: {code})",
                key_path,
            )
    if isinstance(job.environment, InlineEnvironment) and isinstance(
        job.environment.conda_file, str
    ):
        _check_local(
            job.environment.conda_file,
            (*where, "environment", "conda_file"),
            base_dir,
            context,
            what="conda file",
            want_file=True,
        )
    if job.identity is not None:
        context.warn("accepted but not used by targets", (*where, "identity"))
    for key in ("instance_type", "runtime_version"):
        if job.resources is not None and getattr(job.resources, key) is not None:
            context.warn(
                f"{getattr(job.resources, key)!r} ignored: the target's own Spark runs the job "
                "(its version, its machines); size the driver and executors with conf",
                (*where, "resources", key),
            )


# ------------------------------------------------------------------ parallel ---------


def _check_parallel(node: ParallelNode, where: KeyPath, base_dir: Path, context: _Context) -> None:
    """Names, bindings (``input_data``, ``task.program_arguments``, ``append_row_to``;
    see :func:`targets.jobs.parallel_bindings.check_bindings`) and the local ``task.code``, entry
    script and conda file of a parallel step."""
    from targets.jobs.parallel_bindings import check_bindings

    _check_names(node.inputs, node.outputs, where, context, pipeline=False)
    check_bindings(node, where)
    _check_env_bindings(node.environment_variables, node.inputs, where, context)
    task: KeyPath = (*where, "task")
    code = node.task.code
    if code is not None:
        _check_local(code, (*task, "code"), base_dir, context, what="code path")
    if code is None or not _is_remote(code):
        folder = base_dir if code is None else (base_dir / Path(code).expanduser()).resolve()
        _check_local(
            node.task.entry_script,
            (*task, "entry_script"),
            folder,
            context,
            what="entry_script",
            want_file=True,
        )
    environment = node.task.environment
    if isinstance(environment, InlineEnvironment) and isinstance(environment.conda_file, str):
        _check_local(
            environment.conda_file,
            (*task, "environment", "conda_file"),
            base_dir,
            context,
            what="conda file",
            want_file=True,
        )
    for key in ("identity",):
        if getattr(node, key) is not None:
            context.warn("accepted but not used by targets", (*where, key))


# ------------------------------------------------------------------ errors -----------


def _problems(
    exc: ValidationError, model: type[BaseModel], data: Any, context: _Context
) -> list[Problem]:
    """The shared translation (:func:`targets.runconfig.problems.validation_problems`),
    located through ``file:`` references and naming the ``--set`` behind a value."""
    return validation_problems(exc, model, data, context.locate, note=context.note)
