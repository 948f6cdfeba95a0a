"""Using components: a step (or a sweep's trial) that names a component becomes the
inline form the rest of targets runs, before the job is validated.

- A **command component** step gets the component's ``command``, ``code``,
  ``environment``, ``environment_variables``, ``distribution`` and ``resources`` (the
  step's own ``environment``, ``environment_variables``, ``resources``,
  ``distribution`` and ``limits`` win). Its inputs are checked against the component's:
  an unknown name, a missing required input and a value of the wrong type are errors
  naming the component; defaults fill what the step does not give; an optional input
  that is not given is left out (its ``$[[ ... ]]`` segments are dropped).
- A **pipeline component** step is flattened: its steps join the pipeline as
  ``<step>__<inner step>``, with ``${{parent.inputs.x}}`` replaced by what the step
  gives, and ``${{parent.jobs.<step>.outputs.y}}`` elsewhere pointing at the inner step
  that produces ``y``. A pipeline job with ``component:`` instead of ``jobs:`` is read
  the same way.
- A **sweep over a component** (``trial: ./train.yml``): the search-space entries give
  the component's inputs of the same name; the trial command reads them.

Local paths in a component are relative to the component's file; they are made absolute
here, so the job keeps one base folder. Errors point into the component's file.
"""

from __future__ import annotations

import copy
import difflib
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from targets.errors import ConfigError
from targets.jobs import bindings
from targets.jobs.components.model import (
    STEP_KEYS,
    CommandComponent,
    ComponentInput,
    PipelineComponent,
)
from targets.jobs.components.source import LoadedComponent, load_component
from targets.runconfig.files import read_text
from targets.runconfig.problems import describe_value
from targets.runconfig.yaml_lines import KeyPath, YamlDocument, parse_yaml
from targets.workspace import Workspace

__all__ = ["Resolver", "expand_pipeline", "expand_sweep"]

NODE_KEYS = (
    *STEP_KEYS,
    "environment",
    "environment_variables",
    "resources",
    "distribution",
    "limits",
    "services",
    "identity",
    "queue_settings",
)
"""Keys a step that uses a command component may have (the SDK's component node)."""

PIPELINE_NODE_KEYS = (*STEP_KEYS, "settings")
BODY_KEYS = ("command", "code", "environment", "environment_variables", "distribution", "resources")
_COMPONENT_ONLY = (
    "inputs",
    "outputs",
    "type",
    "name",
    "version",
    "display_name",
    "is_deterministic",
)
_DATA_MODES = ("ro_mount", "download", "direct", "eval_mount", "eval_download")
_OUTPUT_MODES = ("mount", "upload", "rw_mount", "direct")
_OUTPUT_TYPES = (
    "uri_file",
    "uri_folder",
    "mltable",
    "mlflow_model",
    "custom_model",
    "triton_model",
)
_PARENT_JOBS = re.compile(r"\$\{\{\s*parent\.jobs\.([^.\s}]+)\.(inputs|outputs)\.([^.\s}]+)\s*\}\}")
_PARENT_INPUT = re.compile(r"\$\{\{\s*parent\.inputs\.([A-Za-z0-9_.]+)\s*\}\}")
_PARENT_OUTPUT = re.compile(r"^\s*\$\{\{\s*parent\.outputs\.([A-Za-z0-9_.]+)\s*\}\}\s*$")
_MISSING = object()


@dataclass
class Resolver:
    """What expansion needs from the reader: located errors and warnings, the table that
    maps key paths of the expanded data back into the files they came from, and the
    workspace (for registered and registry components)."""

    error: Callable[..., ConfigError]
    """``error(message, key_path, hint=None)``: a ConfigError at that key path."""
    locate: Callable[[KeyPath], tuple[Path, KeyPath, int | None]]
    sources: dict[KeyPath, tuple[YamlDocument, KeyPath]]
    workspace: Callable[[], Workspace | None]
    job_file: Path

    def load(self, reference: Any, folder: Path, key_path: KeyPath) -> LoadedComponent:
        return load_component(
            reference,
            folder,
            workspace=self.workspace,
            error=self.error,
            key_path=key_path,
            locate=self.locate,
            job_file=self.job_file,
        )

    def point(self, key_path: KeyPath, loaded: LoadedComponent, inner: KeyPath) -> None:
        """Errors about ``key_path`` of the expanded data point at ``inner`` of the
        component (for an inline component, the job file already locates them)."""
        if loaded.doc is not None:
            self.sources[key_path] = (loaded.doc, (*loaded.prefix, *inner))


