"""``type: spark`` components (``component: ./spark-job-component.yml`` in a pipeline
step): the component's model, and the step it becomes once expanded.

A spark component declares typed ``inputs``/``outputs`` like a command component and
carries a spark body (``code``, ``entry``, ``py_files``, ``jars``, ``files``,
``archives``, ``conf``, ``args``, ``environment``). A step that uses it becomes an
inline spark step (:class:`~targets.jobs.model.SparkNode`): the component's body with
its local paths made absolute, the step's bound inputs and outputs, and the step's own
``compute``, ``resources``, ``identity`` and ``conf`` (the step's ``conf`` keys win).
"""

from __future__ import annotations

from typing import Any, Literal

from targets.jobs.components.model import STEP_KEYS, _ComponentMeta
from targets.jobs.components.source import LoadedComponent
from targets.jobs.model import _SparkBody
from targets.runconfig.yaml_lines import KeyPath

__all__ = ["SPARK_NODE_KEYS", "SparkComponent", "spark_node"]

SPARK_NODE_KEYS = (
    *STEP_KEYS,
    "resources",
    "identity",
    "conf",
    "args",
    "entry",
    "py_files",
    "jars",
    "files",
    "archives",
    "environment",
)
"""Keys a step that uses a spark component may have (the SDK's spark node: its spark
settings override the component's)."""

_BODY_LISTS = ("py_files", "jars", "files", "archives")


class SparkComponent(_ComponentMeta, _SparkBody):
    """``type: spark``: an entry file or JVM class run by spark-submit."""

    type: Literal["spark"]


def spark_node(
    node: dict[str, Any],
    loaded: LoadedComponent,
    where: KeyPath,
    r: Any,
    parent_inputs: dict[str, Any],
) -> dict[str, Any]:
    """The inline spark step for ``node`` (a step whose ``component:`` is ``loaded``, a
    SparkComponent). ``r`` is the expansion's Resolver. Raises ConfigError (located) for
    an unknown key, a step type other than spark, or a binding the component refuses."""
    from targets.jobs.components import expand

    expand._check_keys(node, SPARK_NODE_KEYS, where, r, "a step that uses a spark component")
    kind = node.get("type", "spark")
    if kind != "spark":
        raise r.error(
            f"step type {kind!r} does not match {loaded.title}, a spark component",
            (*where, "type"),
            hint="write type: spark",
        )
    inputs = expand._bind_inputs(
        node.get("inputs") or {}, loaded, (*where, "inputs"), r, parent_inputs
    )
    outputs = expand._bind_outputs(node.get("outputs") or {}, loaded, (*where, "outputs"), r)
    merged = {
        k: v for k, v in node.items() if k not in ("component", "inputs", "outputs", "$schema")
    }
    merged["type"] = "spark"
    raw = loaded.raw
    body: dict[str, Any] = {}
    if raw.get("code") is not None:
        body["code"] = expand._absolute(raw["code"], loaded.folder)
    if raw.get("environment") is not None:
        body["environment"] = expand._environment(
            raw["environment"], loaded.folder, r, ("environment",)
        )
    for key in ("entry", "args", *_BODY_LISTS):
        if raw.get(key) is not None:
            body[key] = raw[key]
    for key, value in body.items():
        if key not in node or key == "code":
            merged[key] = value
            r.point((*where, key), loaded, (key,))
    conf = {**(raw.get("conf") or {}), **(node.get("conf") or {})}
    if conf:
        merged["conf"] = conf
    merged["inputs"] = inputs
    merged["outputs"] = outputs
    return merged
