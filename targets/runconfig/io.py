"""Reading and writing run configuration files.

``load_runconfig`` reads three formats into the one :class:`RunConfiguration` model:

- ``targets``: our own YAML, snake_case keys, validated strictly (a typo is an error).
- ``azureml-v1``: an Azure ML SDK v1 ``.runconfig`` (camelCase or snake_case keys),
  mapped by :mod:`targets.runconfig.azureml_v1`; keys we cannot honour become warnings.
- ``azureml-workbench``: the 2017 Azure ML Workbench form (TitleCase keys such as
  ``ArgumentVector``; JSON or YAML syntax), mapped by the same module.

Format detection (:func:`detect_format`), first rule that matches wins:

1. A ``*.compute`` file is refused: it describes a compute target, not a run.
2. Workbench: every top-level key starts with an upper-case letter and at least one of
   them is a known Workbench key (``ArgumentVector``, ``Target``, ``Framework``, ...).
3. Azure ML v1: the file name ends in ``.runconfig``; or it has no extension and sits
   directly in ``.azureml/`` or ``aml_config/`` (where the SDK writes ``.azureml/<name>``);
   or one of its structural keys (top level, the keys of a top-level section, the keys of
   ``environment.python``/``docker``/``spark``/``databricks``) is a camelCase key the
   SDK knows (``nodeCount``, ``baseImage``, ...); or it has a top-level key that only the
   SDK has (``auto_prepare_environment``, ``data_references``, ``paralleltask``, ...).
4. Anything else is our format.

Design choice: content wins over location for files with a ``.yml``/``.yaml``
extension, so one of our files kept in ``.azureml/`` still reads as ours; camelCase is
decided per known key, so a camelCase typo in our format (``scriptName``) is reported as
an unknown key instead of silently switching readers.

Line numbers: the YAML is composed into a node tree first (``yaml.SafeLoader``), each
mapping key's and sequence item's start line is recorded by key path, and validation
errors are reported at the line of the key they are about.

Scalars: mapping keys are kept as written (``yes:`` stays ``"yes"``, not ``True``), and
plain numbers carry their source text, so ``- 1.10`` in ``arguments`` reaches the script
as ``"1.10"`` and an environment variable ``V: 010`` stays ``"010"``.
"""

from __future__ import annotations

import difflib
import os
import types
import typing
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ValidationError

from targets.errors import ConfigError
from targets.runconfig.model import SCHEMA_URL, RunConfiguration

__all__ = [
    "LoadedRunConfig",
    "RunConfigFormat",
    "convert_runconfig",
    "detect_format",
    "dump_runconfig",
    "find_runconfig",
    "load_runconfig",
    "save_runconfig",
]

RunConfigFormat = Literal["targets", "azureml-v1", "azureml-workbench"]
KeyPath = tuple[str | int, ...]

CONFIG_DIRS = ("aml_config", ".azureml")
"""The SDK's config folders; ``aml_config`` (legacy) wins when it exists, as in the SDK."""

WORKBENCH_KEYS = frozenset(
    {
        "ArgumentVector",
        "Target",
        "Framework",
        "EnvironmentVariables",
        "CondaDependenciesFile",
        "CondaFile",
        "SparkDependenciesFile",
        "PrepareEnvironment",
        "TrackedRun",
        "ManagedEnvironment",
        "Description",
    }
)

# Top-level keys (snake_case spelling) that exist in Azure ML v1 files and not in ours.
_V1_ONLY_TOP_KEYS = frozenset(
    {
        "auto_prepare_environment",
        "data_references",
        "output_data",
        "datacaches",
        "source_directory_data_store",
        "paralleltask",
        "kubernetescompute",
        "credential_passthrough",
        "application_endpoints",
        "auto_cluster_compute_specification",
    }
)
_CONDA_KEYS = frozenset({"name", "channels", "dependencies", "prefix", "variables"})
_SPARK_DEPENDENCY_KEYS = frozenset({"configuration", "repositories", "packages"})


@dataclass(frozen=True, slots=True)
class LoadedRunConfig:
    """A run configuration as read from a file.

    ``config.source_directory`` keeps what the file said; ``source_directory`` here is
    the resolved absolute folder to snapshot. ``warnings`` has one line per key that was
    unknown, obsolete or ignored, naming the key (and its line).
    """

    config: RunConfiguration
    path: Path
    source_directory: Path
    format: RunConfigFormat
    warnings: tuple[str, ...] = ()


# --------------------------------------------------------------------------- YAML ----


