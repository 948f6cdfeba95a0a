"""``Environment.save_to_directory`` / ``load_from_directory``: an environment definition
as files in a folder, as Azure ML v1 writes them (``azureml_environment.json``, and
``conda_dependencies.yml`` for its conda dependencies).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import ValidationError

from targets.errors import ConfigError, UsageError
from targets.runconfig.conda import load_conda_file
from targets.runconfig.files import read_text, write_text_atomically
from targets.runconfig.yaml_lines import dump_yaml

if TYPE_CHECKING:
    from targets.experiment import Environment

__all__ = ["CONDA_FILE", "DEFINITION_FILE", "load_environment", "save_environment"]

DEFINITION_FILE = "azureml_environment.json"
CONDA_FILE = "conda_dependencies.yml"


def save_environment(env: Environment, folder: Path, *, overwrite: bool = False) -> None:
    """Write ``env`` into ``folder`` (created when missing). Raises UsageError, having
    written nothing, when a file is there already and ``overwrite`` is false."""
    data = env.model_dump(mode="json", exclude_defaults=True)
    conda = (data.get("python") or {}).pop("conda_dependencies", None)
    files = {DEFINITION_FILE: json.dumps(data, indent=2, sort_keys=True) + "\n"}
    if conda is not None:
        files[CONDA_FILE] = dump_yaml(conda)
    present = [name for name in files if (folder / name).exists()]
    if present and not overwrite:
        raise UsageError(
            f"{folder / present[0]} already exists",
            hint="save to another folder, or pass overwrite=True",
        )
    for name, text in files.items():
        write_text_atomically(folder / name, text)


def load_environment(folder: Path) -> Environment:
    """The environment saved in ``folder``. Raises ConfigError naming the file when it
    is missing or not a valid definition."""
    from targets.experiment import Environment

    file = folder / DEFINITION_FILE
    try:
        data = json.loads(read_text(file, "environment definition"))
    except ValueError as exc:
        raise ConfigError(f"the environment definition is not JSON: {exc}", path=str(file)) from exc
    try:
        env = Environment.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(
            f"not an environment definition: {exc.errors()[0]['msg']}", path=str(file)
        ) from None
    if (folder / CONDA_FILE).is_file() and env.python.conda_dependencies is None:
        env.python.conda_dependencies = load_conda_file(folder / CONDA_FILE)
    return env
