"""Public test helpers for plugin authors: both contract suites and the fixtures they use.

- :class:`ComputeTargetContract` (:mod:`targets.testing.compute`): the behaviour every
  target kind has; subclass it and provide a ``target`` fixture.
- :class:`NodeProviderContract` (:mod:`targets.testing.providers`): the behaviour every
  cluster node provider has; subclass it and provide ``provider_name`` (and
  ``provider_options`` when it has required options).
- :mod:`targets.testing.sshd`: a real OpenSSH server on 127.0.0.1 (``sshd``,
  ``sshd_server``, ``ssh_connect`` fixtures, :class:`SSHServer`), the machine an SSH-based
  kind logs in to.
- :mod:`targets.testing.fixtures`: a temporary HOME and keyring for every test
  (``isolated_home``, autouse), ``project`` (an empty workspace as the current folder),
  ``cli`` (the real ``targets`` command in a subprocess) and ``write``.

Fixtures are plain pytest fixtures: import them into your ``conftest.py``, or load a
module as a plugin (``pytest -p targets.testing.fixtures``). :func:`skip_or_fail` skips a
test whose service is missing, or fails it when ``CI`` is set.

Requires pytest: ``pip install 'compute-targets[testing]'`` (pytest and what these
helpers use, nothing else).
"""

from __future__ import annotations

from targets.testing.compute import (
    ComputeTargetContract,
    collect_logs,
    make_request,
    wait_for_end,
)
from targets.testing.providers import NodeProviderContract, wait_for_nodes
from targets.testing.sshd import SSHServer, skip_or_fail

__all__ = [
    "ComputeTargetContract",
    "NodeProviderContract",
    "SSHServer",
    "collect_logs",
    "make_request",
    "skip_or_fail",
    "wait_for_end",
    "wait_for_nodes",
]
