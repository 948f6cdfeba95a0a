"""The ``local`` target: this machine.

It uses the agent in-process: the same object store, environment cache and detached
supervisor that remote kinds drive over SSH, rooted at ``$TARGETS_HOME`` (default
``~/.targets``). Environments and snapshot objects are therefore shared by every project
of the user on this machine.

A user-managed run uses the user's Python, not the one running ``targets``: see
:mod:`targets.compute._python`. Built (managed) environments still start from
``sys.executable`` as their base interpreter: they are isolated from it.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from targets.agent import ops, rundir
from targets.agent.protocol import Activation, ManifestRow, RunSpec
from targets.compute._agent import AgentClient, AgentHandleData, AgentTarget, LocalAgentClient
from targets.compute._python import UserPython, chosen_python, default_python
from targets.compute.base import Capability, SubmitRequest

if TYPE_CHECKING:
    from targets.runconfig.model import RunConfiguration

__all__ = ["LocalTarget", "agent_root"]


def agent_root() -> Path:
    """Where the agent keeps objects, environments and runs on this machine."""
    return Path(os.environ.get("TARGETS_HOME") or Path.home() / ".targets")


class LocalTarget(AgentTarget):
    """Runs on this machine, detached from the client."""

    kind = "local"
    description = "this machine"

    @classmethod
    def summary(cls, options: Mapping[str, Any]) -> str:
        return "this machine"

    capabilities = frozenset(
        {
            Capability.VIRTUALENV,
            Capability.CONDA,
            Capability.DOCKER,
            Capability.SPARK,
            Capability.CANCEL,
            Capability.LIVE_LOGS,
        }
    )
    default_python = sys.executable
    docker_driver = "sdk"

    @property
    def root(self) -> Path:
        return agent_root()

    def connect_agent(self) -> AgentClient:
        rundir.make_private(str(self.root))  # as the remote agent does (see rundir)
        return LocalAgentClient(self.root)

    def check_request(self, config: RunConfiguration) -> None:
        """A user-managed run needs a Python that runs: refused here (exit 2) before
        anything is written."""
        self._user_python(config.environment.python.interpreter_path, config)

    def _user_python(self, interpreter: str | None, config: RunConfiguration) -> UserPython | None:
        """The interpreter of a user-managed run outside containers (None for others)."""
        from targets.environments import is_user_managed

        if not is_user_managed(config) or config.environment.docker.enabled:
            return None
        if interpreter:
            return chosen_python(interpreter, os.environ, Path.cwd())
        return default_python(os.environ)

    def start_run(
        self,
        agent: AgentClient,
        request: SubmitRequest,
        rows: Sequence[ManifestRow],
        spec: RunSpec,
    ) -> AgentHandleData:
        """Record the user's Python in the spec (decided here, in the client's
        environment) and how the run's environment activates it."""
        chosen = self._user_python(request.environment.interpreter, request.config)
        if chosen is None:
            return super().start_run(agent, request, rows, spec)
        spec["environment"] = dict(spec["environment"], interpreter=chosen.path)
        spec["activate"] = cast(Activation, chosen.activation(os.environ))
        started = super().start_run(agent, request, rows, spec)
        return {**started, "python": chosen.to_json()}

    def probe(self) -> dict[str, Any]:
        facts = ops.probe(str(self.root), sys.executable)
        facts["python"] = sys.executable
        return facts
