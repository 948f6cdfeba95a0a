"""Pipeline jobs: steps are child runs, ordered by their ``${{parent.jobs...}}``
bindings. Independent steps run at the same time; a step starts when the steps it reads
from have completed, and receives their output folders as inputs. A failed step stops its
dependents (and, unless ``settings.continue_on_step_failure``, every step not started);
so does a step whose submission is refused. A submitter may return a run that has
already ended (an Azure ML v1 step reusing an earlier run's outputs).

A sweep step is a child run that is itself a sweep parent (:mod:`targets.jobs.sweep_step`);
its outputs are its best trial's. A canceled pipeline cancels its running steps (a sweep
step its trials) and ends after them, never before.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from targets.agent import protocol
from targets.errors import TargetsError
from targets.jobs.bindings import check_pipeline, references
from targets.jobs.model import PipelineJob, SweepNode
from targets.jobs.parent import ParentLog, relay_output
from targets.jobs.reader import LoadedJob
from targets.runs import Run
from targets.workspace import Workspace

__all__ = ["drive_pipeline"]

_CANCEL_WAIT = 120.0
"""Seconds a canceled pipeline waits for its running steps to end."""


def _bound_inputs(job: PipelineJob, node: str, outputs_of: dict[str, Path]) -> dict[str, Any]:
    """The step's inputs with ``${{parent...}}`` bindings replaced by values: another
    step's output folder (a Path) or a pipeline input."""
    bound: dict[str, Any] = {}
    for port, value in job.jobs[node].inputs.items():
        text = value if isinstance(value, str) else getattr(value, "path", None)
        refs = references(text) if isinstance(text, str) else []
        if not refs:
            bound[port] = value
            continue
        ref = refs[0]
        if ref.node is not None and ref.name == "artifacts":
            # Azure ML's default output: the step's whole run folder (outputs/, logs/).
            bound[port] = outputs_of[ref.node].parent
        elif ref.node is not None:  # ${{parent.jobs.<node>.outputs.<port>}}
            bound[port] = outputs_of[ref.node] / ref.name
        elif ref.scope == "parent.inputs":
            bound[port] = job.inputs.get(ref.name)
        else:
            bound[port] = value
    return bound


def _output_types(job: PipelineJob, node: str) -> dict[str, Any]:
    """For outputs bound to ``${{parent.outputs.x}}``: the pipeline output's declaration."""
    found: dict[str, Any] = {}
    for port, value in job.jobs[node].outputs.items():
        text = value if isinstance(value, str) else None
        for ref in references(text) if text else []:
            if ref.scope == "parent.outputs" and ref.name in job.outputs:
                found[port] = job.outputs[ref.name]
    return found


def _outputs_folder(run: Run, sweep: bool) -> Path:
    """Where a completed step's outputs are: its own ``outputs/``, or for a sweep step
    its best trial's."""
    if sweep:
        from targets.jobs.sweep import best_trial

        best = best_trial(run)
        if best is not None:
            return run.workspace.run_dir(str(best["run_id"])) / "outputs"
    return run.folder / "outputs"


def _cancel_all(runs: dict[str, Run], done: dict[str, str], say: ParentLog) -> None:
    """Cancel the steps still running and wait (up to :data:`_CANCEL_WAIT` s) until each
    has ended: a sweep step ends after its trials, so no trial outlives the pipeline."""
    open_runs = {node: run for node, run in runs.items() if node not in done}
    for run in open_runs.values():
        try:
            run.cancel()
        except TargetsError as exc:
            say(f"step could not be canceled: {exc}")
    deadline = time.monotonic() + _CANCEL_WAIT
    for node, run in open_runs.items():
        while time.monotonic() < deadline:
            try:
                record = run.refresh()
            except TargetsError:
                break
            if record.status in protocol.TERMINAL:
                say(f"step {node}: {record.status}")
                break
            time.sleep(0.3)
        run.close()


def drive_pipeline(
    ws: Workspace,
    loaded: LoadedJob,
    parent: Run,
    compute: str | None,
    say: ParentLog,
    cancelled: Callable[[], bool],
    *,
    submit: Callable[..., Run] | None = None,
) -> str:
    from targets.jobs.execute import compute_name
    from targets.jobs.submit import submit_command

    submit_child = submit or submit_command

    job = loaded.job
    assert isinstance(job, PipelineJob)
    graph = check_pipeline(job)
    keep_going = bool(getattr(job.settings, "continue_on_step_failure", False))
    runs: dict[str, Run] = {}
    done: dict[str, str] = {}  # node -> final status ("Skipped" for never started)
    outputs_of: dict[str, Path] = {}
    say(f"pipeline: {len(graph)} steps")
    while len(done) < len(graph):
        if cancelled():
            _cancel_all(runs, done, say)
            say("pipeline canceled")
            return "canceled"
        failed = [n for n, s in done.items() if s != protocol.COMPLETED]
        for node in graph:
            if node in runs or node in done:
                continue
            deps = graph[node]
            broken = [d for d in deps if d in done and done[d] != protocol.COMPLETED]
            if broken or (failed and not keep_going):
                done[node] = "Skipped"
                why = (
                    f"step {broken[0]} {done[broken[0]].lower()}"
                    if broken
                    else "an earlier step failed"
                )
                say(f"step {node}: not run: {why}")
                continue
            if not all(done.get(d) == protocol.COMPLETED for d in deps):
                continue
            step = job.jobs[node]
            target = compute or compute_name(job.node_compute(node), ws)
            try:
                if isinstance(step, SweepNode):
                    from targets.jobs.sweep_step import start_sweep_step

                    runs[node] = start_sweep_step(
                        ws,
                        loaded,
                        node,
                        compute=target,
                        given_inputs=_bound_inputs(job, node, outputs_of),
                        output_types=_output_types(job, node),
                        parent=parent,
                    )
                else:
                    runs[node] = submit_child(
                        ws,
                        loaded,
                        step,
                        compute=target,
                        node=node,
                        inputs={},
                        given_inputs=_bound_inputs(job, node, outputs_of),
                        outputs=dict(step.outputs),
                        output_types=_output_types(job, node),
                        experiment=parent.experiment,
                        display_name=step.display_name or node,
                        parent_id=parent.id,
                        origin={"pipeline": parent.id, "step": node},
                        warn=lambda line, n=node: say(f"step {n}: {line}"),
                    )
            except TargetsError as exc:
                # The step fails, not the driver: running steps are still followed.
                done[node] = protocol.FAILED
                say(f"step {node}: could not be submitted: {exc}")
                continue
            started = runs[node].record
            if started.status in protocol.TERMINAL:
                # A submitter may answer with a run that already ended (a v1 step reusing
                # an earlier run's outputs): it is collected like any other below.
                say(f"step {node}: {started.message or started.status} ({runs[node].id})")
            else:
                say(f"step {node}: started {runs[node].id} on {target}")
        time.sleep(0.3)
        for node, run in runs.items():
            if node in done:
                continue
            record = run.refresh()
            if record.status in protocol.TERMINAL and record.collected:
                done[node] = record.status
                outputs_of[node] = _outputs_folder(run, isinstance(job.jobs[node], SweepNode))
                relay_output(say, node, run)
                run.close()
                extra = f" (exit code {record.exit_code})" if record.exit_code else ""
                say(f"step {node}: {record.status}{extra}")
    bad = [n for n, s in done.items() if s != protocol.COMPLETED]
    if bad:
        raise TargetsError(f"pipeline steps did not complete: {', '.join(sorted(bad))}")
    return f"all {len(done)} steps completed"
