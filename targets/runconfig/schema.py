"""The JSON Schema of our runconfig YAML, generated from the pydantic model.

Editors use it through the first line of every runconfig we write
(``# yaml-language-server: $schema=...``). A copy is committed at
``docs/schemas/runconfig.schema.json``; regenerate it with
``python -m targets.runconfig.schema > docs/schemas/runconfig.schema.json``
(a test fails when the copy is stale).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from targets.runconfig.model import SCHEMA_URL, RunConfiguration

__all__ = [
    "JSON_SCHEMA_DIALECT",
    "runconfig_json_schema",
    "runconfig_json_schema_text",
    "workspace_schema_reference",
]

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def runconfig_json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of :class:`RunConfiguration`, ``$id`` SCHEMA_URL."""
    generated = RunConfiguration.model_json_schema()
    schema: dict[str, Any] = {"$schema": JSON_SCHEMA_DIALECT, "$id": SCHEMA_URL}
    schema.update((k, v) for k, v in generated.items() if k not in schema)
    return schema


def runconfig_json_schema_text() -> str:
    """The schema as the JSON text committed in ``docs/schemas`` (2-space indent, newline)."""
    return json.dumps(runconfig_json_schema(), indent=2) + "\n"


def workspace_schema_reference(runconfig_path: Path) -> str:
    """A ``$schema`` reference for a runconfig written at ``runconfig_path``: the schema
    is kept up to date in the workspace (``.targets/schemas/runconfig.schema.json``) and
    referenced by a relative path, so editors validate offline."""
    import os

    from targets.workspace import Workspace

    folder = runconfig_path.resolve().parent
    workspace = Workspace.find(folder)
    schema_file = workspace.dir / "schemas" / "runconfig.schema.json"
    text = runconfig_json_schema_text()
    if not schema_file.exists() or schema_file.read_text() != text:
        workspace.ensure()
        schema_file.parent.mkdir(parents=True, exist_ok=True)
        schema_file.write_text(text)
    return os.path.relpath(schema_file, folder)


if __name__ == "__main__":
    print(runconfig_json_schema_text(), end="")