# ------------------------------------------------------------------ pipelines --------


def expand_pipeline(data: dict[str, Any], folder: Path, r: Resolver) -> None:
    """Replace, in place, every component step of the pipeline job ``data`` (and a
    top-level ``component:``) by inline steps."""
    if "component" in data:
        if "jobs" in data:
            raise r.error("give either jobs: or component:, not both", ("component",))
        loaded = r.load(data["component"], folder, ("component",))
        component = loaded.component
        if not isinstance(component, PipelineComponent):
            raise r.error(
                f"{loaded.title} is a {component.type} component; a pipeline job's "
                "component: must be a pipeline component (type: pipeline)",
                ("component",),
            )
        data["inputs"] = _bind_inputs(
            data.get("inputs") or {}, loaded, ("inputs",), r, parent_inputs={}
        )
        data["outputs"] = _pipeline_job_outputs(data.get("outputs") or {}, loaded, r)
        inner = {}
        for name, node in component.jobs.items():
            inner[name] = _absolute_node(node, loaded.folder)
            r.point(("jobs", name), loaded, ("jobs", name))
        data.pop("component")
        data["jobs"] = inner
        folder = loaded.folder
    jobs = data.get("jobs")
    if not isinstance(jobs, dict):
        return
    given = data.get("inputs")
    parent_inputs: dict[str, Any] = given if isinstance(given, dict) else {}
    data["jobs"], _ = _expand_jobs(jobs, folder, r, parent_inputs)
    for name, node in data["jobs"].items():
        if isinstance(node, dict):
            _resolve_compute(node, ("jobs", name), parent_inputs, r)


def _expand_jobs(
    jobs: dict[str, Any], folder: Path, r: Resolver, parent_inputs: dict[str, Any]
) -> tuple[dict[str, Any], dict[tuple[str, str], tuple[str, str]]]:
    """The steps with component steps expanded, and where each output of a flattened
    pipeline-component step now comes from: ``(step, port) -> (inner step, port)``."""
    out: dict[str, Any] = {}
    redirect: dict[tuple[str, str], tuple[str, str]] = {}
    for name, node in jobs.items():
        where: KeyPath = ("jobs", name)
        if isinstance(node, dict) and node.get("type") == "sweep":
            expand_sweep(node, where, folder, r)
        if not (isinstance(node, dict) and "component" in node):
            _add(out, name, node, where, r)
            continue
        loaded = r.load(node["component"], folder, (*where, "component"))
        if isinstance(loaded.component, CommandComponent):
            _add(out, name, _command_node(node, loaded, where, r, parent_inputs), where, r)
            continue
        if loaded.component.type == "spark":  # targets.jobs.spark_component
            from targets.jobs.spark_component import spark_node

            _add(out, name, spark_node(node, loaded, where, r, parent_inputs), where, r)
            continue
        inner, inner_redirect, produced = _pipeline_node(node, loaded, name, r, parent_inputs)
        for key, value in inner.items():
            _add(out, key, value, ("jobs", key), r)
        redirect.update(inner_redirect)
        for port, source in produced.items():
            redirect[(name, port)] = source
    if redirect:
        for name, node in out.items():
            if isinstance(node, dict):
                _redirect_node(node, ("jobs", name), redirect, r)
    return out, redirect


def _add(out: dict[str, Any], name: str, node: Any, where: KeyPath, r: Resolver) -> None:
    if name in out:
        raise r.error(
            f"step {name!r} clashes with a step of a pipeline component flattened into "
            "this pipeline (its steps are named <step>__<inner step>)",
            where,
        )
    out[name] = node


def _check_keys(
    node: dict[str, Any], allowed: tuple[str, ...], where: KeyPath, r: Resolver, what: str
) -> None:
    for key in node:
        if key in allowed or key == "$schema":
            continue
        close = difflib.get_close_matches(str(key), allowed, n=1, cutoff=0.6)
        hint = None
        if key in ("command", "code"):
            hint = "a step that uses a component runs the component's command and code"
        raise r.error(
            f"unknown key {key!r} for {what}" + (f" (did you mean {close[0]!r}?)" if close else ""),
            (*where, key),
            hint=hint,
        )


