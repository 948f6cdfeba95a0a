"""The submitter of v1 pipeline steps, used by the pipeline driver.

``run.json`` of a v1 pipeline's parent names :func:`step_submitter`; the driver
(:mod:`targets.jobs.drive`) calls it once and then submits each step through the function
it returns, with the keywords of :func:`targets.jobs.submit.submit_command`. Each step
runs its own saved ``RunConfiguration`` through :func:`targets.runs.submit_run` (the one
way every run starts), from the source copy taken at submission, with the PipelineData
it reads shipped in its snapshot under ``_inputs/<name>``.

Reuse (``allow_reuse``): a step's key is a hash of what decides its result -- the
snapshot of its source, its run configuration with the arguments resolved, its target,
and the content of every input. When a completed run with the same key exists and its
outputs are still in the workspace, the step is not run again: a child run is recorded
as completed (``reused_from`` in its ``run.json``) holding those outputs (hard links,
else copies), and later steps read them.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from targets.azureml.pipeline._document import StepSpec
from targets.errors import TargetsError
from targets.runs import Run
from targets.workspace import Workspace

__all__ = ["step_submitter"]

INPUTS_DIR = "_inputs"


def step_submitter(ws: Workspace, info: dict[str, Any]) -> Callable[..., Run]:
    """The function that submits each step of the pipeline whose ``run.json`` is ``info``."""
    steps = {
        node: StepSpec.model_validate(raw) for node, raw in info["azureml_v1"]["steps"].items()
    }
    parent_folder = ws.run_dir(str(info["run_id"]))

    def submit(
        ws: Workspace,
        loaded: Any,
        body: Any,
        *,
        compute: str,
        node: str | None = None,
        given_inputs: dict[str, Any] | None = None,
        experiment: str | None = None,
        display_name: str | None = None,
        parent_id: str | None = None,
        origin: dict[str, Any] | None = None,
        **_: Any,
    ) -> Run:
        if node is None or node not in steps:
            raise TargetsError(f"the pipeline has no step {node!r}")
        return _submit_step(
            ws,
            steps[node],
            parent_folder,
            given=given_inputs or {},
            experiment=experiment,
            parent_id=parent_id,
            origin=origin or {},
        )

    return submit


def _submit_step(
    ws: Workspace,
    spec: StepSpec,
    parent_folder: Path,
    *,
    given: dict[str, Any],
    experiment: str | None,
    parent_id: str | None,
    origin: dict[str, Any],
) -> Run:
    from targets.jobs.bindings import render
    from targets.runconfig.model import RunConfiguration
    from targets.runs import submit_run
    from targets.snapshot import Snapshot, limits_from_env, snapshot_file, take_snapshot

    sources: dict[str, Path] = {name: Path(p) for name, p in spec.local_inputs.items()}
    for name in spec.inputs:
        value = given.get(name)
        if not isinstance(value, Path) or not value.exists():
            raise TargetsError(
                f"step {spec.name!r}: the step that writes PipelineData {name!r} left no "
                f"folder outputs/{name}",
                hint=f"the producing script must write into the path it is given for {name!r}",
            )
        sources[name] = value
    extra: dict[str, Snapshot] = {}
    values: dict[str, str] = {}
    for name, path in sources.items():
        if not path.exists():
            raise TargetsError(f"step {spec.name!r}: input {name!r}: {path} does not exist")
        prefix = f"{INPUTS_DIR}/{name}"
        if path.is_dir():
            extra[prefix] = take_snapshot(
                path, limits=limits_from_env(), cache_path=ws.cache_dir / "snapshot-hashes.db"
            )
            values[f"inputs.{name}"] = prefix
        else:
            extra[prefix] = snapshot_file(path)
            values[f"inputs.{name}"] = f"{prefix}/{path.name}"
    for name in spec.outputs:
        values[f"outputs.{name}"] = f"outputs/{name}"

    config = RunConfiguration.model_validate(spec.runconfig)
    config.arguments = [render(a, values) for a in config.arguments]
    config.target = spec.compute
    key = _reuse_key(spec, config, extra)
    experiment = experiment or ws.default_experiment()
    step_origin = {**origin, "azureml_v1_step": spec.name, "reuse_key": key}
    if spec.allow_reuse:
        earlier = _reusable(ws, key)
        if earlier is not None:
            return _reused(ws, earlier, spec, experiment, parent_id, step_origin)
    run = submit_run(
        ws,
        config,
        source_dir=parent_folder / spec.source,
        experiment=experiment,
        display_name=spec.name,
        parent_id=parent_id,
        origin=step_origin,
        extra_files=extra,
        entry=spec.entry,
    )
    _remember(ws, key, run.id)
    return run


# -- reuse ---------------------------------------------------------------------------------


def _reuse_key(spec: StepSpec, config: Any, extra: dict[str, Any]) -> str:
    facts = {
        "kind": spec.kind,
        "source": spec.source_digest,
        "runconfig": config.model_dump(mode="json", exclude_defaults=True),
        "inputs": {prefix: snap.digest for prefix, snap in sorted(extra.items())},
        "outputs": sorted(spec.outputs),
    }
    return hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()


def _index(ws: Workspace, key: str) -> Path:
    return ws.dir / "reuse" / f"{key}.json"


def _remember(ws: Workspace, key: str, run_id: str) -> None:
    path = _index(ws, key)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(json.dumps({"run_id": run_id}))
    tmp.replace(path)


def _reusable(ws: Workspace, key: str) -> Run | None:
    """The last run with this key, when it completed and its outputs are still here."""
    from targets.agent import protocol

    try:
        run_id = json.loads(_index(ws, key).read_text())["run_id"]
    except (OSError, ValueError, KeyError):
        return None
    record = ws.ledger.get(str(run_id))
    if record is None or record.status != protocol.COMPLETED or not record.collected:
        return None
    run = Run(ws, record.id)
    return run if (run.folder / "outputs").is_dir() else None


def _link_tree(source: Path, dest: Path) -> None:
    def link(src: str, dst: str) -> None:
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)

    shutil.copytree(source, dest, copy_function=link, symlinks=True)


def _reused(
    ws: Workspace,
    earlier: Run,
    spec: StepSpec,
    experiment: str,
    parent_id: str | None,
    origin: dict[str, Any],
) -> Run:
    """A completed child run holding ``earlier``'s outputs (see the module doc)."""
    from targets.agent import protocol
    from targets.ledger import RunRecord
    from targets.workspace import new_run_id

    first = _first_run(earlier) or earlier.id
    run_id = new_run_id(experiment)
    folder = ws.run_dir(run_id)
    folder.mkdir(parents=True)
    _link_tree(earlier.folder / "outputs", folder / "outputs")
    manifest: dict[str, Any] = {}
    with contextlib.suppress(OSError, ValueError):
        manifest = json.loads((earlier.folder / "run.json").read_text())
    manifest.update(
        run_id=run_id,
        experiment=experiment,
        origin={**origin, "reused_from": first},
    )
    (folder / "run.json").write_text(json.dumps(manifest, separators=(",", ":")))
    message = f"reused the outputs of run {first} (allow_reuse)"
    (folder / "driver.log").write_text(message + "\n")
    now = time.time()
    ws.ledger.insert(
        RunRecord(
            id=run_id,
            experiment=experiment,
            target=earlier.record.target,
            kind=earlier.record.kind,
            status=protocol.COMPLETED,
            created_at=now,
            parent_id=parent_id,
            display_name=spec.name,
            entry=spec.entry,
            started_at=now,
            ended_at=now,
            exit_code=0,
            message=message,
            collected=True,
        )
    )
    return Run(ws, run_id)


def _first_run(run: Run) -> str | None:
    """The run that really ran, when ``run`` itself reused another's outputs."""
    try:
        origin = json.loads((run.folder / "run.json").read_text()).get("origin") or {}
    except (OSError, ValueError):
        return None
    value = origin.get("reused_from")
    return str(value) if value else None
