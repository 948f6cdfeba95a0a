"""``targets job download``: a job's files laid out as ``az ml job download`` lays them
out: the job's own files (``outputs/``, ``logs/``, its output logs) under
``DIR/artifacts/``, a named output under ``DIR/named-outputs/NAME/``."""

from __future__ import annotations

import difflib
from pathlib import Path

from targets.errors import UsageError
from targets.workspace import Workspace

__all__ = ["download_job", "named_outputs"]


def named_outputs(ws: Workspace, run_id: str) -> dict[str, str]:
    """The named outputs of a command job (or step, or trial): name -> its folder in the
    run (``outputs/NAME``). Empty for runs that are not v2 commands."""
    from targets.runs import Run

    run = Run(ws, run_id)
    manifest = run.folder / "run.json"
    if not manifest.exists():
        return {}
    import json

    origin = json.loads(manifest.read_text()).get("origin") or {}
    found = origin.get("outputs") or {}
    return {str(k): str(v) for k, v in found.items()} if isinstance(found, dict) else {}


def download_job(
    ws: Workspace,
    name: str,
    dest: Path,
    *,
    output_name: str | None = None,
    everything: bool = False,
) -> list[Path]:
    """Copy the job's files under ``dest`` (see the module doc); returns the files
    written. ``output_name``: that named output only; ``everything``: the job's files and
    every named output. Raises UsageError for an unknown job or output name (nothing is
    written then)."""
    from targets.runs import Run

    run = Run(ws, name)
    try:
        outputs = named_outputs(ws, run.id)
        if output_name is not None and output_name not in outputs:
            declared = sorted(outputs)
            close = difflib.get_close_matches(output_name, declared, n=1)
            guess = f" (did you mean {close[0]!r}?)" if close else ""
            kind = run.record.kind
            where = (
                f"; the outputs of a {kind} belong to its steps: targets job list "
                f"-p {run.id}, then download from one"
                if kind in ("pipeline", "sweep")
                else ""
            )
            raise UsageError(
                f"job {run.id} has no named output {output_name!r}{guess}{where}",
                hint=f"named outputs: {', '.join(declared) or 'none'}",
            )
        written: list[Path] = []
        if output_name is None:
            written += run.download_files(prefix="", output_directory=dest / "artifacts")
        wanted: list[str] = (
            [output_name] if output_name is not None else sorted(outputs) if everything else []
        )
        for out in wanted:
            written += run.download_files(
                prefix=outputs[out].rstrip("/") + "/",
                output_directory=dest / "named-outputs" / out,
                append_prefix=False,
            )
        return written
    finally:
        run.close()
