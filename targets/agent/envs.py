"""The agent's environment cache: build, reuse, list and prune Python environments.

STDLIB ONLY. This module is shipped to remote machines and run there with the system
``python3`` (3.8 or newer), so: no third-party imports, no imports from ``targets``
outside ``targets.agent``, no ``match``, no ``X | Y`` outside annotations, no 3.10+ APIs.

An environment lives in ``<root>/envs/<hash>/``; ``<hash>`` comes from the client
(:attr:`targets.environments.EnvironmentSpec.hash`). The folder is usable only once the
marker file ``.targets-ready`` exists; the marker is written last, atomically, and holds
the JSON record (spec, builder, created, python). A folder without the marker is a
half-built leftover: it is removed and rebuilt. ``<root>/envs/<hash>.lock`` is locked with
``fcntl.flock`` while an environment is checked or built, so two runs preparing the same
spec at once build it once: the second waits and then reuses it.

Builders, in order of preference for a managed spec:

1. ``micromamba``, ``mamba`` or ``conda`` on PATH: ``create`` from an ``environment.yml``
   written from the spec (channels, dependencies, pip block with its options).
2. ``uv``: ``uv venv --python X.Y`` (never downloading a Python), then ``uv pip install``;
   conda specs are tried as PyPI requirements (see :func:`conda_to_pip`).
3. ``python -m venv`` + ``pip install``, with the same translation.

Design choice: lock files are never deleted, not even by prune. Deleting a lock file
while another process holds it open would let a third process lock a fresh file with the
same name, and two builds of one environment could then run at once.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections import deque
from functools import partial
from typing import IO, TYPE_CHECKING, Any, BinaryIO

if TYPE_CHECKING:  # typing-only names: subscripting them at runtime fails on Python 3.8
    from collections.abc import Callable, Iterable, Mapping

    # (spec, env_dir, log, default_python) -> the environment's python
    _Build = Callable[[dict[str, Any], str, IO[bytes], str | None], str]

__all__ = [
    "EnvError",
    "base_python",
    "conda_to_pip",
    "describe_spec",
    "ensure_environment",
    "environment_yaml",
    "find_pythons",
    "list_environments",
    "prune_environments",
]

MARKER = ".targets-ready"
LAST_USED = ".targets-last-used"
ENVS = "envs"

_HASH_RE = re.compile(r"^[0-9a-f]{16,64}$")
_NAME_RE = re.compile(r"^([A-Za-z0-9_][A-Za-z0-9._-]*)")
_OPERATORS = ("==", ">=", "<=", "!=", "~=", ">", "<")
_TAIL_LINES = 200

_NO_CONDA_HINT = (
    "it was tried as a PyPI requirement because no conda, mamba or micromamba is "
    "installed on the target; install micromamba on the target, or move the package to "
    "the pip list of the conda file"
)


class EnvError(Exception):
    """Preparing an environment failed. The message names what failed (a package, a
    Python version, an interpreter) and what to install or change."""


# -- spec helpers shared with the client ----------------------------------------------------


def describe_spec(spec: dict[str, Any]) -> str:
    """One line describing an environment spec (``EnvironmentSpec.to_json()``)."""
    if not spec.get("managed"):
        interpreter = spec.get("interpreter")
        return "user-managed: " + (interpreter if interpreter else "default python")
    parts = ["python " + (spec.get("python_version") or "(any)")]
    conda = [p for p in spec.get("conda_packages") or [] if _spec_name(p) != "python"]
    pip = list(spec.get("pip_packages") or [])
    if conda:
        parts.append("conda: " + ", ".join(conda))
    if pip:
        parts.append("pip: " + ", ".join(pip))
    line = "; ".join(parts)
    return line if len(line) <= 120 else line[:117] + "..."


def _spec_name(conda_spec: str) -> str:
    text = conda_spec.strip()
    if "::" in text:
        text = text.split("::", 1)[1]
    match = _NAME_RE.match(text)
    return match.group(1).lower() if match else text.lower()


def _version_constraint(version: str) -> str:
    """A conda bare version (``1.26``, ``1.26.4``, ``1.26.*``, ``1.2*``) as a PEP 440
    clause: two components or fewer, or a wildcard, match the series; three or more are
    exact."""
    if version.endswith("*"):
        stem = version.rstrip("*").rstrip(".")
        return "==" + stem + ".*"
    if version.count(".") >= 2:
        return "==" + version
    return "==" + version + ".*"


def _constraint_clause(text: str, spec: str) -> str:
    """Translate one conda version clause (after the name) into PEP 440."""
    text = text.strip()
    if "|" in text:
        raise ValueError(
            f"conda spec {spec!r} uses '|' (either version), which a PyPI requirement cannot "
            "express"
        )
    clauses = []
    for piece in text.split(","):
        piece = piece.strip()
        if not piece:
            continue
        if piece.startswith("=="):
            clauses.append("==" + piece[2:].strip().split("=", 1)[0])
        elif piece.startswith(_OPERATORS):
            clauses.append(piece.replace(" ", ""))
        elif piece.startswith("="):
            clauses.append(_version_constraint(piece[1:].split("=", 1)[0]))
        else:
            clauses.append(_version_constraint(piece))
    return ",".join(clauses)


def conda_to_pip(spec: str) -> str | None:
    """Translate a conda spec into a PyPI requirement; ``None`` for ``python`` and ``pip``.

    ``numpy`` -> ``numpy``; ``numpy=1.26`` -> ``numpy==1.26.*``; ``numpy=1.26.4`` ->
    ``numpy==1.26.4``; ``numpy=1.26.4=py311h...`` -> ``numpy==1.26.4`` (the build string
    is dropped); ``numpy>=1.2`` kept; ``numpy 1.26`` -> ``numpy==1.26.*``;
    ``conda-forge::numpy`` -> ``numpy``; ``numpy[version='>=1.2']`` -> ``numpy>=1.2``.

    Raises ValueError for a spec that has no PyPI equivalent (``a|b`` alternatives).
    The package *name* is kept: a conda package whose PyPI name differs (``pytorch`` vs
    ``torch``) is not renamed.
    """
    text = spec.strip()
    if "::" in text:
        text = text.split("::", 1)[1]
    match = _NAME_RE.match(text)
    if not match:
        raise ValueError(f"{spec!r} is not a conda package spec")
    name = match.group(1)
    if name.lower() in ("python", "pip"):
        return None
    rest = text[match.end() :]
    if rest.startswith("["):
        end = rest.find("]")
        bracket = rest[1:end] if end >= 0 else rest[1:]
        found = re.search(r"version\s*=\s*['\"]?([^'\"\],]+(?:,[^'\"\],]+)*)", bracket)
        rest = found.group(1) if found else ""
        if rest and not rest.startswith(("=", *_OPERATORS)):
            rest = " " + rest
    if not rest.strip():
        return name
    if rest[0].isspace():
        # Space form: "name version [build]"; the build string is dropped.
        rest = re.sub(r"([=<>!~]=?)\s+", r"\1", rest)
        version = re.sub(r"\s*,\s*", ",", rest).split()[0]
        return name + _constraint_clause(version, spec)
    return name + _constraint_clause(rest, spec)


def environment_yaml(spec: dict[str, Any]) -> str:
    """The ``environment.yml`` a conda-family builder creates the environment from.

    Every scalar is written as a JSON string, which is also a valid YAML scalar, so no
    YAML library is needed.
    """
    q = json.dumps
    lines = ["name: " + q("targets-" + str(spec.get("hash", "env")))]
    channels = list(spec.get("channels") or [])
    if channels:
        lines.append("channels:")
        lines.extend("  - " + q(c) for c in channels)
    deps = list(spec.get("conda_packages") or [])
    if not any(_spec_name(d) == "python" for d in deps):
        version = spec.get("python_version")
        deps.insert(0, "python=" + version if version else "python")
    pip_items = list(spec.get("pip_options") or []) + list(spec.get("pip_packages") or [])
    if pip_items and not any(_spec_name(d) == "pip" for d in deps):
        deps.append("pip")
    lines.append("dependencies:")
    lines.extend("  - " + q(d) for d in deps)
    if pip_items:
        lines.append("  - pip:")
        lines.extend("      - " + q(p) for p in pip_items)
    variables = spec.get("variables") or []
    if variables:
        lines.append("variables:")
        lines.extend(f"  {q(k)}: {q(v)}" for k, v in variables)
    return "\n".join(lines) + "\n"


# -- package indexes, proxies and certificates ------------------------------------------------
#
# uv reads neither pip's configuration nor (by default) the OS trust store, while pip on
# the same machine does both. So before uv installs anything, the agent reads what pip
# would read on this target and hands it to uv through uv's own environment variables.
# Command-line options (the runconfig's pip options) beat environment variables in uv, as
# they beat pip.conf in pip, so the runconfig keeps precedence without extra logic.
#
# Design choice: settings travel as environment variables, not as command-line options,
# so that a URL with a token in it never shows in `ps` on a shared target.

# (pip.conf key, uv variables that mean uv was configured directly on the target (they
# win), the variable the value is handed over in, its list separator (None: one value))
_PIP_TO_UV = (
    ("index-url", ("UV_INDEX_URL", "UV_DEFAULT_INDEX"), "UV_INDEX_URL", None),
    ("extra-index-url", ("UV_EXTRA_INDEX_URL", "UV_INDEX"), "UV_EXTRA_INDEX_URL", " "),
    ("find-links", ("UV_FIND_LINKS",), "UV_FIND_LINKS", ","),
    ("trusted-host", ("UV_INSECURE_HOST",), "UV_INSECURE_HOST", " "),
    ("constraint", ("UV_CONSTRAINT",), "UV_CONSTRAINT", " "),
)
_PIP_KEYS = ("index-url", "extra-index-url", "find-links", "trusted-host", "constraint")
_PIP_SCALARS = ("cert", "proxy", "no-index")
_PROXY_VARS = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")
# Where distributions keep the OS trust store as one PEM file (the places OpenSSL-based
# tools probe); the first that exists is used.
OS_BUNDLES = (
    "/etc/ssl/certs/ca-certificates.crt",  # Debian, Ubuntu, Alpine, Arch
    "/etc/pki/tls/certs/ca-bundle.crt",  # Fedora, RHEL, CentOS
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",  # RHEL 7+
    "/etc/ssl/ca-bundle.pem",  # openSUSE
    "/etc/ssl/cert.pem",  # Alpine, macOS
)
_USERINFO = re.compile(r"(?<=://)[^/@\s]+@")


def mask_credentials(text: str) -> str:
    """``text`` with the user and password of every URL in it replaced by ``***``."""
    return _USERINFO.sub("***@", text)


def pip_config_files(environ: Mapping[str, str] | None = None) -> list[str]:
    """pip's configuration files on this machine, in the order pip reads them (a later
    file wins): ``$XDG_CONFIG_DIRS/pip/pip.conf``, ``/etc/pip.conf``, ``~/.pip/pip.conf``,
    ``~/.config/pip/pip.conf``, then ``$PIP_CONFIG_FILE``. An existing
    ``PIP_CONFIG_FILE`` replaces the user's files; ``PIP_CONFIG_FILE=/dev/null`` turns
    them all off. Files that do not exist are listed too."""
    env = os.environ if environ is None else environ
    env_file = env.get("PIP_CONFIG_FILE") or None
    if env_file == os.devnull:
        return []
    dirs = (env.get("XDG_CONFIG_DIRS") or "/etc/xdg").split(os.pathsep)
    files = [os.path.join(d, "pip", "pip.conf") for d in dirs if d]
    files.append("/etc/pip.conf")
    if not (env_file and os.path.exists(env_file)):
        home = env.get("HOME") or os.path.expanduser("~")
        files.append(os.path.join(home, ".pip", "pip.conf"))
        config_home = env.get("XDG_CONFIG_HOME") or os.path.join(home, ".config")
        files.append(os.path.join(config_home, "pip", "pip.conf"))
    if env_file:
        files.append(env_file)
    return files


def _pip_values(env: Mapping[str, str]) -> dict[str, tuple[str, str]]:
    """What pip would use for ``pip install`` here: key -> (value, where it came from).
    Later config files win, ``[install]`` wins over ``[global]``, ``PIP_*`` wins over
    files."""
    import configparser

    values: dict[str, tuple[str, str]] = {}
    for path in pip_config_files(env):
        if not os.path.isfile(path):
            continue
        parser = configparser.RawConfigParser()
        try:
            parser.read(path, encoding="utf-8")
        except (configparser.Error, OSError, UnicodeDecodeError):
            continue  # pip would refuse this file; uv then runs with its defaults
        for section in ("global", "install"):
            if not parser.has_section(section):
                continue
            for key, value in parser.items(section):
                key = key.replace("_", "-")
                if key in _PIP_KEYS or key in _PIP_SCALARS:
                    values[key] = (value.strip(), path)
    for key in _PIP_KEYS + _PIP_SCALARS:
        name = "PIP_" + key.upper().replace("-", "_")
        if env.get(name, "").strip():
            values[key] = (env[name].strip(), name)
    return values


def os_ca_bundle() -> str | None:
    """The OS trust store as one PEM file, or None when this machine keeps none of the
    usual ones."""
    return next((path for path in OS_BUNDLES if os.path.isfile(path)), None)


def package_settings(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The package index, extra indexes, find-links, trusted hosts, constraints, proxy
    and certificate bundle a uv build on this machine uses, before the runconfig's own
    pip options (which win). Read-only.

    Returns ``{"env": {VAR: value} to add to uv's environment, "no_index": bool,
    "shown": {...}}``; ``shown`` holds the same with credentials masked and where each
    value came from, for logs and ``targets show``. Precedence: uv's own variables
    (``UV_*``, ``SSL_CERT_FILE``, ``SSL_CERT_DIR``) > ``PIP_*`` > pip.conf files > the
    OS trust store.
    """
    env = os.environ if environ is None else environ
    pip = _pip_values(env)
    add: dict[str, str] = {}
    shown: dict[str, Any] = {"index": "uv's default", "index_from": "none configured"}
    for key, uv_names, target, sep in _PIP_TO_UV:
        own = next((n for n in uv_names if env.get(n)), None)
        if own is not None:
            value, source = env[own], own
        elif key in pip:
            value, source = pip[key]
            parts = value.split()
            add[target] = parts[0] if sep is None else sep.join(parts)
        else:
            continue
        if key == "index-url":
            shown["index"] = mask_credentials(value)
            shown["index_from"] = source
        else:
            shown[key.replace("-", "_")] = mask_credentials(" ".join(value.split()))
            shown[key.replace("-", "_") + "_from"] = source
    no_index = "no-index" in pip and pip["no-index"][0].lower() in ("1", "true", "yes", "on")
    if no_index:
        shown["index"] = "none (no-index)"
        shown["index_from"] = pip["no-index"][1]
    if "proxy" in pip and not any(env.get(n) for n in _PROXY_VARS):
        add["HTTPS_PROXY"] = add["HTTP_PROXY"] = pip["proxy"][0]
        shown["proxy"] = mask_credentials(pip["proxy"][0])
        shown["proxy_from"] = pip["proxy"][1]
    cert, cert_from, cert_env = _certificates(env, pip)
    add.update(cert_env)
    shown["cert"] = cert
    shown["cert_from"] = cert_from
    return {"env": add, "no_index": no_index, "shown": shown}