class YamlInt(int):
    """A plain YAML integer that remembers how it was written (``010``, ``1_000``)."""

    yaml_source: str


class YamlFloat(float):
    """A plain YAML float that remembers how it was written (``1.10``)."""

    yaml_source: str


class _Loader(yaml.SafeLoader):
    """SafeLoader that keeps mapping keys as written and tags numbers with their text."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        self.flatten_mapping(node)
        mapping: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.ScalarNode):
                key: Any = key_node.value
            else:
                key = self.construct_object(key_node, deep=deep)
                if isinstance(key, list | dict):
                    raise yaml.constructor.ConstructorError(
                        "while constructing a mapping",
                        node.start_mark,
                        "found a list or mapping used as a key",
                        key_node.start_mark,
                    )
            mapping[key] = self.construct_object(value_node, deep=deep)
        return mapping


def _construct_int(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> int:
    value = loader.construct_yaml_int(node)
    if node.style is not None:
        return value
    tagged = YamlInt(value)
    tagged.yaml_source = node.value
    return tagged


def _construct_float(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> float:
    value = loader.construct_yaml_float(node)
    if node.style is not None:
        return value
    tagged = YamlFloat(value)
    tagged.yaml_source = node.value
    return tagged


_Loader.add_constructor("tag:yaml.org,2002:int", _construct_int)
_Loader.add_constructor("tag:yaml.org,2002:float", _construct_float)


@dataclass(slots=True)
class YamlDocument:
    """One parsed YAML file: the data plus the 1-based line of every key and list item."""

    path: Path
    data: Any
    lines: dict[KeyPath, int] = field(default_factory=dict)
    duplicates: list[tuple[KeyPath, int]] = field(default_factory=list)

    def line_of(self, key_path: KeyPath) -> int | None:
        """The line of ``key_path``, or of its nearest ancestor that has one."""
        for end in range(len(key_path), 0, -1):
            line = self.lines.get(key_path[:end])
            if line is not None:
                return line
        return None


def read_text(path: Path, what: str = "runconfig") -> str:
    """The file's text; a missing or unreadable file is a ConfigError naming it."""
    try:
        # Bytes, then decode: keep line ends as they are (CondaDependencies writes an
        # unchanged file back byte for byte).
        return path.read_bytes().decode("utf-8-sig")
    except FileNotFoundError as exc:
        raise ConfigError(f"{what} file not found", path=str(path)) from exc
    except IsADirectoryError as exc:
        raise ConfigError(f"expected a {what} file, found a directory", path=str(path)) from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{what} file is not UTF-8 text ({exc.reason})", path=str(path)) from exc
    except OSError as exc:
        raise ConfigError(f"cannot read {what} file: {exc.strerror}", path=str(path)) from exc


def parse_yaml(text: str, path: Path) -> YamlDocument:
    """Parse one YAML (or JSON) document, recording line numbers by key path.

    Raises ConfigError with the line of the syntax error.
    """
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "syntax error"
        line = mark.line + 1 if mark is not None else None
        raise ConfigError(f"invalid YAML: {problem}", path=str(path), line=line) from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"invalid YAML: {exc}", path=str(path)) from exc
    finally:
        loader.dispose()
    doc = YamlDocument(path=path, data=data)
    if node is not None:
        _record_lines(node, (), doc, set())
    return doc


def _record_lines(node: yaml.Node, path: KeyPath, doc: YamlDocument, seen: set[int]) -> None:
    if id(node) in seen:  # an alias of a node already walked
        return
    seen.add(id(node))
    if isinstance(node, yaml.MappingNode):
        keys: set[str] = set()
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                continue
            key = key_node.value
            key_path = (*path, key)
            line = key_node.start_mark.line + 1
            if key in keys:
                doc.duplicates.append((key_path, line))
            keys.add(key)
            doc.lines[key_path] = line
            _record_lines(value_node, key_path, doc, seen)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            item_path = (*path, index)
            doc.lines[item_path] = item.start_mark.line + 1
            _record_lines(item, item_path, doc, seen)


def plain(value: Any) -> Any:
    """``value`` with YamlInt/YamlFloat turned back into int/float (for dumping)."""
    if isinstance(value, YamlInt):
        return int(value)
    if isinstance(value, YamlFloat):
        return float(value)
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


