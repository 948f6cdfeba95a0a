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

Bounds: every YAML file a user gives us (runconfigs, conda, Spark dependency and job
files, ``--set`` values, ``targets.yml``) is read through :class:`BoundedSafeLoader`
(:func:`parse_yaml`, :func:`load_yaml`, :func:`load_yaml_file`): at most 1 MiB, 64 levels
of nesting, 10,000 nodes repeated by aliases, integers of 4300 digits, no NUL. Anything
over a bound is a ConfigError (exit 2) naming the file and line, before anything is
built from the document.
"""

from __future__ import annotations

import difflib
import os
import re
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


MAX_DOCUMENT_BYTES = 1 << 20
"""Largest configuration file read (1 MiB); real runconfigs, job and conda files are a few KB."""
MAX_DEPTH = 64
"""Deepest nesting of mappings and lists a configuration file may have."""
MAX_ALIAS_NODES = 10_000
"""Most nodes that aliases (``*name``) may repeat, in total, in one document."""
MAX_INT_DIGITS = 4300
"""Longest integer accepted (Python's own limit for converting text to int)."""


_SURROGATE = re.compile("[\ud800-\udfff]")


class YamlLimitError(yaml.MarkedYAMLError):
    """A document exceeds one of the reader's bounds (size, depth, aliases, integers) or
    holds a character no configuration may hold (NUL). Not a syntax error: the text may be
    valid YAML, it is refused to keep memory and time bounded."""


class BoundedSafeLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` with bounds, for every YAML file a user gives us.

    Refuses (``YamlLimitError``, with the mark of the offending node): nesting deeper
    than ``MAX_DEPTH``; aliases that together repeat more than ``MAX_ALIAS_NODES`` nodes
    (the "billion laughs" bomb: PyYAML shares aliased nodes, but every consumer that
    walks or copies the data expands them); an alias to a node that contains it (a cycle);
    a NUL character in a scalar (``"\\0"``: no path, argument or variable can hold it);
    an integer of more than ``MAX_INT_DIGITS`` digits.

    Design choice: the bound is on expanded nodes, counted as the document is composed
    (each node's expanded size is known once its children are), so the check costs one
    pass and the bomb is stopped before anything is built from it.
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._alias_nodes = 0
        self._sizes: dict[int, int] = {}

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()  # type: ignore[no-untyped-call]
            target = self.anchors.get(event.anchor) if event.anchor is not None else None
            if target is not None:
                size = self._sizes.get(id(target))
                if size is None:
                    raise YamlLimitError(
                        None,
                        None,
                        f"alias *{event.anchor} refers to a node that contains it",
                        event.start_mark,
                    )
                self._alias_nodes += size
                if self._alias_nodes > MAX_ALIAS_NODES:
                    raise YamlLimitError(
                        None,
                        None,
                        f"aliases expand to more than {MAX_ALIAS_NODES} nodes "
                        "(write the values out instead of nesting aliases)",
                        event.start_mark,
                    )
            return super().compose_node(parent, index)
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                event = self.peek_event()  # type: ignore[no-untyped-call]
                raise YamlLimitError(
                    None, None, f"nested more than {MAX_DEPTH} levels deep", event.start_mark
                )
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        size = 1
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                size += self._sizes.get(id(key_node), 1) + self._sizes.get(id(value_node), 1)
        elif isinstance(node, yaml.SequenceNode):
            size += sum(self._sizes.get(id(item), 1) for item in node.value)
        elif isinstance(node, yaml.ScalarNode):
            if "\x00" in node.value:
                raise YamlLimitError(
                    None, None, "a NUL character (\\0) is not allowed here", node.start_mark
                )
            if _SURROGATE.search(node.value):
                raise YamlLimitError(
                    None,
                    None,
                    "an unpaired surrogate escape (\\uD800-\\uDFFF) is not a character",
                    node.start_mark,
                )
        self._sizes[id(node)] = size
        return node

    def construct_yaml_int(self, node: yaml.ScalarNode) -> int:
        digits = len(str(node.value).lstrip("+-").replace("_", ""))
        if digits > MAX_INT_DIGITS:
            raise YamlLimitError(
                None,
                None,
                f"integer of {digits} digits (at most {MAX_INT_DIGITS})",
                node.start_mark,
            )
        value: int = super().construct_yaml_int(node)
        # 0x..., 0o... and 1:30:00 forms reach large values from short text.
        if value.bit_length() > MAX_INT_DIGITS * 3:
            raise YamlLimitError(None, None, "integer too large", node.start_mark)
        return value


BoundedSafeLoader.add_constructor("tag:yaml.org,2002:int", BoundedSafeLoader.construct_yaml_int)


def load_yaml(text: str) -> Any:
    """The data of one YAML document, through :class:`BoundedSafeLoader` (plain Python
    types, as ``yaml.safe_load``). Raises ``yaml.YAMLError`` (``YamlLimitError`` for a
    bound) and nothing else."""
    if len(text) > MAX_DOCUMENT_BYTES:
        raise YamlLimitError(
            None, None, f"document larger than {MAX_DOCUMENT_BYTES // 1024} KiB", None
        )
    loader = BoundedSafeLoader(text)  # the reader checks characters here
    try:
        return loader.get_single_data()
    except (ValueError, OverflowError) as exc:
        raise _value_error(loader, exc) from exc
    finally:
        loader.dispose()


def _value_error(loader: yaml.SafeLoader, exc: Exception) -> yaml.MarkedYAMLError:
    """PyYAML lets a few errors out (``"\\UFFFFFFFF"``: ``chr()`` of an escape past
    U+10FFFF raises ValueError or OverflowError); they are syntax errors at the current
    position."""
    return yaml.MarkedYAMLError(
        None, None, f"invalid escape sequence or value ({exc})", loader.get_mark()
    )


def load_yaml_file(path: Path, what: str = "configuration") -> Any:
    """:func:`load_yaml` of a file; every problem (missing, unreadable, not UTF-8, invalid
    YAML, over a bound) is a ConfigError naming the file and, when known, the line."""
    text = read_text(path, what)
    return _yaml_or_config_error(lambda: load_yaml(text), text, path)


def _yaml_or_config_error(load: typing.Callable[[], Any], text: str, path: Path) -> Any:
    try:
        return load()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "syntax error"
        line = mark.line + 1 if mark is not None else None
        prefix = "refused YAML" if isinstance(exc, YamlLimitError) else "invalid YAML"
        raise ConfigError(f"{prefix}: {problem}", path=str(path), line=line) from exc
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        raise ConfigError(
            f"invalid YAML: character {_char(exc.character)!r} is not allowed",
            path=str(path),
            line=line,
            hint="remove control characters (NUL and others) from the file",
        ) from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"invalid YAML: {exc}", path=str(path)) from exc
    except RecursionError as exc:  # a bound above should always come first
        raise ConfigError("refused YAML: nested too deeply", path=str(path)) from exc


def _char(value: Any) -> str:
    return chr(value) if isinstance(value, int) else str(value)


class _Loader(BoundedSafeLoader):
    """The bounded loader that keeps mapping keys as written and tags numbers with their
    text."""

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


def _short(value: str, limit: int = 80) -> str:
    shown = repr(value)
    return shown if len(shown) <= limit else shown[: limit - 4] + "...'"


def checked_path(
    value: str | Path,
    what: str,
    *,
    path: Path | None = None,
    line: int | None = None,
    key_path: str | None = None,
) -> Path:
    """``value`` as a Path, or a ConfigError when no system call could take it (a name
    over 255 bytes, a path over 4096, a NUL): such names otherwise fail deep inside with
    ENAMETOOLONG, after something was written. ``path``/``line``/``key_path`` locate the
    value when it comes from a file."""
    from targets.runconfig.model import MAX_NAME_BYTES, MAX_PATH_BYTES

    text = str(value)
    size = len(text.encode("utf-8", "surrogateescape"))
    problem = None
    if "\x00" in text:
        problem = "contains a NUL character"
    elif size > MAX_PATH_BYTES:
        problem = f"is {size} bytes long; a path may have at most {MAX_PATH_BYTES}"
    elif any(len(p.encode("utf-8", "surrogateescape")) > MAX_NAME_BYTES for p in text.split("/")):
        problem = f"has a name of more than {MAX_NAME_BYTES} bytes"
    if problem is not None:
        raise ConfigError(
            f"{what} {_short(text)} {problem}",
            path=str(path) if path is not None else None,
            line=line,
            key_path=key_path,
        )
    return Path(text)


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
    if len(text) > MAX_DOCUMENT_BYTES:
        raise ConfigError(
            f"file too large ({len(text)} characters; a configuration file may have at most "
            f"{MAX_DOCUMENT_BYTES // 1024} KiB)",
            path=str(path),
        )

    def compose() -> tuple[yaml.Node | None, Any]:
        loader = _Loader(text)
        try:
            node = loader.get_single_node()
            return node, (loader.construct_document(node) if node is not None else None)
        except (ValueError, OverflowError) as exc:
            raise _value_error(loader, exc) from exc
        finally:
            loader.dispose()

    node, data = _yaml_or_config_error(compose, text, path)
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
    checked_path(value, what, path=config_file, line=line, key_path=key_path)
    given = Path(os.path.expanduser(value))
    candidates = [given] if given.is_absolute() else [source_directory / given]
    if not given.is_absolute() and config_file.parent.resolve() != source_directory:
        candidates.append(config_file.parent / given)
    for candidate in candidates:
        try:
            if candidate.is_file():
                return candidate.resolve()
        except OSError as exc:  # ENAMETOOLONG once joined, EACCES, ...
            raise ConfigError(
                f"{what} {_short(value)} cannot be opened: {exc.strerror}",
                path=str(config_file),
                line=line,
                key_path=key_path,
            ) from exc
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