def _certificates(
    env: Mapping[str, str], pip: dict[str, tuple[str, str]]
) -> tuple[str, str, dict[str, str]]:
    """(bundle, where from, variables for uv) for uv's TLS. ``where from`` is a variable
    name, a pip.conf path, ``"OS trust store"``, or ``"system certificates"`` (no bundle
    file found: uv is asked to read the platform's store itself)."""
    for name in ("UV_SYSTEM_CERTS", "UV_NATIVE_TLS"):
        if env.get(name):
            return "the platform's certificate store", name, {}
    for name in ("SSL_CERT_FILE", "SSL_CERT_DIR"):
        if env.get(name):
            return env[name], name, {}
    if "cert" in pip:
        bundle, source = pip["cert"]
        return bundle, source, {"SSL_CERT_FILE": bundle}
    found = os_ca_bundle()
    if found is not None:
        return found, "OS trust store", {"SSL_CERT_FILE": found}
    # Older uv releases know UV_NATIVE_TLS, newer ones UV_SYSTEM_CERTS (and warn about the
    # old name, harmlessly).
    flags = {"UV_SYSTEM_CERTS": "1", "UV_NATIVE_TLS": "1"}
    return "the platform's certificate store", "system certificates", flags


def package_facts(
    environ: Mapping[str, str] | None = None, settings: dict[str, Any] | None = None
) -> dict[str, str]:
    """The lines ``targets show`` prints about package indexes and certificates, with
    credentials masked (from ``settings`` when given, else read from this machine)."""
    shown = (settings or package_settings(environ))["shown"]
    facts = {"package_index": "%s (%s)" % (shown["index"], shown["index_from"])}
    for key in ("extra_index_url", "find_links", "trusted_host", "constraint", "proxy"):
        if key in shown:
            facts[key] = "%s (%s)" % (shown[key], shown[key + "_from"])
    facts["cert_bundle"] = "%s (%s)" % (shown["cert"], shown["cert_from"])
    return facts


