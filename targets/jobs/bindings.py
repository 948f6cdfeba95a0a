"""The ``${{...}}`` data-binding language of v2 job files, and pipeline graphs.

Forms (jobs-v2.md §1):

- ``${{inputs.x}}``, ``${{outputs.y}}`` in a command (and environment variables);
- ``${{search_space.z}}`` in a sweep trial's command;
- ``${{parent.inputs.x}}``, ``${{parent.outputs.x}}``,
  ``${{parent.jobs.<node>.outputs.<port>}}`` (also ``.inputs.``) in pipeline node inputs
  and outputs;
- ``${{name}}``: the job name, in output paths;
- optional segments: ``[--opt ${{inputs.x}}]`` (the SDK's form: a bracket, words, one
  input reference, a closing bracket right after it) and ``$[[ ... ]]`` (the component
  form, any text); dropped when an input they reference is not supplied;
- the legacy single-brace ``{inputs.x}`` form, rewritten by :func:`upgrade_legacy`.

Values are looked up by *key*: the expression with whitespace removed (``inputs.lr``,
``search_space.B``, ``parent.jobs.a.outputs.x``, ``name``).

Errors are :class:`BindingError` (a ConfigError, exit code 2) carrying the key path of the
YAML value they are about, so the reader can add the file and line.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from targets.errors import ConfigError
from targets.jobs.model import JobInput, PipelineJob

__all__ = [
    "BindingError",
    "Reference",
    "check_command",
    "check_node_name",
    "check_pipeline",
    "find_cycle",
    "literal_text",
    "parse_reference",
    "pipeline_graph",
    "references",
    "render",
    "topological_levels",
    "upgrade_legacy",
]

KeyPath = tuple[str | int, ...]
Scope = Literal[
    "inputs", "outputs", "search_space", "parent.inputs", "parent.outputs", "parent.jobs", "name"
]

_EXPRESSION = re.compile(r"\$\{\{\s*(\S*?)\s*\}\}")
_NAME = r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*"
_FORMS = (
    re.compile(rf"(?P<scope>inputs|outputs|search_space)\.(?P<name>{_NAME})"),
    re.compile(rf"parent\.(?P<scope>inputs|outputs)\.(?P<name>{_NAME})"),
    re.compile(r"parent\.jobs\.(?P<node>[^.]+)\.(?P<direction>inputs|outputs)\.(?P<name>[^.]+)"),
    re.compile(r"(?P<scope>name)"),
)
# The SDK's optional form `[--flag ${{inputs.x}}]` (regex from _input_output_helpers.py).
_OPTIONAL_SDK = re.compile(r"\[([\w.\s-]*\$\{\{\s*inputs\.[\w.-]+\s*\}\})\]")
# The component form `$[[ ... ]]`.
_OPTIONAL_COMPONENT = re.compile(r"\$\[\[(.*?)\]\]", re.DOTALL)
# `{inputs.x}` not inside `${{...}}`.
_LEGACY = re.compile(
    r"(?<![{$])\{\s*((?:inputs|outputs|search_space)\.[A-Za-z_][A-Za-z0-9_.]*)\s*\}(?!\})"
)
_NODE_NAME = re.compile(r"[a-z_][a-z\d_]*")


class BindingError(ConfigError):
    """A ``${{...}}`` reference that does not resolve, or a pipeline that cannot run in
    order. ``reason`` is the bare message; ``keys`` the key path of the YAML value."""

    def __init__(self, reason: str, keys: KeyPath = (), *, hint: str | None = None) -> None:
        self.reason = reason
        self.keys = keys
        key_path = ".".join(str(k) for k in keys) or None
        super().__init__(reason, key_path=key_path, hint=hint)


@dataclass(frozen=True, slots=True)
class Reference:
    """One ``${{...}}`` reference.

    ``name`` is the input/output/search-space name, or the port for ``parent.jobs``
    (empty for ``${{name}}``); ``node`` and ``direction`` are set for ``parent.jobs``.
    ``optional`` is true inside an optional segment. ``start``/``end`` locate the whole
    ``${{...}}`` in the template.
    """

    key: str
    scope: Scope
    name: str
    node: str | None = None
    direction: Literal["inputs", "outputs"] | None = None
    optional: bool = False
    start: int = 0
    end: int = 0

    @property
    def text(self) -> str:
        return "${{" + self.key + "}}"


def parse_reference(expression: str, keys: KeyPath = ()) -> Reference:
    """The reference inside ``${{expression}}``. Raises BindingError for an unknown form."""
    key = expression.strip()
    for form in _FORMS:
        match = form.fullmatch(key)
        if match is None:
            continue
        groups = match.groupdict()
        if "node" in groups:
            direction: Literal["inputs", "outputs"] = (
                "inputs" if groups["direction"] == "inputs" else "outputs"
            )
            return Reference(key, "parent.jobs", groups["name"], groups["node"], direction)
        if key == "name":
            return Reference(key, "name", "")
        scope = groups["scope"]
        full: Scope
        if key.startswith("parent."):
            full = "parent.inputs" if scope == "inputs" else "parent.outputs"
        elif scope == "inputs":
            full = "inputs"
        elif scope == "outputs":
            full = "outputs"
        else:
            full = "search_space"
        return Reference(key, full, groups["name"])
    raise BindingError(
        f"unknown binding ${{{{{key}}}}}; expected inputs.<name>, outputs.<name>, "
        "search_space.<name>, parent.inputs.<name>, parent.outputs.<name>, "
        "parent.jobs.<node>.outputs.<port> or name",
        keys,
    )


@dataclass(frozen=True, slots=True)
class _Segment:
    start: int
    end: int
    inner_start: int
    inner: str


def _optional_segments(template: str) -> list[_Segment]:
    found: list[_Segment] = []
    for match in _OPTIONAL_COMPONENT.finditer(template):
        found.append(_Segment(match.start(), match.end(), match.start(1), match.group(1)))
    for match in _OPTIONAL_SDK.finditer(template):
        if any(s.start <= match.start() < s.end for s in found):
            continue
        found.append(_Segment(match.start(), match.end(), match.start(1), match.group(1)))
    return sorted(found, key=lambda s: s.start)


def references(template: str, keys: KeyPath = ()) -> list[Reference]:
    """Every ``${{...}}`` in ``template``, in order. Raises BindingError for an unknown form."""
    segments = _optional_segments(template)
    found = []
    for match in _EXPRESSION.finditer(template):
        parsed = parse_reference(match.group(1), keys)
        optional = any(s.inner_start <= match.start() < s.end for s in segments)
        found.append(
            Reference(
                parsed.key,
                parsed.scope,
                parsed.name,
                parsed.node,
                parsed.direction,
                optional,
                match.start(),
                match.end(),
            )
        )
    return found


def upgrade_legacy(template: str) -> tuple[str, list[str]]:
    """Rewrite the deprecated ``{inputs.x}`` form to ``${{inputs.x}}``.

    Returns the new text and the legacy forms found (empty: nothing changed), so the
    caller can warn as the SDK does ("Use of {} for parameters is deprecated").
    """
    found = [m.group(0) for m in _LEGACY.finditer(template)]
    if not found:
        return template, []
    return _LEGACY.sub(lambda m: "${{" + m.group(1) + "}}", template), found


def _substitute(
    text: str,
    values: Mapping[str, str],
    optional_missing: Collection[str],
    keys: KeyPath,
) -> str:
    def replace(match: re.Match[str]) -> str:
        ref = parse_reference(match.group(1), keys)
        if ref.key in values:
            return values[ref.key]
        if ref.key in optional_missing:
            raise BindingError(
                f"{ref.text} is optional and was not supplied, but it is used outside an "
                "optional segment",
                keys,
                hint="put the part that uses it in [ ... ] or $[[ ... ]], or supply the input",
            )
        raise BindingError(f"no value for {ref.text}", keys)

    return _EXPRESSION.sub(replace, text)


def render(
    template: str,
    values: Mapping[str, str],
    *,
    optional_missing: Collection[str] = frozenset(),
    keys: KeyPath = (),
) -> str:
    """``template`` with every ``${{key}}`` replaced by ``values[key]``.

    An optional segment is dropped when one of its references is in ``optional_missing``
    or has no value; otherwise it is kept without its brackets. A reference outside a
    segment without a value raises BindingError (``keys``: where the template came from).
    Legacy ``{inputs.x}`` forms are not rewritten here (see :func:`upgrade_legacy`).
    """
    out: list[str] = []
    position = 0
    for segment in _optional_segments(template):
        out.append(_substitute(template[position : segment.start], values, optional_missing, keys))
        inner_refs = [
            parse_reference(m.group(1), keys) for m in _EXPRESSION.finditer(segment.inner)
        ]
        if not any(r.key in optional_missing or r.key not in values for r in inner_refs):
            out.append(_substitute(segment.inner, values, optional_missing, keys))
        position = segment.end
    out.append(_substitute(template[position:], values, optional_missing, keys))
    return "".join(out)


def literal_text(value: Any) -> str:
    """A literal input as the service passes it to the command (``str()``, as the SDK's
    ``LiteralJobInput(value=str(v))``: ``True``, ``0.5``, ``42``)."""
    return str(value)


def check_command(
    template: str,
    *,
    inputs: Collection[str],
    outputs: Collection[str],
    search_space: Collection[str] | None = None,
    keys: KeyPath = ("command",),
) -> list[Reference]:
    """Check that every reference in a command names a declared input, output (or
    search-space entry, for a sweep trial). References inside optional segments may name
    undeclared inputs, as in the SDK. Returns the references; raises BindingError."""
    found = references(template, keys)
    for ref in found:
        if ref.scope == "inputs":
            if ref.name not in inputs and not ref.optional:
                raise BindingError(
                    f"{ref.text} names no input of this job{_declared('inputs', inputs)}", keys
                )
        elif ref.scope == "outputs":
            if ref.name not in outputs:
                raise BindingError(
                    f"{ref.text} names no output of this job{_declared('outputs', outputs)}", keys
                )
        elif ref.scope == "search_space":
            if search_space is None:
                raise BindingError(f"{ref.text} is only valid in a sweep job's trial command", keys)
            if ref.name not in search_space:
                raise BindingError(
                    f"{ref.text} names no search_space entry"
                    f"{_declared('search_space entries', search_space)}",
                    keys,
                )
        else:
            raise BindingError(
                f"{ref.text} cannot be used in a command; use it in a pipeline node's "
                "inputs or outputs and refer to that with ${{inputs.<name>}}",
                keys,
            )
    return found


def _declared(what: str, names: Collection[str]) -> str:
    listed = ", ".join(sorted(names))
    return f" (declared {what}: {listed})" if names else f" (it declares no {what})"


# ------------------------------------------------------------------ pipelines --------


def check_node_name(name: str) -> None:
    """Node names (keys under ``jobs:``) follow the SDK: ``[a-z_][a-z0-9_]*``, a Python
    identifier. Raises BindingError."""
    if not (_NODE_NAME.fullmatch(name) and name.isidentifier()):
        raise BindingError(
            f"invalid node name {name!r}: use lower-case letters, digits and underscores, "
            "starting with a letter or underscore",
            ("jobs", name),
        )


def _value_bindings(value: Any) -> Iterator[tuple[str, KeyPath]]:
    """Strings of a node input/output that may hold bindings, with their sub-key path."""
    if isinstance(value, str):
        yield value, ()
    elif isinstance(value, JobInput):
        for field in ("path", "value", "default"):
            item = getattr(value, field)
            if isinstance(item, str):
                yield item, (field,)


def pipeline_graph(job: PipelineJob) -> dict[str, set[str]]:
    """Each node mapped to the nodes it depends on, from the
    ``${{parent.jobs.<node>.outputs.<port>}}`` bindings in node inputs.

    Raises BindingError for an invalid node name, a reference to an unknown node or to a
    port that node does not declare, and for a cycle (naming it: ``a -> b -> a``).
    """
    graph: dict[str, set[str]] = {}
    for name in job.jobs:
        check_node_name(name)
    for name, node in job.jobs.items():
        upstream: set[str] = set()
        for port, value in node.inputs.items():
            for text, sub in _value_bindings(value):
                keys: KeyPath = ("jobs", name, "inputs", port, *sub)
                for ref in references(text, keys):
                    if ref.scope != "parent.jobs" or ref.node is None:
                        continue
                    source = job.jobs.get(ref.node)
                    if source is None:
                        raise BindingError(
                            f"{ref.text} refers to node {ref.node!r}, which is not in this "
                            f"pipeline (nodes: {', '.join(job.jobs)})",
                            keys,
                        )
                    direction = ref.direction or "outputs"
                    ports = source.outputs if direction == "outputs" else source.inputs
                    if ref.name not in ports:
                        raise BindingError(
                            f"{ref.text}: node {ref.node!r} declares no {direction[:-1]} "
                            f"{ref.name!r}{_declared(direction, ports)}",
                            keys,
                        )
                    upstream.add(ref.node)
        graph[name] = upstream
    cycle = find_cycle(graph)
    if cycle:
        raise BindingError(
            "pipeline has a cycle: " + " -> ".join(cycle),
            ("jobs", cycle[0]),
            hint="a step cannot (directly or indirectly) consume its own outputs",
        )
    return graph


def find_cycle(graph: Mapping[str, Collection[str]]) -> list[str]:
    """A cycle as ``[a, b, a]`` (a depends on b depends on a), or an empty list."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        path.append(node)
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == 1:
                return [*path[path.index(dep) :], dep]
            if state.get(dep) is None:
                found = visit(dep)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return []

    for node in graph:
        if state.get(node) is None:
            found = visit(node)
            if found:
                return found
    return []


