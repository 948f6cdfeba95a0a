"""The reader of our own runconfig format (snake_case keys, validated strictly).

One job: a parsed :class:`~targets.runconfig.yaml_lines.YamlDocument` in our format to a
:class:`~targets.runconfig.loaded.LoadedRunConfig` (every problem located at its line),
with ``source_directory`` and ``environment.python.conda_dependencies_file`` resolved.
:func:`resolve_conda_file` is shared with the Azure ML v1 reader.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import ValidationError

from targets.errors import ConfigError
from targets.runconfig.conda import load_conda_file
from targets.runconfig.files import relative_to_source, resolve_file
from targets.runconfig.loaded import LoadedRunConfig
from targets.runconfig.model import RunConfiguration
from targets.runconfig.problems import Problem, dotted, raise_problems, validation_problems
from targets.runconfig.yaml_lines import KeyPath, YamlDocument

__all__ = ["load_ours_document", "resolve_conda_file"]


def load_ours_document(doc: YamlDocument, project: Path) -> LoadedRunConfig:
    """Validate ``doc`` (our format) as a RunConfiguration; ``project`` is the source
    directory when the file names none. Raises ConfigError with every problem found."""
    file = doc.path
    problems = [
        Problem(f"duplicate key {str(kp[-1])!r}", file, line, dotted(kp))
        for kp, line in doc.duplicates
    ]

    def locate(key_path: KeyPath) -> tuple[Path, KeyPath, int | None]:
        return file, key_path, doc.line_of(key_path)

    try:
        config = RunConfiguration.model_validate(doc.data)
    except ValidationError as exc:
        problems.extend(validation_problems(exc, RunConfiguration, doc.data, locate))
        raise_problems(problems, file)
        raise  # unreachable: problems is not empty
    raise_problems(problems, file)

    if config.source_directory:
        source = (file.parent / os.path.expanduser(config.source_directory)).resolve()
        if not source.is_dir():
            raise ConfigError(
                f"source_directory {config.source_directory!r} is not a directory "
                f"(resolved to {source}; relative paths are relative to the runconfig's folder)",
                path=str(file),
                line=doc.line_of(("source_directory",)),
                key_path="source_directory",
            )
    else:
        source = project
    conda_key: KeyPath = ("environment", "python", "conda_dependencies_file")
    resolve_conda_file(
        config, source, file, key_path=dotted(conda_key), line=doc.line_of(conda_key)
    )
    return LoadedRunConfig(config, file, source, "targets", ())


def resolve_conda_file(
    config: RunConfiguration,
    source: Path,
    file: Path,
    *,
    key_path: str,
    line: int | None,
) -> None:
    """Find ``environment.python.conda_dependencies_file`` (see :func:`resolve_file`),
    check that it is a valid conda file, and store it relative to ``source`` (absolute
    when outside). Raises ConfigError."""

    value = config.environment.python.conda_dependencies_file
    if not value:
        return
    found = resolve_file(
        value, source, file, what="conda dependencies file", key_path=key_path, line=line
    )
    load_conda_file(found)
    config.environment.python.conda_dependencies_file = relative_to_source(found, source)