# -- public entry points --------------------------------------------------------------------


def ensure_environment(
    spec: dict[str, Any],
    root: str,
    log: BinaryIO,
    *,
    uv: str | None = None,
    default_python: str | None = None,
    timeout: float | None = None,
) -> dict[str, Any]:
    """Return a ready environment for ``spec``, building it if needed. Blocking.

    ``timeout`` bounds the build commands (seconds): when it runs out, the command is
    killed and EnvError says which command was running and for how long.

    ``spec`` is ``EnvironmentSpec.to_json()`` plus ``"hash"``. ``uv`` is the uv binary to
    use (default: ``uv`` on PATH). ``default_python`` is the interpreter used when the
    spec names none (user-managed without ``interpreter``, or managed without a Python
    version); it wins over ``python3`` on PATH.

    Returns ``{"python", "env_dir", "reused", "builder"}``. For a user-managed spec nothing
    is built: ``env_dir`` is None, ``builder`` is ``"none"`` and ``reused`` is False.
    Idempotent: a second call with the same hash reuses the environment. Build output
    streams into ``log`` as it happens. Raises :class:`EnvError`; a failed build leaves no
    folder behind.
    """
    if not spec.get("managed"):
        python = resolve_interpreter(spec.get("interpreter"), default_python)
        return {"python": python, "env_dir": None, "reused": False, "builder": "none"}
    _limits.deadline = time.monotonic() + timeout if timeout else None
    _limits.timeout = timeout
    try:
        return _ensure_managed(spec, root, log, uv=uv, default_python=default_python)
    finally:
        _limits.deadline = None


