"""The runconfig JSON Schema: generated from the model, committed for editors, and
referenced by every example runconfig."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from targets.runconfig import RunConfiguration, load_runconfig, runconfig_json_schema
from targets.runconfig.model import SCHEMA_URL
from targets.runconfig.schema import runconfig_json_schema_text

REPO = Path(__file__).resolve().parent.parent
COMMITTED = REPO / "docs" / "schemas" / "runconfig.schema.json"
EXAMPLES = sorted((REPO / "runconfigs").glob("*.yml"))
SCHEMA_LINE = "# yaml-language-server: $schema=../docs/schemas/runconfig.schema.json"


def test_schema_declares_its_dialect_and_id() -> None:
    schema = runconfig_json_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] == SCHEMA_URL
    assert schema["type"] == "object"
    assert schema["additionalProperties"] is False
    assert set(schema["properties"]) == set(RunConfiguration.model_fields)


def test_committed_copy_is_up_to_date() -> None:
    assert COMMITTED.read_text() == runconfig_json_schema_text(), (
        "regenerate it: python -m targets.runconfig.schema > docs/schemas/runconfig.schema.json"
    )
    assert json.loads(COMMITTED.read_text()) == runconfig_json_schema()


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_every_example_points_at_the_schema_and_loads(path: Path) -> None:
    assert path.read_text().splitlines()[0] == SCHEMA_LINE
    loaded = load_runconfig(path, project_dir=REPO)
    assert loaded.format == "targets"
    assert loaded.warnings == ()
    assert loaded.source_directory.is_dir()
    script = loaded.config.script
    assert script is not None
    assert (loaded.source_directory / script).is_file()


def test_saved_runconfigs_reference_a_schema_file_that_exists(tmp_path, monkeypatch):
    import json as _json

    from targets.runconfig.io import load_runconfig, save_runconfig
    from targets.runconfig.model import RunConfiguration
    from targets.workspace import Workspace

    Workspace(tmp_path).ensure()  # a real workspace (an empty .targets/ is not one)
    target = tmp_path / "runconfigs" / "train.yml"
    save_runconfig(RunConfiguration(script="train.py"), target)
    first = target.read_text().splitlines()[0]
    assert first.startswith("# yaml-language-server: $schema=")
    reference = first.split("$schema=", 1)[1]
    schema_file = (target.parent / reference).resolve()
    assert schema_file == (tmp_path / ".targets" / "schemas" / "runconfig.schema.json")
    assert _json.loads(schema_file.read_text())["title"] == "targets RunConfiguration"
    (tmp_path / "train.py").write_text("")
    assert load_runconfig(target, project_dir=tmp_path).config.script == "train.py"
