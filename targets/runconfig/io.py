"""Loading, saving and converting run configuration files.

One job: the three operations users call. ``load_runconfig`` reads three formats into
the one :class:`RunConfiguration` model:

- ``targets``: our own YAML, snake_case keys, validated strictly (a typo is an error);
  read by :mod:`targets.runconfig.ours`.
- ``azureml-v1``: an Azure ML SDK v1 ``.runconfig`` (camelCase or snake_case keys),
  mapped by :mod:`targets.runconfig.azureml_v1`; keys we cannot honour become warnings.
- ``azureml-workbench``: the 2017 Azure ML Workbench form (TitleCase keys such as
  ``ArgumentVector``; JSON or YAML syntax), mapped by the same module.

The pieces each have a module of their own: :mod:`~targets.runconfig.yaml_lines` (the
bounded, line-tracking YAML reader and writer), :mod:`~targets.runconfig.problems`
(pydantic errors as located problems), :mod:`~targets.runconfig.detect` (which reader a
file needs), :mod:`~targets.runconfig.files` (finding, checking, reading and writing
files). The names other modules imported from here before the split are re-exported.
"""

from __future__ import annotations

import os
from pathlib import Path

from targets.errors import ConfigError, UsageError
from targets.runconfig.azureml_v1 import load_v1_document
from targets.runconfig.detect import detect_format
from targets.runconfig.files import (
    checked_path,
    find_runconfig,
    read_text,
    relative_to_source,
    write_text_atomically,
)
from targets.runconfig.loaded import LoadedRunConfig, RunConfigFormat
from targets.runconfig.model import SCHEMA_URL, RunConfiguration
from targets.runconfig.ours import load_ours_document
from targets.runconfig.problems import describe_value
from targets.runconfig.schema import workspace_schema_reference
from targets.runconfig.yaml_lines import (
    YamlLimitError,
    dump_yaml,
    load_yaml,
    load_yaml_file,
    parse_yaml,
)

__all__ = [
    "LoadedRunConfig",
    "RunConfigFormat",
    "YamlLimitError",
    "checked_path",
    "convert_runconfig",
    "detect_format",
    "dump_runconfig",
    "find_runconfig",
    "load_runconfig",
    "load_yaml",
    "load_yaml_file",
    "save_runconfig",
]


def load_runconfig(
    path: str | Path,
    name: str | None = None,
    *,
    project_dir: Path | None = None,
) -> LoadedRunConfig:
    """Read a run configuration in any supported format.

    ``load_runconfig(file)`` reads that file; ``load_runconfig(directory, name)`` finds
    ``name`` the way Azure ML v1's ``RunConfiguration.load`` does (see
    :func:`find_runconfig`) and uses ``directory`` as the project folder.
    ``project_dir`` is the workspace root (default: the current directory); it is the
    source directory of files that do not say otherwise.

    Blocking file I/O; no side effects. Raises ConfigError (exit code 2) naming the
    file, line and key path of every problem found.
    """
    given = checked_path(path, "runconfig path")
    if name is not None:
        checked_path(name, "run configuration name")
        file = find_runconfig(given, name)
        project = Path(project_dir) if project_dir is not None else given
    else:
        if given.is_dir():
            raise ConfigError(
                "expected a runconfig file, found a directory",
                path=str(given),
                hint="pass a file, or a project directory and a run configuration name",
            )
        file = given
        project = Path(project_dir) if project_dir is not None else Path.cwd()
    file = file.absolute()
    project = project.resolve()
    text = read_text(file)
    doc = parse_yaml(text, file)
    fmt = detect_format(file, doc.data)
    if not isinstance(doc.data, dict):
        got = "an empty file" if doc.data is None else describe_value(doc.data)
        raise ConfigError(f"expected a mapping of runconfig keys, got {got}", path=str(file))
    if fmt == "targets":
        return load_ours_document(doc, project)

    return load_v1_document(doc, fmt, project)


def dump_runconfig(config: RunConfiguration, *, schema: str = SCHEMA_URL) -> str:
    """Our YAML text for ``config``: a ``yaml-language-server`` schema line, then the
    snake_case keys whose values differ from the defaults (``load`` gives back an equal
    configuration)."""
    data = config.model_dump(mode="json", exclude_defaults=True)
    header = f"# yaml-language-server: $schema={schema}\n"
    return header + (dump_yaml(data) if data else "{}\n")


def save_runconfig(
    config: RunConfiguration, path: str | Path, *, schema: str | None = None
) -> None:
    """Write ``config`` to ``path`` in our format, atomically (parents are created).

    ``schema`` is the ``$schema`` reference written on the first line (default: a
    relative path to the schema kept in the workspace's ``.targets/schemas/``, so editors
    validate the file offline). Overwrites an existing file.
    """
    target = Path(path)
    if schema is None:
        schema = workspace_schema_reference(target)
    text = dump_runconfig(config, schema=schema)
    write_text_atomically(target, text)


def convert_runconfig(
    src: str | Path,
    dst: str | Path,
    *,
    name: str | None = None,
    project_dir: Path | None = None,
    overwrite: bool = False,
    schema: str | None = None,
) -> LoadedRunConfig:
    """Read ``src`` (any format ``load_runconfig`` reads) and write it to ``dst`` in our
    format, with ``source_directory`` relative to ``dst``'s folder so it means the same
    folder wherever the new file is used from.

    Refuses to replace an existing ``dst`` unless ``overwrite`` (UsageError). Returns what
    was loaded, with its warnings, so the caller can show them.
    """
    target = Path(dst)
    if target.exists() and not overwrite:
        raise UsageError(
            f"{target} already exists",
            hint="choose another file name, or replace it (`targets runconfig convert --force`)",
        )
    loaded = load_runconfig(src, name, project_dir=project_dir)
    config = loaded.config.model_copy(deep=True)
    config.source_directory = relative_to_source_or_up(loaded.source_directory, target)
    save_runconfig(config, target, schema=schema)
    return loaded


def relative_to_source_or_up(source_directory: Path, target: Path) -> str:
    """``source_directory`` relative to ``target``'s folder (``..`` allowed), posix form."""
    folder = target.absolute().parent.resolve()
    try:
        return Path(os.path.relpath(source_directory, folder)).as_posix()
    except ValueError:  # another drive on Windows
        return relative_to_source(source_directory, folder)