class _Limits(threading.local):
    deadline: float | None = None
    timeout: float | None = None


_limits = _Limits()


def _ensure_managed(
    spec: dict[str, Any], root: str, log: BinaryIO, *, uv: str | None, default_python: str | None
) -> dict[str, Any]:

    env_hash = str(spec.get("hash") or "")
    if not _HASH_RE.match(env_hash):
        raise EnvError(f"environment hash {env_hash!r} is not 16-64 lower-case hex digits")
    envs = os.path.join(os.path.abspath(root), ENVS)
    os.makedirs(envs, exist_ok=True)
    env_dir = os.path.join(envs, env_hash)
    with open(os.path.join(envs, env_hash + ".lock"), "a+b") as lock:
        try:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise
            _log(log, "# waiting for another run that is preparing this environment")
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        # The lock is released when the file is closed.
        record = _read_marker(env_dir)
        if record is not None:
            _touch(os.path.join(env_dir, LAST_USED))
            _log(log, "# reusing environment {} ({})".format(env_hash, record.get("builder")))
            return {
                "python": record["python"],
                "env_dir": env_dir,
                "reused": True,
                "builder": record.get("builder", "unknown"),
            }
        if os.path.lexists(env_dir):
            _log(log, f"# removing half-built environment {env_hash}")
            _remove(env_dir)
        builder, build = _choose_builder(uv)
        _log(log, f"# preparing environment {env_hash} with {builder}")
        _log(log, "# " + describe_spec(spec))
        started = time.time()
        try:
            python = build(spec, env_dir, log, default_python)
            if not _runs(python):
                raise EnvError(f"the environment was built but {python} does not run")
            created = time.time()
            record = {
                "hash": env_hash,
                "spec": spec,
                "builder": builder,
                "python": python,
                "created": created,
                "describe": describe_spec(spec),
            }
            _touch(os.path.join(env_dir, LAST_USED), created)
            _write_marker(env_dir, record)
        except BaseException:
            _remove(env_dir)
            raise
        _log(log, f"# environment {env_hash} ready in {time.time() - started:.1f}s")
        return {"python": python, "env_dir": env_dir, "reused": False, "builder": builder}


