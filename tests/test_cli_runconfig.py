"""`targets runconfig validate|convert` and `targets schema runconfig` as a user runs them."""

from __future__ import annotations

import json
import shutil

from tests.conftest import REPO

CORPUS_V1 = REPO / "tests" / "data" / "azureml-corpus" / "v1"


def test_convert_an_azure_ml_v1_file_and_run_the_result(project, cli, write):
    shutil.copytree(
        CORPUS_V1 / "Azure__MachineLearningNotebooks" / "aml_config", project / "aml_config"
    )
    write(project / "train.py", "print('converted and ran')\n")
    result = cli("runconfig", "convert", "aml_config/local.runconfig", "runconfigs/local.yml")
    assert result.code == 0, result
    assert "autoPrepareEnvironment" in result.err  # obsolete keys are named, not dropped
    text = (project / "runconfigs" / "local.yml").read_text()
    assert text.startswith("# yaml-language-server: $schema=")
    assert "script: train.py" in text
    again = cli("runconfig", "convert", "aml_config/local.runconfig", "runconfigs/local.yml")
    assert again.code == 2 and "--force" in again.err  # never overwrites silently
    shown = cli("runconfig", "validate", "runconfigs/local.yml", "-o", "json").json()
    assert shown["format"] == "targets"
    assert shown["runconfig"]["script"] == "train.py"


def test_validate_reports_the_line_and_key(project, cli, write):
    write(project / "rc.yml", "script: t.py\nenvironment:\n  docker:\n    shm_size: lots\n")
    result = cli("runconfig", "validate", "rc.yml")
    assert result.code == 2
    assert "rc.yml:4" in result.err and "environment.docker.shm_size" in result.err


def test_schema_is_valid_json_schema_of_the_model(cli):
    result = cli("schema", "runconfig")
    assert result.code == 0
    schema = json.loads(result.out)
    assert schema["$schema"].startswith("https://json-schema.org/")
    assert {"script", "arguments", "target", "environment"} <= set(schema["properties"])
    committed = json.loads((REPO / "docs" / "schemas" / "runconfig.schema.json").read_text())
    assert committed == schema
