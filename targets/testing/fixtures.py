"""Fixtures for a plugin's tests: an isolated HOME, a project, and the real ``targets`` CLI.

Import them into your ``conftest.py`` (``isolated_home`` is autouse, so it then applies
to every test under that folder), or load this module as a plugin
(``pytest -p targets.testing.fixtures``)::

    from targets.testing.fixtures import cli, isolated_home, project, write  # noqa: F401

- ``isolated_home`` (autouse): HOME, ``TARGETS_HOME`` and the keyring are the test's own,
  in a temporary folder; nothing touches the developer's workspaces or secrets. The
  keyring is targets' encrypted file keyring under a random passphrase (no desktop
  keyring is needed).
- ``project``: an empty workspace folder, made the current directory.
- ``cli``: ``cli(*args, input=None, timeout=120, env=None, cwd=None) ->`` :class:`CLIResult`,
  the ``targets`` command run in a subprocess as a user runs it (exit code, stdout,
  stderr).
- ``write``: ``write(path, text) -> path``, making the parent folders.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

__all__ = ["TARGETS", "CLIResult", "cli", "isolated_home", "project", "write"]

TARGETS = [sys.executable, "-m", "targets"]
"""The command line that runs this interpreter's ``targets``."""


@pytest.fixture(autouse=True)
def isolated_home(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """A temporary HOME, agent root and keyring for the test (and the commands it runs)."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("TARGETS_HOME", str(home / ".targets"))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / ".local" / "share"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.delenv("TARGETS_WORKSPACE", raising=False)
    monkeypatch.delenv("TARGETS_KEYRING_PASSPHRASE_FILE", raising=False)
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "targets.keyring_file.EncryptedFileKeyring")
    monkeypatch.setenv("TARGETS_KEYRING_PASSPHRASE", secrets.token_urlsafe(16))
    return home


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty project folder (a workspace root without git) as the current directory."""
    root = tmp_path / "proj"
    root.mkdir()
    (root / ".targets").mkdir()
    monkeypatch.chdir(root)
    return root


class CLIResult:
    """What a ``targets`` command did: ``code``, ``out`` (stdout), ``err`` (stderr)."""

    def __init__(self, proc: subprocess.CompletedProcess[str]) -> None:
        self.code = proc.returncode
        self.out = proc.stdout
        self.err = proc.stderr

    def json(self) -> object:
        """stdout parsed as JSON (for ``-o json``)."""
        return json.loads(self.out)

    def __repr__(self) -> str:
        return f"<exit {self.code}\nstdout: {self.out}\nstderr: {self.err}>"


@pytest.fixture
def cli() -> Callable[..., CLIResult]:
    """Run ``targets ARGS...`` as a user would; returns exit code, stdout and stderr."""

    def run(
        *args: str,
        input: str | None = None,
        timeout: float = 120,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
    ) -> CLIResult:
        proc = subprocess.run(
            [*TARGETS, *args],
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**os.environ, **(env or {})},
            cwd=cwd,
        )
        return CLIResult(proc)

    return run


@pytest.fixture
def write() -> Callable[[Path, str], Path]:
    """``write(path, text)``: write ``text`` to ``path`` (parents made); returns ``path``."""

    def _write(path: Path, text: str) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path

    return _write
