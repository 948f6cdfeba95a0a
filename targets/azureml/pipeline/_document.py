"""What a submitted v1 pipeline leaves in its parent run's folder for the driver.

- ``pipeline.yml``: a v2 pipeline document (JSON, which YAML reads) holding the graph:
  one command node per step, with its compute, an input
  ``${{parent.jobs.<producer>.outputs.<name>}}`` per PipelineData it reads, and an input
  bound to the ``_done`` output of each step it must follow (``StepSequence``,
  ``run_after``). The v2 engine (:func:`targets.jobs.pipeline.drive_pipeline`) orders
  and follows the steps from it.
- ``run.json`` key ``azureml_v1``: each step's :class:`StepSpec` (its saved
  ``RunConfiguration``, arguments with placeholders, snapshot folder, reuse flag), read by
  the submitter (:mod:`targets.azureml.pipeline._submit`) that run.json's ``submitter``
  names.
- ``sources/<digest>/``: a copy of each step's source folder taken at submission, as v1
  snapshots it then: editing the project while the pipeline runs changes nothing.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from targets.snapshot import Snapshot

__all__ = ["DONE", "StepSpec", "copy_source", "pipeline_document"]

DONE = "_done"
"""The output port an ordering-only dependency binds to (it carries nothing)."""


class StepSpec(BaseModel):
    """One step as the driver's submitter needs it."""

    model_config = ConfigDict(extra="forbid")

    name: str
    """The step's v1 name (the child run's display name)."""
    kind: str
    compute: str
    runconfig: dict[str, Any]
    """The step's RunConfiguration; its arguments hold ``${{inputs.x}}``/``${{outputs.y}}``."""
    source: str
    """The step's snapshot folder, relative to the parent run's folder."""
    source_digest: str
    allow_reuse: bool
    inputs: dict[str, str] = Field(default_factory=dict)
    """PipelineData read: name -> the node that writes it."""
    local_inputs: dict[str, str] = Field(default_factory=dict)
    """Local data read: name -> absolute path."""
    outputs: list[str] = Field(default_factory=list)
    after: list[str] = Field(default_factory=list)
    """Nodes this step follows without reading their data."""
    entry: str


def copy_source(snapshot: Snapshot, dest: Path, added: dict[str, str]) -> None:
    """Copy the files of ``snapshot`` (what its ignore rules keep) into ``dest``, plus the
    ``added`` files; ``dest`` is made here. Raises OSError."""
    if dest.exists():
        return  # the same content (the folder is named by its digest)
    tmp = dest.with_name(dest.name + ".part")
    tmp.mkdir(parents=True)
    for entry in snapshot.files:
        target = tmp / entry.path
        target.parent.mkdir(parents=True, exist_ok=True)
        if entry.link is not None:
            os.symlink(entry.link, target)
            continue
        shutil.copyfile(snapshot.source(entry.path), target)
        target.chmod(entry.mode)
    for name, text in added.items():
        (tmp / name).write_text(text)
    tmp.rename(dest)


def pipeline_document(
    specs: dict[str, StepSpec], *, experiment: str, continue_on_step_failure: bool
) -> dict[str, Any]:
    """The v2 pipeline document of the steps (see the module doc)."""
    followed = {dep for spec in specs.values() for dep in spec.after}
    jobs: dict[str, Any] = {}
    for node, spec in specs.items():
        inputs: dict[str, str] = {
            name: "${{parent.jobs." + producer + ".outputs." + name + "}}"
            for name, producer in spec.inputs.items()
        }
        for dep in spec.after:
            inputs[f"_after_{dep}"] = "${{parent.jobs." + dep + ".outputs." + DONE + "}}"
        outputs: dict[str, Any] = {name: {"type": "uri_folder"} for name in spec.outputs}
        if node in followed:
            outputs[DONE] = {"type": "uri_folder"}
        jobs[node] = {
            "type": "command",
            "display_name": spec.name,
            # Never run: the submitter runs the step's own RunConfiguration.
            "command": "true",
            "environment": {"image": "unused", "description": "the step's RunConfiguration"},
            "code": spec.source,
            "compute": f"azureml:{spec.compute}",
            "inputs": inputs,
            "outputs": outputs,
        }
    return {
        "type": "pipeline",
        "experiment_name": experiment,
        "settings": {"continue_on_step_failure": continue_on_step_failure},
        "jobs": jobs,
    }
