"""The YAML reader and writer of every configuration file: bounded, line-tracking.

One job: YAML text <-> plain data. Every YAML file a user gives us (runconfigs, conda,
Spark dependency and job files, ``--set`` values, ``targets.yml``) is read here.

Bounds: :class:`BoundedSafeLoader` (:func:`load_yaml`, :func:`load_yaml_file`,
:func:`parse_yaml`) reads at most 1 MiB, 64 levels of nesting, 10,000 nodes repeated by
aliases, integers of 4300 digits, no NUL and no unpaired surrogate. Anything over a bound
is a :class:`YamlLimitError` (a ConfigError, exit 2, naming the file and line, through
the file readers) before anything is built from the document.

Line numbers: :func:`parse_yaml` composes the node tree first, records each mapping key's
and sequence item's start line by key path (:class:`YamlDocument`), so validation errors
are reported at the line of the key they are about.

Scalars: mapping keys are kept as written (``yes:`` stays ``"yes"``, not ``True``), and
plain numbers carry their source text (:class:`YamlInt`, :class:`YamlFloat`), so
``- 1.10`` in ``arguments`` reaches the script as ``"1.10"`` and ``V: 010`` stays
``"010"``. :func:`plain` turns them back into int/float; :func:`dump_yaml` writes block
style YAML.
"""

from __future__ import annotations

import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from targets.errors import ConfigError
from targets.runconfig.files import read_text

__all__ = [
    "MAX_ALIAS_NODES",
    "MAX_DEPTH",
    "MAX_DOCUMENT_BYTES",
    "MAX_INT_DIGITS",
    "BoundedSafeLoader",
    "KeyPath",
    "YamlDocument",
    "YamlFloat",
    "YamlInt",
    "YamlLimitError",
    "dump_yaml",
    "load_yaml",
    "load_yaml_file",
    "parse_yaml",
    "plain",
]

KeyPath = tuple[str | int, ...]
"""Where a value sits in a document: mapping keys and list indexes, outermost first."""


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