# ---------------------------------------------------------------- errors -------------


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a file, located as precisely as we can."""

    message: str
    path: Path | None = None
    line: int | None = None
    key_path: str | None = None

    def render(self) -> str:
        where = str(self.path) if self.path else ""
        if self.path and self.line:
            where += f":{self.line}"
        if self.key_path:
            where = f"{where}: {self.key_path}" if where else self.key_path
        return f"{where}: {self.message}" if where else self.message


def raise_problems(problems: list[Problem], path: Path) -> None:
    """Raise one ConfigError carrying every problem, one per line (no-op when empty)."""
    if not problems:
        return
    problems = sorted(problems, key=lambda p: (str(p.path or ""), p.line or 0))
    first = problems[0]
    message = first.message
    if len(problems) > 1:
        message += "\n" + "\n".join(p.render() for p in problems[1:])
    raise ConfigError(
        message,
        path=str(first.path or path),
        line=first.line,
        key_path=first.key_path,
    )


def dotted(key_path: KeyPath) -> str:
    """``("environment", "docker", "shm_size")`` -> ``environment.docker.shm_size``;
    list indexes render as ``arguments[2]``."""
    text = ""
    for part in key_path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


def suggest(key: str, valid: list[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest valid key, or an empty string."""
    close = difflib.get_close_matches(key, valid, n=1, cutoff=0.6)
    if not close:
        lowered = {v.lower().replace("_", ""): v for v in valid}
        match = lowered.get(key.lower().replace("_", "").replace("-", ""))
        close = [match] if match else []
    return f" (did you mean {close[0]!r}?)" if close else ""


_TYPE_WORDS = {
    "str": "a string",
    "int": "an integer",
    "float": "a number",
    "bool": "true or false",
    "list[str]": "a list of strings",
    "PipBlock": "a mapping {pip: [...]}",
}


def describe_value(value: Any) -> str:
    """A short description of a value that failed validation, for error messages."""
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "null"
    text = repr(plain(value))
    return text if len(text) <= 60 else text[:57] + "..."


_BOUNDS = {
    "greater_than_equal": ("at least", "ge"),
    "greater_than": ("greater than", "gt"),
    "less_than_equal": ("at most", "le"),
    "less_than": ("less than", "lt"),
}


def validation_message(error: Any, key_path: KeyPath = ()) -> str:
    """One pydantic error as a sentence a user can act on (shared by every file reader).
    ``key_path`` is where it happened, to name a missing key."""
    kind = error["type"]
    got = describe_value(error.get("input"))
    ctx = error.get("ctx") or {}
    if kind == "missing":
        if key_path:
            return f"required key {str(key_path[-1])!r} is missing"
        return "required key is missing"
    if kind == "union_tag_invalid":
        return f"unknown type {ctx.get('tag')!r}; expected one of {ctx.get('expected_tags', '')}"
    if kind == "union_tag_not_found":
        return "required key 'type' is missing"
    if kind in ("int_parsing", "int_type", "int_from_float"):
        return f"expected an integer, got {got}"
    if kind in ("float_parsing", "float_type"):
        return f"expected a number, got {got}"
    if kind in ("bool_parsing", "bool_type"):
        return f"expected true or false, got {got}"
    if kind == "string_type":
        return f"expected a string, got {got}"
    if kind in ("list_type", "tuple_type"):
        return f"expected a list, got {got}"
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return f"expected a mapping, got {got}"
    if kind == "literal_error":
        return f"expected one of {ctx.get('expected', '?')}, got {got}"
    if kind == "too_short":
        return "must not be empty"
    if kind == "value_error":
        return str(ctx.get("error", error["msg"]))
    if kind in _BOUNDS:
        words, key = _BOUNDS[kind]
        return f"must be {words} {ctx.get(key)}, got {got}"
    return f"{error['msg']}, got {got}"


def _field_model(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model inside ``X``, ``X | None`` or ``list[X]``, if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType, list):
        for arg in typing.get_args(annotation):
            found = _field_model(arg)
            if found is not None:
                return found
    return None


def _model_at(model: type[BaseModel], key_path: KeyPath) -> type[BaseModel] | None:
    current: type[BaseModel] | None = model
    for part in key_path:
        if current is None:
            return None
        if isinstance(part, int):
            continue
        info = current.model_fields.get(part)
        if info is None:
            return None
        current = _field_model(info.annotation)
    return current


def _data_path(loc: tuple[str | int, ...], data: Any, kind: str) -> tuple[KeyPath, list[str]]:
    """Split a pydantic ``loc`` into the part that indexes the input and union tags."""
    path: list[str | int] = []
    tags: list[str] = []
    current = data
    last = len(loc) - 1
    for position, part in enumerate(loc):
        indexes_dict = isinstance(current, dict) and part in current
        indexes_list = isinstance(current, list) and isinstance(part, int)
        if indexes_dict or (indexes_list and 0 <= int(part) < len(current)):
            path.append(part)
            current = current[part]
        elif position == last and kind in ("missing", "extra_forbidden"):
            # A missing or extra key: the path still names it.
            path.append(part)
            current = None
        else:
            tags.append(str(part))
    return tuple(path), tags