def topological_levels(graph: Mapping[str, Collection[str]]) -> list[list[str]]:
    """Nodes grouped into levels: every node's dependencies are in earlier levels, and
    the nodes of one level are independent (they may run in parallel). Order within a
    level follows ``graph``'s order. Raises BindingError for a cycle."""
    cycle = find_cycle(graph)
    if cycle:
        raise BindingError("pipeline has a cycle: " + " -> ".join(cycle), ("jobs", cycle[0]))
    placed: set[str] = set()
    levels: list[list[str]] = []
    remaining = list(graph)
    while remaining:
        level = [n for n in remaining if all(d in placed or d not in graph for d in graph[n])]
        levels.append(level)
        placed.update(level)
        remaining = [n for n in remaining if n not in placed]
    return levels


def check_pipeline(job: PipelineJob) -> dict[str, set[str]]:
    """Check every binding of a pipeline and return its graph (see :func:`pipeline_graph`).

    Node inputs may use ``${{parent.inputs.x}}`` (x a pipeline input) and
    ``${{parent.jobs...}}``; node outputs may be ``${{parent.outputs.x}}`` (x a pipeline
    output); node commands are checked against the node's own inputs and outputs.
    Raises BindingError.
    """
    graph = pipeline_graph(job)
    for name, node in job.jobs.items():
        for port, value in node.inputs.items():
            for text, sub in _value_bindings(value):
                keys: KeyPath = ("jobs", name, "inputs", port, *sub)
                for ref in references(text, keys):
                    if ref.scope == "parent.inputs" and ref.name not in job.inputs:
                        raise BindingError(
                            f"{ref.text} names no input of the pipeline"
                            f"{_declared('inputs', job.inputs)}",
                            keys,
                        )
                    if ref.scope in ("inputs", "outputs", "search_space", "parent.outputs"):
                        raise BindingError(
                            f"{ref.text} cannot be used in a node input; use "
                            "${{parent.inputs.<name>}} or ${{parent.jobs.<node>.outputs.<port>}}",
                            keys,
                        )
        for port, out in node.outputs.items():
            if not isinstance(out, str):
                continue
            keys = ("jobs", name, "outputs", port)
            refs = references(out, keys)
            if len(refs) != 1 or refs[0].scope != "parent.outputs" or out.strip() != refs[0].text:
                raise BindingError(
                    f"a node output must be a mapping, null or ${{{{parent.outputs.<name>}}}}, "
                    f"got {out!r}",
                    keys,
                )
            if refs[0].name not in job.outputs:
                raise BindingError(
                    f"{refs[0].text} names no output of the pipeline"
                    f"{_declared('outputs', job.outputs)}",
                    keys,
                )
    return graph