def _command_node(
    node: dict[str, Any],
    loaded: LoadedComponent,
    where: KeyPath,
    r: Resolver,
    parent_inputs: dict[str, Any],
) -> dict[str, Any]:
    component = loaded.component
    assert isinstance(component, CommandComponent)
    _check_keys(node, NODE_KEYS, where, r, "a step that uses a component")
    kind = node.get("type", "command")
    if kind not in (None, "command"):
        raise r.error(
            f"step type {kind!r} does not match {loaded.title}, a command component",
            (*where, "type"),
            hint="write type: command",
        )
    inputs = _bind_inputs(node.get("inputs") or {}, loaded, (*where, "inputs"), r, parent_inputs)
    outputs = _bind_outputs(node.get("outputs") or {}, loaded, (*where, "outputs"), r)
    merged = {
        k: v for k, v in node.items() if k not in ("component", "inputs", "outputs", "$schema")
    }
    merged["type"] = "command"
    body = _body(loaded, r)
    for key, value in body.items():
        if key in ("environment_variables",):
            merged[key] = {**value, **(node.get(key) or {})}
        elif key not in node or key in ("command", "code"):
            merged[key] = value
            r.point((*where, key), loaded, (key,))
    merged["inputs"] = inputs
    merged["outputs"] = outputs
    _check_optional(component, inputs, loaded, where, r)
    return merged


def _pipeline_node(
    node: dict[str, Any],
    loaded: LoadedComponent,
    name: str,
    r: Resolver,
    parent_inputs: dict[str, Any],
) -> tuple[dict[str, Any], dict[tuple[str, str], tuple[str, str]], dict[str, tuple[str, str]]]:
    component = loaded.component
    assert isinstance(component, PipelineComponent)
    where: KeyPath = ("jobs", name)
    _check_keys(node, PIPELINE_NODE_KEYS, where, r, "a step that uses a pipeline component")
    kind = node.get("type")
    if kind != "pipeline":
        raise r.error(
            f"{loaded.title} is a pipeline component; its step needs type: pipeline",
            (*where, "type"),
        )
    bound = _bind_inputs(node.get("inputs") or {}, loaded, (*where, "inputs"), r, parent_inputs)
    given_outputs = node.get("outputs") or {}
    for port in given_outputs:
        if port not in component.outputs:
            raise _unknown(
                r, loaded, "output", port, list(component.outputs), (*where, "outputs", port)
            )
    inner: dict[str, Any] = {}
    produced: dict[str, tuple[str, str]] = {}
    renamed = {step: f"{name}__{step}" for step in component.jobs}
    for step, raw in component.jobs.items():
        full = renamed[step]
        r.point(("jobs", full), loaded, ("jobs", step))
        if not isinstance(raw, dict):
            raise r.error(f"a step must be a mapping, got {describe_value(raw)}", ("jobs", full))
        copied = _absolute_node(raw, loaded.folder)
        copied = _substitute(copied, bound, renamed, ("jobs", full), r)
        if node.get("compute") and not copied.get("compute"):
            copied["compute"] = node["compute"]
        outputs = copied.get("outputs")
        if isinstance(outputs, dict):
            for port, value in list(outputs.items()):
                found = _PARENT_OUTPUT.match(value) if isinstance(value, str) else None
                if found is None:
                    continue
                target = found.group(1)
                if target not in component.outputs:
                    raise _unknown(
                        r,
                        loaded,
                        "output",
                        target,
                        list(component.outputs),
                        ("jobs", full, "outputs", port),
                    )
                produced[target] = (full, port)
                outer = given_outputs.get(target)
                outputs[port] = copy.deepcopy(outer) if outer is not None else None
        copied.setdefault("display_name", f"{name}/{step}")
        inner[full] = copied
    expanded, redirect = _expand_jobs(inner, loaded.folder, r, parent_inputs)
    for port, source in list(produced.items()):
        while source in redirect:
            source = redirect[source]
        produced[port] = source
    for port in component.outputs:
        if port not in produced and port in given_outputs:
            raise r.error(
                f"output {port!r} of {loaded.title} is produced by none of its steps",
                (*where, "outputs", port),
            )
    return expanded, redirect, produced