PathMapper = typing.Callable[[KeyPath], tuple[Path, KeyPath, int | None]]


def validation_problems(
    exc: ValidationError,
    model: type[BaseModel],
    data: Any,
    locate: PathMapper,
) -> list[Problem]:
    """Turn a pydantic ValidationError into located problems.

    ``locate`` maps a key path in ``data`` to (file, key path as written in that file,
    line). Union branches for one value are merged into one "expected A or B" problem.
    """
    grouped: dict[KeyPath, list[tuple[Any, list[str]]]] = {}
    for error in exc.errors():
        key_path, tags = _data_path(error["loc"], data, error["type"])
        grouped.setdefault(key_path, []).append((error, tags))
    problems: list[Problem] = []
    for key_path, errors in grouped.items():
        file, shown, line = locate(key_path)
        first, tags = errors[0]
        if first["type"] == "extra_forbidden" and key_path:
            section = _model_at(model, key_path[:-1])
            valid = list(section.model_fields) if section is not None else []
            key = str(key_path[-1])
            message = f"unknown key {key!r}{suggest(key, valid)}"
        elif len(errors) > 1 and any(t for _, t in errors):
            kinds = []
            for _, branch in errors:
                word = _TYPE_WORDS.get(branch[0], branch[0]) if branch else "?"
                if word not in kinds:
                    kinds.append(word)
            got = describe_value(first.get("input"))
            message = f"expected {' or '.join(kinds)}, got {got}"
        else:
            message = "; ".join(dict.fromkeys(validation_message(e) for e, _ in errors))
        problems.append(Problem(message, file, line, dotted(shown) or None))
    return problems


# ------------------------------------------------------------------ detection --------


def _is_camel(key: str) -> bool:
    return key[:1].islower() and any(c.isupper() for c in key) and "_" not in key


def _structural_keys(data: dict[Any, Any]) -> Iterator[str]:
    for key, value in data.items():
        yield str(key)
        if not isinstance(value, dict) or str(key) in ("environmentVariables",):
            continue
        for sub_key, sub_value in value.items():
            yield str(sub_key)
            nested = str(sub_key) in ("python", "docker", "spark", "databricks")
            if str(key) == "environment" and nested and isinstance(sub_value, dict):
                yield from (str(k) for k in sub_value)


def detect_format(path: Path, data: Any) -> RunConfigFormat:
    """Which reader ``data`` (read from ``path``) needs; see the module docstring."""
    if path.suffix == ".compute":
        raise ConfigError(
            "this file describes a compute target (an Azure ML Workbench .compute file), not a run",
            path=str(path),
            hint="attach the machine with `targets attach NAME --type KIND ...` and pass "
            "the .runconfig file instead",
        )
    if isinstance(data, dict) and data:
        keys = [str(k) for k in data]
        if "dependencies" in keys and set(keys) <= _CONDA_KEYS:
            raise ConfigError(
                "this is a conda environment file, not a run configuration",
                path=str(path),
                hint="name it in a runconfig: environment.python.conda_dependencies_file",
            )
        if set(keys) <= _SPARK_DEPENDENCY_KEYS:
            raise ConfigError(
                "this is a Workbench Spark dependencies file, not a run configuration",
                path=str(path),
                hint="it is read through the SparkDependenciesFile key of a .runconfig",
            )
        if all(k[:1].isupper() for k in keys) and WORKBENCH_KEYS.intersection(keys):
            return "azureml-workbench"
    if path.suffix == ".runconfig":
        return "azureml-v1"
    if path.suffix == "" and path.parent.name in CONFIG_DIRS:
        return "azureml-v1"
    if isinstance(data, dict):
        from targets.runconfig.azureml_v1 import KNOWN_V1_CAMEL_KEYS

        for key in _structural_keys(data):
            if _is_camel(key) and key in KNOWN_V1_CAMEL_KEYS:
                return "azureml-v1"
        if any(str(k) in _V1_ONLY_TOP_KEYS for k in data):
            return "azureml-v1"
        docker = data.get("docker")
        if isinstance(docker, dict) and "use_docker" in docker:
            return "azureml-v1"
    return "targets"


