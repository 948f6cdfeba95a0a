"""``azureml.pipeline.core.pipeline``: :class:`Pipeline`.

``Experiment(ws, name).submit(pipeline)`` (or ``pipeline.submit(name)``) checks the whole
pipeline, copies each step's source folder, records a parent run and starts the v2
pipeline driver (:mod:`targets.jobs.drive`) on it; the driver submits each step as a
child run on its own target, in dependency order, through
:func:`targets.azureml.pipeline._submit.step_submitter`. One engine for v1 and v2
pipelines.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from targets.azureml.pipeline._document import (
    StepSpec,
    copy_source,
    pipeline_document,
)
from targets.azureml.pipeline.core.builder import (
    PipelineData,
    PipelineStep,
    StepPlan,
    StepSequence,
)
from targets.errors import TargetsError, UsageError
from targets.jobs.bindings import find_cycle

if TYPE_CHECKING:
    from targets.azureml.pipeline.core.run import PipelineRun
    from targets.experiment import Experiment
    from targets.snapshot import Snapshot
    from targets.workspace import Workspace

__all__ = ["Pipeline"]

SUBMITTER = "targets.azureml.pipeline._submit:step_submitter"


def _node_name(name: str, taken: set[str]) -> str:
    """A v2 node name (``[a-z_][a-z0-9_]*``) for a v1 step name, unique in ``taken``."""
    base = re.sub(r"[^a-z0-9_]+", "_", name.lower()).strip("_") or "step"
    if not base[0].isalpha() and base[0] != "_":
        base = f"step_{base}"
    node, count = base, 1
    while node in taken:
        count += 1
        node = f"{base}_{count}"
    taken.add(node)
    return node


class Pipeline:
    """Steps to run in dependency order. ``steps`` may be steps, a :class:`StepSequence`,
    or a list mixing both. With ``resolve_closure`` (v1's default), steps that produce a
    listed step's PipelineData, or that it must run after, are included too.

    Building a Pipeline does no I/O; ``validate()`` checks the graph."""

    def __init__(
        self,
        workspace: Workspace,
        steps: Sequence[PipelineStep | StepSequence] | PipelineStep | StepSequence,
        description: str | None = None,
        default_datastore: Any = None,
        default_source_directory: str | None = None,
        resolve_closure: bool = True,
        **kwargs: Any,
    ) -> None:
        self._workspace = workspace
        self.description = description
        self._resolve_closure = resolve_closure
        items = [steps] if isinstance(steps, PipelineStep | StepSequence) else list(steps)
        listed: list[PipelineStep] = []
        for item in items:
            if isinstance(item, StepSequence):
                listed.extend(item.steps)
            elif isinstance(item, PipelineStep):
                listed.append(item)
            else:
                raise UsageError(f"Pipeline steps must be steps or a StepSequence, got {item!r}")
        if not listed:
            raise UsageError("a Pipeline needs at least one step")
        self._listed = listed

    def __repr__(self) -> str:
        return f"Pipeline(steps={[s.name for s in self._listed]!r})"

    # -- the graph ---------------------------------------------------------------------

    def _steps(self) -> list[PipelineStep]:
        steps: list[PipelineStep] = []
        todo = list(self._listed)
        while todo:
            step = todo.pop(0)
            if step in steps:
                continue
            steps.append(step)
            if self._resolve_closure:
                for data in step._data_inputs():
                    todo.extend(data._producers)
                todo.extend(step._after)
        return steps

    def _graph(
        self,
    ) -> tuple[dict[str, PipelineStep], dict[str, dict[str, str]], dict[str, list[str]]]:
        """(node -> step, node -> {PipelineData name -> producing node}, node -> nodes it
        follows). Raises UsageError naming the step and the data for a PipelineData no
        step produces, produced twice or two PipelineData of one name, a step to follow
        that is not in the pipeline, and a cycle."""
        steps = self._steps()
        taken: set[str] = set()
        nodes = {_node_name(step.name, taken): step for step in steps}
        node_of = {id(step): node for node, step in nodes.items()}
        by_name: dict[str, PipelineData] = {}
        for step in steps:
            for data in [*step._data_inputs(), *step.outputs]:
                other = by_name.setdefault(data.name, data)
                if other is not data:
                    raise UsageError(
                        f"two different PipelineData are named {data.name!r}",
                        hint="give each PipelineData of a pipeline its own name",
                    )
        reads: dict[str, dict[str, str]] = {}
        after: dict[str, list[str]] = {}
        for node, step in nodes.items():
            reads[node] = {}
            for data in step._data_inputs():
                producers = [p for p in data._producers if id(p) in node_of]
                if not producers:
                    raise UsageError(
                        f"step {step.name!r} reads PipelineData {data.name!r}, which no step "
                        "of the pipeline produces",
                        hint=f"list PipelineData {data.name!r} in the outputs of the step "
                        "that writes it, and put that step in the pipeline",
                    )
                if len(producers) > 1:
                    names = ", ".join(repr(p.name) for p in producers)
                    raise UsageError(
                        f"PipelineData {data.name!r} is an output of several steps ({names})",
                        hint="each PipelineData is written by one step; make one per step",
                    )
                reads[node][data.name] = node_of[id(producers[0])]
            after[node] = []
            for earlier in step._after:
                if id(earlier) not in node_of:
                    raise UsageError(
                        f"step {step.name!r} runs after step {earlier.name!r}, which is not "
                        "in the pipeline",
                        hint="add it to the pipeline's steps (or keep resolve_closure=True)",
                    )
                if node_of[id(earlier)] not in after[node]:
                    after[node].append(node_of[id(earlier)])
        deps = {n: {*reads[n].values(), *after[n]} for n in nodes}
        cycle = find_cycle(deps)
        if cycle:
            path = " -> ".join(repr(nodes[n].name) for n in cycle)
            raise UsageError(
                f"the pipeline has a cycle: step {path} (each needs the one after it first)",
                hint="a step cannot, directly or through other steps, read its own outputs "
                "or run after itself",
            )
        order: list[str] = []
        while len(order) < len(nodes):  # dependencies first (the graph has no cycle)
            order += [n for n in nodes if n not in order and deps[n] <= set(order)]
        return {n: nodes[n] for n in order}, reads, after

    def validate(self) -> list[str]:
        """Check the graph; v1 returns the errors found: here an empty list, or
        UsageError for the first problem."""
        self._graph()
        return []

    # -- submission --------------------------------------------------------------------

    def submit(
        self,
        experiment_name: str,
        pipeline_parameters: Mapping[str, Any] | None = None,
        continue_on_step_failure: bool = False,
        regenerate_outputs: bool = False,
        **kwargs: Any,
    ) -> PipelineRun:
        """v1's ``pipeline.submit(experiment_name)``: the same as
        ``Experiment(ws, experiment_name).submit(pipeline)``."""
        from targets.experiment import Experiment

        run = Experiment(self._workspace, experiment_name).submit(
            self,
            pipeline_parameters=pipeline_parameters,
            continue_on_step_failure=continue_on_step_failure,
            regenerate_outputs=regenerate_outputs,
            **kwargs,
        )
        return cast("PipelineRun", run)  # what _targets_submit returns

    def publish(
        self, name: str | None = None, description: str | None = None, **kwargs: Any
    ) -> Any:
        raise UsageError(
            "Pipeline.publish needs the Azure ML service (a published pipeline is a REST "
            "endpoint there)",
            hint="submit the pipeline with Experiment(ws, name).submit(pipeline); schedule "
            "it with cron or CI calling your control script",
        )

    def _targets_submit(
        self,
        experiment: Experiment,
        tags: dict[str, str],
        pipeline_parameters: Mapping[str, Any] | None = None,
        continue_on_step_failure: bool = False,
        regenerate_outputs: bool = False,
        **kwargs: Any,
    ) -> PipelineRun:
        """Check everything, then record the parent run and start its driver. Nothing is
        written before every check passed (UsageError)."""
        from targets.azureml.pipeline.core.run import PipelineRun
        from targets.jobs.parent import create_parent, launch_driver
        from targets.workspace import new_run_id

        ws = experiment.workspace
        nodes, reads, after = self._graph()
        parameters = dict(pipeline_parameters or {})
        plans: dict[str, StepPlan] = {}
        snapshots: dict[str, Snapshot] = {}
        for node, step in nodes.items():
            plans[node] = plan = step._plan(ws, parameters)
            _check_compute(ws, step, plan)
            snapshots[node] = _snapshot(step, plan)
        specs = {
            node: _spec(
                step,
                plans[node],
                snapshots[node],
                reads[node],
                after[node],
                reuse=step.allow_reuse and not regenerate_outputs,
            )
            for node, step in nodes.items()
        }
        document = pipeline_document(
            specs, experiment=experiment.name, continue_on_step_failure=continue_on_step_failure
        )
        # The v2 reader checks the document as it will when the driver loads it.
        from targets.jobs.bindings import check_pipeline
        from targets.jobs.model import PipelineJob

        check_pipeline(PipelineJob.model_validate(document))

        run_id = new_run_id(experiment.name)
        folder = ws.run_dir(run_id)
        create_parent(
            ws,
            kind="pipeline",
            loaded_path=folder / "pipeline.yml",
            overrides=(),
            compute=None,
            experiment=experiment.name,
            display_name=self.description,
            name=run_id,
            entry=f"pipeline of {len(nodes)} steps: {', '.join(s.name for s in nodes.values())}",
            extra={
                "submitter": SUBMITTER,
                "azureml_v1": {
                    "steps": {n: s.model_dump(mode="json") for n, s in specs.items()},
                    "tags": dict(tags),
                },
            },
        )
        try:
            for node, spec in specs.items():
                copy_source(snapshots[node], folder / spec.source, plans[node].added_files)
            (folder / "pipeline.yml").write_text(json.dumps(document, indent=1))
            launch_driver(ws, run_id)
        except BaseException as exc:
            ws.ledger.update(
                run_id,
                status="Failed",
                ended_at=time.time(),
                message=f"could not start the pipeline: {exc}",
                collected=True,
            )
            raise
        return PipelineRun(ws, run_id)


def _check_compute(ws: Workspace, step: PipelineStep, plan: StepPlan) -> None:
    try:
        ws.target_record(plan.compute)
    except TargetsError as exc:
        raise UsageError(f"step {step.name!r}: {exc}", hint=exc.hint) from exc


def _snapshot(step: PipelineStep, plan: StepPlan) -> Snapshot:
    from targets.snapshot import limits_from_env, symlinks_from_env, take_snapshot

    source = plan.source_dir.resolve()
    if not source.is_dir():
        raise UsageError(f"step {step.name!r}: the source directory {source} does not exist")
    for name in plan.added_files:
        if (source / name).exists():
            raise UsageError(
                f"step {step.name!r}: {source / name} is in the way: targets adds a file of "
                "that name to the step",
                hint="rename your file",
            )
    script = plan.runconfig.script
    if script and script not in plan.added_files:
        full = (source / script).resolve()
        if Path(script).is_absolute() or not full.is_relative_to(source):
            raise UsageError(
                f"step {step.name!r}: the script {script!r} is not inside the source "
                f"directory {source}",
                hint="give source_directory a folder that contains the script",
            )
        if not full.is_file():
            raise UsageError(
                f"step {step.name!r}: the script {script!r} does not exist in {source}"
            )
    for name, path in plan.local_inputs.items():
        if not path.exists():
            raise UsageError(f"step {step.name!r}: input {name!r}: {path} does not exist")
    return take_snapshot(source, limits=limits_from_env(), symlinks=symlinks_from_env())


def _spec(
    step: PipelineStep,
    plan: StepPlan,
    snapshot: Snapshot,
    reads: dict[str, str],
    after: list[str],
    *,
    reuse: bool,
) -> StepSpec:
    import shlex

    # The snapshot folder is named by what it holds: the source and the files added.
    added = json.dumps(sorted(plan.added_files.items()))
    digest = hashlib.sha256(f"{snapshot.digest}\n{added}".encode()).hexdigest()
    config = plan.runconfig
    config.target = plan.compute
    entry_args = [
        re.sub(r"\$\{\{(inputs|outputs)\.(\w+)\}\}", r"<\2>", a) for a in config.arguments
    ]
    entry = shlex.join([config.script, *entry_args]) if config.script else str(config.command)
    return StepSpec(
        name=step.name,
        kind=plan.kind,
        compute=plan.compute,
        runconfig=config.model_dump(mode="json", exclude_defaults=True),
        source=f"sources/{digest[:20]}",
        source_digest=digest,
        allow_reuse=reuse,
        inputs=reads,
        local_inputs={k: str(v.resolve()) for k, v in plan.local_inputs.items()},
        outputs=[d.name for d in step.outputs],
        after=after,
        entry=entry,
    )