def _pipeline_job_outputs(
    given: dict[str, Any], loaded: LoadedComponent, r: Resolver
) -> dict[str, Any]:
    component = loaded.component
    out: dict[str, Any] = {}
    for port in given:
        if port not in component.outputs:
            raise _unknown(r, loaded, "output", port, list(component.outputs), ("outputs", port))
    for port, decl in component.outputs.items():
        value = given.get(port)
        if value is None and decl.type in _OUTPUT_TYPES:
            value = {"type": decl.type}
        elif isinstance(value, dict) and "type" not in value and decl.type in _OUTPUT_TYPES:
            value = {"type": decl.type, **value}
        out[port] = value
    return out


def _redirect_node(
    node: dict[str, Any],
    where: KeyPath,
    redirect: dict[tuple[str, str], tuple[str, str]],
    r: Resolver,
) -> None:
    def fix(text: str, key_path: KeyPath) -> str:
        def one(match: re.Match[str]) -> str:
            step, direction, port = match.group(1), match.group(2), match.group(3)
            source = (step, port)
            if direction != "outputs" or not any(s == step for s, _ in redirect):
                return match.group(0)
            if source not in redirect:
                produced = sorted(p for s, p in redirect if s == step)
                raise r.error(
                    f"{match.group(0)}: pipeline component step {step!r} produces no output "
                    f"{port!r} (its outputs: {', '.join(produced)})",
                    key_path,
                )
            while source in redirect:
                source = redirect[source]
            return "${{parent.jobs." + source[0] + ".outputs." + source[1] + "}}"

        return _PARENT_JOBS.sub(one, text)

    inputs = node.get("inputs")
    if isinstance(inputs, dict):
        for port, value in inputs.items():
            if isinstance(value, str):
                inputs[port] = fix(value, (*where, "inputs", port))
            elif isinstance(value, dict) and isinstance(value.get("path"), str):
                value["path"] = fix(value["path"], (*where, "inputs", port, "path"))


def _resolve_compute(
    node: dict[str, Any], where: KeyPath, parent_inputs: dict[str, Any], r: Resolver
) -> None:
    """``compute: ${{parent.inputs.x}}`` (a compute promoted to a pipeline input) becomes
    the pipeline input's value."""
    compute = node.get("compute")
    if not isinstance(compute, str) or "${{" not in compute:
        return
    found = _PARENT_INPUT.fullmatch(compute.strip())
    value = parent_inputs.get(found.group(1)) if found else None
    if isinstance(value, dict):
        value = value.get("value", value.get("default"))
    if not isinstance(value, str) or "${{" in value:
        raise r.error(
            f"compute {compute!r} must name a pipeline input with a literal value",
            (*where, "compute"),
        )
    node["compute"] = value


# ------------------------------------------------------------------ sweeps -----------


def looks_like_component(value: Any) -> bool:
    return isinstance(value, dict) and any(k in value for k in _COMPONENT_ONLY)


def expand_sweep(data: dict[str, Any], where: KeyPath, folder: Path, r: Resolver) -> None:
    """A sweep whose ``trial`` is a component (a path, ``azureml:`` reference or a
    component mapping) gets that component's command body as its trial."""
    trial = data.get("trial")
    if not (isinstance(trial, str) or looks_like_component(trial)):
        return
    loaded = r.load(trial, folder, (*where, "trial"))
    component = loaded.component
    if not isinstance(component, CommandComponent):
        raise r.error(
            f"a sweep's trial must be a command component; {loaded.title} is not", (*where, "trial")
        )
    space = data.get("search_space") or {}
    for name in space:
        if name not in component.inputs:
            raise _unknown(
                r,
                loaded,
                "input",
                name,
                list(component.inputs),
                (*where, "search_space", name),
                what="search_space entry",
            )
    given = data.get("inputs") or {}
    data["inputs"] = _bind_inputs(given, loaded, (*where, "inputs"), r, {}, supplied=set(space))
    data["outputs"] = _bind_outputs(data.get("outputs") or {}, loaded, (*where, "outputs"), r)
    body = _body(loaded, r)
    command = str(body["command"])
    for name in space:
        command = re.sub(
            r"\$\{\{\s*inputs\." + re.escape(name) + r"\s*\}\}",
            "${{search_space." + name + "}}",
            command,
        )
    body["command"] = command
    data["trial"] = body
    for key in body:
        r.point((*where, "trial", key), loaded, (key,))
    _check_optional(
        component, {**data["inputs"], **dict.fromkeys(space, 0)}, loaded, (*where, "trial"), r
    )


# ------------------------------------------------------------------ inputs/outputs ---