# ------------------------------------------------------------------ locating ---------


def find_runconfig(directory: str | Path, name: str) -> Path:
    """The file ``RunConfiguration.load(directory, name)`` reads in the SDK.

    Looks in ``aml_config/`` then ``.azureml/`` (``.azureml/`` first when there is no
    ``aml_config/``), for ``name`` then ``name.runconfig``, then ``directory/name.runconfig``.
    Raises ConfigError listing every place looked.
    """
    base = Path(directory)
    if not base.is_dir():
        raise ConfigError("project directory not found", path=str(base))
    config_dirs = CONFIG_DIRS if (base / "aml_config").is_dir() else tuple(reversed(CONFIG_DIRS))
    candidates = [base / d / n for d in config_dirs for n in (name, f"{name}.runconfig")]
    candidates.append(base / f"{name}.runconfig")
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    looked = ", ".join(str(c) for c in candidates)
    raise ConfigError(
        f"no run configuration named {name!r}; looked for {looked}",
        path=str(base),
    )


def resolve_file(
    value: str,
    source_directory: Path,
    config_file: Path,
    *,
    what: str,
    key_path: str,
    line: int | None,
) -> Path:
    """Find a file named in a runconfig: relative to the source directory first, then
    relative to the runconfig file's own folder (the SDK's rule when loading by path).

    Raises ConfigError naming the file and both places looked.
    """
    given = Path(os.path.expanduser(value))
    candidates = [given] if given.is_absolute() else [source_directory / given]
    if not given.is_absolute() and config_file.parent.resolve() != source_directory:
        candidates.append(config_file.parent / given)
    for candidate in candidates:
        if candidate.is_file():
            return candidate.resolve()
    looked = " and ".join(str(c) for c in candidates)
    raise ConfigError(
        f"{what} {value!r} not found (looked for {looked})",
        path=str(config_file),
        line=line,
        key_path=key_path,
    )


def relative_to_source(file: Path, source_directory: Path) -> str:
    """``file`` relative to the source directory (posix form) when inside it, else absolute."""
    try:
        return file.relative_to(source_directory).as_posix()
    except ValueError:
        return str(file)


# ------------------------------------------------------------------- loading ---------


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
    given = Path(path)
    if name is not None:
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
        return _load_ours(doc, project)
    from targets.runconfig.azureml_v1 import load_v1_document

    return load_v1_document(doc, fmt, project)


def _load_ours(doc: YamlDocument, project: Path) -> LoadedRunConfig:
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
    from targets.runconfig.conda import load_conda_file

    value = config.environment.python.conda_dependencies_file
    if not value:
        return
    found = resolve_file(
        value, source, file, what="conda dependencies file", key_path=key_path, line=line
    )
    load_conda_file(found)
    config.environment.python.conda_dependencies_file = relative_to_source(found, source)


# ------------------------------------------------------------------- saving ----------


class _Dumper(yaml.SafeDumper):
    """Block style; multi-line strings (a Dockerfile) as ``|`` literals."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        # Indent list items under their key, as most hand-written YAML does.
        super().increase_indent(flow, False)


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    if "\n" in value:
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|")
    return dumper.represent_str(value)


_Dumper.add_representer(str, _represent_str)


def dump_yaml(data: Any) -> str:
    """Block-style YAML text for plain data, keys in the given order."""
    return yaml.dump(
        plain(data),
        Dumper=_Dumper,
        sort_keys=False,
        default_flow_style=False,
        allow_unicode=True,
        width=1_000_000,
    )


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
        from targets.runconfig.schema import workspace_schema_reference

        schema = workspace_schema_reference(target)
    text = dump_runconfig(config, schema=schema)
    write_text_atomically(target, text)


def write_text_atomically(target: Path, text: str) -> None:
    """Write ``text`` to ``target`` through a temporary file and a rename, so a reader
    never sees half a file. Creates missing parent folders."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def convert_runconfig(
    src: str | Path,
    dst: str | Path,
    *,
    name: str | None = None,
    project_dir: Path | None = None,
    overwrite: bool = False,
    schema: str | None = None,
) -> LoadedRunConfig:
    """Write ``src`` (any readable format) to ``dst`` in our format; see
    :func:`targets.runconfig.azureml_v1.convert_runconfig`. Raises UsageError when ``dst``
    exists and ``overwrite`` is false, ConfigError when ``src`` is invalid."""
    from targets.runconfig.azureml_v1 import convert_runconfig as convert

    return convert(src, dst, name=name, project_dir=project_dir, overwrite=overwrite, schema=schema)
