"""``conda_dependencies.yml`` files, with the Azure ML v1 ``CondaDependencies`` API.

``CondaDependencies`` reads, edits and writes a conda environment file the way
``azureml.core.conda_dependencies.CondaDependencies`` does, so v1 code that builds one keeps
working. ``load_conda_file`` reads one into the :class:`CondaSpec` model.

Differences from the SDK, on purpose:

- ``CondaDependencies()`` and ``create()`` default to the running interpreter's
  ``major.minor`` Python version, not 3.8.13 / 3.10.18;
- nothing is injected: no ``azureml-defaults`` pip package, no ``--extra-index-url`` /
  ``--find-links`` pip options, no SDK version pinning (``pin_sdk_version`` is accepted
  and ignored);
- the default template has channel ``conda-forge`` only.

Comments and key order: a file that was loaded and not changed is written back byte for
byte. Once it is changed, it is re-serialised with PyYAML: the comment block at the top
of the file is kept, comments further down are lost (the SDK keeps them via ruamel.yaml;
we do not take on that dependency for this).

Like conda itself, items of the ``pip:`` list that start with ``-`` (``--index-url URL``,
``--extra-index-url``, ``--find-links``, ``-f``, ``-i``) are pip options, not packages.
"""

from __future__ import annotations

import copy
import re
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from targets.errors import ConfigError
from targets.runconfig.files import read_text, write_text_atomically
from targets.runconfig.model import CondaSpec
from targets.runconfig.problems import Problem, raise_problems, suggest, validation_problems
from targets.runconfig.yaml_lines import KeyPath, dump_yaml, parse_yaml, plain

__all__ = ["VALID_CONDA_KEYS", "CondaDependencies", "load_conda_file"]

VALID_CONDA_KEYS = ("name", "channels", "dependencies", "prefix", "variables")
"""The top-level keys the SDK accepts (stricter than conda itself)."""

DEFAULT_CONDA_FILE_NAME = "conda_dependencies.yml"

_NAME = re.compile(r"^\s*(?:[\w.\-]+::)?([A-Za-z0-9_.\-]+)")
_VERSION = re.compile(r"^python\s*(?:==?|\s)\s*(\S+)$")


def _default_python_version() -> str:
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def _package_name(spec: str, *, pip: bool = False) -> str:
    """The package name of a conda or pip spec, normalised for comparison."""
    match = _NAME.match(spec)
    name = match.group(1) if match else spec.strip()
    name = name.lower()
    return re.sub(r"[-_.]+", "-", name) if pip else name


def _is_option(item: str) -> bool:
    return item.lstrip().startswith("-")


def _check_document(data: Any, path: Path, lines: Any) -> list[Problem]:
    problems: list[Problem] = []
    if not isinstance(data, dict):
        got = "an empty file" if data is None else f"a {type(data).__name__}"
        return [Problem(f"expected a conda environment mapping, got {got}", path)]
    for key in data:
        if str(key) not in VALID_CONDA_KEYS:
            problems.append(
                Problem(
                    f"unknown key {str(key)!r}{suggest(str(key), list(VALID_CONDA_KEYS))}; "
                    f"valid keys: {', '.join(VALID_CONDA_KEYS)}",
                    path,
                    lines((str(key),)),
                    str(key),
                )
            )
    return problems


def _validate(data: Any, path: Path, line_of: Any) -> CondaSpec:
    problems = _check_document(data, path, line_of)
    raise_problems(problems, path)

    def locate(key_path: KeyPath) -> tuple[Path, KeyPath, int | None]:
        return path, key_path, line_of(key_path)

    try:
        return CondaSpec.model_validate(data)
    except ValidationError as exc:
        raise_problems(validation_problems(exc, CondaSpec, data, locate), path)
        raise  # unreachable: there was at least one problem


def load_conda_file(path: str | Path) -> CondaSpec:
    """Read and validate a conda environment file.

    Raises ConfigError naming the file: unreadable, invalid YAML (with its line), not a
    mapping, an unknown top-level key (with its line), or a badly shaped value.
    """
    file = Path(path)
    doc = parse_yaml(read_text(file, "conda dependencies"), file)
    return _validate(doc.data, file, doc.line_of)