def _unknown(
    r: Resolver,
    loaded: LoadedComponent,
    kind: str,
    name: str,
    declared: list[str],
    key_path: KeyPath,
    *,
    what: str | None = None,
) -> ConfigError:
    close = difflib.get_close_matches(name, declared, n=1, cutoff=0.6)
    listed = ", ".join(declared) if declared else "none"
    return r.error(
        f"{what or kind} {name!r}: {loaded.title} has no {kind} {name!r}"
        + (f" (did you mean {close[0]!r}?)" if close else "")
        + f"; its {kind}s: {listed}",
        key_path,
    )


def _bind_inputs(
    given: Any,
    loaded: LoadedComponent,
    where: KeyPath,
    r: Resolver,
    parent_inputs: dict[str, Any],
    *,
    supplied: set[str] | None = None,
) -> dict[str, Any]:
    """The step's inputs checked against the component's and completed with defaults."""
    component = loaded.component
    if not isinstance(given, dict):
        raise r.error(f"expected a mapping of inputs, got {describe_value(given)}", where)
    out: dict[str, Any] = {}
    for port, value in given.items():
        decl = component.inputs.get(str(port))
        if decl is None:
            raise _unknown(r, loaded, "input", str(port), list(component.inputs), (*where, port))
        if value is None:
            continue
        out[port] = _typed(value, decl, str(port), loaded, (*where, port), r, parent_inputs)
    for port, decl in component.inputs.items():
        if port in out or port in (supplied or ()):
            continue
        if decl.default is not None:
            if decl.is_asset:
                path = str(decl.default)
                if "://" not in path and not path.startswith("azureml:"):
                    path = str((loaded.folder / path).resolve())
                out[port] = {"type": decl.type, "path": path}
            else:
                out[port] = decl.default
        elif not decl.optional:
            raise r.error(
                f"required input {port!r} of {loaded.title} is not given",
                where,
                hint=f"add it under inputs: ({port}: a {decl.type}"
                + (" mapping with type and path" if decl.is_asset else " value")
                + "), or make it optional in the component",
            )
    return out


def _typed(
    value: Any,
    decl: ComponentInput,
    port: str,
    loaded: LoadedComponent,
    key_path: KeyPath,
    r: Resolver,
    parent_inputs: dict[str, Any],
) -> Any:
    """``value`` for input ``port``, checked against its declaration (and typed, for a
    data input given as a plain path)."""
    intro = f"input {port!r} of {loaded.title} is a {decl.type}"
    if isinstance(value, str) and "${{" in value:
        _check_binding(value, decl, intro, key_path, r, parent_inputs)
        return value
    if decl.is_asset:
        if isinstance(value, bool | int | float):
            raise r.error(
                f"{intro}; got {describe_value(value)} {value!r}",
                key_path,
                hint=f"give {{type: {decl.type}, path: ...}} or a ${{{{parent...}}}} binding",
            )
        if isinstance(value, str):
            value = {"path": value}
        if isinstance(value, dict):
            typed = dict(value)
            if "path" not in typed:
                given = typed.get("value", typed.get("default"))
                raise r.error(
                    f"{intro}; it takes a path, got "
                    + (f"the value {given!r}" if given is not None else "no path"),
                    key_path,
                )
            if typed.get("type") is None:
                typed["type"] = decl.type
            elif str(typed["type"]).strip().lower() in ("string", "integer", "number", "boolean"):
                raise r.error(f"{intro}; the step gives a {typed['type']}", (*key_path, "type"))
            if typed.get("mode") is None and decl.mode in _DATA_MODES:
                typed["mode"] = decl.mode
            return typed
        return value
    if isinstance(value, dict):
        if "path" in value:
            raise r.error(f"{intro} parameter; it takes a value, not a path", key_path)
        inner = value.get("value", value.get("default"))
        if inner is not None and not (isinstance(inner, str) and "${{" in inner):
            problem = decl.problem_with(inner)
            if problem:
                raise r.error(f"input {port!r} of {loaded.title}: {problem}", key_path)
        return value
    if isinstance(value, list):
        raise r.error(f"{intro}; got a list", key_path)
    problem = decl.problem_with(value)
    if problem:
        raise r.error(f"input {port!r} of {loaded.title}: {problem}", key_path)
    return value