def list_environments(root: str) -> list[dict[str, Any]]:
    """Every folder under ``<root>/envs``: hash, builder, describe, created, last_used,
    size_bytes, ready (marker present) and building (its lock is held). Read-only."""
    envs = os.path.join(os.path.abspath(root), ENVS)
    if not os.path.isdir(envs):
        return []
    result = []
    for name in sorted(os.listdir(envs)):
        path = os.path.join(envs, name)
        if not _HASH_RE.match(name) or not os.path.isdir(path):
            continue
        record = _read_marker(path) or {}
        result.append(
            {
                "hash": name,
                "builder": record.get("builder"),
                "describe": record.get("describe", ""),
                "created": record.get("created"),
                "last_used": _mtime(os.path.join(path, LAST_USED)),
                "size_bytes": _size(path),
                "ready": bool(record),
                "building": _is_locked(os.path.join(envs, name + ".lock")),
            }
        )
    return result


def prune_environments(
    root: str,
    *,
    keep_hashes: Iterable[str] = (),
    older_than_seconds: float | None = None,
) -> list[str]:
    """Remove environments and return their hashes.

    Removes every environment not in ``keep_hashes`` whose last use (or creation) is older
    than ``older_than_seconds`` (all of them when None). An environment being built (its
    lock is held) is never removed; half-built folders whose builder has gone are.
    """
    keep = set(keep_hashes)
    envs = os.path.join(os.path.abspath(root), ENVS)
    if not os.path.isdir(envs):
        return []
    now = time.time()
    removed = []
    for name in sorted(os.listdir(envs)):
        path = os.path.join(envs, name)
        if name in keep or not _HASH_RE.match(name) or not os.path.isdir(path):
            continue
        with open(os.path.join(envs, name + ".lock"), "a+b") as lock:
            try:
                fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                continue  # being built or checked right now
            if older_than_seconds is not None:
                stamp = _mtime(os.path.join(path, LAST_USED)) or _mtime(path) or 0.0
                if now - stamp < older_than_seconds:
                    continue
            _remove(path)
            removed.append(name)
    return removed


# -- interpreters -----------------------------------------------------------------------------


def resolve_interpreter(interpreter: str | None, default_python: str | None = None) -> str:
    """The absolute path of a Python interpreter that runs.

    ``interpreter`` may be a path or a name looked up on PATH (``python3``). When None,
    ``default_python`` is used, else ``python3`` (then ``python``) on PATH. Symlinks are
    not resolved: a venv's ``bin/python`` must stay inside its venv. Raises EnvError.
    """
    wanted = interpreter or default_python
    if wanted:
        path = _which(wanted)
        if path is None:
            raise EnvError(
                f"the Python interpreter {wanted!r} was not found on the target; install it or fix "
                "interpreter_path in the run configuration"
            )
    else:
        path = _which("python3") or _which("python")
        if path is None:
            raise EnvError(
                "no python3 on the target's PATH; install Python 3 on the target or set "
                "interpreter_path in the run configuration"
            )
    # The interpreter running this code needs no proof that it runs (saves one start-up).
    if os.path.abspath(sys.executable) != path and not _runs(path):
        raise EnvError(
            f"the Python interpreter {path} does not run on the target; fix interpreter_path "
            "or reinstall that Python"
        )
    return path


def _which(name: str) -> str | None:
    if os.sep in name:
        path = os.path.abspath(os.path.expanduser(name))
        return path if os.path.isfile(path) and os.access(path, os.X_OK) else None
    found = shutil.which(name)
    return os.path.abspath(found) if found else None


def first_line(argv: list[str], *, merge_stderr: bool = False, timeout: float = 60) -> str | None:
    """The first line a command prints ("" for none), or None when it cannot be started,
    fails or hangs. Also used by :mod:`ops` for the facts of a target."""
    try:
        done = subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT if merge_stderr else subprocess.DEVNULL,
            timeout=timeout,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if done.returncode != 0:
        return None
    text = done.stdout.decode("utf-8", "replace").strip()
    return text.splitlines()[0] if text else ""


def _runs(python: str) -> bool:
    return first_line([python, "-c", "import sys; sys.exit(sys.version_info < (3,))"]) is not None