class CondaDependencies:
    """A conda environment specification, as in Azure ML v1.

    ``CondaDependencies(path)`` reads ``path`` (ConfigError when it is missing or
    invalid); ``CondaDependencies()`` starts from a small template. Design choice: the
    constructor reads the file, unlike our other constructors, because v1 code calls it
    that way.
    """

    def __init__(self, conda_dependencies_file_path: str | Path | None = None) -> None:
        self._path: Path | None = None
        self._text: str | None = None
        if conda_dependencies_file_path is None:
            self._doc: dict[str, Any] = {
                "name": "project_environment",
                "dependencies": [f"python={_default_python_version()}"],
                "channels": ["conda-forge"],
            }
        else:
            file = Path(conda_dependencies_file_path)
            text = read_text(file, "conda dependencies")
            doc = parse_yaml(text, file)
            _validate(doc.data, file, doc.line_of)
            self._doc = {str(k): plain(v) for k, v in doc.data.items()}
            self._path = file
            self._text = text
        self._loaded = copy.deepcopy(self._doc)

    @classmethod
    def create(
        cls,
        pip_packages: Iterable[str] | None = None,
        conda_packages: Iterable[str] | None = None,
        python_version: str | None = None,
        pin_sdk_version: bool = False,
    ) -> CondaDependencies:
        """A new specification: ``python=<python_version>`` (default: the running
        interpreter's major.minor), then the pip packages, then the conda packages.
        Nothing else is added (see the module docstring); ``pin_sdk_version`` is ignored."""
        del pin_sdk_version  # the SDK pins azureml-* packages; there are none to pin here
        deps = cls()
        deps._doc["dependencies"] = [f"python={python_version or _default_python_version()}"]
        for package in pip_packages or ():
            deps.add_pip_package(package)
        for package in conda_packages or ():
            deps.add_conda_package(package)
        return deps

    # -- reading --------------------------------------------------------------------

    def _dependencies(self) -> list[Any]:
        deps = self._doc.get("dependencies")
        if not isinstance(deps, list):
            deps = []
            self._doc["dependencies"] = deps
        return deps

    def _pip_list(self, create: bool = False) -> list[Any] | None:
        deps = self._dependencies()
        for item in deps:
            if isinstance(item, dict) and "pip" in item:
                if item["pip"] is None:
                    item["pip"] = []
                pip_list: list[Any] = item["pip"]
                return pip_list
        if not create:
            return None
        block: dict[str, list[Any]] = {"pip": []}
        deps.append(block)
        return block["pip"]

    @property
    def conda_packages(self) -> list[str]:
        """The conda specs (strings) of ``dependencies``, python included."""
        return [str(d) for d in self._dependencies() if not isinstance(d, dict)]

    @property
    def pip_packages(self) -> list[str]:
        """The pip requirements of the ``pip:`` block, without options."""
        return [str(p) for p in self._pip_list() or [] if not _is_option(str(p))]

    @property
    def pip_options(self) -> list[str]:
        """The pip options (``--index-url URL``, ...) of the ``pip:`` block."""
        return [str(p) for p in self._pip_list() or [] if _is_option(str(p))]

    @property
    def conda_channels(self) -> list[str]:
        return [str(c) for c in self._doc.get("channels") or []]

    def get_python_version(self) -> str | None:
        """The version in the first ``python`` conda spec (``python=3.6.2`` -> ``3.6.2``),
        or None when there is no such spec or it has no version."""
        for spec in self.conda_packages:
            if _package_name(spec) == "python":
                match = _VERSION.match(spec.strip())
                return match.group(1) if match else None
        return None

    # -- editing --------------------------------------------------------------------

    def set_python_version(self, version: str) -> None:
        """Replace (or add, first) the ``python`` conda spec with ``python=<version>``."""
        deps = self._dependencies()
        for index, item in enumerate(deps):
            if isinstance(item, str) and _package_name(item) == "python":
                deps[index] = f"python={version}"
                return
        deps.insert(0, f"python={version}")

    def add_conda_package(self, conda_package: str) -> None:
        """Add a conda spec; an existing spec for the same package is replaced."""
        if conda_package in self.conda_packages:
            return
        self.remove_conda_package(_package_name(conda_package))
        deps = self._dependencies()
        deps.append(conda_package)

    def remove_conda_package(self, conda_package: str) -> None:
        """Remove every conda spec for this package (a name or a full spec)."""
        name = _package_name(conda_package)
        deps = self._dependencies()
        deps[:] = [d for d in deps if isinstance(d, dict) or _package_name(str(d)) != name]

    def add_pip_package(self, pip_package: str) -> None:
        """Add a pip requirement; an existing one for the same package is replaced."""
        if pip_package in self.pip_packages:
            return
        self.remove_pip_package(pip_package)
        pip_list = self._pip_list(create=True)
        if pip_list is not None:
            pip_list.append(pip_package)

    def remove_pip_package(self, pip_package: str) -> None:
        """Remove every pip requirement for this package (a name or a full spec)."""
        pip_list = self._pip_list()
        if pip_list is None:
            return
        name = _package_name(pip_package, pip=True)
        pip_list[:] = [
            p for p in pip_list if _is_option(str(p)) or _package_name(str(p), pip=True) != name
        ]

    def add_channel(self, channel: str) -> None:
        """Add a conda channel (no-op when present)."""
        channels = self._doc.get("channels")
        if not isinstance(channels, list):
            channels = []
            self._doc["channels"] = channels
        if channel not in channels:
            channels.append(channel)

    def remove_channel(self, channel: str) -> None:
        channels = self._doc.get("channels")
        if isinstance(channels, list) and channel in channels:
            channels.remove(channel)

    def set_pip_option(self, pip_option: str) -> None:
        """Add a pip option such as ``--extra-index-url URL``; an option with the same
        flag is replaced."""
        flag = pip_option.split()[0] if pip_option.split() else pip_option
        pip_list = self._pip_list(create=True)
        if pip_list is None:
            return
        for index, item in enumerate(pip_list):
            if _is_option(str(item)) and str(item).split()[0] == flag:
                pip_list[index] = pip_option
                return
        pip_list.insert(0, pip_option)

    # -- writing --------------------------------------------------------------------

    def serialize_to_string(self) -> str:
        """The YAML text: the file as it was read when unchanged, else a fresh dump that
        keeps the file's leading comment block."""
        if self._text is not None and self._doc == self._loaded:
            return self._text
        header = ""
        if self._text is not None:
            kept = []
            for line in self._text.splitlines():
                if line.strip() and not line.lstrip().startswith("#"):
                    break
                kept.append(line.rstrip("\r"))
            header = "\n".join(kept).rstrip("\n")
            header = header + "\n\n" if header.strip() else ""
        return header + dump_yaml(self._doc)

    def save(self, path: str | Path | None = None) -> str:
        """Write to ``path`` (default: the file this was read from) and return the path.
        Raises ConfigError when there is neither."""
        target = Path(path) if path is not None else self._path
        if target is None:
            raise ConfigError(
                "no file to save to: this CondaDependencies was not read from a file",
                hint="pass a path to save()",
            )
        write_text_atomically(target, self.serialize_to_string())
        return str(target)

    def save_to_file(self, base_directory: str | Path, conda_file_path: str | None = None) -> str:
        """Write to ``base_directory/conda_file_path`` (default ``conda_dependencies.yml``)
        and return that path."""
        return self.save(Path(base_directory) / (conda_file_path or DEFAULT_CONDA_FILE_NAME))

    def as_spec(self) -> CondaSpec:
        """The specification as the model used inside RunConfiguration."""
        file = self._path or Path("<conda dependencies>")
        return _validate(copy.deepcopy(self._doc), file, lambda _kp: None)

    def as_dict(self) -> dict[str, Any]:
        """A deep copy of the specification as plain data."""
        return copy.deepcopy(self._doc)

    def __repr__(self) -> str:
        where = f" from {str(self._path)!r}" if self._path else ""
        return f"<CondaDependencies{where}: {len(self.conda_packages)} conda, " + (
            f"{len(self.pip_packages)} pip packages>"
        )