def _check_binding(
    value: str,
    decl: ComponentInput,
    intro: str,
    key_path: KeyPath,
    r: Resolver,
    parent_inputs: dict[str, Any],
) -> None:
    try:
        refs = bindings.references(value, key_path)
    except bindings.BindingError:
        return  # reported, with its location, when the pipeline's bindings are checked
    for ref in refs:
        if ref.scope == "parent.jobs" and ref.direction == "outputs" and not decl.is_asset:
            raise r.error(
                f"{intro} parameter; {ref.text} is another step's output (data)", key_path
            )
        if ref.scope != "parent.inputs" or value.strip() != ref.text:
            continue
        given = parent_inputs.get(ref.name, _MISSING)
        if given is _MISSING or given is None:
            continue
        if isinstance(given, dict):
            is_data = "path" in given
            if is_data and not decl.is_asset:
                raise r.error(
                    f"{intro} parameter; pipeline input {ref.name!r} is data "
                    f"({given.get('type') or 'uri_folder'})",
                    key_path,
                )
            given = given.get("value", given.get("default")) if not is_data else _MISSING
            if given is _MISSING or given is None:
                continue
        if isinstance(given, str) and "${{" in given:
            continue
        if decl.is_asset:
            if isinstance(given, bool | int | float):
                raise r.error(
                    f"{intro}; pipeline input {ref.name!r} is the literal {given!r}", key_path
                )
            continue
        problem = decl.problem_with(given)
        if problem:
            raise r.error(
                f"{intro.replace(' is a ', ' takes a ')}; pipeline input {ref.name!r}: {problem}",
                key_path,
            )


def _bind_outputs(
    given: Any, loaded: LoadedComponent, where: KeyPath, r: Resolver
) -> dict[str, Any]:
    component = loaded.component
    if not isinstance(given, dict):
        raise r.error(f"expected a mapping of outputs, got {describe_value(given)}", where)
    for port in given:
        if str(port) not in component.outputs:
            raise _unknown(r, loaded, "output", str(port), list(component.outputs), (*where, port))
    out: dict[str, Any] = {}
    for port, decl in component.outputs.items():
        value = given.get(port)
        asset = decl.type in _OUTPUT_TYPES
        if isinstance(value, dict):
            value = dict(value)
            if value.get("type") is None and asset:
                value["type"] = decl.type
            if value.get("mode") is None and decl.mode in _OUTPUT_MODES:
                value["mode"] = decl.mode
        elif value is None and asset:
            value = {"type": decl.type}
            if decl.mode in _OUTPUT_MODES:
                value["mode"] = decl.mode
        out[port] = value
    return out


def _check_optional(
    component: CommandComponent,
    inputs: dict[str, Any],
    loaded: LoadedComponent,
    where: KeyPath,
    r: Resolver,
) -> None:
    """An optional input that is not given may be used only inside ``$[[ ... ]]``."""
    try:
        refs = bindings.references(component.command, (*where, "command"))
    except bindings.BindingError:
        return  # reported with its location by the job's binding checks
    for ref in refs:
        if ref.scope != "inputs" or ref.optional or ref.name in inputs:
            continue
        decl = component.inputs.get(ref.name)
        if decl is not None and decl.optional:
            raise r.error(
                f"optional input {ref.name!r} of {loaded.title} is not given, and its command "
                f"uses {ref.text} outside an optional $[[ ... ]] segment",
                (*where, "inputs"),
                hint=f"give the input, or write $[[ ... {ref.text} ... ]] in the component",
            )


# ------------------------------------------------------------------ paths ------------


def _local(value: str) -> bool:
    return not (value.startswith(("azureml:", "git+", "file:")) or "://" in value or "${{" in value)


def _absolute(value: Any, folder: Path) -> Any:
    if isinstance(value, str) and _local(value) and not Path(value).expanduser().is_absolute():
        return str((folder / Path(value).expanduser()).resolve())
    return value


def _environment(value: Any, folder: Path, r: Resolver, key_path: KeyPath) -> Any:
    if isinstance(value, str) and value.startswith("file:"):
        target = (folder / value[len("file:") :].strip()).resolve()
        if not target.is_file():
            raise r.error(f"{value!r} not found (resolved to {target})", key_path)
        doc = parse_yaml(read_text(target, "environment"), target)
        if not isinstance(doc.data, dict):
            raise ConfigError("an environment file holds a mapping", path=str(target))
        r.sources[key_path] = (doc, ())
        value, folder = {k: v for k, v in doc.data.items() if k != "$schema"}, target.parent
    if isinstance(value, dict):
        value = dict(value)
        if isinstance(value.get("conda_file"), str):
            value["conda_file"] = _absolute(value["conda_file"], folder)
        build = value.get("build")
        if isinstance(build, dict) and isinstance(build.get("path"), str):
            value["build"] = {**build, "path": _absolute(build["path"], folder)}
    return value