def _python_version_of(python: str) -> str | None:
    return first_line([python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"])


_PYTHON_NAME_RE = re.compile(r"^python(\d(\.\d+)?)?$")
# Prints version, executable and whether it is a virtual environment; Python 2.7 runs it too.
_INSPECT = (
    "import sys; print('%d.%d.%d' % sys.version_info[:3]); print(sys.executable); "
    "print(int(hasattr(sys, 'real_prefix') or sys.prefix != getattr(sys, 'base_prefix', "
    "sys.prefix)))"
)


def find_pythons(uv: str | None = None, environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The Python interpreters on this machine, for building environments. Read-only.

    Looked for, in this order: ``python``, ``python3`` and ``python3.N`` on PATH (pyenv's
    shims folder aside); pyenv's versions (``$PYENV_ROOT/versions/*``, default
    ``~/.pyenv``); the interpreters uv installed (under ``uv python dir``; nothing is
    downloaded). Each is started once to ask its version, so a broken link is left out;
    so are virtual environments (their base interpreter is what an environment is built
    from). Takes about a second.

    Returns ``{"pythons": [{"version": "3.8.18", "path": ..., "source": "path" | "pyenv"
    | "uv"}], "conda": the conda/mamba/micromamba that can install any version, or
    None}``, one entry per interpreter, newest version first.
    """
    env = os.environ if environ is None else environ
    pyenv_root = env.get("PYENV_ROOT") or os.path.join(
        env.get("HOME") or os.path.expanduser("~"), ".pyenv"
    )
    roots = [pyenv_root]
    candidates: list[tuple[str, str]] = []  # (path, source)
    for folder in (env.get("PATH") or "").split(os.pathsep):
        if not folder:
            continue
        # pyenv's shims start a shell script each (slow) and run only the selected
        # version; every version they could select is read from pyenv's folder instead
        # (found from the shims on PATH too, when PYENV_ROOT is not exported).
        parent = os.path.dirname(os.path.realpath(folder))
        if os.path.basename(folder.rstrip(os.sep)) == "shims" and os.path.isdir(
            os.path.join(parent, "versions")
        ):
            if parent not in roots:
                roots.append(parent)
            continue
        try:
            names = sorted(os.listdir(folder))
        except OSError:
            continue
        candidates.extend(
            (os.path.join(folder, n), "path") for n in names if _PYTHON_NAME_RE.match(n)
        )
    for root in roots:
        candidates.extend(
            (path, "pyenv") for path in _installed_under(os.path.join(root, "versions"))
        )
    uv_path = _which(uv) if uv else shutil.which("uv")
    if uv_path:
        managed = first_line([uv_path, "python", "dir"], timeout=20)
        if managed:
            candidates.extend((path, "uv") for path in _installed_under(managed))
    runnable = [(p, s) for p, s in candidates if os.access(p, os.X_OK) and not os.path.isdir(p)]
    # Started in parallel: each costs a Python start-up (tens of milliseconds, more on a
    # busy machine), and a machine may have twenty.
    threads = min(8, len(runnable)) or 1
    with _pool(threads) as pool:
        inspected = list(pool.map(lambda item: _inspect(item[0]), runnable))
    found: dict[str, dict[str, str]] = {}
    for index, info in enumerate(inspected):
        if info is None:
            continue
        source = runnable[index][1]
        version, executable = info
        real = os.path.realpath(executable)
        if real not in found:
            found[real] = {"version": version, "path": executable, "source": source}
    pythons = sorted(found.values(), key=lambda p: _version_key(p["version"]), reverse=True)
    conda = next(
        (shutil.which(t) for t in ("micromamba", "mamba", "conda") if shutil.which(t)), None
    )
    return {"pythons": pythons, "conda": conda}


def _pool(threads: int) -> Any:
    from concurrent.futures import ThreadPoolExecutor

    return ThreadPoolExecutor(max_workers=threads)


def _installed_under(folder: str) -> list[str]:
    """``<folder>/<version>/bin/python3`` (else ``python``) of every installation."""
    paths = []
    for name in sorted(os.listdir(folder)) if os.path.isdir(folder) else ():
        for exe in ("python3", "python"):
            path = os.path.join(folder, name, "bin", exe)
            if os.path.isfile(path):
                paths.append(path)
                break
    return paths


def _inspect(path: str) -> tuple[str, str] | None:
    try:
        done = subprocess.run(
            [path, "-c", _INSPECT],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            timeout=20,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    lines = done.stdout.decode("utf-8", "replace").split()
    if done.returncode != 0 or len(lines) != 3 or lines[2] != "0":
        return None
    return lines[0], lines[1] or path


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", version)[:3])


def base_python(version: str, uv: str | None = None) -> str | None:
    """An interpreter of ``version`` (major.minor) found by :func:`find_pythons` (the
    newest micro release), or None."""
    for found in find_pythons(uv)["pythons"]:
        if ".".join(found["version"].split(".")[:2]) == version:
            return str(found["path"])
    return None


def _python_missing(version: str, uv: str | None = None) -> EnvError:
    have = sorted(
        {".".join(p["version"].split(".")[:2]) for p in find_pythons(uv)["pythons"]},
        key=_version_key,
    )
    listed = ", ".join(have) if have else "none"
    return EnvError(
        f"Python {version} is not installed on the target (found there: {listed}); "
        f"install it (e.g. pyenv install {version}, uv python install {version}), change "
        "`python=` in the conda file, or accept the nearest version with "
        "TARGETS_PYTHON_VERSION=nearest among the run's environment variables"
    )


# -- builders ---------------------------------------------------------------------------------


def _choose_builder(uv: str | None) -> tuple[str, _Build]:
    for tool in ("micromamba", "mamba", "conda"):
        path = shutil.which(tool)
        if path:
            return "conda", partial(_build_conda, path, tool)
    uv_path = _which(uv) if uv else shutil.which("uv")
    if uv_path:
        return "uv", partial(_build_uv, uv_path)
    return "venv", _build_venv


def _build_conda(
    tool_path: str,
    tool: str,
    spec: dict[str, Any],
    env_dir: str,
    log: IO[bytes],
    default_python: str | None,
) -> str:
    yml = env_dir + ".environment.yml"
    with open(yml, "w") as handle:
        handle.write(environment_yaml(spec))
    try:
        if tool == "micromamba":
            argv = [tool_path, "create", "--yes", "--prefix", env_dir, "--file", yml]
        else:
            argv = [tool_path, "env", "create", "--quiet", "--prefix", env_dir, "--file", yml]
        code, tail = _stream(argv, log, os.environ.copy())
    finally:
        os.unlink(yml)
    if code != 0:
        raise EnvError(
            f"{tool} could not create the environment (exit code {code}); "
            f"last lines:\n{_last_lines(tail)}"
        )
    return os.path.join(env_dir, "bin", "python")


def _uv_env() -> dict[str, str]:
    env = os.environ.copy()
    for name in ("UV_PYTHON", "VIRTUAL_ENV", "CONDA_PREFIX", "PYTHONHOME"):
        env.pop(name, None)
    env["UV_PYTHON_DOWNLOADS"] = "never"
    env.setdefault("NO_COLOR", "1")
    return env


def _build_uv(
    uv: str, spec: dict[str, Any], env_dir: str, log: IO[bytes], default_python: str | None
) -> str:
    env = _uv_env()
    version = spec.get("python_version")
    if version:
        # An interpreter we found (PATH, pyenv, uv's own) by its path; else whatever
        # `uv python find` knows that we do not (a registry on Windows, a conda base).
        python_request = base_python(version, uv) or ""
        if not python_request:
            found = subprocess.run(
                [uv, "python", "find", "--no-project", version],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            if found.returncode != 0:
                raise _python_missing(version, uv)
            python_request = version
    else:
        python_request = resolve_interpreter(None, default_python)
    code, tail = _stream(
        [uv, "venv", "--no-project", "--python", python_request, env_dir],
        log,
        env,
        cwd=os.path.dirname(env_dir),
    )
    if code != 0:
        raise EnvError(
            f"uv could not create a virtual environment with Python {python_request} "
            f"(exit code {code}); "
            f"last lines:\n{_last_lines(tail)}"
        )
    python = os.path.join(env_dir, "bin", "python")
    requirements, from_conda = _requirements(spec)
    if requirements:
        settings = package_settings(env)
        for key, value in package_facts(settings=settings).items():
            _log(log, "# %s: %s" % (key.replace("_", " "), value))
        argv = [uv, "pip", "install", "--python", python]
        if settings["no_index"]:
            argv.append("--no-index")
        pip_options = list(spec.get("pip_options") or [])
        if pip_options:
            _log(log, "# the run configuration's pip options win over these:")
            _log(log, "#   " + mask_credentials(" ".join(pip_options)))
        argv += _uv_options(pip_options) + requirements
        install_env = dict(env, **settings["env"])
        code, tail = _stream(argv, log, install_env, cwd=os.path.dirname(env_dir))
        if code != 0:
            raise _install_failed("uv", code, tail, from_conda)
    return python


def _build_venv(
    spec: dict[str, Any], env_dir: str, log: IO[bytes], default_python: str | None
) -> str:
    version = spec.get("python_version")
    if version:
        base = None
        for candidate in (default_python, _which("python" + version), _which("python3")):
            if candidate and _python_version_of(candidate) == version:
                base = candidate
                break
        if base is None:
            base = base_python(version)
        if base is None:
            raise _python_missing(version)
    else:
        base = resolve_interpreter(None, default_python)
    env = os.environ.copy()
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    code, tail = _stream([base, "-m", "venv", env_dir], log, env)
    if code != 0:
        raise EnvError(
            "{} -m venv failed (exit code {}); install the venv module (e.g. apt-get "
            "install python{}-venv); last lines:\n{}".format(
                base, code, version or "3", _last_lines(tail)
            )
        )
    python = os.path.join(env_dir, "bin", "python")
    requirements, from_conda = _requirements(spec)
    if requirements:
        # pip reads pip.conf and PIP_* itself; an older pip (Python 3.8 targets) trusts
        # only its own CA bundle, so point it at the OS trust store when nothing else is.
        tls_vars = ("SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE")
        bundle = os_ca_bundle()
        if bundle and "cert" not in _pip_values(env) and not any(env.get(n) for n in tls_vars):
            env["PIP_CERT"] = bundle
            _log(log, "# cert bundle: %s (OS trust store)" % bundle)
        argv = [python, "-m", "pip", "install"]
        for option in spec.get("pip_options") or []:
            argv += option.split(None, 1)
        argv += requirements
        code, tail = _stream(argv, log, env, cwd=os.path.dirname(env_dir))
        if code != 0:
            raise _install_failed("pip", code, tail, from_conda)
    return python


def _requirements(spec: dict[str, Any]) -> tuple[list[str], dict[str, str]]:
    """PyPI requirements for a venv build, and the conda specs they came from (by
    normalised name)."""
    requirements = []
    from_conda = {}
    for conda_spec in spec.get("conda_packages") or []:
        try:
            requirement = conda_to_pip(conda_spec)
        except ValueError as exc:
            raise EnvError(f"{exc}; {_NO_CONDA_HINT}") from exc
        if requirement is not None:
            requirements.append(requirement)
            from_conda[_pypi_name(requirement)] = conda_spec
    requirements.extend(spec.get("pip_packages") or [])
    return requirements, from_conda


def _uv_options(options: Iterable[str]) -> list[str]:
    argv = []
    for option in options:
        parts = option.split(None, 1)
        flag = parts[0]
        if flag == "--pre":
            argv += ["--prerelease", "allow"]
        elif flag == "--trusted-host":
            argv += ["--allow-insecure-host", *parts[1:]]
        else:
            argv += parts
    return argv


def _pypi_name(requirement: str) -> str:
    match = _NAME_RE.match(requirement.strip())
    name = match.group(1) if match else requirement
    return re.sub(r"[-_.]+", "-", name).lower()


_NOT_FOUND_PATTERNS = (
    # uv: "Because foo was not found in the package registry and you require foo, ..."
    re.compile(r"Because ([A-Za-z0-9][A-Za-z0-9._-]*) was not found in the"),
    # uv: "Because there is no version of foo==9.9 and you require foo==9.9, ..."
    re.compile(r"there is no version of ([A-Za-z0-9][A-Za-z0-9._-]*)"),
    # pip: "ERROR: No matching distribution found for foo"
    re.compile(r"No matching distribution found for ([A-Za-z0-9][A-Za-z0-9._-]*)"),
)


def _install_failed(tool: str, code: int, tail: deque[str], from_conda: dict[str, str]) -> EnvError:
    text = "\n".join(tail)
    names: list[str] = []
    for pattern in _NOT_FOUND_PATTERNS:
        for found in pattern.findall(text):
            name = _pypi_name(found)
            if name not in names:
                names.append(name)
    if not names:
        return EnvError(
            f"{tool} could not install the packages (exit code {code}); "
            f"last lines:\n{_last_lines(tail)}"
        )
    described = ", ".join(
        f"{n} (conda spec {from_conda[n]!r})" if n in from_conda else n for n in names
    )
    message = "could not find {} {}".format("package" if len(names) == 1 else "packages", described)
    if any(n in from_conda for n in names):
        message += "; " + _NO_CONDA_HINT
    else:
        message += "; check the name and version in the pip list and the package index options"
    return EnvError(message + f"\nlast lines of {tool}:\n{_last_lines(tail, 10)}")


# -- plumbing ---------------------------------------------------------------------------------


def _stream(
    argv: list[str], log: IO[bytes], env: dict[str, str], cwd: str | None = None
) -> tuple[int, deque[str]]:
    """Run ``argv``, copying its stdout and stderr into ``log`` line by line as they come.
    Returns the exit code and the last lines of output."""
    _log(log, "$ " + mask_credentials(" ".join(argv)))
    tail: deque[str] = deque(maxlen=_TAIL_LINES)
    try:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=cwd,
        )
    except OSError as exc:
        raise EnvError(f"could not start {argv[0]}: {exc}") from exc
    if proc.stdout is None:  # pragma: no cover - PIPE was requested
        raise EnvError(f"could not read the output of {argv[0]}")
    timer = None
    expired = threading.Event()
    if _limits.deadline is not None:

        def expire() -> None:
            expired.set()
            proc.kill()

        timer = threading.Timer(max(0.0, _limits.deadline - time.monotonic()), expire)
        timer.daemon = True
        timer.start()
    try:
        for raw in iter(proc.stdout.readline, b""):
            # Package tools mostly redact credentials themselves; this is the safety net.
            line = mask_credentials(raw.decode("utf-8", "replace").rstrip("\n"))
            log.write(line.encode("utf-8") + b"\n")
            log.flush()
            tail.append(line)
        code = proc.wait()
    finally:
        if timer is not None:
            timer.cancel()
    if expired.is_set():
        raise EnvError(
            f"environment preparation took longer than {_limits.timeout:g} s and was stopped "
            f"while running: {' '.join(argv[:3])} ...; look at prepare.log for where it hung "
            "(often a package index that cannot be reached), or allow more time with "
            "TARGETS_PREPARE_TIMEOUT=SECONDS"
        )
    return code, tail


def _last_lines(tail: Iterable[str], count: int = 20) -> str:
    lines = [line for line in tail if line.strip()]
    return "\n".join("  " + line for line in lines[-count:])


def _log(log: IO[bytes], line: str) -> None:
    log.write(line.encode("utf-8", "replace") + b"\n")
    log.flush()


def _read_marker(env_dir: str) -> dict[str, Any] | None:
    try:
        with open(os.path.join(env_dir, MARKER)) as handle:
            record = json.load(handle)
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or "python" not in record:
        return None
    return record


def _write_marker(env_dir: str, record: dict[str, Any]) -> None:
    tmp = os.path.join(env_dir, MARKER + ".tmp")
    with open(tmp, "w") as handle:
        json.dump(record, handle, indent=2, sort_keys=True)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, os.path.join(env_dir, MARKER))


def _touch(path: str, when: float | None = None) -> None:
    with open(path, "a"):
        pass
    os.utime(path, None if when is None else (when, when))


def _mtime(path: str) -> float | None:
    try:
        return os.stat(path).st_mtime
    except OSError:
        return None


def _size(path: str) -> int:
    total = 0
    for dirpath, _dirnames, filenames in os.walk(path):
        for name in filenames:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(dirpath, name)).st_size
    return total


def _is_locked(lock_path: str) -> bool:
    if not os.path.exists(lock_path):
        return False
    with open(lock_path, "a+b") as lock:
        try:
            fcntl.flock(lock.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            return True
        return False


def _remove(path: str) -> None:
    if os.path.islink(path) or os.path.isfile(path):
        os.unlink(path)
    elif os.path.isdir(path):
        shutil.rmtree(path)


if __name__ == "__main__":  # pragma: no cover - manual use on a target
    print(json.dumps(list_environments(sys.argv[1] if len(sys.argv) > 1 else "."), indent=2))
