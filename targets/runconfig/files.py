"""Locating, checking, reading and writing the files a run configuration names.

One job: paths. :func:`checked_path` refuses a path no system call could take (before
anything is written); :func:`read_text` reads a file as UTF-8 text with a ConfigError
naming it when it cannot; :func:`find_runconfig` finds a run configuration by name the
way Azure ML v1's ``RunConfiguration.load`` does; :func:`resolve_file` finds a file a
runconfig names (conda, Spark dependencies); :func:`write_text_atomically` writes a file
so a reader never sees half of it.

Imports only :mod:`targets.errors` and the path limits of :mod:`targets.runconfig.model`.
"""

from __future__ import annotations

import os
from pathlib import Path

from targets.errors import ConfigError
from targets.runconfig.model import MAX_NAME_BYTES, MAX_PATH_BYTES

__all__ = [
    "CONFIG_DIRS",
    "checked_path",
    "find_runconfig",
    "read_text",
    "relative_to_source",
    "resolve_file",
    "write_text_atomically",
]

CONFIG_DIRS = ("aml_config", ".azureml")
"""The SDK's config folders; ``aml_config`` (legacy) wins when it exists, as in the SDK."""


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
