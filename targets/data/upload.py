"""Outputs with a cloud ``path``: written under ``outputs/<name>`` by the run, uploaded
after the run has completed and its outputs are collected.

``plan_uploads`` runs before submission: it keeps the named outputs whose ``path`` is a
cloud URI (or ``azureml://datastores/NAME/paths/...`` of a registered datastore) and
checks what can be checked without writing (syntax, the extra, the datastore). The plan
is recorded in the run's ``run.json`` (``origin.uploads``). ``upload_after_run`` runs
where the run's outputs are collected: for a completed run, each planned output is
uploaded (``${{name}}`` in its path becomes the run's id); ``uri_file`` uploads the one
file, ``uri_folder`` every file under the folder, keeping relative paths.

Modes: ``upload``, ``rw_mount`` and ``mount`` all upload after the run (no FUSE: the run
writes locally and the files go up at the end), ``direct`` too.

Design choice: only a completed run's outputs are uploaded, so a failed or canceled run
never overwrites good data at the destination; its outputs stay in the run's folder. A
failed upload fails the collection (the run's ``collection_error`` names the URI and the
reason) and the next command about the run tries again; the run's files are kept.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from targets.errors import ConfigError

__all__ = ["plan_uploads", "upload_after_run", "upload_outputs"]

_NAME_BINDING = "${{name}}"


def plan_uploads(
    ws: Any, outputs: Mapping[str, Any] | None, output_types: Mapping[str, Any] | None = None
) -> list[dict[str, str]]:
    """``[{name, type, path, folder}]`` for the outputs to upload; ConfigError (exit 2)
    for a cloud path that cannot be written from here (no extra). An output on a
    datastore that is not registered here stays in the run's outputs only."""
    from targets.data.uris import _import, parse_uri

    plan = []
    for name in outputs or {}:
        declared = (output_types or {}).get(name) or (outputs or {}).get(name)
        path = getattr(declared, "path", None)
        if not path or not isinstance(path, str):
            continue
        rest = path.replace(_NAME_BINDING, "")
        if "${{" in rest:
            continue  # bound to something only Azure ML knows ({default_datastore}): local only
        kind = str(getattr(declared, "type", None) or "uri_folder")
        if kind not in ("uri_file", "uri_folder"):
            continue  # models and tables stay in the run's outputs
        remote = parse_uri(path)
        if remote is not None:
            _import(remote)
        elif path.startswith("azureml://datastores/"):
            from targets.assets import resolve_datastore_uri
            from targets.errors import TargetsError

            try:
                resolve_datastore_uri(ws, rest)
            except TargetsError:
                # Azure ML's own datastores (workspaceblobstore...) are not registered
                # here: the output stays in the run's outputs, as it always did.
                continue
        else:
            continue
        plan.append({"name": name, "type": kind, "path": path, "folder": f"outputs/{name}"})
    return plan


def _files(local: Path, kind: str) -> list[tuple[Path, str]]:
    if kind == "uri_file":
        found = sorted(p for p in local.iterdir() if p.is_file()) if local.is_dir() else []
        if len(found) != 1:
            raise ConfigError(
                f"the uri_file output {local.name!r} holds {len(found)} files; it must hold one"
            )
        return [(found[0], "")]
    return [(p, p.relative_to(local).as_posix()) for p in sorted(local.rglob("*")) if p.is_file()]


def upload_outputs(ws: Any, run_folder: Path, run_id: str, plan: list[dict[str, str]]) -> list[str]:
    """Upload each planned output from ``run_folder``; return the URIs written. Blocks;
    raises ConfigError naming the URI when the storage refuses or cannot be reached."""
    from targets.data.uris import open_filesystem, parse_uri, translated_errors

    written = []
    for item in plan:
        uri = item["path"].replace(_NAME_BINDING, run_id)
        local = run_folder / item["folder"]
        files = _files(local, item["type"]) if local.exists() else []
        remote = parse_uri(uri)
        if remote is None:  # a registered datastore: a local or mounted folder
            from targets.assets import resolve_datastore_uri

            target = resolve_datastore_uri(ws, uri)
            for source, rel in files:
                dest = target / rel if rel else target
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, dest)
            written.append(uri)
            continue
        fs = open_filesystem(remote, anonymous=False)
        with translated_errors(remote, "write"):
            for source, rel in files:
                fs.put_file(str(source), remote.child(rel).path if rel else remote.path)
        written.append(uri)
    return written


def upload_after_run(ws: Any, run_folder: Path, status: str) -> list[str]:
    """The hook where a run's outputs are collected: upload what ``run.json`` planned
    when the run completed. Nothing for other runs or runs without a plan."""
    if status != "Completed":
        return []
    try:
        manifest = json.loads((run_folder / "run.json").read_text())
    except (OSError, ValueError):
        return []
    plan = (manifest.get("origin") or {}).get("uploads") or []
    if not plan:
        return []
    return upload_outputs(ws, run_folder, str(manifest.get("run_id")), plan)