def _body(loaded: LoadedComponent, r: Resolver) -> dict[str, Any]:
    """The component's command body, its local paths made absolute."""
    raw = loaded.raw
    body: dict[str, Any] = {"command": raw["command"]}
    if raw.get("code") is not None:
        body["code"] = _absolute(raw["code"], loaded.folder)
    body["environment"] = _environment(raw.get("environment"), loaded.folder, r, ("environment",))
    for key in ("environment_variables", "distribution", "resources"):
        if raw.get(key) is not None:
            body[key] = copy.deepcopy(raw[key])
    count = raw.get("instance_count")
    if count is not None and "resources" not in body:
        body["resources"] = {"instance_count": count}
    return body


def _absolute_node(node: Any, folder: Path) -> Any:
    """A copy of a pipeline component's step with its local paths made absolute."""
    if not isinstance(node, dict):
        return node
    copied = copy.deepcopy(node)
    component = copied.get("component")
    if isinstance(component, str) and component.startswith("file:"):
        copied["component"] = "file:" + str(_absolute(component[5:].strip(), folder))
    else:
        copied["component"] = _absolute(component, folder) if component is not None else None
        if component is None:
            copied.pop("component")
    trial = copied.get("trial")
    if isinstance(trial, str):
        copied["trial"] = _absolute(trial, folder)
    bodies = [copied]
    if isinstance(trial, dict) and not looks_like_component(trial):
        bodies.append(trial)  # an inline trial: its code is relative to the component too
    for body in bodies:
        if "code" in body:
            body["code"] = _absolute(body["code"], folder)
        environment = body.get("environment")
        if isinstance(environment, dict) and isinstance(environment.get("conda_file"), str):
            environment["conda_file"] = _absolute(environment["conda_file"], folder)
    inputs = copied.get("inputs")
    if isinstance(inputs, dict):
        for value in inputs.values():
            if isinstance(value, dict) and isinstance(value.get("path"), str):
                value["path"] = _absolute(value["path"], folder)
    return copied


def _substitute(
    node: dict[str, Any],
    bound: dict[str, Any],
    renamed: dict[str, str],
    where: KeyPath,
    r: Resolver,
) -> dict[str, Any]:
    """A pipeline component's step with ``${{parent.inputs.x}}`` replaced by what the
    step using the component gives, and its sibling steps renamed."""

    def rename(text: str) -> str:
        def one(match: re.Match[str]) -> str:
            step = match.group(1)
            new = renamed.get(step, step)
            return "${{parent.jobs." + new + "." + match.group(2) + "." + match.group(3) + "}}"

        return _PARENT_JOBS.sub(one, text)

    def value_of(text: str, key_path: KeyPath) -> Any:
        whole = _PARENT_INPUT.fullmatch(text.strip())
        if whole:
            return copy.deepcopy(bound.get(whole.group(1), _MISSING))

        def one(match: re.Match[str]) -> str:
            given = bound.get(match.group(1), _MISSING)
            if given is _MISSING or isinstance(given, dict | list):
                raise r.error(f"{match.group(0)} inside {text!r} needs a literal value", key_path)
            return str(given)

        return _PARENT_INPUT.sub(one, text)

    inputs = node.get("inputs")
    if isinstance(inputs, dict):
        for port, value in list(inputs.items()):
            key_path = (*where, "inputs", port)
            if isinstance(value, str):
                new = value_of(rename(value), key_path)
            elif isinstance(value, dict) and isinstance(value.get("path"), str):
                path = value_of(rename(value["path"]), (*key_path, "path"))
                new = {**value, "path": path} if isinstance(path, str) else path
            else:
                new = value
            if new is _MISSING:
                del inputs[port]
            else:
                inputs[port] = new
    compute = node.get("compute")
    if isinstance(compute, str) and "${{" in compute:
        resolved = value_of(compute, (*where, "compute"))
        if resolved is _MISSING:
            node.pop("compute")
        else:
            node["compute"] = resolved
    return node
